"""Requests shaped like the Dash renderer's, for the load benchmark and the
HTTP tests: the body of a ``/_dash-update-component`` call, and which callback
writes to a component. Works on ``app.callback_map`` entries and on
``/_dash-dependencies`` items alike (both carry ``inputs`` and ``state``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

UPDATE = "/_dash-update-component"


def outputs(key: str) -> list[dict[str, str]] | dict[str, str]:
    """The ``outputs`` field for a callback key (``..a.x...b.y..`` or ``a.x``)."""
    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    outs = []
    for part in parts:
        cid, prop = part.rsplit(".", 1)
        outs.append({"id": cid, "property": prop})
    return outs if key.startswith("..") else outs[0]


def request_body(key: str, entry: dict[str, Any], values: dict[str, Any] | None = None,
                 changed: list[str] | None = None) -> dict[str, Any]:
    """The body for callback ``key``; ``values`` keyed ``"id.property"``."""
    values = values or {}

    def spec(items: list[dict[str, str]]) -> list[dict[str, Any]]:
        return [
            {"id": i["id"], "property": i["property"],
             "value": values.get(f"{i['id']}.{i['property']}")}
            for i in items
        ]

    inputs = spec(entry["inputs"])
    return {
        "output": key,
        "outputs": outputs(key),
        "inputs": inputs,
        "state": spec(entry.get("state", [])),
        "changedPropIds": changed if changed is not None else [
            f"{i['id']}.{i['property']}" for i in inputs[:1]
        ],
    }


def keys_writing(keys: Iterable[str], output_id: str) -> list[str]:
    """The callback keys among ``keys`` that write to component ``output_id``."""
    return [k for k in keys if re.search(rf"(^|\.){re.escape(output_id)}\.", k)]

