"""The rule versions and staff that the ledger's property tests publish and act
as, and a fast reset of a PostgreSQL test database between examples."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from db import rule_review
from db import rules as rulebook
from db.actor import Actor
from db.models import Base, StaffUser
from db.session import Database
from tests.support.postgres import reset_postgres

BP = 10_000
STAFF_SINCE = dt.datetime(1980, 1, 1)


@dataclass(frozen=True)
class TierSpec:
    name: str
    threshold_minor: int
    accrual_bp: int
    referral_bp: int


@dataclass(frozen=True)
class VersionSpec:
    name: str
    tiers: tuple[TierSpec, ...]
    point_value_minor: int = 100
    window_days: int | None = None

    def rows(self) -> list[dict]:
        return [
            {
                "name": t.name,
                "threshold": f"{t.threshold_minor // 100}.{t.threshold_minor % 100:02d}",
                "accrual_rate": f"{t.accrual_bp // 100}.{t.accrual_bp % 100:02d}",
                "referral_rate": f"{t.referral_bp // 100}.{t.referral_bp % 100:02d}",
            }
            for t in self.tiers
        ]

    def tier_for(self, spend: int) -> TierSpec:
        found = self.tiers[0]
        for t in self.tiers:
            if spend >= t.threshold_minor:
                found = t
        return found

    def points(self, amount_minor: int, rate_bp: int) -> int:
        return amount_minor * rate_bp // (BP * self.point_value_minor)


V1 = VersionSpec(
    "v1",
    (
        TierSpec("Bronze", 0, 100, 50),
        TierSpec("Silver", 1000_00, 300, 100),
        TierSpec("Gold", 5000_00, 500, 200),
    ),
)


def insert_staff(s) -> dict[str, Actor]:
    actors = {}
    for name, role in [("support1", "support"), ("sup1", "supervisor"),
                       ("sup2", "supervisor"), ("sup3", "supervisor")]:
        uid = s.execute(
            insert(StaffUser)
            .values(username=name, full_name=name, password_hash="!no-login", role=role,
                    active=True, created_at=STAFF_SINCE)
            .returning(StaffUser.id)
        ).scalar_one()
        actors[name] = Actor(name, uid, role)
    return actors


def publish_version(s, spec: VersionSpec, effective_at: dt.datetime, actors, now) -> int:
    rid = rulebook.create_draft(
        s, actors["sup1"], spec.name, spec.rows(),
        point_value_minor=spec.point_value_minor, tier_window_days=spec.window_days,
    )
    # versions published along the machine's own clock: history, not a review
    rule_review.submit(s, actors["sup1"], rid, require_simulation=False)
    rulebook.approve(s, actors["sup2"], rid, effective_at, now=now)
    return rid


def empty_postgres(d: Database) -> None:
    """What ``reset_postgres`` does, by DELETE: TRUNCATE of every table costs
    ~0.4 s per example here, DELETE of a few hundred rows ~20 ms. The
    append-only triggers are bypassed for the session (needs a superuser,
    as in CI); otherwise fall back to ``reset_postgres``."""
    try:
        with d.engine.begin() as c:
            c.execute(text("SET LOCAL session_replication_role = replica"))
            for t in reversed(Base.metadata.sorted_tables):
                c.execute(t.delete().where(t.c.id > 4) if t.name == "accounts" else t.delete())
            for (seq,) in c.execute(text("SELECT relname FROM pg_class WHERE relkind = 'S'")):
                c.execute(text(f'ALTER SEQUENCE "{seq}" RESTART'))
            c.execute(text("SELECT setval(pg_get_serial_sequence('accounts', 'id'), 99)"))
            c.execute(
                text(
                    "INSERT INTO program_settings (id, currency, expiry_days, "
                    "adjustment_second_approval_points, adjustment_supervisor_request_points, "
                    "active_days, updated_at) VALUES (1, 'RUB', 365, 5000, 50000, 30, now())"
                )
            )
    except DBAPIError:
        reset_postgres(d)
