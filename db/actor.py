"""Who is acting: passed into every service that changes something.

Background jobs have no request context, so the web layer hands them an
``Actor`` explicitly instead of services reaching for the logged-in user.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    name: str
    id: int | None = None  # staff_users.id; None for the CLI and the system
    role: str | None = None


SYSTEM = Actor("system")
CLI = Actor("cli")
