"""The import graph keeps its shape: the engine (db/) imports nothing of the
web app, and no package's modules import each other in a loop. The
contracts are in pyproject.toml ([tool.importlinter]); a broken one names
the imports to remove. Nothing unused remains: vulture ([tool.vulture])
reads the application and the benchmarks but not the tests, so code only a
test calls counts as dead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


# What vulture reports that counts as dead code: a function, method, class or
# property nothing calls, an import nothing uses, code that cannot run.
# (Unused variables and attributes are mostly dataclass fields and ORM
# columns read by name.)
DEAD_KINDS = ("unused function", "unused method", "unused class", "unused property",
              "unused import", "unreachable code")
# The folders where dead code fails the build; findings elsewhere in
# [tool.vulture] paths (benchmarks/) are printed only.
ENFORCED = ("db/", "dashboard/", "pages/", "callbacks/")


def test_no_unused_code() -> None:
    vulture = Path(sys.executable).with_name("vulture")
    done = subprocess.run([str(vulture)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode in (0, 3), done.stderr[-2000:]  # 3: dead code found
    dead = [line for line in done.stdout.splitlines()
            if any(kind in line for kind in DEAD_KINDS)]
    enforced = [line for line in dead if line.startswith(ENFORCED)]
    for line in dead:
        if line not in enforced:
            print("not yet enforced:", line)
    assert not enforced, "\n".join(enforced)
