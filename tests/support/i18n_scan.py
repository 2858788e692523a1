"""English left in a page shown in Russian: the words of a Dash component
tree (as the server sends it) or of a page's visible text that are written
in Latin letters and are not names the product keeps as they are."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

# words a Russian page keeps in Latin letters: abbreviations and names of
# things (formats, products) that are not translated
KEPT = frozenset({
    "CSV", "ID", "IDs", "LTV", "API", "JSON", "KPI", "KPIs", "URL", "OK", "UTC", "RFM",
    "PostgreSQL", "SQLite", "Redis", "English", "p", "CI", "SQL", "AOV", "HTTP", "CUPED",
    "UTF",
})
# properties of a component that are text a user reads
TEXT_PROPS = frozenset({
    "children", "label", "placeholder", "title", "headerName", "headerTooltip",
    "tooltip", "tooltipField", "text", "description", "overlayNoRowsTemplate",
    "overlayLoadingTemplate", "loading_state_text", "message", "displayed",
})
# a word: letters of any alphabet (a name such as "Ščepán" is one word, not "epán")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_LATIN = re.compile(r"[A-Za-z'’]+")
# not words: placeholders, ids, paths, e-mail addresses, number formats, and
# the column names a member file is written with, which users type as they are
_NOT_TEXT = re.compile(r"%\(\w+\)s|https?://\S+|\S+@\S+|/[\w/-]*|\b[\w-]+\.(?:csv|json)\b"
                       r"|\b(?:member_id|customer_id)\b")


def english_words(text: str, kept: Iterable[str] = ()) -> list[str]:
    """The words of ``text`` written in Latin letters only, other than the
    kept ones (single letters are not words: units, variables)."""
    allowed = KEPT | frozenset(kept)
    words = _WORD.findall(_NOT_TEXT.sub(" ", text))
    return [w for w in words if len(w) > 1 and _LATIN.fullmatch(w) and w not in allowed]


def texts(tree: Any, text: bool = True) -> Iterator[str]:
    """Every string a user reads in a Dash component tree (JSON as the
    server sends it): text children and text properties, the grids'
    column headers, the figures' titles, axis titles, legend and hover names."""
    if isinstance(tree, str):
        if text:
            yield tree
    elif isinstance(tree, list):
        for item in tree:
            yield from texts(item, text)
    elif isinstance(tree, dict):
        if "props" in tree and "type" in tree:  # a component
            yield from _props(tree["props"])
        elif "data" in tree and "layout" in tree:  # a figure
            yield from _figure(tree)
        else:  # a property's value or a response: text where a text key says so
            for key, value in tree.items():
                yield from texts(value, key in TEXT_PROPS)


def _props(props: dict[str, Any]) -> Iterator[str]:
    for key, value in props.items():
        if key == "figure" and isinstance(value, dict):
            yield from _figure(value)
        elif key not in ("id", "className", "style", "href", "type", "value", "data",
                         "rowData", "src", "srcDoc"):
            yield from texts(value, key in TEXT_PROPS)


def _figure(fig: dict[str, Any]) -> Iterator[str]:
    for trace in fig.get("data") or []:
        if isinstance(trace.get("name"), str):
            yield trace["name"]
        template = trace.get("hovertemplate")
        if isinstance(template, str):
            yield re.sub(r"%\{[^}]*\}|<[^>]+>", " ", template)
    layout = fig.get("layout") or {}
    for key, value in layout.items():
        if key == "title" or key.startswith(("xaxis", "yaxis", "legend", "coloraxis")):
            yield from _titles(value)
    for note in layout.get("annotations") or []:
        if isinstance(note.get("text"), str):
            yield re.sub(r"<[^>]+>", " ", note["text"])


def _titles(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, sub in value.items():
            if key in ("text", "title"):
                yield from _titles(sub)


def english_in(tree: Any, kept: Iterable[str] = ()) -> dict[str, list[str]]:
    """Each text of ``tree`` that has English words, with those words."""
    found: dict[str, list[str]] = {}
    for text in texts(tree):
        words = english_words(text, kept)
        if words:
            found[text] = words
    return found


# ------------------------------------------------------------------ a program's own words

RUSSIAN_PASSWORD = "russian-pages-pass-1"


def data_words(database_url: str) -> set[str]:
    """Words of a program's own data (member, staff, tier, rule version and
    pilot names, what staff typed), which pages show as they are in every
    language."""
    from sqlalchemy import select

    from db.models import AdjustmentRequest, AuditLog, Member, Pilot, RuleSet, StaffUser, Tier
    from db.session import Database

    d = Database(database_url)
    words: set[str] = set()
    try:
        with d.read() as s:
            texts_of = [
                *s.scalars(select(Member.name)),
                *s.scalars(select(Member.external_id)),
                *s.scalars(select(RuleSet.name)),
                *s.scalars(select(Tier.name)),
                *s.scalars(select(Pilot.name)),
                *(f"{u.username} {u.full_name or ''}" for u in s.scalars(select(StaffUser))),
                *s.scalars(select(AuditLog.actor).distinct()),  # "cli", "seed", usernames
                # what staff typed: an adjustment's comment, ticket and decision
                *s.scalars(select(AdjustmentRequest.comment)),
                *s.scalars(select(AdjustmentRequest.ticket_ref)),
                *s.scalars(select(AdjustmentRequest.decision_reason)),
                # names and notes as they were when the audit log recorded them
                *(typed for row in s.execute(select(AuditLog.before, AuditLog.after))
                  for text in row if text for typed in _typed_values(text)),
            ]
    finally:
        d.dispose()
    for text in texts_of:
        words.update(re.findall(r"\w+", text or ""), _WORD.findall(text or ""))
    return words


# the recorded fields that hold what staff typed (names, notes, reasons) or data
TYPED_FIELDS = frozenset({"name", "full_name", "username", "note", "comment", "reason",
                          "ticket_ref", "decision_reason", "in_force_name",
                          "prefix"})  # an API key's public prefix: hex digits


def _typed_values(text: str) -> list[str]:
    """What staff typed, among the values of a recorded JSON object."""
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return []
    found: list[str] = []

    def walk(v: Any, key: str = "") -> None:
        if isinstance(v, dict):
            for k, sub in v.items():
                walk(sub, k)
        elif isinstance(v, list):
            for sub in v:
                walk(sub, key)
        elif isinstance(v, str) and key in TYPED_FIELDS:
            found.append(v)

    walk(value)
    return found


def russian_staff(database_url: str) -> dict[str, str]:
    """A staff user of each role who chose Russian, password
    :data:`RUSSIAN_PASSWORD` (created once, for every module that needs
    them): role -> username."""
    from sqlalchemy import select

    from db import users
    from db.models import StaffUser
    from db.session import Database

    d = Database(database_url)
    names = {}
    try:
        with d.begin() as s:
            for role in ("supervisor", "executive", "support"):
                username = f"ru{role}"
                u = s.scalar(select(StaffUser).where(StaffUser.username == username))
                if u is None:
                    u = users.create_user(s, username, RUSSIAN_PASSWORD, role,
                                          full_name="Иван Иванов")
                users.set_language(s, u.id, "ru", actor=username)
                names[role] = username
    finally:
        d.dispose()
    return names
