"""Errors the services raise; each carries a message fit to show a user.

Messages are English text; those marked with :func:`db.i18n.N_` carry their
msgid too, so the web layer shows them in the user's language
(:func:`dashboard.i18n.translate`)."""

from __future__ import annotations

from db.i18n import N_


class LoyaltyError(Exception):
    """Base class: a refusal with a clear message; nothing was changed."""


class ValidationError(LoyaltyError):
    """Bad input: ``field`` names where, the message says what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(LoyaltyError):
    pass


class InsufficientPoints(LoyaltyError):
    """The operation would take a member's balance below zero."""


class IdempotencyConflict(LoyaltyError):
    """The same idempotency key (order id, ...) was used with a different payload."""


class InvalidState(LoyaltyError):
    """The object is not in a state that allows this (already decided, published, ...)."""


class Forbidden(LoyaltyError):
    """The actor may not do this (four-eyes rule, role)."""


class DatabaseBusy(LoyaltyError):
    """A statement ran out of time waiting for a lock or for the database;
    its transaction was rolled back."""


class FormErrors(ValidationError):
    """Several bad fields at once: ``problems`` maps each field to what is
    wrong with it, so a form can show every message together."""

    def __init__(self, problems: dict[str, str]) -> None:
        first, message = next(iter(problems.items()))
        super().__init__(first, message)
        self.problems = dict(problems)
        self.args = ("; ".join(f"{f}: {m}" for f, m in problems.items()),)


def too_large(limit: str) -> str:
    """The message for a number beyond what a field takes."""
    return N_("too large: at most %(limit)s", limit=limit)
