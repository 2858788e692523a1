"""The shop's HTTP API (/api/v1): keys and scopes, idempotency, one error
shape, the OpenAPI document against the real routes."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import func, select

from dashboard.context import CONFIG_EXTENSION, DB_EXTENSION
from db import api_keys
from db.errors import Forbidden, ValidationError
from db.integrity import run_check
from db.models import ApiRequest, AuditLog, LedgerEntry, Member, Order
from tests.support.factories import publish, staff

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None)
PAID = (NOW - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def api(web_app, db, monkeypatch):
    """A test client of the app on a fresh program database, and a key per scope set."""
    monkeypatch.setitem(web_app.server.extensions, DB_EXTENSION, db)
    with db.begin() as s:
        publish(s, effective_at=NOW - dt.timedelta(days=30))
        boss = staff(s, "boss", "supervisor")
        helpdesk = staff(s, "helpdesk", "support")
        keys = {
            "till": api_keys.create_key(s, boss, "Till 1", ["orders", "read"])[1],
            "reader": api_keys.create_key(s, boss, "Website", ["read"])[1],
        }
    client = web_app.server.test_client()
    client.db, client.keys, client.boss, client.helpdesk = db, keys, boss, helpdesk
    return client


def call(api, method: str, path: str, key: str | None = "till", idem: str | None = None,
         **kw):
    headers = {}
    if key:
        headers["Authorization"] = f"Bearer {api.keys.get(key, key)}"
    if idem:
        headers["Idempotency-Key"] = idem
    return api.open(path, method=method, headers=headers, **kw)


def order(order_id: str, customer: str = "C1", amount: int = 100_000, **extra):
    return {"order_id": order_id, "customer_id": customer, "paid_at": PAID,
            "amount_minor": amount, **extra}


def test_keys_are_made_by_supervisors_shown_once_and_stored_hashed(api):
    with api.db.begin() as s:
        with pytest.raises(Forbidden):
            api_keys.create_key(s, api.helpdesk, "Mine", ["read"])
        with pytest.raises(ValidationError, match="unknown scope 'admin'"):
            api_keys.create_key(s, api.boss, "Bad", ["read", "admin"])
        with pytest.raises(ValidationError, match="exists already"):
            api_keys.create_key(s, api.boss, "Till 1", ["read"])
        info, token = api_keys.create_key(s, api.boss, "Kiosk", "orders")
        stored = s.execute(select(api_keys.ApiKey).where(api_keys.ApiKey.id == info.id)
                           ).scalar_one()
        assert token.split("_")[1] == stored.prefix and token not in stored.secret_hash
        assert info.scopes == ("orders",)
        assert api_keys.authenticate(s, token).name == "Kiosk"
        assert api_keys.authenticate(s, token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_a_call_without_a_valid_key_or_scope_is_refused(api):
    for key in (None, "lk_000000000000_" + "x" * 43, "nonsense"):
        r = call(api, "GET", "/api/v1/members/C1", key=key)
        assert r.status_code == 401, key
        assert r.json["error"]["code"] == "unauthorized"
        assert "loyalty_session" not in r.headers.get("Set-Cookie", "")
    r = call(api, "POST", "/api/v1/orders", key="reader", idem="k1", json=order("o1"))
    assert r.status_code == 403 and "lacks the scope 'orders'" in r.json["error"]["message"]
    r = call(api, "GET", "/api/v1/nowhere")
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"


def test_a_revoked_key_stops_at_once(api):
    assert call(api, "GET", "/api/v1/members/C1").status_code == 404  # key works
    with api.db.begin() as s:
        kid = next(k.id for k in api_keys.list_keys(s) if k.name == "Till 1")
        api_keys.revoke_key(s, api.boss, kid)
    assert call(api, "GET", "/api/v1/members/C1").status_code == 401


def test_enrol_post_an_order_and_read_the_balance(api):
    r = call(api, "POST", "/api/v1/members", idem="enrol-1",
             json={"customer_id": "C1", "name": "Анна Петрова", "email": "anna@example.com"})
    assert r.status_code == 201, r.json
    assert r.json["customer_id"] == "C1" and r.json["balance"] == 0
    r = call(api, "POST", "/api/v1/members", idem="enrol-2",
             json={"customer_id": "C2", "referrer_customer_id": "C1"})
    assert r.status_code == 201, r.json
    r = call(api, "POST", "/api/v1/orders", idem="o-1", json=order("o-1", "C2", 100_000))
    assert r.status_code == 201, r.json
    assert r.json["accrued"] == 10 and r.json["balance"] == 10  # Bronze 1 % of 1,000.00
    assert r.json["referral_bonus"] == 5
    r = call(api, "GET", "/api/v1/members/C1", key="reader")
    assert r.status_code == 200 and r.json["balance"] == 5
    assert r.json["tier"] == "Bronze" and r.json["next_tier"] == "Silver"
    assert call(api, "GET", "/api/v1/members/C404", key="reader").status_code == 404
    with api.db.read() as s:
        assert run_check(s).ok
        actors = {a for (a,) in s.execute(select(AuditLog.actor).where(
            AuditLog.action.like("api.%"), AuditLog.action != "api.read"))}
        reads = s.execute(select(AuditLog.actor, AuditLog.object_id, AuditLog.detail).where(
            AuditLog.action == "api.read").order_by(AuditLog.id)).all()
    assert actors == {"api:Till 1"}
    # reads are audited too, under the key that made them
    assert [(a, o) for a, o, _ in reads] == [("api:Website", "/members/C1"),
                                             ("api:Website", "/members/C404")]
    assert "status 404" in reads[1][2]


def test_a_replay_answers_the_first_response_and_another_body_is_409(api):
    call(api, "POST", "/api/v1/members", idem="m", json={"customer_id": "C1"})
    first = call(api, "POST", "/api/v1/orders", idem="pay-77", json=order("o-77"))
    again = call(api, "POST", "/api/v1/orders", idem="pay-77", json=order("o-77"))
    assert first.status_code == again.status_code == 201
    assert first.json == again.json
    other = call(api, "POST", "/api/v1/orders", idem="pay-77", json=order("o-78"))
    assert other.status_code == 409
    assert other.json["error"] == {
        "code": "idempotency_conflict", "field": "Idempotency-Key",
        "message": "this Idempotency-Key was used with another request"}
    missing = call(api, "POST", "/api/v1/orders", json=order("o-79"))
    assert missing.status_code == 400 and missing.json["error"]["field"] == "Idempotency-Key"
    with api.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 1
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1
        assert s.scalar(select(func.count()).select_from(ApiRequest)) == 2  # enrol + order


@pytest.mark.parametrize(("body", "status", "field", "words"), [
    ({"customer_id": "C1", "paid_at": PAID, "amount_minor": 100}, 422, "order_id",
     "Missing data"),
    (order("o1", amount=-5), 422, "amount_minor", "greater than or equal to 0"),
    (order("o1", amount="100"), 422, "amount_minor", "Not a valid integer"),
    (order("o1", amount=10**15), 422, "amount_minor", "less than or equal to"),
    ({**order("o1"), "paid_at": "yesterday"}, 422, "paid_at", "Not a valid datetime"),
    ({**order("o1"), "paid_at": "2999-01-01T00:00:00Z"}, 422, "paid_at", "in the future"),
    ({**order("o1"), "extra": 1}, 422, "extra", "Unknown field"),
    (order("o1", points_redeemed=50), 409, None, "cannot redeem 50"),
])
def test_bad_requests_get_one_error_shape_and_change_nothing(api, body, status, field, words):
    call(api, "POST", "/api/v1/members", idem="m", json={"customer_id": "C1"})
    r = call(api, "POST", "/api/v1/orders", idem="bad", json=body)
    assert r.status_code == status, r.json
    err = r.json["error"]
    assert set(err) == {"code", "message", "field"}
    assert err["field"] == field and words in err["message"], err
    with api.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0
        assert s.scalar(select(func.count()).select_from(ApiRequest)) == 1


def test_not_json_is_a_clear_400(api):
    r = call(api, "POST", "/api/v1/orders", idem="x", data="amount=1",
             content_type="application/x-www-form-urlencoded")
    assert 400 <= r.status_code < 500 and set(r.json["error"]) == {"code", "message", "field"}


def test_enrolling_a_member_twice_is_a_conflict(api):
    assert call(api, "POST", "/api/v1/members", idem="a",
                json={"customer_id": "C1"}).status_code == 201
    r = call(api, "POST", "/api/v1/members", idem="b", json={"customer_id": "C1"})
    assert r.status_code == 409 and r.json["error"]["field"] == "customer_id"
    with api.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Member)) == 1


def test_the_openapi_document_matches_the_routes(api, web_app):
    from openapi_spec_validator import validate

    doc = api.get("/api/v1/openapi.json")
    assert doc.status_code == 200
    spec = doc.json
    validate(spec)
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                  if m in ("get", "post", "put", "patch", "delete")}
    served = set()
    for rule in web_app.server.url_map.iter_rules():
        if rule.endpoint.startswith("api_v1."):
            path = "/" + rule.rule.lstrip("/")
            path = path.replace("<string:", "{").replace("<int:", "{").replace(">", "}")
            served |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served and documented == served
    assert "ApiKey" in spec["components"]["securitySchemes"]


def test_every_api_route_declares_a_scope(web_app):
    from dashboard.api import SCOPE_ATTR

    views = [v for e, v in web_app.server.view_functions.items() if e.startswith("api_v1.")]
    assert views and all(getattr(v, SCOPE_ATTR, None) for v in views)


def test_calls_are_limited_per_key(api, web_app, frozen_limits, monkeypatch):
    import dataclasses

    from dashboard.context import CONFIG_EXTENSION

    cfg = web_app.server.extensions[CONFIG_EXTENSION]
    monkeypatch.setitem(web_app.server.extensions, CONFIG_EXTENSION,
                        dataclasses.replace(cfg, api_key_limit="3 per minute"))
    codes = [call(api, "GET", "/api/v1/members/C1").status_code for _ in range(4)]
    assert codes == [404, 404, 404, 429]
    r = call(api, "GET", "/api/v1/members/C1")
    assert r.json["error"]["code"] == "rate_limited" and r.headers["Retry-After"] == "60"
    # another key has its own allowance
    assert call(api, "GET", "/api/v1/members/C1", key="reader").status_code == 404


def _enrol(api, *customers: str) -> None:
    for c in customers:
        r = call(api, "POST", "/api/v1/members", idem=f"enrol-{c}", json={"customer_id": c})
        assert r.status_code == 201, r.json


def test_quote_redeem_transfer_and_refund(api):
    with api.db.begin() as s:
        boss = staff(s, "boss", "supervisor")
        api.keys["all"] = api_keys.create_key(
            s, boss, "Shop", ["orders", "redeem", "transfer", "read"])[1]
    _enrol(api, "C1", "C2")
    r = call(api, "POST", "/api/v1/orders", key="all", idem="o1", json=order("o1", "C1", 500_000))
    assert r.json["balance"] == 50
    q = call(api, "GET", "/api/v1/members/C1/quote?total_minor=3050", key="all")
    assert q.status_code == 200, q.json
    assert (q.json["max_points"], q.json["max_discount_minor"]) == (30, 3000)
    q = call(api, "GET", "/api/v1/members/C1/quote?total_minor=900000", key="all")
    assert q.json["max_points"] == 50  # the balance bounds it
    assert call(api, "GET", "/api/v1/members/C1/quote?total_minor=100").status_code == 403
    # redeem the quoted points on the order that pays the rest
    r = call(api, "POST", "/api/v1/orders", key="all", idem="o2",
             json=order("o2", "C1", 50, points_redeemed=30))
    assert r.status_code == 201 and r.json["balance"] == 20, r.json

    t = call(api, "POST", "/api/v1/transfers", key="all", idem="t1",
             json={"from_customer_id": "C1", "to_customer_id": "C2", "points": 15})
    assert t.status_code == 201, t.json
    assert (t.json["from_balance"], t.json["to_balance"]) == (5, 15)
    again = call(api, "POST", "/api/v1/transfers", key="all", idem="t1",
                 json={"from_customer_id": "C1", "to_customer_id": "C2", "points": 15})
    assert again.json == t.json
    too_many = call(api, "POST", "/api/v1/transfers", key="all", idem="t2",
                    json={"from_customer_id": "C1", "to_customer_id": "C2", "points": 6})
    assert too_many.status_code == 409
    assert too_many.json["error"]["code"] == "insufficient_points"

    f = call(api, "POST", "/api/v1/orders/o2/refund", key="all", idem="r1", json={})
    assert f.status_code == 200, f.json
    assert f.json["restored_redemption"] == 30
    assert call(api, "GET", "/api/v1/members/C1", key="all").json["balance"] == 35
    assert call(api, "POST", "/api/v1/orders/nope/refund", key="all", idem="r2",
                json={}).status_code == 404
    with api.db.read() as s:
        assert run_check(s).ok


def test_part_refunds_take_back_points_in_proportion(api):
    _enrol(api, "C1", "C2")
    # C2 referred by nobody; C1 pays 1,000.00 plus 40 points for order o1
    call(api, "POST", "/api/v1/orders", idem="o0", json=order("o0", "C1", 500_000))
    r = call(api, "POST", "/api/v1/orders", idem="o1",
             json=order("o1", "C1", 100_000, points_redeemed=40))
    assert r.status_code == 201 and r.json["accrued"] == 10, r.json
    part = {"amount_minor": 25_000, "refund_id": "ret-1"}
    p = call(api, "POST", "/api/v1/orders/o1/refund", idem="r1", json=part)
    assert p.status_code == 200, p.json
    assert (p.json["refunded_minor"], p.json["remaining_minor"], p.json["status"]) == (
        25_000, 75_000, "paid")
    assert (p.json["reversed_accrual"], p.json["restored_redemption"]) == (2, 10)  # 1/4
    # the same refund id again (another Idempotency-Key): the engine answers the first
    again = call(api, "POST", "/api/v1/orders/o1/refund", idem="r1b", json=part)
    assert again.status_code == 200 and again.json == p.json
    clash = call(api, "POST", "/api/v1/orders/o1/refund", idem="r1c",
                 json={"amount_minor": 1, "refund_id": "ret-1"})
    assert clash.status_code == 409
    over = call(api, "POST", "/api/v1/orders/o1/refund", idem="r2",
                json={"amount_minor": 75_001, "refund_id": "ret-2"})
    assert over.status_code == 422 and over.json["error"]["field"] == "amount_minor"
    assert "75000" in over.json["error"]["message"]
    no_id = call(api, "POST", "/api/v1/orders/o1/refund", idem="r3", json={"amount_minor": 5})
    assert no_id.status_code == 422 and no_id.json["error"]["field"] == "refund_id"
    # the rest, whole: everything left of the order's points goes back
    rest = call(api, "POST", "/api/v1/orders/o1/refund", idem="r4", json={})
    assert rest.status_code == 200, rest.json
    assert (rest.json["refunded_minor"], rest.json["remaining_minor"], rest.json["status"]) == (
        75_000, 0, "refunded")
    assert (rest.json["reversed_accrual"], rest.json["restored_redemption"]) == (8, 30)
    late = call(api, "POST", "/api/v1/orders/o1/refund", idem="r5",
                json={"amount_minor": 5, "refund_id": "ret-9"})
    assert late.status_code == 409 and late.json["error"]["code"] == "invalid_state"
    with api.db.read() as s:
        assert run_check(s).ok
        o = s.execute(select(Order).where(Order.order_ref == "o1")).scalar_one()
        assert (o.status, o.amount_minor, o.refunded_minor) == ("refunded", 75_000, 25_000)
    member = call(api, "GET", "/api/v1/members/C1").json
    assert member["balance"] == 50  # o0's 50; o1's 10 earned and 40 spent are undone
    assert member["qualifying_spend_minor"] == 500_000


def test_referral_codes_read_and_enrol_with(api, monkeypatch, web_app):
    cfg = web_app.server.extensions[CONFIG_EXTENSION]
    monkeypatch.setitem(web_app.server.extensions, CONFIG_EXTENSION, dataclasses.replace(
        cfg, referral_link_template="https://shop.example/join?ref={code}"))
    _enrol(api, "C1")
    r = call(api, "GET", "/api/v1/members/C1/referral")
    assert r.status_code == 200, r.json
    code = r.json["referral_code"]
    assert len(code) == 9 and code[4] == "-"
    assert r.json["referral_link"] == f"https://shop.example/join?ref={code}"
    assert r.json["referred_members"] == 0
    assert call(api, "GET", "/api/v1/members/C1/referral").json["referral_code"] == code
    # typed loosely: lower case, without the dash
    e = call(api, "POST", "/api/v1/members", idem="e2",
             json={"customer_id": "C2", "referral_code": code.replace("-", "").lower()})
    assert e.status_code == 201, e.json
    assert e.json["referral_code"] and e.json["referral_code"] != code
    r = call(api, "POST", "/api/v1/orders", idem="o1", json=order("o1", "C2", 100_000))
    assert r.json["referral_bonus"] == 5
    assert call(api, "GET", "/api/v1/members/C1/referral").json["referred_members"] == 1
    for body, words in (
        ({"customer_id": "C3", "referral_code": "ZZZZ-ZZZZ"}, "no active member"),
        ({"customer_id": "C3", "referral_code": "short"}, "8 letters and digits"),
        ({"customer_id": "C3", "referral_code": code, "referrer_customer_id": "C2"},
         "another member"),
    ):
        bad = call(api, "POST", "/api/v1/members", idem=f"bad-{body}", json=body)
        assert bad.status_code == 422, bad.json
        assert bad.json["error"]["field"] == "referral_code"
        assert words in bad.json["error"]["message"]
    assert call(api, "GET", "/api/v1/members/C9/referral").status_code == 404
    with api.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Member)) == 2


def test_a_batch_posts_each_order_as_one_post_would(api):
    _enrol(api, "C1", "C2")
    call(api, "POST", "/api/v1/orders", idem="single", json=order("b-0", "C1", 300_000))
    batch = [
        order("b-1", "C2", 100_000),
        order("b-0", "C1", 300_000),                    # posted before: replayed
        order("b-2", "C1", 50_000, points_redeemed=10),
        order("b-0", "C1", 300_001),                    # same id, other details
        order("b-3", "C2", 10_000, points_redeemed=999),  # more points than C2 has
        order("b-4", "G7", 20_000),                     # a guest
    ]
    r = call(api, "POST", "/api/v1/orders/batch", idem="batch-1", json={"orders": batch})
    assert r.status_code == 200, r.json
    got = [(x["order_id"], x["status"]) for x in r.json["results"]]
    assert got == [("b-1", 201), ("b-0", 201), ("b-2", 201), ("b-0", 409), ("b-3", 409),
                   ("b-4", 201)]
    assert (r.json["accepted"], r.json["refused"]) == (4, 2)
    assert r.json["results"][4]["error"]["code"] == "insufficient_points"
    assert r.json["results"][2]["order"]["redeemed"] == 10
    assert r.json["results"][5]["order"]["member_id"] is None
    again = call(api, "POST", "/api/v1/orders/batch", idem="batch-1", json={"orders": batch})
    assert again.json == r.json
    # what one POST /orders per order gives, on the same program
    single = call(api, "POST", "/api/v1/orders", idem="s-5", json=order("b-5", "C2", 100_000))
    assert single.json["accrued"] == r.json["results"][0]["order"]["accrued"]
    for body, field in (({"orders": []}, "orders"),
                        ({"orders": [order("x", "C1")] * 501}, "orders"),
                        ({"orders": [{"order_id": "x"}]}, "orders")):
        bad = call(api, "POST", "/api/v1/orders/batch", idem=f"bad-{len(body['orders'])}",
                   json=body)
        assert bad.status_code == 422 and bad.json["error"]["field"] == field, bad.json
    with api.db.read() as s:
        assert run_check(s).ok
        assert s.scalar(select(func.count()).select_from(Order)) == 5  # b-0..b-2, b-4, b-5
        trail = s.execute(select(AuditLog).where(AuditLog.action == "api.order_batch")
                          ).scalar_one()
        assert "b-3" in str(trail.after) and trail.actor == "api:Till 1"


def test_the_api_and_the_import_give_the_same_ledger(web_app, sqlite_template, tmp_path,
                                                     monkeypatch):
    """The same order stream through the API and through a CSV import."""
    import io
    import shutil

    from db.actor import CLI
    from db.importer import import_orders
    from db.session import Database

    rows = [("A", "o1", 120_000, 0), ("B", "o2", 560_000, 0), ("A", "o3", 90_050, 7),
            ("C", "o4", 1_000, 0), ("B", "o5", 77_700, 40)]
    times = [(NOW - dt.timedelta(hours=10 - i)).replace(microsecond=0) for i in range(len(rows))]

    def fresh(name: str) -> Database:
        path = tmp_path / f"{name}.sqlite3"
        shutil.copy(sqlite_template, path)
        d = Database(f"sqlite:///{path}")
        with d.begin() as s:
            publish(s, effective_at=NOW - dt.timedelta(days=30))
        return d

    via_import = fresh("import")
    csv = "customer_id,order_id,paid_at,amount,referrer_id,points_redeemed\n" + "".join(
        f"{c},{o},{t:%Y-%m-%dT%H:%M:%S},{a / 100:.2f},,{p or ''}\n"
        for (c, o, a, p), t in zip(rows, times, strict=True))
    import_orders(via_import, io.StringIO(csv), actor=CLI)

    via_api = fresh("api")
    monkeypatch.setitem(web_app.server.extensions, DB_EXTENSION, via_api)
    with via_api.begin() as s:
        token = api_keys.create_key(s, staff(s, "boss", "supervisor"), "Till", ["orders"])[1]
    client = web_app.server.test_client()
    with via_import.read() as s:
        joined = {m.external_id: m.joined_at for m in s.scalars(select(Member))}
    for c in ("A", "B", "C"):
        r = client.post("/api/v1/members", json={
            "customer_id": c, "joined_at": joined[c].isoformat() + "Z"},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"m-{c}"})
        assert r.status_code == 201, r.json
    for (c, o, a, p), t in zip(rows, times, strict=True):
        r = client.post("/api/v1/orders", json={
            "order_id": o, "customer_id": c, "paid_at": t.isoformat() + "Z",
            "amount_minor": a, "points_redeemed": p},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": o})
        assert r.status_code == 201, r.json

    def ledger_of(d: Database) -> list[tuple]:
        with d.read() as s:
            ext = dict(s.execute(select(Member.id, Member.external_id)).all())
            orders = dict(s.execute(select(Order.id, Order.order_ref)).all())
            return sorted(
                (e.kind, orders.get(e.order_id), e.amount, e.debit_account_id,
                 e.credit_account_id, e.effective_at, e.rule_set_id)
                for e in s.scalars(select(LedgerEntry))
            ), sorted((ext[m.id], m.tier) for m in s.scalars(select(Member)))

    assert ledger_of(via_api) == ledger_of(via_import)
    assert ledger_of(via_api)[0]  # not empty


@pytest.mark.postgres
def test_concurrent_replays_take_effect_once_on_postgres(web_app, pg_db, monkeypatch):
    """Each request sent by several clients at once: one effect, one answer."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setitem(web_app.server.extensions, DB_EXTENSION, pg_db)
    with pg_db.begin() as s:
        publish(s, effective_at=NOW - dt.timedelta(days=30))
        boss = staff(s, "boss", "supervisor")
        token = api_keys.create_key(s, boss, "Till", ["orders", "transfer", "read"])[1]
    auth = {"Authorization": f"Bearer {token}"}

    def send(path: str, idem: str, body: dict) -> tuple[int, dict]:
        r = web_app.server.test_client().post(
            path, json=body, headers={**auth, "Idempotency-Key": idem})
        return r.status_code, r.json

    requests = [("/api/v1/members", "m-A", {"customer_id": "A"}),
                ("/api/v1/members", "m-B", {"customer_id": "B"})]
    requests += [("/api/v1/orders", f"o-{i}", order(f"o-{i}", "A", 100_000 + i))
                 for i in range(4)]
    requests += [("/api/v1/transfers", "t-1",
                  {"from_customer_id": "A", "to_customer_id": "B", "points": 7})]
    with ThreadPoolExecutor(6) as pool:
        for path, idem, body in requests:
            answers = list(pool.map(lambda _i, p=path, k=idem, b=body: send(p, k, b), range(6)))
            assert {a[0] for a in answers} == {201}, answers
            assert all(a[1] == answers[0][1] for a in answers), answers
    with pg_db.read() as s:
        assert s.scalar(select(func.count()).select_from(Member)) == 2
        assert s.scalar(select(func.count()).select_from(Order)) == 4
        assert s.scalar(select(func.count()).select_from(ApiRequest)) == len(requests)
        kinds = [k for (k,) in s.execute(select(LedgerEntry.kind))]
        assert sorted(kinds) == ["accrual"] * 4 + ["transfer"]
        assert run_check(s).ok
