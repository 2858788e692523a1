"""The shape of a callback request, checked before any callback runs.

The Dash renderer sends each input as the JSON value its component holds:
``n_clicks`` is a count, a dropdown's ``value`` a scalar or a list of
scalars, a grid's ``rowData`` a list of objects. A hand-made request can
send anything (an object for a count, ``10**30`` for an id, a NUL inside a
text): Python code reading it fails in many places, and PostgreSQL refuses
NUL bytes. So every ``/_dash-update-component`` request is checked here, by
the property each value is for, and a value of the wrong shape is refused
with 400 and a message naming it. Callbacks still check what their values
mean (an id that exists, a date that parses).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flask

from dashboard.auth import _json_error
from db.errors import LoyaltyError

UPDATE_PATH = "/_dash-update-component"
MAX_TEXT = 1_000_000  # characters in one text value
# An uploaded file (``contents``) is base64 text up to 4/3 of the file: it is
# bounded by the request size cap (MAX_REQUEST_MB), not by MAX_TEXT.
MAX_UPLOAD_BYTES = 30 * 1024 * 1024
UNBOUNDED_TEXT = frozenset({"contents"})
MAX_INT = 2**53  # beyond this a browser cannot hold the integer exactly
MAX_DEPTH = 32


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return _is_int(v) or isinstance(v, float)


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | bool) or _is_number(v)


def _count(v: Any) -> bool:
    return v is None or (_is_int(v) and v >= 0)


def _text(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _value(v: Any) -> bool:
    return _scalar(v) or (isinstance(v, list) and all(_scalar(x) for x in v))


def _object(v: Any) -> bool:
    return v is None or isinstance(v, dict)


def _objects(v: Any) -> bool:
    return v is None or (isinstance(v, list) and all(isinstance(x, dict) for x in v))


def _objects_or_object(v: Any) -> bool:
    return _object(v) or _objects(v)


def _path(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.startswith("/"))


def _text_or_texts(v: Any) -> bool:
    return _text(v) or (isinstance(v, list) and all(isinstance(x, str) for x in v))


# property -> (check, what it must be); properties not listed take any JSON
SHAPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **dict.fromkeys(("n_clicks", "n_intervals", "n_submit", "n_blur", "active_page"),
                    (_count, "a non-negative whole number")),
    "value": (_value, "a text, number or true/false, or a list of them"),
    "pathname": (_path, "a path starting with /"),
    **dict.fromkeys(("search", "hash", "href", "active_tab", "date", "start_date",
                     "end_date", "active_item"), (_text, "a text")),
    **dict.fromkeys(("contents", "filename"), (_text_or_texts, "a text or a list of texts")),
    **dict.fromkeys(("rowData", "selectedRows", "virtualRowData"),
                    (_objects, "a list of objects")),
    "cellValueChanged": (_objects_or_object, "an object or a list of objects"),
    **dict.fromkeys(("getRowsRequest", "clickData", "hoverData", "selectedData", "relayoutData",
                     "filterModel"), (_object, "an object")),
}


class BadValue(ValueError):
    pass


def _walk(v: Any, where: str, depth: int = 0, max_text: int | None = MAX_TEXT) -> None:
    """Refuse what no component sends: NUL in text, huge or non-finite numbers."""
    if depth > MAX_DEPTH:
        raise BadValue(f"{where}: nested too deeply")
    if isinstance(v, str):
        if "\x00" in v:
            raise BadValue(f"{where}: a text contains a NUL character")
        if max_text is not None and len(v) > max_text:
            raise BadValue(f"{where}: a text is longer than {max_text:,} characters")
    elif _is_int(v):
        if abs(v) > MAX_INT:
            raise BadValue(f"{where}: a number is too large")
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise BadValue(f"{where}: a number is not finite")
    elif isinstance(v, list):
        for x in v:
            _walk(x, where, depth + 1, max_text)
    elif isinstance(v, dict):
        for k, x in v.items():
            _walk(k, where, depth + 1)
            _walk(x, where, depth + 1, max_text)


def check_body(body: Any) -> None:
    """Raise :class:`BadValue` naming the first input or state of a wrong shape."""
    if not isinstance(body, dict):
        raise BadValue("the request body is not a JSON object")
    for part in ("inputs", "state"):
        items = body.get(part) or []
        if not isinstance(items, list):
            raise BadValue(f"{part} is not a list")
        for item in _flatten(items):
            if not isinstance(item, dict):
                raise BadValue(f"{part} holds something that is not an input")
            prop = item.get("property")
            cid = item.get("id")
            where = f"{cid}.{prop}" if isinstance(cid, str) else f"{part} {prop}"
            value = item.get("value")
            _walk(value, where, max_text=None if prop in UNBOUNDED_TEXT else MAX_TEXT)
            shape = SHAPES.get(prop) if isinstance(prop, str) else None
            if shape is not None and not shape[0](value):
                raise BadValue(f"{where} must be {shape[1]}")


def _flatten(items: list[Any]) -> list[Any]:
    """Pattern-matching (ALL) inputs come as lists of inputs."""
    out: list[Any] = []
    for item in items:
        out.extend(item if isinstance(item, list) else [item])
    return out


def check_request() -> flask.Response | None:
    """A ``before_request`` hook: 400 for a callback request of the wrong shape."""
    if flask.request.path != UPDATE_PATH or flask.request.method != "POST":
        return None
    try:
        check_body(flask.request.get_json(silent=True))
    except BadValue as exc:
        flask.current_app.logger.warning("refused callback request: %s", exc)
        return _json_error(400, f"refused: {exc}")
    return None


def refuse_domain_error(exc: LoyaltyError) -> flask.Response:
    """A service's refusal that a callback did not turn into a message (a
    value no form offers, say) answers 400 with that message, not a 500."""
    flask.current_app.logger.warning("refused callback request: %s", exc)
    return _json_error(400, f"refused: {exc}")


def init_callback_checks(server: flask.Flask) -> None:
    """Register the shape check (after the login guard) and the refusal."""
    server.before_request(check_request)
    server.register_error_handler(LoyaltyError, refuse_domain_error)


# ---------------------------------------------------------------- for callbacks
# What a callback reads from a value of the right shape but unexpected kind
# (a number typed into a text box, a list where one id was chosen).


def as_id(v: Any) -> int | None:
    """A chosen row id: a positive whole number (or its digits), else None."""
    if isinstance(v, str) and v.strip().isdigit():
        v = int(v.strip())
    return v if _is_int(v) and 0 < v <= MAX_INT else None


def as_text(v: Any) -> str:
    """A text box's content as text (a number typed in a number box included)."""
    if isinstance(v, str):
        return v
    return "" if v is None or isinstance(v, bool | list | dict) else str(v)


def as_dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}
