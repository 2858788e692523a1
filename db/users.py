"""Staff accounts: creation, password hashing (argon2id), roles, disabling.

Every change of an account's role, password or active flag bumps its
``session_version`` (an ORM event in :mod:`db.models`), which ends all its
sessions; :func:`end_sessions` does the same on logout.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import re
import warnings
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, SAWarning
from sqlalchemy.orm import Session

from db import audit, clock
from db.errors import Forbidden, FormErrors, NotFound, ValidationError
from db.i18n import N_
from db.models import LANGUAGES, ROLES, StaffRoleRequest, StaffUser

log = logging.getLogger(__name__)
_hasher = PasswordHasher()  # argon2id with the library's current defaults
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD = 8
MIN_USERNAME_IN_PASSWORD = 3  # a shorter username would refuse random passwords by chance
# verified against when the user does not exist, so timing does not tell
_DUMMY_HASH = _hasher.hash("not-a-real-password")


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    full_name: str
    role: str
    active: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None
    session_version: int = 0
    language: str | None = None  # None: the configured default


def _info(u: StaffUser) -> UserInfo:
    return UserInfo(u.id, u.username, u.full_name, u.role, u.active, u.created_at, u.last_login_at,
                    u.session_version or 0, u.language)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords of leaked password lists, lowercase
    (the list the zxcvbn strength estimator ranks passwords against)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def check_password(password: str, username: str) -> None:
    """NIST SP 800-63B: long enough, not a commonly used password, not built
    on the account's own name. Compared case-insensitively."""
    password = password or ""
    if len(password) < MIN_PASSWORD:
        raise ValidationError("password", N_("must be at least %(n)s characters",
                                             n=MIN_PASSWORD))
    low = password.lower()
    if low in common_passwords():
        raise ValidationError(
            "password",
            N_("is one of the most commonly used passwords (found in leaked password lists); "
               "choose another, e.g. a few unrelated words"),
        )
    name = (username or "").lower()
    for part in {name, name.split("@", 1)[0]}:
        if len(part) >= MIN_USERNAME_IN_PASSWORD and part in low:
            raise ValidationError("password", N_("must not contain the username"))


MAX_FULL_NAME = 200


def new_user_problems(username: str, password: str, role: str, full_name: str = ""
                      ) -> dict[str, str]:
    """Every problem of a new account's fields at once, by field (empty: none)."""
    out: dict[str, str] = {}
    if not USERNAME_RE.match(username or ""):
        out["username"] = N_("use 2-64 letters, digits or . _ @ - (no spaces)")
    if len((full_name or "").strip()) > MAX_FULL_NAME:
        out["full_name"] = N_("too long: at most %(n)s characters", n=MAX_FULL_NAME)
    if role not in ROLES:
        out["role"] = N_("choose a role from the list")
    try:
        check_password(password, username)
    except ValidationError as exc:
        out["password"] = exc.message
    return out


def validate_new_user(username: str, password: str, role: str, full_name: str = "") -> None:
    problems = new_user_problems(username, password, role, full_name)
    if problems:
        raise FormErrors(problems)


def create_user(
    s: Session,
    username: str,
    password: str,
    role: str,
    *,
    full_name: str = "",
    actor: str = "cli",
    actor_id: int | None = None,
    active: bool = True,
) -> UserInfo:
    """A new account. A supervisor created by a staff member (``actor_id``)
    goes through :func:`db.staff_grants.create_supervisor` (four-eyes); the
    command line (no ``actor_id``) is the operator's bootstrap."""
    validate_new_user(username, password, role, full_name)
    if role == "supervisor" and actor_id is not None and active:
        raise Forbidden(N_("a new supervisor account waits for a second supervisor's approval"))
    exists = s.scalar(
        select(StaffUser.id).where(func.lower(StaffUser.username) == username.lower())
    )
    if exists:
        raise ValidationError("username", N_("'%(username)s' is already taken", username=username))
    u = StaffUser(
        username=username, full_name=full_name, password_hash=hash_password(password), role=role,
        active=active,
    )
    s.add(u)
    s.flush()
    audit.record(
        s, actor, "staff.create", actor_id=actor_id, object_type="staff_user", object_id=u.id,
        after={"username": username, "role": role, "full_name": full_name, "active": active},
    )
    return _info(u)


def authenticate(s: Session, username: str, password: str) -> UserInfo | None:
    """The user if the password is right and the account active, else None.

    A login must not queue behind a long writer (an import on SQLite holds
    the one write lock per batch). When this call opens the session's
    transaction (the login form's case), it reads without the write lock
    and writes the last-login stamp (and a rehash) in its own short
    transaction that waits at most :data:`STAMP_WAIT_SECONDS` for the
    database: the stamp is best effort, the login is not. Inside a caller's
    ongoing write transaction the stamp is part of that transaction.
    """
    _open_without_write_lock(s)
    # a transaction without the write lock (ours, or a read) stamps apart
    apart = not s.connection().get_execution_options().get("loyalty_write", False)
    u = s.scalar(select(StaffUser).where(StaffUser.username == (username or "")))
    try:
        if u is None:
            _hasher.verify(_DUMMY_HASH, password or "")
            return None
        _hasher.verify(u.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if not u.active:
        return None
    now = clock.utcnow()
    changes: dict = {"last_login_at": now}
    if _hasher.check_needs_rehash(u.password_hash):
        changes["password_hash"] = hash_password(password)
    if not apart:
        for k, v in changes.items():
            setattr(u, k, v)
        return _info(u)
    info = _info(u)
    if _stamp_apart(s, u.id, changes):
        info = dataclasses.replace(info, last_login_at=now)
    return info


STAMP_WAIT_SECONDS = 2.0


def _open_without_write_lock(s: Session) -> None:
    """Open the session's transaction as a plain read (SQLite: a deferred
    BEGIN, not the write session's BEGIN IMMEDIATE), unless the session
    already has its connection (the caller's transaction goes on as it is)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # "already established"
        s.connection(execution_options={"loyalty_write": False})


def _stamp_apart(s: Session, user_id: int, changes: dict) -> bool:
    """Write ``changes`` to the user in a separate short transaction; give up
    (logged) if the database stays busy for :data:`STAMP_WAIT_SECONDS`."""
    from db.session import SQLITE_BUSY_TIMEOUT_MS

    bind = s.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    t = StaffUser.__table__
    try:
        with bind.execution_options(loyalty_write=True).connect() as c:
            raw = c.connection.driver_connection  # PRAGMA outside any transaction
            if sqlite:
                raw.execute(f"PRAGMA busy_timeout = {int(STAMP_WAIT_SECONDS * 1000)}")
            try:
                with c.begin():
                    if not sqlite:
                        c.exec_driver_sql(
                            f"SET LOCAL lock_timeout = '{int(STAMP_WAIT_SECONDS * 1000)}ms'"
                        )
                    c.execute(update(t).where(t.c.id == user_id).values(**changes))
            finally:
                if sqlite:
                    raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    except DBAPIError as exc:
        log.warning("last login of staff user %s not recorded (database busy): %s",
                    user_id, str(exc.orig).strip().splitlines()[0])
        return False
    return True


def get_user(s: Session, user_id: int) -> UserInfo | None:
    u = s.get(StaffUser, user_id)
    return _info(u) if u else None


def get_user_by_name(s: Session, username: str) -> UserInfo | None:
    u = s.scalar(select(StaffUser).where(StaffUser.username == username))
    return _info(u) if u else None


def end_sessions(s: Session, user_id: int) -> None:
    """End every session of the account (logout): cookies signed with the
    current session version stop working everywhere."""
    s.execute(
        update(StaffUser).where(StaffUser.id == user_id)
        .values(session_version=StaffUser.session_version + 1)
    )


def list_users(s: Session) -> list[UserInfo]:
    return [_info(u) for u in s.scalars(select(StaffUser).order_by(StaffUser.username))]


def _load(s: Session, user_id: int) -> StaffUser:
    u = s.get(StaffUser, user_id, with_for_update=True)
    if u is None:
        raise NotFound(N_("staff user %(id)s does not exist", id=user_id))
    return u


def enable_blocker(s: Session, user_id: int) -> str | None:
    """Why an account may not be enabled directly: it was created as a
    supervisor and that grant (db.staff_grants, four-eyes) is not approved
    (pending or refused)."""
    u = s.get(StaffUser, user_id)
    if u is None or u.role != "supervisor":
        return None
    last = s.scalar(
        select(StaffRoleRequest)
        .where(StaffRoleRequest.user_id == user_id, StaffRoleRequest.kind == "create")
        .order_by(StaffRoleRequest.id.desc()).limit(1))
    if last is None or last.status == "approved":
        return None
    if last.status == "pending":
        return N_("%(username)s becomes active when a second supervisor approves the "
                  "supervisor account", username=u.username)
    return N_("the supervisor account %(username)s was refused; change its role before "
              "enabling it", username=u.username)


def set_active(
    s: Session, user_id: int, active: bool, *, actor: str, actor_id: int | None = None
) -> UserInfo:
    u = _load(s, user_id)
    if actor_id is not None and actor_id == user_id and not active:
        raise ValidationError("active", N_("you cannot disable your own account"))
    if active and not u.active:
        if why := enable_blocker(s, user_id):
            raise Forbidden(why)
    before = u.active
    u.active = active
    audit.record(
        s, actor, "staff.enable" if active else "staff.disable", actor_id=actor_id,
        object_type="staff_user", object_id=u.id, before={"active": before},
        after={"active": active},
    )
    return _info(u)


def set_role(
    s: Session, user_id: int, role: str, *, actor: str, actor_id: int | None = None,
    granted: bool = False,
) -> UserInfo:
    """Change a role. Making a staff member a supervisor takes a second
    supervisor (:mod:`db.staff_grants`, which passes ``granted``)."""
    if role not in ROLES:
        raise ValidationError("role", N_("must be one of %(choices)s", choices=", ".join(ROLES)))
    u = _load(s, user_id)
    if actor_id is not None and actor_id == user_id and role != u.role:
        raise ValidationError("role", N_("you cannot change your own role"))
    if role == "supervisor" and u.role != role and actor_id is not None and not granted:
        raise Forbidden(N_("promoting to supervisor waits for a second supervisor's approval"))
    before = u.role
    u.role = role
    audit.record(
        s, actor, "staff.role", actor_id=actor_id, object_type="staff_user", object_id=u.id,
        before={"role": before}, after={"role": role},
    )
    return _info(u)


def set_language(s: Session, user_id: int, language: str, *, actor: str,
                 actor_id: int | None = None) -> UserInfo:
    """The language the user's pages are shown in (their own choice in the
    navbar); audited like the account's other changes. It leaves the
    account's sessions alone."""
    if language not in LANGUAGES:
        raise ValidationError("language", N_("must be one of %(choices)s",
                                             choices=", ".join(LANGUAGES)))
    u = _load(s, user_id)
    before = u.language
    if before != language:
        u.language = language
        audit.record(
            s, actor, "staff.language", actor_id=actor_id, object_type="staff_user",
            object_id=u.id, before={"language": before}, after={"language": language},
        )
    return _info(u)


def set_password(
    s: Session, user_id: int, password: str, *, actor: str, actor_id: int | None = None
) -> None:
    u = _load(s, user_id)
    check_password(password, u.username)
    u.password_hash = hash_password(password)
    audit.record(
        s, actor, "staff.password", actor_id=actor_id, object_type="staff_user", object_id=u.id
    )
