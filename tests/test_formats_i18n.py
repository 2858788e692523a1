"""ru-RU and English display formats, and numbers typed in either language."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dashboard import format as fmt
from db.numbers import NumberError, canonical, localised

NBSP = "\u00a0"


def plain(text: str) -> str:
    """Babel's ru_RU output with its no-break spaces shown as spaces."""
    return text.replace(NBSP, " ").replace("\u202f", " ")


def test_russian_money_points_rates_and_dates():
    assert plain(fmt.money(123456, "RUB", lang="ru")) == "1 234,56 ₽"
    assert plain(fmt.money(-2500050, lang="ru")) == "-25 000,50"
    assert plain(fmt.points(1234567, lang="ru")) == "1 234 567"
    assert plain(fmt.signed_points(-1500, lang="ru")) == "-1 500"
    assert plain(fmt.signed_points(1500, lang="ru")) == "+1 500"
    assert fmt.rate_bp(525, lang="ru") == "5,25 %"
    assert fmt.when(dt.date(2026, 12, 2), lang="ru") == "02.12.2026"
    assert fmt.when(dt.datetime(2026, 12, 2, 18, 30), lang="ru") == "02.12.2026 18:30"
    assert fmt.plotly_separators(lang="ru")[0] == ","


def test_english_formats_stay_as_they_were():
    # outside a request: English
    assert fmt.money(12345678, "RUB") == "123,456.78 RUB"
    assert fmt.money(-5) == "-0.05"
    assert fmt.points(1234567) == "1,234,567"
    assert fmt.signed_points(1500) == "+1,500"
    assert fmt.rate_bp(525) == "5.25 %"
    assert fmt.when(dt.date(2026, 12, 2)) == "2026-12-02"
    assert fmt.when(dt.datetime(2026, 12, 2, 18, 30)) == "2026-12-02 18:30"
    assert fmt.plotly_separators() == ".,"


def test_money_is_exact_for_huge_amounts():
    assert plain(fmt.money(10**17 + 1, lang="ru")) == "1 000 000 000 000 000,01"


@pytest.mark.parametrize("text, want", [
    ("25 000", "25000"), ("25 000,50", "25000.50"), (f"25{NBSP}000,50", "25000.50"),
    ("25\u202f000,50", "25000.50"), ("25000.50", "25000.50"), ("25000,5", "25000.5"),
    ("−1 500", "-1500"), ("+300", "300"), ("1 234 567", "1234567"), ("", ""),
])
def test_russian_input(text, want):
    assert canonical(text, lang="ru") == want
    if want:
        Decimal(want)  # what the services parse


@pytest.mark.parametrize("text, want", [
    ("25,000.50", "25000.50"), ("25000.50", "25000.50"), ("25 000.50", "25000.50"),
    ("1,500", "1500"), ("-1,234,567", "-1234567"), ("1,5", "1.5"),
])
def test_english_input(text, want):
    assert canonical(text, lang="en") == want


@pytest.mark.parametrize("lang, text, says", [
    ("ru", "25 00", "grouped wrongly"),
    ("ru", "1.000,50", "both a comma and a point"),
    ("en", "1.2.3", "more than one decimal mark"),
    ("en", "abc", "not a number"),
    ("ru", "12a", "not a number"),
    ("en", "1,23,456", "grouped wrongly"),
    ("ru", "-", "not a number"),
])
def test_refusals_say_what_is_wrong_and_how_to_write_it(lang, text, says):
    with pytest.raises(NumberError) as exc:
        canonical(text, lang=lang)
    message = str(exc.value)
    assert says in message
    assert ("25 000,50" if lang == "ru" else "25,000.50") in message
    assert exc.value.message.msgid  # marked for translation


def test_localised_leaves_what_it_cannot_read_to_the_service():
    assert localised("20 %", lang="ru") == "20 %"
    assert localised("12,5", lang="ru") == "12.5"
    assert localised(7, lang="ru") == 7


def test_adjustment_points_accept_russian_grouping(web_app):
    from callbacks.adjustments_request import parse_points
    from db.errors import ValidationError

    with web_app.server.test_request_context("/", headers={"Accept-Language": "ru"}):
        assert parse_points("25 000") == 25000
        assert parse_points(f"-1{NBSP}500") == -1500
        with pytest.raises(ValidationError) as exc:
            parse_points("25 00")
        assert exc.value.field == "points"
    with web_app.server.test_request_context("/", headers={"Accept-Language": "en"}):
        assert parse_points("+1,500") == 1500


def test_rule_settings_accept_russian_money(web_app):
    from callbacks.rules import parse_settings

    with web_app.server.test_request_context("/", headers={"Accept-Language": "ru"}):
        pv, _window, problems = parse_settings("1,50", "lifetime", None)
        assert (pv, problems) == (150, [])
        _pv, _window, problems = parse_settings("1.000,50", "lifetime", None)
        assert problems and "both a comma and a point" in problems[0].message


def test_numbers_to_edit_are_written_as_the_user_types_them():
    assert fmt.typed("20000.00", lang="en") == "20000.00"
    assert fmt.typed("20000.00", lang="ru") == "20\u00a0000,00"
    assert fmt.typed("7.50", lang="ru") == "7,50"
    assert fmt.typed("365", lang="ru") == "365"
    assert fmt.typed("", lang="ru") == ""
    for text in ("0.00", "1.00", "20000.00", "1234567.89"):
        assert localised(fmt.typed(text, lang="ru"), lang="ru") == text
