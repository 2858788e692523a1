"""Staff passwords follow NIST SP 800-63B: length, not a common password, not the username."""

from __future__ import annotations

import pytest

from db import users
from db.demo import ensure_demo_staff
from db.errors import ValidationError


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("alice", "short", "must be at least 8 characters"),
        ("alice", "password", "most commonly used passwords"),
        ("alice", "Password1", "most commonly used passwords"),  # case-insensitive
        ("alice", "QWERTY123", "most commonly used passwords"),
        ("alice", "iloveyou", "most commonly used passwords"),
        ("alice", "trustno1", "most commonly used passwords"),
        ("margaret", "margaret-2026", "must not contain the username"),
        ("margaret", "xx-MarGaret!", "must not contain the username"),
        ("j.doe@example.com", "j.doe-secret-99", "must not contain the username"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(db, username, password, reason):
    with db.begin() as s:
        with pytest.raises(ValidationError) as ei:
            users.create_user(s, username, password, "support")
        assert ei.value.field == "password"
        assert reason in ei.value.message
        assert users.get_user_by_name(s, username) is None


def test_new_password_is_checked_against_the_account(db):
    with db.begin() as s:
        uid = users.create_user(s, "margaret", "tall-green-lamp", "support").id
    for weak in ("margaret1", "Password1", "letmein1"):
        with db.begin() as s:
            with pytest.raises(ValidationError, match="password: "):
                users.set_password(s, uid, weak, actor="cli")
    with db.read() as s:
        assert users.authenticate(s, "margaret", "tall-green-lamp") is not None
    with db.begin() as s:
        users.set_password(s, uid, "quiet-river-stone", actor="cli")
    with db.read() as s:
        assert users.authenticate(s, "margaret", "quiet-river-stone") is not None


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "correct-horse-42"),
        ("al", "palace-of-glass"),  # a two-letter name inside words is chance, not a choice
        ("bob", "long-password"),
    ],
)
def test_ordinary_passwords_are_accepted(db, username, password):
    with db.begin() as s:
        users.create_user(s, username, password, "support")
    with db.read() as s:
        assert users.authenticate(s, username, password) is not None


def test_the_common_list_is_shipped_and_large():
    common = users.common_passwords()
    assert len(common) > 25_000
    assert {"123456", "password", "qwerty", "dragon"} <= common


def test_demo_accounts_pass_the_rules(db):
    with db.begin() as s:
        staff = ensure_demo_staff(s)
    assert staff and all(st.created for st in staff)
    for st in staff:
        users.check_password(st.password, st.username)
