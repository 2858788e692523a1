"""A form sent twice takes effect once: the adjustment request callback
posted twice with the same form token files one request and answers both
times with it; a new token (an edited form) files a new one."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from db import adjustments as adj
from db import clock, form_tokens, ledger
from db.actor import Actor
from db.models import AdjustmentRequest, FormSubmission
from db.session import Database
from tests.support.web import call, logged_in, response


@pytest.fixture(scope="module")
def member(web_seed):
    url, ids = web_seed
    d = Database(url)
    with d.begin() as s:
        m = ledger.create_member(s, "TOKEN-1", clock.utcnow(), name="Toki Token")
    yield {"db": d, "member": m, "sam": Actor("sam", ids["sam"], "support")}
    with d.read() as s:
        pending = s.execute(select(AdjustmentRequest.id, AdjustmentRequest.requested_by_id)
                            .where(AdjustmentRequest.member_id == m,
                                   AdjustmentRequest.status == "pending")).all()
    for rid, by in pending:
        adj.cancel_adjustment(d, Actor("requester", by, "support"), rid)
    d.dispose()


def requests_of(d: Database, member_id: int) -> list[int]:
    with d.read() as s:
        return list(s.scalars(select(AdjustmentRequest.id)
                              .where(AdjustmentRequest.member_id == member_id)
                              .order_by(AdjustmentRequest.id)))


def submit(client, app, member_id: int, token: Any, points: str = "+40",
           comment: str = "courtesy for a late parcel", last_token: Any = None
           ) -> dict[str, Any]:
    values = {"adjreq-submit.n_clicks": 1, "adjreq-member.value": str(member_id),
              "adjreq-points.value": points, "adjreq-reason.value": "goodwill",
              "adjreq-comment.value": comment,
              "adjreq-ticket.value": "T-9", "adjreq-entry.value": None,
              "adjreq-version.data": 0, "adjreq-token.data": token,
              "adjreq-last-token.data": last_token}
    return response(call(client, app, "callbacks.adjustments_request", "submit", values,
                         ["adjreq-submit.n_clicks"]))


def filed_id(out: dict[str, Any]) -> int:
    text = str(out["adjreq-result"]["children"])
    m = re.search(r"Request #(\d+) filed", text)
    assert m, text
    return int(m.group(1))


def test_the_same_form_posted_twice_files_one_request(client, web_app, member):
    logged_in(client, "support")
    d, m = member["db"], member["member"]
    before = requests_of(d, m)
    token = form_tokens.new_token()
    first = submit(client, web_app, m, token)
    second = submit(client, web_app, m, token)
    # the second answer is the first request, and nothing new was filed
    assert filed_id(second) == filed_id(first)
    assert "nothing more was filed" in str(second["adjreq-result"]["children"])
    after = requests_of(d, m)
    assert after == [*before, filed_id(first)]
    # ...even when the repeat arrives with the form already emptied by the first answer
    third = submit(client, web_app, m, token, points="")
    assert filed_id(third) == filed_id(first)
    assert requests_of(d, m) == after
    # the success brought the form a new token, and emptied it: a click on the
    # emptied form (the second click of a slow double click) is the same request
    renewed = first["adjreq-token"]["data"]
    assert form_tokens.as_token(renewed) and renewed != token
    assert first["adjreq-last-token"]["data"] == token
    late = submit(client, web_app, m, renewed, points="", comment="", last_token=token)
    assert filed_id(late) == filed_id(first)
    assert requests_of(d, m) == after
    # a new request typed into the renewed form is filed
    fourth = submit(client, web_app, m, renewed, last_token=token)
    assert filed_id(fourth) != filed_id(first)
    assert requests_of(d, m) == [*after, filed_id(fourth)]
    # half typed (points, no comment): the form's problems, not the last request
    half = submit(client, web_app, m, form_tokens.new_token(), comment="", last_token=renewed)
    assert "Nothing was filed" in str(half["adjreq-result"]["children"])


def test_a_refused_form_keeps_its_token_usable(client, web_app, member):
    logged_in(client, "support")
    d, m = member["db"], member["member"]
    token = form_tokens.new_token()
    refused = submit(client, web_app, m, token, points="abc")
    assert "Nothing was filed" in str(refused["adjreq-result"]["children"])
    fixed = submit(client, web_app, m, token)
    assert filed_id(fixed) == requests_of(d, m)[-1]


def test_a_token_is_the_requesters_own(member):
    d, m = member["db"], member["member"]
    sam = member["sam"]
    with d.read() as s:
        from db.models import StaffUser
        sue_id = s.scalar(select(StaffUser.id).where(StaffUser.username == "sue"))
    sue = Actor("sue", sue_id, "supervisor")
    token = form_tokens.new_token()
    a = adj.request_adjustment(d, sam, m, 5, "goodwill", "one", form_token=token)
    b = adj.request_adjustment(d, sam, m, 5, "goodwill", "one", form_token=token)
    c = adj.request_adjustment(d, sue, m, 5, "goodwill", "one", form_token=token)
    assert (a.replayed, b.replayed, c.replayed) == (False, True, False)
    assert b.id == a.id and c.id != a.id


def test_submit_once_replays_only_the_last_submission_of_a_token(db):
    from db import users
    uid = db.write_tx(lambda s: users.create_user(s, "tina", "correct-horse-42",
                                                  "supervisor").id)
    actor = Actor("tina", uid, "supervisor")
    runs: list[str] = []

    def work(what: str):
        def run(s) -> dict[str, Any]:
            runs.append(what)
            return {"n": len(runs), "what": what}
        return run

    token = form_tokens.new_token()
    once = form_tokens.submit_once
    assert once(db, actor, "staff.disable", token, {"user": 7}, work("off")) == (
        {"n": 1, "what": "off"}, False)
    # the double click
    assert once(db, actor, "staff.disable", token, {"user": 7}, work("off")) == (
        {"n": 1, "what": "off"}, True)
    # another button, then the first one again: each runs
    assert once(db, actor, "staff.enable", token, {"user": 7}, work("on"))[1] is False
    assert once(db, actor, "staff.disable", token, {"user": 7}, work("off"))[1] is False
    # another row, another page (token), no token: each runs
    assert once(db, actor, "staff.disable", token, {"user": 8}, work("off"))[1] is False
    assert once(db, actor, "staff.disable", form_tokens.new_token(), {"user": 8},
                work("off"))[1] is False
    assert once(db, actor, "staff.disable", None, {"user": 8}, work("off"))[1] is False
    assert runs == ["off", "on", "off", "off", "off", "off"]

    # a refusal keeps nothing: the same submission sent again runs
    def refuse(s):
        raise ValueError("refused")

    fresh = form_tokens.new_token()
    with pytest.raises(ValueError):
        once(db, actor, "staff.disable", fresh, {"user": 9}, refuse)
    assert once(db, actor, "staff.disable", fresh, {"user": 9}, work("off"))[1] is False
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(FormSubmission)) == 3
