"""API keys: created by a supervisor, shown once, stored hashed, scoped,
revocable.

A key reads ``lk_<prefix>_<secret>``: the prefix (public, unique) finds the
row, the secret is 256 random bits of which only a SHA-256 is kept and
compared in constant time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import audit, clock
from db.actor import Actor
from db.errors import Forbidden, InvalidState, NotFound, ValidationError
from db.i18n import N_
from db.models import API_SCOPES, ApiKey, StaffUser

TOKEN = re.compile(r"lk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
# letters of any alphabet (a key named in Russian: "Касса 1"), digits, " ._-"
NAME = re.compile(r"[^\W_][\w .-]{0,63}")



def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def actor(self) -> Actor:
        """Who an API call acts as, in the ledger and the audit log."""
        return Actor(f"api:{self.name}", None, "api")


def _info(s: Session, k: ApiKey) -> KeyInfo:
    author = s.get(StaffUser, k.created_by_id) if k.created_by_id else None
    return KeyInfo(k.id, k.name, k.prefix, tuple(k.scopes.split()),
                   author.username if author else "", k.created_at, k.revoked_at)


def check_scopes(scopes: object) -> tuple[str, ...]:
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(scopes, list | tuple | set | frozenset) or not scopes:
        raise ValidationError("scopes", N_("choose at least one scope"))
    unknown = [x for x in scopes if x not in API_SCOPES]
    if unknown:
        raise ValidationError(
            "scopes", N_("unknown scope '%(scope)s'; choose from %(choices)s",
                         scope=str(unknown[0]), choices=", ".join(API_SCOPES))
        )
    return tuple(x for x in API_SCOPES if x in scopes)


def create_key(s: Session, actor: Actor, name: object, scopes: object) -> tuple[KeyInfo, str]:
    """A new key; returns it with its token, which is never shown again."""
    if actor.role != "supervisor":
        raise Forbidden(N_("only a supervisor creates API keys"))
    name = (name if isinstance(name, str) else "").strip()
    if not NAME.fullmatch(name):
        raise ValidationError(
            "name", N_("1-64 letters, digits, spaces, dots, dashes or underscores, "
                       "starting with a letter or digit")
        )
    wanted = check_scopes(scopes)
    if s.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise ValidationError("name", N_("a key named '%(name)s' exists already", name=name))
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=prefix, secret_hash=_digest(secret),
                 scopes=" ".join(wanted), created_by_id=actor.id, created_at=clock.utcnow())
    s.add(key)
    s.flush()
    audit.record(s, actor.name, "api_key.create", actor_id=actor.id, object_type="api_key",
                 object_id=key.id, after={"name": name, "scopes": list(wanted),
                                          "prefix": prefix})
    return _info(s, key), f"lk_{prefix}_{secret}"


def revoke_key(s: Session, actor: Actor, key_id: int) -> KeyInfo:
    if actor.role != "supervisor":
        raise Forbidden(N_("only a supervisor revokes API keys"))
    key = s.get(ApiKey, key_id)
    if key is None:
        raise NotFound(N_("API key %(id)s does not exist", id=key_id))
    if key.revoked_at is not None:
        raise InvalidState(N_("API key '%(name)s' was revoked already", name=key.name))
    key.revoked_at, key.revoked_by_id = clock.utcnow(), actor.id
    s.flush()
    audit.record(s, actor.name, "api_key.revoke", actor_id=actor.id, object_type="api_key",
                 object_id=key.id, before={"name": key.name})
    return _info(s, key)


def authenticate(s: Session, token: str | None) -> KeyInfo | None:
    """The active key a token belongs to, else None (never says which part
    was wrong)."""
    m = TOKEN.fullmatch(token or "")
    if m is None:
        return None
    key = s.scalar(select(ApiKey).where(ApiKey.prefix == m.group(1)))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_hash, _digest(m.group(2))):
        return None
    return KeyInfo(key.id, key.name, key.prefix, tuple(key.scopes.split()), "",
                   key.created_at, None)


def list_keys(s: Session) -> list[KeyInfo]:
    return [_info(s, k) for k in s.scalars(select(ApiKey).order_by(ApiKey.id.desc()))]
