"""A supervisor cannot make another supervisor alone: creating or promoting one
waits for a second supervisor, and the audit log shows both."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db import staff_grants, users
from db.errors import Forbidden, InvalidState, ValidationError
from db.models import AuditLog, StaffUser
from tests.support.factories import staff

PW = "Tr0mbone-Saddle-91"


def test_a_new_supervisor_is_disabled_until_a_second_supervisor_approves(any_db):
    with any_db.begin() as s:
        ann, bob = staff(s, "ann", "supervisor"), staff(s, "bob", "supervisor")
        info = staff_grants.create_supervisor(s, ann, "mallory", PW)
        assert (info.role, info.active) == ("supervisor", False)
        assert users.authenticate(s, "mallory", PW) is None
        # the one who asked can neither enable the account nor approve the grant
        with pytest.raises(Forbidden, match="second supervisor approves"):
            users.set_active(s, info.id, True, actor="ann", actor_id=ann.id)
        (grant,) = staff_grants.pending(s)
        with pytest.raises(Forbidden, match="four-eyes"):
            staff_grants.approve(s, ann, grant.id)
        staff_grants.approve(s, bob, grant.id)
        assert users.authenticate(s, "mallory", PW) is not None
        assert staff_grants.pending(s) == []
        log = s.execute(select(AuditLog.action, AuditLog.actor).where(
            AuditLog.object_id == str(info.id)).order_by(AuditLog.id)).all()
        assert log == [("staff.create", "ann"), ("staff.grant_request", "ann"),
                       ("staff.enable", "bob"), ("staff.grant_approve", "bob")]


def test_a_supervisor_cannot_create_or_promote_one_directly(db):
    with db.begin() as s:
        ann = staff(s, "ann", "supervisor")
        sam = staff(s, "sam", "support")
        with pytest.raises(Forbidden, match="second supervisor"):
            users.create_user(s, "mallory", PW, "supervisor", actor="ann", actor_id=ann.id)
        with pytest.raises(Forbidden, match="second supervisor"):
            users.set_role(s, sam.id, "supervisor", actor="ann", actor_id=ann.id)
        assert s.get(StaffUser, sam.id).role == "support"
        # demoting needs nobody else
        users.set_role(s, sam.id, "executive", actor="ann", actor_id=ann.id)


def test_a_promotion_waits_and_the_promoted_cannot_approve_their_own(any_db):
    with any_db.begin() as s:
        ann, bob = staff(s, "ann", "supervisor"), staff(s, "bob", "supervisor")
        sam = staff(s, "sam", "support")
        gid = staff_grants.request_promotion(s, ann, sam.id)
        assert s.get(StaffUser, sam.id).role == "support"
        with pytest.raises(InvalidState, match="already waiting"):
            staff_grants.request_promotion(s, bob, sam.id)
        with pytest.raises(Forbidden, match="its own"):
            staff_grants.approve(s, sam, gid)
        staff_grants.approve(s, bob, gid)
        assert s.get(StaffUser, sam.id).role == "supervisor"
        with pytest.raises(InvalidState, match="already approved"):
            staff_grants.approve(s, bob, gid)
        with pytest.raises(ValidationError, match="already a supervisor"):
            staff_grants.request_promotion(s, ann, sam.id)


def test_a_refused_grant_leaves_the_account_as_it_was(db):
    with db.begin() as s:
        ann, bob = staff(s, "ann", "supervisor"), staff(s, "bob", "supervisor")
        sam = staff(s, "sam", "support")
        gid = staff_grants.request_promotion(s, ann, sam.id)
        with pytest.raises(ValidationError, match="say why"):
            staff_grants.reject(s, bob, gid, " ")
        staff_grants.reject(s, bob, gid, "not on the supervisor team")
        assert s.get(StaffUser, sam.id).role == "support"
        info = staff_grants.create_supervisor(s, ann, "eve", PW)
        (grant,) = staff_grants.pending(s)
        staff_grants.reject(s, bob, grant.id, "unknown person")
        with pytest.raises(Forbidden, match="was refused"):
            users.set_active(s, info.id, True, actor="bob", actor_id=bob.id)
        # as a support account it may be enabled
        users.set_role(s, info.id, "support", actor="bob", actor_id=bob.id)
        users.set_active(s, info.id, True, actor="bob", actor_id=bob.id)
        assert s.scalar(select(AuditLog.detail).where(
            AuditLog.action == "staff.grant_reject").order_by(AuditLog.id.desc()).limit(1)
        ) == "unknown person"


def test_the_command_line_bootstraps_supervisors_directly(db):
    with db.begin() as s:
        info = users.create_user(s, "root-sup", PW, "supervisor")
        assert info.active and info.role == "supervisor"
