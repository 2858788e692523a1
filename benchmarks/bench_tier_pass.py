"""The set-based tier re-evaluation pass (db.tiers.reevaluate_tiers) at scale:
one aggregate of qualifying spend per member and two UPDATEs, on the
synthetic membership of benchmarks/synthetic_membership.py (under /tmp).

    .venv/bin/python -m benchmarks.bench_tier_pass --members 1000000
    .venv/bin/python -m benchmarks.bench_tier_pass --members 1000000 \
        --db postgresql+psycopg://postgres@127.0.0.1:5432/bench_simulation

Runs the pass twice: first from an empty tier cache (every member changes),
then again at the same time (nothing changes: the cost of the scan alone).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sqlalchemy import text

from benchmarks.synthetic_membership import AS_OF, build
from db.session import Database
from db.tiers import reevaluate_tiers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--db", default="/tmp/loyalty-bench-{members}.sqlite3")
    args = ap.parse_args()
    target = args.db.format(members=args.members)
    path = target if target.startswith("postgresql") else Path(target)
    url, _draft = build(path, args.members)
    d = Database(url)
    d.write_tx(lambda s: s.execute(text("UPDATE members SET tier = NULL, "
                                        "tier_evaluated_at = NULL")))
    for label in ("cold cache (every member changes)", "again (nothing changes)"):
        t0 = time.perf_counter()
        res = d.write_tx(lambda s: reevaluate_tiers(s, AS_OF))
        took = time.perf_counter() - t0
        print(f"reevaluate_tiers, {label}: {took:.2f} s for {res.members:,} members, "
              f"{res.changed:,} changed -> {took / res.members * 1e6:.2f} us per member; "
              f"{res.distribution}")
    d.dispose()


if __name__ == "__main__":
    main()
