"""The Content-Security-Policy every response carries, and names in charts.

The browser half: tests/test_browser.py opens every page of every role in
Chromium with this policy and fails on any console error, which is where a
refused script shows."""

from __future__ import annotations

import base64
import hashlib
import re

import pandas as pd

from dashboard import format as fmt
from pages.overview import tiers_figure
from pages.rules import migration_figure
from tests.support.web import logged_in


def _directives(header: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}


def test_every_response_forbids_foreign_and_inline_scripts(client):
    for path in ("/login", "/healthz"):
        csp = _directives(client.get(path).headers["Content-Security-Policy"])
        assert csp["script-src"][0] == "'self'"
        assert "'unsafe-inline'" not in csp["script-src"]
        assert "'unsafe-eval'" not in csp["script-src"]
        assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
        assert csp["default-src"] == ["'self'"]


def test_the_inline_scripts_dash_writes_are_allowed_by_hash(client):
    logged_in(client, "supervisor")
    page = client.get("/overview")
    csp = _directives(page.headers["Content-Security-Policy"])
    html = re.sub(r"<!--.*?-->", "", page.get_data(as_text=True), flags=re.S)  # IE-only bits
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>",
                        html, re.S)
    assert inline, "the Dash index page starts its renderer inline"
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp["script-src"]


def test_tier_names_are_text_not_markup_in_charts():
    name = '<a href="javascript:alert(1)">Gold</a> & <b>co</b>'
    shown = fmt.chart_text(name)
    assert "<" not in shown and ">" not in shown
    assert shown == ('&lt;a href="javascript:alert(1)"&gt;Gold&lt;/a&gt; &amp; '
                     '&lt;b&gt;co&lt;/b&gt;')
    m = pd.DataFrame([[3]], index=[name], columns=[name])
    fig = migration_figure(m)["data"][0]
    assert fig["x"] == [shown] and fig["y"] == [shown]
    bars = tiers_figure([{"tier": name, "month": "2026-01", "orders": 5}])["data"]
    assert bars[0]["name"] == shown
