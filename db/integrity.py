"""The integrity check: every ledger invariant, verified over the whole database.

Each check is one set-based SQL query that returns the rows violating it,
so the check costs a few scans however big the program is. ``loyalty check``
prints every violation and exits non-zero if there is any.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

# The version in force for an order paid at o.paid_at (no pilot).
_IN_FORCE = """(SELECT rs.id FROM rule_sets rs
   WHERE rs.status = 'published' AND rs.effective_at <= o.paid_at
   ORDER BY rs.effective_at DESC, rs.id DESC LIMIT 1)"""

ENTRY_SHAPES = """
    (e.kind = 'accrual' AND e.debit_account_id = 1 AND ca.kind = 'member')
 OR (e.kind = 'referral_bonus' AND e.debit_account_id = 1 AND ca.kind = 'member')
 OR (e.kind = 'redemption' AND da.kind = 'member' AND e.credit_account_id = 2)
 OR (e.kind = 'expiry' AND da.kind = 'member' AND e.credit_account_id = 3)
 OR (e.kind = 'transfer' AND da.kind = 'member' AND ca.kind = 'member')
 OR (e.kind = 'adjustment' AND ((e.debit_account_id = 4 AND ca.kind = 'member')
                              OR (da.kind = 'member' AND e.credit_account_id = 4)))
 OR (e.kind = 'reversal')
"""

# (code, what it means, SQL returning (object, detail) rows)
CHECKS: list[tuple[str, str, str]] = [
    (
        "balance_mismatch",
        "a member's cached balance differs from the sum of their entries",
        """
        SELECT 'member ' || a.member_id,
               'balance ' || a.balance || ' but entries sum to ' || COALESCE(x.net, 0)
        FROM accounts a
        LEFT JOIN (
            SELECT acc, SUM(d) AS net FROM (
                SELECT credit_account_id AS acc, amount AS d FROM ledger_entries
                UNION ALL
                SELECT debit_account_id AS acc, -amount AS d FROM ledger_entries
            ) m GROUP BY acc
        ) x ON x.acc = a.id
        WHERE a.kind = 'member' AND a.balance <> COALESCE(x.net, 0)
        """,
    ),
    (
        "negative_balance",
        "a member's balance is below zero",
        """
        SELECT 'member ' || member_id, 'balance ' || balance
        FROM accounts WHERE kind = 'member' AND balance < 0
        """,
    ),
    (
        "program_account_balance",
        "a program account holds a cached balance (it must be derived only)",
        "SELECT 'account ' || id, kind FROM accounts WHERE kind <> 'member' "
        "AND balance IS NOT NULL",
    ),
    (
        "entry_shape",
        "an entry moves points between the wrong kinds of account",
        f"""
        SELECT 'entry ' || e.id, e.kind || ' from ' || da.kind || ' to ' || ca.kind
        FROM ledger_entries e
        JOIN accounts da ON da.id = e.debit_account_id
        JOIN accounts ca ON ca.id = e.credit_account_id
        WHERE NOT ({ENTRY_SHAPES})
        """,
    ),
    (
        "reversal_mismatch",
        "a reversal exceeds or does not mirror the entry it reverses",
        """
        SELECT 'entry ' || r.id, 'reverses entry ' || o.id || ' (' || o.kind || ', '
               || o.amount || ' points) with ' || r.amount
        FROM ledger_entries r JOIN ledger_entries o ON o.id = r.reverses_entry_id
        WHERE r.amount > o.amount
           OR r.debit_account_id <> o.credit_account_id
           OR r.credit_account_id <> o.debit_account_id
           OR o.kind = 'reversal'
        """,
    ),
    (
        "accrual_duplicate",
        "an order has more than one accrual entry",
        """
        SELECT 'order ' || o.order_ref, COUNT(*) || ' accrual entries'
        FROM ledger_entries e JOIN orders o ON o.id = e.order_id
        WHERE e.kind = 'accrual'
        GROUP BY o.id, o.order_ref HAVING COUNT(*) > 1
        """,
    ),
    (
        "accrual_amount",
        "an order's accrual is not floor(amount x rate / point value) of its tier",
        """
        SELECT 'order ' || o.order_ref,
               'accrued ' || COALESCE(e.amount, 0) || ', expected '
               || (((o.amount_minor + o.refunded_minor) * t.accrual_rate_bp)
                   / (10000 * rs.point_value_minor))
               || ' at ' || t.accrual_rate_bp || ' bp'
        FROM orders o
        JOIN members m ON m.id = o.member_id
        JOIN rule_sets rs ON rs.id = o.rule_set_id
        JOIN tiers t ON t.rule_set_id = o.rule_set_id AND t.name = o.tier
        LEFT JOIN ledger_entries e ON e.order_id = o.id AND e.kind = 'accrual'
        WHERE COALESCE(e.amount, 0)
              <> ((o.amount_minor + o.refunded_minor) * t.accrual_rate_bp)
                 / (10000 * rs.point_value_minor)
          AND NOT (m.status <> 'active' AND e.id IS NULL)
           OR (e.id IS NOT NULL AND (e.rate_bp <> t.accrual_rate_bp
                                     OR e.rule_set_id <> o.rule_set_id))
        """,
    ),
    (
        "accrual_without_rules",
        "an order accrued points without a recorded rule version and tier",
        """
        SELECT 'order ' || o.order_ref, 'accrual entry ' || e.id
        FROM ledger_entries e JOIN orders o ON o.id = e.order_id
        WHERE e.kind = 'accrual' AND (o.rule_set_id IS NULL OR o.tier IS NULL
                                      OR e.rule_set_id IS NULL OR e.rate_bp IS NULL)
        """,
    ),
    (
        "wrong_version",
        "an order was accrued under a version that was not in force at its payment time",
        f"""
        SELECT 'order ' || o.order_ref,
               'used version ' || COALESCE(CAST(o.rule_set_id AS VARCHAR(20)), 'none')
               || ', in force: ' || COALESCE(CAST({_IN_FORCE} AS VARCHAR(20)), 'none')
        FROM orders o
        WHERE o.member_id IS NOT NULL AND o.pilot_id IS NULL
          AND COALESCE(o.rule_set_id, -1) <> COALESCE({_IN_FORCE}, -1)
        """,
    ),
    (
        "wrong_pilot_version",
        "a pilot order did not use its pilot's version, or its member is not in the pilot group",
        """
        SELECT 'order ' || o.order_ref, 'pilot ' || o.pilot_id
        FROM orders o JOIN pilots p ON p.id = o.pilot_id
        LEFT JOIN pilot_members pm
               ON pm.pilot_id = p.id AND pm.member_id = o.member_id AND pm.grp = 'pilot'
        WHERE o.rule_set_id <> p.rule_set_id OR pm.member_id IS NULL
           OR o.paid_at < p.start_at OR o.paid_at >= p.planned_end_at
           OR (p.ended_at IS NOT NULL AND o.paid_at >= p.ended_at)
        """,
    ),
    (
        "guest_points",
        "a guest (non-member) order has points entries",
        """
        SELECT 'order ' || o.order_ref, COUNT(*) || ' entries'
        FROM orders o JOIN ledger_entries e ON e.order_id = o.id
        WHERE o.member_id IS NULL GROUP BY o.id, o.order_ref
        """,
    ),
    (
        "redemption_mismatch",
        "an order's redeemed points differ from its redemption entries",
        """
        SELECT 'order ' || o.order_ref,
               'points_redeemed ' || o.points_redeemed || ', entries ' || COALESCE(r.total, 0)
        FROM orders o
        LEFT JOIN (SELECT order_id, SUM(amount) AS total FROM ledger_entries
                   WHERE kind = 'redemption' AND order_id IS NOT NULL GROUP BY order_id) r
               ON r.order_id = o.id
        WHERE o.points_redeemed <> COALESCE(r.total, 0)
        """,
    ),
    (
        "refund_not_restored",
        "a refunded order's redeemed points were not all restored",
        """
        SELECT 'order ' || o.order_ref,
               'redemption entry ' || e.id || ' restored ' || COALESCE(SUM(r.amount), 0)
               || ' of ' || e.amount
        FROM orders o JOIN ledger_entries e ON e.order_id = o.id AND e.kind = 'redemption'
        LEFT JOIN ledger_entries r ON r.reverses_entry_id = e.id
        WHERE o.status = 'refunded'
        GROUP BY o.order_ref, e.id, e.amount
        HAVING COALESCE(SUM(r.amount), 0) <> e.amount
        """,
    ),
    (
        "reversal_of_paid_order",
        "an order that is still paid has reversal entries not written by a part refund",
        """
        SELECT 'order ' || o.order_ref, 'reversal entry ' || e.id
        FROM orders o JOIN ledger_entries e ON e.order_id = o.id AND e.kind = 'reversal'
        JOIN ledger_transactions t ON t.id = e.tx_id
        WHERE o.status = 'paid' AND t.kind <> 'partial_refund'
        """,
    ),
    (
        "over_reversed",
        "an entry of an order is reversed by more points than it had",
        """
        SELECT 'order ' || o.order_ref,
               'entry ' || e.id || ' of ' || e.amount || ' reversed by ' || SUM(r.amount)
        FROM ledger_entries r JOIN ledger_entries e ON e.id = r.reverses_entry_id
        JOIN orders o ON o.id = e.order_id
        GROUP BY o.order_ref, e.id, e.amount
        HAVING SUM(r.amount) > e.amount
        """,
    ),
    (
        "refunded_money",
        "an order's part-refunded money differs from its part refunds",
        """
        SELECT 'order ' || o.order_ref,
               'refunded_minor ' || o.refunded_minor || ', part refunds '
               || COALESCE(x.total, 0)
        FROM orders o
        LEFT JOIN (SELECT order_id, SUM(amount_minor) AS total FROM order_refunds
                   WHERE partial GROUP BY order_id) x ON x.order_id = o.id
        WHERE o.refunded_minor <> COALESCE(x.total, 0)
        """,
    ),
    (
        "adjustment_entries",
        "an approved adjustment does not have exactly one matching entry",
        """
        SELECT 'adjustment ' || q.id,
               COALESCE(x.n, 0) || ' entries, net ' || COALESCE(x.net, 0)
               || ' for ' || q.points || ' points'
        FROM adjustment_requests q
        JOIN accounts a ON a.member_id = q.member_id
        LEFT JOIN (
            SELECT tx_id, COUNT(*) AS n,
                   SUM(CASE WHEN debit_account_id = 4 THEN amount ELSE -amount END) AS net,
                   MIN(CASE WHEN debit_account_id = 4 THEN credit_account_id
                            ELSE debit_account_id END) AS acc
            FROM ledger_entries WHERE kind = 'adjustment' GROUP BY tx_id
        ) x ON x.tx_id = q.tx_id
        WHERE q.status = 'approved'
          AND (COALESCE(x.n, 0) <> 1 OR x.net <> q.points OR x.acc <> a.id)
        """,
    ),
    (
        "adjustment_without_request",
        "an adjustment entry has no approved request behind it",
        """
        SELECT 'entry ' || e.id, e.amount || ' points'
        FROM ledger_entries e
        LEFT JOIN adjustment_requests q ON q.tx_id = e.tx_id AND q.status = 'approved'
        WHERE e.kind = 'adjustment' AND q.id IS NULL
        """,
    ),
    (
        "adjustment_four_eyes",
        "an adjustment was decided by its own requester",
        """
        SELECT 'adjustment ' || id, 'requested and decided by staff user ' || requested_by_id
        FROM adjustment_requests
        WHERE decided_by_id = requested_by_id OR first_approver_id = requested_by_id
        """,
    ),
    (
        "transfer_mismatch",
        "a transfer's entry does not match the transfer",
        """
        SELECT 'transfer ' || t.id, COALESCE(x.n, 0) || ' entries'
        FROM transfers t
        JOIN accounts fa ON fa.member_id = t.from_member_id
        JOIN accounts ta ON ta.member_id = t.to_member_id
        LEFT JOIN (SELECT tx_id, COUNT(*) AS n, MIN(debit_account_id) AS d,
                          MIN(credit_account_id) AS c, SUM(amount) AS amount
                   FROM ledger_entries WHERE kind = 'transfer' GROUP BY tx_id) x
               ON x.tx_id = t.tx_id
        WHERE COALESCE(x.n, 0) <> 1 OR x.d <> fa.id OR x.c <> ta.id OR x.amount <> t.points
        """,
    ),
    (
        "rule_tiers",
        "a published rule version breaks the tier rules (first at 0, increasing thresholds)",
        """
        SELECT 'rule set ' || t.rule_set_id, 'tier ' || t.name
        FROM tiers t JOIN rule_sets rs ON rs.id = t.rule_set_id
        LEFT JOIN tiers p ON p.rule_set_id = t.rule_set_id AND p.position = t.position - 1
        WHERE rs.status = 'published'
          AND ((t.position = 0 AND t.threshold_minor <> 0)
               OR (t.position > 0 AND (p.id IS NULL OR p.threshold_minor >= t.threshold_minor)))
        """,
    ),
]

LIMIT_PER_CHECK = 50


@dataclass(frozen=True)
class Violation:
    code: str
    description: str
    object: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.object}: {self.detail} ({self.description})"


@dataclass(frozen=True)
class CheckReport:
    violations: list[Violation]
    counts: dict[str, int]
    summary: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.violations


def run_check(s: Session, *, limit: int = LIMIT_PER_CHECK) -> CheckReport:
    """Run every check; report up to ``limit`` rows of each and every count."""
    violations: list[Violation] = []
    counts: dict[str, int] = {}
    for code, description, sql in CHECKS:
        rows = s.execute(text(sql)).all()
        counts[code] = len(rows)
        for obj, detail in rows[:limit]:
            violations.append(Violation(code, description, str(obj), str(detail)))
    summary = dict(
        s.execute(
            text(
                """
                SELECT 'members', COUNT(*) FROM members
                UNION ALL SELECT 'orders', COUNT(*) FROM orders
                UNION ALL SELECT 'ledger_entries', COUNT(*) FROM ledger_entries
                UNION ALL SELECT 'outstanding_points',
                          COALESCE(SUM(balance), 0) FROM accounts WHERE kind = 'member'
                """
            )
        ).all()
    )
    return CheckReport(violations, counts, {k: int(v) for k, v in summary.items()})
