"""Pure formatting of money, points and rates for display (integers only)."""

from __future__ import annotations

import datetime as dt


def money(minor: int, currency: str = "") -> str:
    """12345678 -> "123,456.78 RUB" without passing through a float."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(int(minor)), 100)
    text = f"{sign}{whole:,}.{cents:02d}"
    return f"{text} {currency}".rstrip()


def points(n: int) -> str:
    return f"{int(n):,}"


def signed_points(n: int) -> str:
    return f"{int(n):+,}"


def rate_bp(bp: int) -> str:
    """525 -> "5.25 %"."""
    whole, frac = divmod(int(bp), 100)
    return f"{whole}.{frac:02d} %"


def when(value: dt.datetime | dt.date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def chart_text(value: object) -> str:
    """Text for a Plotly label: Plotly reads ``<b>``, ``<a href>``, ``<br>`` in
    labels as markup, so names typed by staff (tiers, segments) go in with
    ``& < >`` as entities and show as typed."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
