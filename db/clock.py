"""The one clock of the engine: naive UTC, as every datetime column stores it.

Call it as ``clock.utcnow()`` (module attribute, not a ``from`` import) so a
test can pin the time everywhere with
``monkeypatch.setattr(clock, "utcnow", lambda: moment)``.
"""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
