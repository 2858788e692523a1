"""Where shared helpers live: a test module imports helpers from tests/support
(and takes fixtures from conftest.py), never from another test module; a
benchmark never imports tests/ (what both use lives in benchmarks/)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_test_modules_import_helpers_only_from_tests_support() -> None:
    bad = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for name in imported_modules(path)
        if name.startswith("tests.")
        and not name.startswith("tests.support")
    }
    assert not bad, "import these from tests/support instead:\n" + "\n".join(sorted(bad))


def test_benchmarks_do_not_import_tests() -> None:
    bad = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "benchmarks").glob("*.py"))
        for name in imported_modules(path)
        if name == "tests" or name.startswith("tests.")
    }
    assert not bad, "benchmarks must not import tests/:\n" + "\n".join(sorted(bad))
