"""The program's settings (the one ``program_settings`` row): its currency,
how long points live, the active-member window. Read here and only here, with
the schema's defaults when the row is missing (a database not initialised)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import DEFAULT_ACTIVE_DAYS, DEFAULT_CURRENCY, ProgramSettings


@dataclass(frozen=True)
class ProgramInfo:
    currency: str
    expiry_days: int | None  # None: points never expire
    active_days: int  # a member is active with an order or redemption this recent


def program_info(s: Session) -> ProgramInfo:
    row = s.execute(
        select(ProgramSettings.currency, ProgramSettings.expiry_days,
               ProgramSettings.active_days).where(ProgramSettings.id == 1)
    ).first()
    if row is None:
        return ProgramInfo(DEFAULT_CURRENCY, None, DEFAULT_ACTIVE_DAYS)
    return ProgramInfo(row.currency, row.expiry_days, row.active_days)


def currency(s: Session) -> str:
    return program_info(s).currency
