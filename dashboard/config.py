"""Configuration of the web app, read from environment variables.

One place turns env vars (or a test's dict) into a typed :class:`Config`, so
the app factory never reads ``os.environ`` itself and a bad value stops
start-up with a message instead of failing on the first request.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from db.models import LANGUAGES
from db.ratelimit import parse_rates
from db.session import Timeouts

log = logging.getLogger(__name__)

ENVIRONMENTS = ("production", "development")
DEFAULT_IDLE_MINUTES = 30
# Failed logins only are counted (see dashboard.auth), per address and
# account (so the owner can still sign in from elsewhere) and, looser, per
# address; generous for a person who mistypes, far too low for a guesser.
DEFAULT_LOGIN_LIMIT_ACCOUNT = "5 per minute; 30 per hour"
DEFAULT_LOGIN_LIMIT_ADDRESS = "30 per minute; 300 per hour"
# member searches per staff user (masked contacts must not be spelt out by
# many searches)
DEFAULT_MEMBER_SEARCH_LIMIT = "60 per minute"
# calls per API key (a till posts an order a second at its busiest)
DEFAULT_API_KEY_LIMIT = "6000 per minute"
# The largest request body: a pilot's member list (up to 30 MB) arrives
# base64-encoded (4/3 of its size) inside a callback's JSON.
DEFAULT_MAX_REQUEST_MB = 48


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says what to set."""


@dataclass(frozen=True)
class Config:
    database_url: str | None
    secret_key: str
    redis_url: str | None
    env: str
    session_idle_minutes: int
    login_limit_account: str
    login_limit_address: str
    member_search_limit: str = DEFAULT_MEMBER_SEARCH_LIMIT
    api_key_limit: str = DEFAULT_API_KEY_LIMIT
    testing: bool = False
    db_ping_ms: int = 15_000
    # number of reverse proxies in front (X-Forwarded-For hops to trust), so
    # the per-address login limit sees clients, not the proxy
    proxy_hops: int = 0
    # how long the app's database connections may wait (DB_*_TIMEOUT_* vars)
    db_timeouts: Timeouts = field(default_factory=Timeouts)
    # requests with a larger body are refused with 413 (MAX_REQUEST_MB)
    max_request_mb: int = DEFAULT_MAX_REQUEST_MB
    # the shop's sign-up link for a referral code, with "{code}" in it
    # (REFERRAL_LINK_TEMPLATE, e.g. https://shop.example/join?ref={code})
    referral_link_template: str | None = None
    # the language of staff users who chose none, and of the sign-in page when
    # the browser asks for no language the app has (DEFAULT_LANGUAGE: en, ru)
    default_language: str = "en"

    @property
    def production(self) -> bool:
        return self.env == "production"


def _get(source: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = source.get(key)
    return default if value in (None, "") else value


def _positive(source: Mapping[str, Any], key: str, default: int) -> int:
    raw = _get(source, key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key} must be a whole number, not {raw!r}") from exc
    if value <= 0:
        raise ConfigError(f"{key} must be positive")
    return value


def load_config(overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the config from env vars, with ``overrides`` (tests) taking precedence.

    Raises :class:`ConfigError` when production would start without a secret
    key (sessions signed with a random per-process key break across gunicorn
    workers and restarts, and a guessable one lets anyone forge a session).
    """
    src: dict[str, Any] = dict(os.environ)
    src.update({k: v for k, v in (overrides or {}).items() if v is not None})

    env = str(_get(src, "LOYALTY_ENV", "development")).strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"LOYALTY_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")

    secret = _get(src, "SECRET_KEY")
    if not secret:
        if env == "production":
            raise ConfigError(
                "SECRET_KEY is not set. In production (LOYALTY_ENV=production) the app "
                "refuses to start without it: set SECRET_KEY to a long random value, e.g. "
                "the output of `python -c 'import secrets; print(secrets.token_hex(32))'`."
            )
        secret = secrets.token_hex(32)
        log.warning(
            "SECRET_KEY not set: using a random key for this process only "
            "(sessions end on restart and are not shared between workers)"
        )
    elif env == "production" and len(str(secret)) < 16:
        raise ConfigError("SECRET_KEY is too short for production: use at least 16 characters")

    idle = _positive(src, "SESSION_IDLE_MINUTES", DEFAULT_IDLE_MINUTES)

    limits = {
        name: str(_get(src, name, default)).strip()
        for name, default in (("LOGIN_LIMIT_ACCOUNT", DEFAULT_LOGIN_LIMIT_ACCOUNT),
                              ("LOGIN_LIMIT_ADDRESS", DEFAULT_LOGIN_LIMIT_ADDRESS),
                              ("MEMBER_SEARCH_LIMIT", DEFAULT_MEMBER_SEARCH_LIMIT),
                              ("API_KEY_LIMIT", DEFAULT_API_KEY_LIMIT))
    }
    for name, value in limits.items():
        try:
            parse_rates(value)
        except ValueError as exc:
            raise ConfigError(
                f"{name} must be limits such as '5 per minute; 30 per hour', not {value!r}"
            ) from exc
    try:
        timeouts = Timeouts.from_env(src)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    max_request_mb = _positive(src, "MAX_REQUEST_MB", DEFAULT_MAX_REQUEST_MB)
    link = (_get(src, "REFERRAL_LINK_TEMPLATE") or "").strip() or None
    if link is not None and "{code}" not in link:
        raise ConfigError(
            f"REFERRAL_LINK_TEMPLATE must contain {{code}} where the code goes, not {link!r}")
    language = str(_get(src, "DEFAULT_LANGUAGE", "en")).strip().lower()
    if language not in LANGUAGES:
        raise ConfigError(
            f"DEFAULT_LANGUAGE must be one of {', '.join(LANGUAGES)}, not {language!r}")

    return Config(
        database_url=_get(src, "DATABASE_URL"),
        secret_key=str(secret),
        redis_url=_get(src, "REDIS_URL"),
        env=env,
        session_idle_minutes=idle,
        login_limit_account=limits["LOGIN_LIMIT_ACCOUNT"],
        login_limit_address=limits["LOGIN_LIMIT_ADDRESS"],
        member_search_limit=limits["MEMBER_SEARCH_LIMIT"],
        api_key_limit=limits["API_KEY_LIMIT"],
        testing=bool(_get(src, "TESTING", False)),
        db_ping_ms=int(_get(src, "DB_PING_MS", 15_000)),
        proxy_hops=int(_get(src, "PROXY_HOPS", 0)),
        db_timeouts=timeouts,
        max_request_mb=max_request_mb,
        referral_link_template=link,
        default_language=language,
    )
