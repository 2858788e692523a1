"""The audit log: who did what, when, with the before and after state."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy.orm import Session

from db.models import AuditLog


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=str, sort_keys=True, ensure_ascii=False)


def record(
    s: Session,
    actor: str,
    action: str,
    *,
    actor_id: int | None = None,
    object_type: str = "",
    object_id: Any = "",
    before: Any = None,
    after: Any = None,
    detail: str = "",
    at: dt.datetime | None = None,
) -> None:
    """Append one audit row inside the caller's transaction (so the row and
    the change it describes commit or vanish together)."""
    s.add(
        AuditLog(
            actor=actor,
            actor_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            before=_dump(before),
            after=_dump(after),
            detail=detail,
            **({"at": at} if at else {}),
        )
    )
