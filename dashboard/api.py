"""The shop's HTTP API, ``/api/v1``: JSON in the same WSGI app, apart from
the staff session.

- A caller sends ``Authorization: Bearer lk_...`` (a key a supervisor made on
  the staff page, see :mod:`db.api_keys`); each route declares the scope it
  needs, and a route without one is refused (fail closed).
- Every POST takes an ``Idempotency-Key`` header: the first successful
  response is stored with the key in the same transaction as its effect; a
  replay gets it again, the same key with another body is 409. A refusal is
  not stored, so a corrected retry may reuse the key.
- Errors have one shape, ``{"error": {"code", "message", "field"}}``: 4xx for
  the caller's mistakes, never a traceback.
- Each call is written to the audit log under the key's name.
- Every operation goes through the engine's services (no second path).

flask-smorest builds the OpenAPI document from the routes and their
marshmallow schemas; it is served at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import flask
import marshmallow as ma
from flask import g, request
from flask_smorest import Api, Blueprint
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from dashboard.context import get_config, get_db, get_limits
from db import api_keys, audit, bulk, clock, ledger, members, referrals
from db.errors import (
    DatabaseBusy,
    Forbidden,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidState,
    LoyaltyError,
    NotFound,
    ValidationError,
)
from db.ledger import MAX_AMOUNT_MINOR, MAX_POINTS, OrderIn
from db.models import SEGMENTS, ApiRequest, Member
from db.ratelimit import parse_rates
from db.rules import load_rulebook

log = logging.getLogger("dashboard.api")

PREFIX = "/api/v1"
DOCS_BLUEPRINT = "api-docs"
SCOPE_ATTR = "_api_scope"
MAX_IDEMPOTENCY_KEY = 255

blp = Blueprint("api_v1", __name__, url_prefix=PREFIX,
                description="Members, orders and points for the shop's systems.")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(status: int, code: str, message: str, field: str | None = None
                   ) -> flask.Response:
    resp = flask.jsonify({"error": {"code": code, "message": message, "field": field}})
    resp.status_code = status
    return resp


_REFUSALS: list[tuple[type[LoyaltyError], int, str]] = [
    (ValidationError, 422, "invalid"),
    (NotFound, 404, "not_found"),
    (IdempotencyConflict, 409, "conflict"),
    (InsufficientPoints, 409, "insufficient_points"),
    (InvalidState, 409, "invalid_state"),
    (Forbidden, 403, "forbidden"),
    (DatabaseBusy, 503, "busy"),
]


def _refusal(exc: LoyaltyError) -> ApiError:
    for cls, status, code in _REFUSALS:
        if isinstance(exc, cls):
            field = getattr(exc, "field", None)
            message = getattr(exc, "message", None) or str(exc)
            return ApiError(status, code, message, field)
    return ApiError(400, "refused", str(exc))


def scope(name: str) -> Callable[[Callable], Callable]:
    """Declare the scope a route needs (read by :func:`guard`)."""

    def mark(fn: Callable) -> Callable:
        setattr(fn, SCOPE_ATTR, name)
        return fn

    return mark


def guard() -> flask.Response | None:
    """Authenticate every ``/api/v1`` request by its key and scope; called by
    the app's one ``before_request`` guard instead of the staff login."""
    if request.blueprint == DOCS_BLUEPRINT:
        return None  # the OpenAPI document is public
    if request.blueprint != blp.name or request.endpoint is None:
        return error_response(404, "not_found", f"no API route {request.method} {request.path}")
    view = flask.current_app.view_functions[request.endpoint]
    needed = getattr(view, SCOPE_ATTR, None)
    if needed is None:  # fail closed
        log.error("API route %s declares no scope", request.endpoint)
        return error_response(403, "forbidden", "this route is not open to API keys")
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    try:
        with get_db().read() as s:
            key = api_keys.authenticate(s, token)
    except DatabaseBusy as exc:
        return error_response(503, "busy", str(exc))
    if key is None:
        resp = error_response(401, "unauthorized",
                              "send a valid, unrevoked API key as 'Authorization: Bearer <key>'")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="loyalty"'
        return resp
    ticket = get_limits().acquire(
        {f"api:{key.id}": parse_rates(get_config().api_key_limit)}, local_when_busy=True)
    if ticket is None:
        resp = error_response(429, "rate_limited",
                              f"too many calls with the key {key.name!r}: slow down")
        resp.headers["Retry-After"] = "60"
        return resp
    if needed not in key.scopes:
        return error_response(403, "forbidden",
                              f"the key {key.name!r} lacks the scope {needed!r}")
    g.api_key = key
    return None


def _body_hash() -> str:
    body = request.get_json(silent=True)
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{canon}".encode()).hexdigest()


def run(action: str, work: Callable[[Session, api_keys.KeyInfo], tuple[dict, int]],
        *, object_type: str = "", object_id: Callable[[dict], Any] | None = None,
        audited: Callable[[dict], dict] | None = None) -> tuple[dict, int]:
    """Run ``work`` in one write transaction with the key's idempotency record
    and an audit row; a replay answers the stored response."""
    key: api_keys.KeyInfo = g.api_key
    idem = request.headers.get("Idempotency-Key", "")
    if not idem.strip():
        raise ApiError(400, "idempotency_key_missing",
                       "send an Idempotency-Key header (a unique string per operation)",
                       "Idempotency-Key")
    if len(idem) > MAX_IDEMPOTENCY_KEY:
        raise ApiError(400, "invalid", f"at most {MAX_IDEMPOTENCY_KEY} characters",
                       "Idempotency-Key")
    digest = _body_hash()

    def tx(s: Session) -> tuple[dict, int]:
        done = s.scalar(select(ApiRequest).where(ApiRequest.api_key_id == key.id,
                                                 ApiRequest.idempotency_key == idem))
        if done is not None:
            if done.request_hash != digest:
                raise ApiError(409, "idempotency_conflict",
                               "this Idempotency-Key was used with another request",
                               "Idempotency-Key")
            return json.loads(done.response), done.status_code
        # claimed first: a concurrent twin waits on this row, then replays
        row = ApiRequest(api_key_id=key.id, idempotency_key=idem, request_hash=digest,
                         status_code=0, response="", created_at=clock.utcnow())
        s.add(row)
        s.flush()
        body, status = work(s, key)
        row.status_code, row.response = status, json.dumps(body, default=str)
        audit.record(s, key.actor().name, f"api.{action}", object_type=object_type,
                     object_id=object_id(body) if object_id else "",
                     after=audited(body) if audited else body,
                     detail=f"key {key.name}; Idempotency-Key {idem[:64]}")
        s.flush()
        return body, status

    db = get_db()
    try:
        return db.write_tx(tx)
    except IntegrityError:
        # the twin committed first: answer from its record
        return db.write_tx(tx)


@blp.after_request
def _audit_read(resp: flask.Response) -> flask.Response:
    """Every call is audited under its key's name: writes inside their own
    transaction (:func:`run`), reads here, after the answer is ready (a read
    that cannot be recorded is not answered)."""
    key = g.get("api_key")
    if key is None or request.method != "GET":
        return resp
    try:
        get_db().write_tx(lambda s: audit.record(
            s, key.actor().name, "api.read", object_type="api",
            object_id=request.path[len(PREFIX):][:120],
            detail=f"key {key.name}; status {resp.status_code}"))
    except Exception:  # noqa: BLE001 - the caller gets a clear 503
        log.exception("API read %s could not be audited", request.path)
        return error_response(503, "busy", "the call could not be recorded; try again")
    return resp


@blp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> flask.Response:
    return error_response(exc.status, exc.code, exc.message, exc.field)


@blp.errorhandler(LoyaltyError)
def _loyalty_error(exc: LoyaltyError) -> flask.Response:
    e = _refusal(exc)
    return error_response(e.status, e.code, e.message, e.field)


@blp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> flask.Response:
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if exc.code == 422 and messages:
        # webargs: {"json": {"field": ["message", ...]}}
        for _where, fields in messages.items():
            for field, msgs in (fields.items() if isinstance(fields, dict) else []):
                text = msgs[0] if isinstance(msgs, list) and msgs else str(msgs)
                if isinstance(msgs, dict):  # nested: first inner message
                    text = str(next(iter(msgs.values())))
                return error_response(422, "invalid", f"{field}: {text}", field)
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
            413: "too_large", 415: "unsupported_media_type"}.get(exc.code or 400, "error")
    return error_response(exc.code or 400, code, exc.description or exc.name)


@blp.errorhandler(Exception)
def _unexpected(exc: Exception) -> flask.Response:
    log.exception("API %s %s failed", request.method, request.path)
    return error_response(500, "internal", "the request could not be completed; try again")


# ---------------------------------------------------------------- schemas


class Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class EnrolIn(Strict):
    customer_id = ma.fields.String(required=True, validate=ma.validate.Length(1, 64),
                                   metadata={"description": "the shop's customer id"})
    name = ma.fields.String(load_default="", validate=ma.validate.Length(max=200))
    email = ma.fields.Email(load_default=None, allow_none=True,
                            validate=ma.validate.Length(max=200))
    phone = ma.fields.String(load_default=None, allow_none=True,
                             validate=ma.validate.Regexp(r"^\+?[0-9 ()-]{5,31}$"))
    segment = ma.fields.String(load_default="regular", validate=ma.validate.OneOf(SEGMENTS))
    referrer_customer_id = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(1, 64),
        metadata={"description": "customer id of the member who referred this one"})
    referral_code = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(1, 32),
        metadata={"description": "the referring member's code (instead of, or agreeing "
                                 "with, referrer_customer_id)"})
    joined_at = ma.fields.AwareDateTime(
        load_default=None, allow_none=True, default_timezone=dt.UTC,
        metadata={"description": "default: now"})


class MemberOut(ma.Schema):
    member_id = ma.fields.Integer()
    customer_id = ma.fields.String()
    status = ma.fields.String()
    joined_at = ma.fields.String()
    balance = ma.fields.Integer(metadata={"description": "points"})
    tier = ma.fields.String(allow_none=True)
    next_tier = ma.fields.String(allow_none=True)
    qualifying_spend_minor = ma.fields.Integer(allow_none=True)
    remaining_to_next_tier_minor = ma.fields.Integer(allow_none=True)
    progress_percent = ma.fields.Integer(allow_none=True)
    referral_code = ma.fields.String(
        allow_none=True, metadata={"description": "the member's own code for inviting "
                                                  "others (null until first asked for)"})


class ReferralOut(ma.Schema):
    customer_id = ma.fields.String()
    referral_code = ma.fields.String(metadata={"description": "as printed: XXXX-XXXX"})
    referral_link = ma.fields.String(
        allow_none=True, metadata={"description": "the shop's sign-up link with the code "
                                                  "(null when REFERRAL_LINK_TEMPLATE is unset)"})
    referred_members = ma.fields.Integer()


class OrderInSchema(Strict):
    order_id = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))
    customer_id = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))
    paid_at = ma.fields.AwareDateTime(required=True, default_timezone=dt.UTC)
    amount_minor = ma.fields.Integer(
        required=True, strict=True, validate=ma.validate.Range(0, MAX_AMOUNT_MINOR),
        metadata={"description": "amount paid in minor units (kopecks, cents)"})
    points_redeemed = ma.fields.Integer(
        load_default=0, strict=True, validate=ma.validate.Range(0, MAX_POINTS))


class OrderOut(ma.Schema):
    order_id = ma.fields.String()
    member_id = ma.fields.Integer(allow_none=True)
    accrued = ma.fields.Integer()
    redeemed = ma.fields.Integer()
    referral_bonus = ma.fields.Integer()
    tier = ma.fields.String(allow_none=True)
    balance = ma.fields.Integer(allow_none=True)


MAX_BATCH = ledger.MAX_BATCH


class OrderBatchIn(Strict):
    orders = ma.fields.List(ma.fields.Nested(OrderInSchema), required=True,
                            validate=ma.validate.Length(1, MAX_BATCH),
                            metadata={"description": f"1 to {MAX_BATCH} orders"})


class BatchItemOut(ma.Schema):
    order_id = ma.fields.String()
    status = ma.fields.Integer(metadata={"description": "201 posted (or replayed), else the "
                                                        "status POST /orders would answer"})
    order = ma.fields.Nested(OrderOut, allow_none=True)
    error = ma.fields.Dict(allow_none=True)


class OrderBatchOut(ma.Schema):
    accepted = ma.fields.Integer()
    refused = ma.fields.Integer()
    results = ma.fields.List(ma.fields.Nested(BatchItemOut),
                             metadata={"description": "one per order, in the request's order"})


class TransferIn(Strict):
    from_customer_id = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))
    to_customer_id = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))
    points = ma.fields.Integer(required=True, strict=True,
                               validate=ma.validate.Range(1, MAX_POINTS))


class TransferOut(ma.Schema):
    transaction_id = ma.fields.Integer()
    points = ma.fields.Integer()
    from_balance = ma.fields.Integer()
    to_balance = ma.fields.Integer()


class RefundIn(Strict):
    refunded_at = ma.fields.AwareDateTime(load_default=None, allow_none=True,
                                          default_timezone=dt.UTC,
                                          metadata={"description": "default: now"})
    amount_minor = ma.fields.Integer(
        load_default=None, allow_none=True, strict=True,
        validate=ma.validate.Range(1, MAX_AMOUNT_MINOR),
        metadata={"description": "money given back, in minor units: a part refund "
                                 "(default: all that remains paid)"})
    refund_id = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(1, 64),
        metadata={"description": "the shop's id of a part refund (required with "
                                 "amount_minor; a part refund is idempotent on it)"})

    @ma.validates_schema
    def _part_needs_id(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("amount_minor") is not None and not data.get("refund_id"):
            raise ma.ValidationError("a part refund needs the shop's refund id", "refund_id")
        if data.get("refund_id") and data.get("amount_minor") is None:
            raise ma.ValidationError("a refund id goes with amount_minor (a part refund)",
                                     "amount_minor")


class RefundOut(ma.Schema):
    order_id = ma.fields.String()
    reversed_accrual = ma.fields.Integer()
    restored_redemption = ma.fields.Integer()
    reversed_referral = ma.fields.Integer()
    unrecovered = ma.fields.Integer(
        metadata={"description": "points already spent that could not be taken back"})
    refunded_minor = ma.fields.Integer(metadata={"description": "money this refund gave back"})
    remaining_minor = ma.fields.Integer(
        metadata={"description": "money still paid on the order after it"})
    status = ma.fields.String(metadata={"description": "paid (after a part refund) "
                                                       "or refunded"})


class QuoteArgs(Strict):
    total_minor = ma.fields.Integer(
        required=True, validate=ma.validate.Range(0, MAX_AMOUNT_MINOR),
        metadata={"description": "the order's total before points, in minor units"})


class QuoteOut(ma.Schema):
    customer_id = ma.fields.String()
    balance = ma.fields.Integer()
    point_value_minor = ma.fields.Integer()
    max_points = ma.fields.Integer(
        metadata={"description": "points the member may redeem on this order"})
    max_discount_minor = ma.fields.Integer()


class ErrorOut(ma.Schema):
    error = ma.fields.Dict()


def _naive(t: dt.datetime | None) -> dt.datetime:
    if t is None:
        return clock.utcnow()
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def _member_by_customer(s: Session, customer_id: str) -> Member:
    m = s.scalar(select(Member).where(Member.external_id == customer_id))
    if m is None:
        raise ApiError(404, "not_found", f"no member with customer id {customer_id!r}",
                       "customer_id")
    return m


def _member_view(s: Session, m: Member) -> dict[str, Any]:
    p = members.tier_progress(s, m.id)
    return {
        "member_id": m.id, "customer_id": m.external_id, "status": m.status,
        "joined_at": m.joined_at.isoformat() + "Z", "balance": ledger.balance(s, m.id),
        "tier": p.tier if p else None, "next_tier": p.next_tier if p else None,
        "qualifying_spend_minor": p.qualifying_spend_minor if p else None,
        "remaining_to_next_tier_minor": p.remaining_minor if p else None,
        "progress_percent": p.percent if p else None,
        "referral_code": referrals.display(m.referral_code) if m.referral_code else None,
    }


# ---------------------------------------------------------------- routes

_AUTH = [{"ApiKey": []}]
_IDEM = {"name": "Idempotency-Key", "in": "header", "required": True,
         "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY}}


def _endpoint(rule: str, method: str, needs: str, status: int, out: Any, *,
              errors: dict[int, str], body: Any = None, query: Any = None
              ) -> Callable[[Callable], Callable]:
    """One route: its path, the scope its key needs, the schema of its answer
    and of its body or query, the errors it documents; a POST documents the
    Idempotency-Key header it requires."""

    def decorate(fn: Callable) -> Callable:
        fn = scope(needs)(fn)
        fn = blp.doc(security=_AUTH, **({"parameters": [_IDEM]} if method == "POST" else {}))(fn)
        for code, description in reversed(errors.items()):
            fn = blp.alt_response(code, schema=ErrorOut, description=description)(fn)
        fn = blp.response(status, out)(fn)
        if query is not None:
            fn = blp.arguments(query, location="query")(fn)
        if body is not None:
            fn = blp.arguments(body)(fn)
        return blp.route(rule, methods=[method])(fn)

    return decorate


@_endpoint("/members", "POST", "orders", 201, MemberOut, body=EnrolIn,
           errors={409: "the customer id is a member already", 422: "a field is wrong"})
def enrol(data: dict[str, Any]) -> Any:
    """Enrol a member (optionally referred by another member)."""

    def work(s: Session, key: api_keys.KeyInfo) -> tuple[dict, int]:
        if s.scalar(select(Member.id).where(Member.external_id == data["customer_id"])):
            raise ApiError(409, "conflict",
                           f"customer {data['customer_id']!r} is a member already",
                           "customer_id")
        referrer = None
        if data["referrer_customer_id"]:
            ref = s.scalar(select(Member).where(
                Member.external_id == data["referrer_customer_id"]))
            if ref is None or ref.status != "active":
                raise ApiError(422, "invalid", "no active member has this customer id",
                               "referrer_customer_id")
            referrer = ref.id
        if data["referral_code"]:
            by_code = referrals.member_by_code(s, data["referral_code"])
            if by_code is None or by_code.status != "active":
                raise ApiError(422, "invalid", "no active member has this referral code",
                               "referral_code")
            if referrer is not None and referrer != by_code.id:
                raise ApiError(422, "invalid", "the referral code belongs to another member "
                               "than referrer_customer_id", "referral_code")
            referrer = by_code.id
        mid = ledger.create_member(
            s, data["customer_id"], _naive(data["joined_at"]), name=data["name"],
            email=data["email"], phone=data["phone"], segment=data["segment"],
            referrer_id=referrer)
        referrals.code_for(s, mid)  # every member enrolled here can invite at once
        return _member_view(s, s.get(Member, mid)), 201

    return run("enrol", work, object_type="member", object_id=lambda b: b["member_id"])


@_endpoint("/members/<string:customer_id>", "GET", "read", 200, MemberOut,
           errors={404: "no such member"})
def member(customer_id: str) -> Any:
    """A member's balance, tier and progress to the next tier."""
    with get_db().read() as s:
        return _member_view(s, _member_by_customer(s, customer_id))


@_endpoint("/members/<string:customer_id>/referral", "GET", "read", 200, ReferralOut,
           errors={404: "no such member"})
def referral(customer_id: str) -> Any:
    """The member's referral code and the shop's sign-up link with it (a code
    is given on first request and never changes)."""

    def work(s: Session) -> dict[str, Any]:
        m = _member_by_customer(s, customer_id)
        code = referrals.code_for(s, m.id)
        referred = s.scalar(select(func.count()).where(Member.referrer_id == m.id))
        return {"customer_id": m.external_id, "referral_code": referrals.display(code),
                "referral_link": referrals.link_for(get_config().referral_link_template,
                                                    referrals.display(code)),
                "referred_members": int(referred or 0)}

    return get_db().write_tx(work)


@_endpoint("/orders", "POST", "orders", 201, OrderOut, body=OrderInSchema,
           errors={409: "the order id was posted with other details, or too few points",
                   422: "a field is wrong"})
def post_order(data: dict[str, Any]) -> Any:
    """Record a paid order: points redeemed on it, accrual, referral bonus, tier.
    A customer who is not a member is recorded as a guest order (no points)."""

    def work(s: Session, key: api_keys.KeyInfo) -> tuple[dict, int]:
        r = ledger.post_order(s, OrderIn(
            data["order_id"], data["customer_id"], _naive(data["paid_at"]),
            data["amount_minor"], data["points_redeemed"]), actor=key.actor())
        return _order_result(s, data["order_id"], r), 201

    return run("order", work, object_type="order", object_id=lambda b: b["order_id"])


def _order_result(s: Session, order_id: str, r: ledger.OrderResult) -> dict[str, Any]:
    return {
        "order_id": order_id, "member_id": r.member_id, "accrued": r.accrued,
        "redeemed": r.redeemed, "referral_bonus": r.referral_bonus, "tier": r.tier,
        "balance": (r.balance if r.balance is not None
                    else ledger.balance(s, r.member_id) if r.member_id else None),
    }


@_endpoint("/orders/batch", "POST", "orders", 200, OrderBatchOut, body=OrderBatchIn,
           errors={422: "the batch is malformed"})
def post_orders(data: dict[str, Any]) -> Any:
    """Record up to 500 paid orders in one call, for a till or a shop system
    forwarding what it has buffered. Each order is posted exactly as by
    ``POST /orders`` (idempotent on its order_id); one that is refused gets its
    error in the results and does not stop the others."""
    orders = data["orders"]

    def work(s: Session, key: api_keys.KeyInfo) -> tuple[dict, int]:
        given = [OrderIn(d["order_id"], d["customer_id"], _naive(d["paid_at"]),
                         d["amount_minor"], d["points_redeemed"]) for d in orders]
        results: list[dict[str, Any]] = []
        for o, r in zip(given, bulk.post_orders(s, given, actor=key.actor()), strict=True):
            if isinstance(r, LoyaltyError):
                e = _refusal(r)
                results.append({"order_id": o.order_ref, "status": e.status, "order": None,
                                "error": {"code": e.code, "message": e.message,
                                          "field": e.field}})
            else:
                results.append({"order_id": o.order_ref, "status": 201,
                                "order": _order_result(s, o.order_ref, r), "error": None})
        accepted = sum(1 for r in results if r and r["status"] == 201)
        return {"accepted": accepted, "refused": len(results) - accepted,
                "results": results}, 200

    return run("order_batch", work, object_type="order_batch",
               object_id=lambda b: f"{b['accepted']} of {len(b['results'])}",
               audited=lambda b: {
                   "accepted": [r["order_id"] for r in b["results"] if r["status"] == 201],
                   "refused": [[r["order_id"], r["error"]["message"]]
                               for r in b["results"] if r["status"] != 201]})


@_endpoint("/members/<string:customer_id>/quote", "GET", "redeem", 200, QuoteOut,
           query=QuoteArgs, errors={404: "no such member"})
def quote(args: dict[str, Any], customer_id: str) -> Any:
    """How many points the member may redeem on an order of this total: post
    the order with ``points_redeemed`` up to ``max_points`` and
    ``amount_minor`` = total - points x point value."""
    with get_db().read() as s:
        m = _member_by_customer(s, customer_id)
        rules, _pilot = load_rulebook(s, [m.id]).for_member(m.id, clock.utcnow())
        if rules is None:
            raise ApiError(409, "invalid_state", "no rule version is in force")
        balance = ledger.balance(s, m.id) if m.status == "active" else 0
        points = min(balance, args["total_minor"] // rules.point_value_minor)
        return {"customer_id": customer_id, "balance": balance,
                "point_value_minor": rules.point_value_minor, "max_points": points,
                "max_discount_minor": points * rules.point_value_minor}


@_endpoint("/transfers", "POST", "transfer", 201, TransferOut, body=TransferIn,
           errors={409: "too few points, or a member not active", 422: "a field is wrong"})
def transfer(data: dict[str, Any]) -> Any:
    """Move points from one member to another (both legs or neither)."""

    def work(s: Session, key: api_keys.KeyInfo) -> tuple[dict, int]:
        src = _member_by_customer(s, data["from_customer_id"])
        dst = _member_by_customer(s, data["to_customer_id"])
        tx = ledger.transfer(s, src.id, dst.id, data["points"],
                             key=f"api:{key.id}:{request.headers['Idempotency-Key']}",
                             actor=key.actor())
        return {"transaction_id": tx, "points": data["points"],
                "from_balance": ledger.balance(s, src.id),
                "to_balance": ledger.balance(s, dst.id)}, 201

    return run("transfer", work, object_type="transfer",
               object_id=lambda b: b["transaction_id"])


@_endpoint("/orders/<string:order_id>/refund", "POST", "orders", 200, RefundOut, body=RefundIn,
           errors={404: "no such order"})
def refund(data: dict[str, Any], order_id: str) -> Any:
    """Refund an order, whole (no amount) or in part (amount_minor with the
    shop's refund_id). Points follow the money: the same share of the order's
    redeemed points comes back, and of its accrual and referral bonus is
    taken back as far as the balances allow."""

    def work(s: Session, key: api_keys.KeyInfo) -> tuple[dict, int]:
        at = _naive(data["refunded_at"])
        if (why := ledger.future_problem(at)) is not None:
            raise ApiError(422, "invalid", why, "refunded_at")
        r = ledger.refund_order(s, order_id, at=at, actor=key.actor(),
                                amount_minor=data["amount_minor"],
                                refund_ref=data["refund_id"])
        return {"order_id": order_id, "reversed_accrual": r.reversed_accrual,
                "restored_redemption": r.restored_redemption,
                "reversed_referral": r.reversed_referral, "unrecovered": r.unrecovered,
                "refunded_minor": r.amount_minor, "remaining_minor": r.remaining_minor,
                "status": r.status}, 200

    return run("refund", work, object_type="order", object_id=lambda b: b["order_id"])


# ---------------------------------------------------------------- wiring


class _Api(Api):
    """flask-smorest without its app-wide error handler: the staff pages keep
    theirs; the API's are registered on its blueprint."""

    def _register_error_handlers(self) -> None:
        return None


def init_api(server: flask.Flask) -> _Api:
    server.config.update({
        "API_TITLE": "Loyalty program API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": PREFIX,
        "OPENAPI_JSON_PATH": "openapi.json",
    })
    api = _Api(server, spec_kwargs={"servers": [{"url": "/"}]})
    api.spec.components.security_scheme("ApiKey", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(blp)
    from dashboard.auth import csrf

    csrf.exempt(blp)  # no cookies: a key in a header, which another site cannot send
    return api


def is_api_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")

