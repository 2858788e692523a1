"""README's two commands and .ci/run stay in step."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    lines = ROOT.joinpath("README.md").read_text().splitlines()
    assert lines[0] == "```sh", "README must open with the two commands"
    end = lines.index("```", 1)
    return lines[1:end]


def test_readme_opens_with_two_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert "loyalty demo" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_readme_test_command():
    ci = ROOT.joinpath(".ci", "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_procfile_processes():
    procs = dict(
        line.split(":", 1) for line in ROOT.joinpath("Procfile").read_text().splitlines() if line
    )
    assert "gunicorn" in procs["web"] and "dashboard.wsgi:server" in procs["web"]
    assert procs["release"].strip() == "loyalty init-db"
