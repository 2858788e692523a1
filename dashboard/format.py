"""Formatting of money, points, rates and dates for display (integers only),
in the request's language: English as ``1,234.56`` and ``2026-12-02``,
Russian as ``1 234,56 ₽`` and ``02.12.2026`` (babel's ru_RU conventions,
with no-break spaces between thousands). ``lang`` overrides the request's
language; outside a request (background jobs, tests) it is English."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from babel import dates as babel_dates
from babel import numbers as babel_numbers

from dashboard.i18n import current_language, locale_of

CURRENCY_SIGNS = {"RUB": "₽"}  # shown after the amount in Russian


def _lang(lang: str | None) -> str:
    return lang or current_language()


def _minor(minor: int) -> Decimal:
    return Decimal(int(minor)).scaleb(-2)  # exact: no float on the way


def money(minor: int, currency: str = "", *, lang: str | None = None) -> str:
    """12345678 -> "123,456.78 RUB" (en) / "123 456,78 ₽" (ru), without a float."""
    if _lang(lang) == "ru":
        amount = _minor(minor)
        if currency:
            return babel_numbers.format_currency(amount, currency, locale=locale_of("ru"))
        return babel_numbers.format_decimal(amount, format="#,##0.00", locale=locale_of("ru"))
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(int(minor)), 100)
    text = f"{sign}{whole:,}.{cents:02d}"
    return f"{text} {currency}".rstrip()


def currency_unit(currency: str, *, lang: str | None = None) -> str:
    """The currency as chart titles and axes name it: "RUB" (en) / "₽" (ru)."""
    if _lang(lang) == "ru" and currency:
        return CURRENCY_SIGNS.get(currency) or babel_numbers.get_currency_symbol(
            currency, locale=locale_of("ru"))
    return currency


def points(n: int, *, lang: str | None = None) -> str:
    if _lang(lang) == "ru":
        return babel_numbers.format_decimal(int(n), format="#,##0", locale=locale_of("ru"))
    return f"{int(n):,}"


def signed_points(n: int, *, lang: str | None = None) -> str:
    n = int(n)
    if _lang(lang) == "ru":
        return ("+" if n >= 0 else "-") + points(abs(n), lang="ru")
    return f"{n:+,}"


def rate_bp(bp: int, *, lang: str | None = None) -> str:
    """525 -> "5.25 %" (en) / "5,25 %" (ru)."""
    whole, frac = divmod(int(bp), 100)
    point = "," if _lang(lang) == "ru" else "."
    return f"{whole}{point}{frac:02d} %"


def number(x: float, spec: str = ",.2f", *, lang: str | None = None) -> str:
    """A number with a Python format spec (",.2f", "+,.3f", ".1%", ".3g"):
    1234.5 -> "1,234.50" (en) / "1 234,50" (ru: comma decimal mark, no-break
    spaces between thousands and before "%")."""
    text = format(x, spec)
    if _lang(lang) != "ru":
        return text
    return text.replace(",", "\u00a0").replace(".", ",").replace("%", "\u00a0%")


def when(value: dt.datetime | dt.date | None, *, lang: str | None = None) -> str:
    """"2026-12-02 18:30" / "2026-12-02" (en); "02.12.2026 18:30" / "02.12.2026" (ru)."""
    if value is None:
        return ""
    ru = _lang(lang) == "ru"
    if isinstance(value, dt.datetime):
        if ru:
            return babel_dates.format_datetime(value, "dd.MM.yyyy HH:mm", locale=locale_of("ru"))
        return value.strftime("%Y-%m-%d %H:%M")
    if ru:
        return babel_dates.format_date(value, "dd.MM.yyyy", locale=locale_of("ru"))
    return value.isoformat()


def plotly_separators(*, lang: str | None = None) -> str:
    """Plotly's ``layout.separators``: the decimal mark, then the thousands one."""
    return ",\u00a0" if _lang(lang) == "ru" else ".,"


def chart_text(value: object) -> str:
    """Text for a Plotly label: Plotly reads ``<b>``, ``<a href>``, ``<br>`` in
    labels as markup, so names typed by staff (tiers, segments) go in with
    ``& < >`` as entities and show as typed."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def decimal(value: float, digits: int = 2, *, sign: bool = False,
            lang: str | None = None) -> str:
    """A computed figure (a ratio, a frequency): 1234.5 -> "1,234.50" (en) /
    "1 234,50" (ru); ``sign``: "+" before a positive number ("+0.0", never "-0.0")."""
    value = round(float(value), digits) + 0.0  # no "-0.0"
    if _lang(lang) == "ru":
        text = babel_numbers.format_decimal(
            abs(value), format="#,##0." + "0" * digits if digits else "#,##0",
            locale=locale_of("ru"))
        return ("-" if value < 0 else "+" if sign else "") + text
    return f"{value:{'+' if sign else ''},.{digits}f}"


def percent(share: float, digits: int = 1, *, sign: bool = False,
            lang: str | None = None) -> str:
    """A share as a percentage: 0.1234 -> "12.3 %" (en) / "12,3 %" (ru)."""
    return f"{decimal(100 * share, digits, sign=sign, lang=lang)} %"


def day(value: dt.date | dt.datetime, *, lang: str | None = None) -> str:
    """A day in words: "29 Sep 2025" (en) / "29 сентября 2025" (ru)."""
    if _lang(lang) == "ru":
        return babel_dates.format_date(value, "d MMMM y", locale=locale_of("ru"))
    return f"{value:%d %b %Y}"


def day_month(value: dt.date | dt.datetime, *, lang: str | None = None) -> str:
    """A day of a month, short: "1 Dec" (en) / "1 дек." (ru)."""
    if _lang(lang) == "ru":
        return babel_dates.format_date(value, "d MMM", locale=locale_of("ru"))
    return f"{value.day} {value:%b}"


def day_span(first: dt.date, last: dt.date, *, lang: str | None = None) -> str:
    """Days of one month: "1–2 Dec" (en) / "1–2 дек." (ru); one day as :func:`day_month`."""
    if first == last:
        return day_month(first, lang=lang)
    return f"{first.day}–{day_month(last, lang=lang)}"


def clock_time(value: dt.datetime) -> str:
    """"18:30:05" in every language."""
    return f"{value:%H:%M:%S}"


# the dropdowns' and grids' own texts: the same msgids as dashboard/shell.py's
# DROPDOWN_TEXTS and GRID_TEXTS (one catalog entry each)


def typed(text: str, *, lang: str | None = None) -> str:
    """A number a user edits, written as they would type it: "20000.00" (en,
    as stored) / "20 000,00" (ru, which ``db.numbers`` reads back)."""
    if _lang(lang) != "ru" or not text:
        return text
    value = Decimal(text)
    digits = max(0, -value.as_tuple().exponent)
    return babel_numbers.format_decimal(
        value, format="#,##0." + "0" * digits if digits else "#,##0", locale=locale_of("ru"),
        decimal_quantization=False)
