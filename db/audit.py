"""The audit log: who did what, when, with the before and after state."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy.orm import Session

from db.i18n import N_
from db.models import AuditLog

# What the audit page calls each action, object and recorded field (the
# stored codes never change; the page shows these, in the user's language).
ACTION_LABELS: dict[str, str] = {
    "access.refused": N_("Access refused"),
    "adjustment.approve": N_("Adjustment approved"),
    "adjustment.cancel": N_("Adjustment cancelled"),
    "adjustment.export": N_("Adjustments exported"),
    "adjustment.first_approval": N_("Adjustment: first approval"),
    "adjustment.reject": N_("Adjustment rejected"),
    "adjustment.request": N_("Adjustment requested"),
    "api.enrol": N_("API: member enrolled"),
    "api.order": N_("API: order posted"),
    "api.order_batch": N_("API: order batch posted"),
    "api.read": N_("API: data read"),
    "api.refund": N_("API: refund posted"),
    "api.transfer": N_("API: points transferred"),
    "api_key.create": N_("API key created"),
    "api_key.revoke": N_("API key revoked"),
    "audit.export": N_("Audit log exported"),
    "auth.login": N_("Signed in"),
    "auth.logout": N_("Signed out"),
    "demo.seed": N_("Demo data loaded"),
    "pilot.cancel": N_("Pilot cancelled"),
    "pilot.create": N_("Pilot created"),
    "pilot.demo": N_("Demo pilot created"),
    "pilot.end": N_("Pilot ended"),
    "pilot.rollout": N_("Pilot rolled out to a rules draft"),
    "pilot.start": N_("Pilot started"),
    "pilot.start_rejected": N_("Pilot start rejected"),
    "pilot.start_request": N_("Pilot start requested"),
    "rules.copy": N_("Rule version copied"),
    "rules.draft": N_("Rules draft created"),
    "rules.publish": N_("Rule version published"),
    "rules.reject": N_("Rule version rejected"),
    "rules.rollback": N_("Rules rolled back"),
    "rules.simulate": N_("Rules simulated"),
    "rules.submit": N_("Rule version submitted for approval"),
    "rules.update": N_("Rules draft edited"),
    "settings.propose": N_("Settings change proposed"),
    "settings.reject": N_("Settings change rejected"),
    "settings.update": N_("Settings changed"),
    "staff.create": N_("Staff account created"),
    "staff.disable": N_("Staff account disabled"),
    "staff.enable": N_("Staff account enabled"),
    "staff.grant_approve": N_("Role grant approved"),
    "staff.grant_reject": N_("Role grant rejected"),
    "staff.grant_request": N_("Role grant requested"),
    "staff.language": N_("Language changed"),
    "staff.password": N_("Password changed"),
    "staff.role": N_("Role changed"),
    "tiers.reevaluate": N_("Tiers re-evaluated"),
}
OBJECT_LABELS: dict[str, str] = {
    "adjustment": N_("adjustment"),
    "api": N_("API"),
    "api_key": N_("API key"),
    "audit_log": N_("audit log"),
    "callback": N_("page action"),
    "member": N_("member"),
    "order": N_("order"),
    "order_batch": N_("order batch"),
    "pilot": N_("pilot"),
    "program": N_("program"),
    "program_settings": N_("program settings"),
    "rule_set": N_("rule version"),
    "staff_user": N_("staff account"),
    "transfer": N_("transfer"),
}
FIELD_LABELS: dict[str, str] = {
    "accrual_rate_bp": N_("accrual rate, bp"),
    "action": N_("action"),
    "active": N_("active"),
    "actor": N_("user"),
    "approvals_required": N_("approvals required"),
    "approved_by": N_("approved by"),
    "based_on_id": N_("based on version"),
    "change_id": N_("change no."),
    "changed": N_("changed"),
    "comment": N_("comment"),
    "control": N_("control group"),
    "days": N_("days"),
    "decided_by_id": N_("decided by (id)"),
    "distribution": N_("distribution"),
    "draft_id": N_("draft"),
    "draft_rule_set_id": N_("rules draft"),
    "effect": N_("effect"),
    "effective_at": N_("effective at"),
    "ended_at": N_("ended at"),
    "expiry_days": N_("expiry, days"),
    "filters": N_("filters"),
    "first_approver_id": N_("first approver (id)"),
    "approver_id": N_("approver (id)"),
    "eligible": N_("eligible members"),
    "months": N_("months"),
    "current_days": N_("days now"),
    "current_members": N_("members affected now"),
    "current_points": N_("points expiring now"),
    "proposed_days": N_("days proposed"),
    "proposed_members": N_("members affected as proposed"),
    "proposed_points": N_("points expiring as proposed"),
    "until": N_("until"),
    "start": N_("start"),
    "left_out": N_("left out"),
    "note": N_("note"),
    "source": N_("source"),
    "segments": N_("segments"),
    "joined_from": N_("joined from"),
    "joined_to": N_("joined to"),
    "active_within_days": N_("active within (days)"),
    "requested_by_id": N_("requested by (id)"),
    "from": N_("from"),
    "full_name": N_("full name"),
    "grant_id": N_("request no."),
    "guest_orders": N_("guest orders"),
    "kind": N_("kind"),
    "language": N_("language"),
    "member_id": N_("member (id)"),
    "member_orders": N_("member orders"),
    "members": N_("members"),
    "metric": N_("metric"),
    "min_effect": N_("minimum effect"),
    "name": N_("name"),
    "pilot": N_("pilot group"),
    "planned_end_at": N_("planned end"),
    "point_value_minor": N_("point value, minor units"),
    "points": N_("points"),
    "population": N_("population"),
    "prefix": N_("prefix"),
    "proposed_by": N_("proposed by"),
    "reason_code": N_("reason"),
    "referral_rate_bp": N_("referral rate, bp"),
    "requested_by": N_("requested by"),
    "role": N_("role"),
    "rows": N_("rows"),
    "rule_set_id": N_("rule version"),
    "scopes": N_("scopes"),
    "seed": N_("seed"),
    "share_bp": N_("pilot share, bp"),
    "source_id": N_("source version"),
    "start_at": N_("start"),
    "start_requested_by_id": N_("start requested by (id)"),
    "started_by_id": N_("started by (id)"),
    "status": N_("status"),
    "threshold_minor": N_("threshold, minor units"),
    "ticket_ref": N_("ticket"),
    "tier_window_days": N_("tier window, days"),
    "tiers": N_("tiers"),
    "to": N_("to"),
    "tx_id": N_("transaction"),
    "username": N_("username"),
}
# recorded values that are codes, by the field they are in
VALUE_LABELS: dict[str, dict[str, str]] = {
    "status": {
        "draft": N_("draft"), "pending": N_("pending"), "published": N_("published"),
        "rejected": N_("rejected"), "approved": N_("approved"), "cancelled": N_("cancelled"),
        "running": N_("running"), "ended": N_("ended"),
    },
    "role": {"supervisor": N_("supervisor"), "executive": N_("executive"),
             "support": N_("support")},
    "kind": {"create": N_("new account"), "promote": N_("promotion")},
    "language": {"en": "English", "ru": "Русский"},
    "metric": {
        "spend_per_member": N_("spend per member"), "orders_per_member": N_("orders per member"),
        "average_check": N_("average check"), "active_rate": N_("active rate"),
    },
    "source": {"file": N_("member file"), "filter": N_("filter")},
    "scopes": {"orders": N_("orders"), "redeem": N_("redeem"), "transfer": N_("transfer"),
               "read": N_("read")},
    "segments": {
        "regular": N_("Regular"), "student": N_("Students"), "pensioner": N_("Pensioners"),
        "large_family": N_("Large families"), "corporate": N_("Corporate"),
    },
    "reason_code": {
        "goodwill": N_("goodwill"), "missing_accrual": N_("missing accrual"),
        "wrong_accrual": N_("wrong accrual"), "fraud_reversal": N_("fraud reversal"),
        "transfer_dispute": N_("transfer dispute"), "other": N_("other"),
    },
}
YES, NO = N_("yes"), N_("no")


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
