"""The README's worked example of the stand-in, run as written: its shell commands in a
fresh temporary directory against the real CLI, its script compared with the example's file,
and its quoted output compared with what the run prints. If the code changes what a script
must say, or what a run prints, this test says the README has drifted."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import clean_env, git

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "standin-walkthrough"
SECTION = "### A worked example"


def _section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    end = readme.find("\n## ", start)
    return readme[start : end if end != -1 else None]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", _section(), re.DOTALL | re.MULTILINE)


def _normal(line: str) -> str:
    """A printed line without what differs between runs: times, commits, the run's id."""
    line = re.sub(r"^\d\d:\d\d:\d\d ", "", line.rstrip())
    line = re.sub(r"\b\d{8}-\d{6}-[0-9a-f]{4}\b", "RUN", line)
    return re.sub(r"\b[0-9a-f]{12}\b", "COMMIT", line)


def test_the_readme_shows_the_examples_script_and_commands_as_they_are() -> None:
    (script,) = _blocks("yaml")
    assert script == (EXAMPLE / "script.yaml").read_text()
    folder = (EXAMPLE / "README.md").read_text()
    assert re.findall(r"^```sh\n(.*?)^```", folder, re.DOTALL | re.MULTILINE) == _blocks("sh")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A TMPDIR at a short path, as a user's would be: sessions' sandboxes put unix sockets
    under it, whose paths may not exceed 107 bytes (pytest's tmp_path is too deep)."""
    path = Path(tempfile.mkdtemp(prefix="walk-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_the_worked_example_runs_as_the_readme_says(short_tmp: Path) -> None:
    (commands,) = _blocks("sh")
    (quoted,) = _blocks("text")
    env = clean_env(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        TMPDIR=str(short_tmp),
    )
    done = subprocess.run(
        ["bash", "-e", "-c", commands],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed = {_normal(line) for line in done.stdout.splitlines()}
    table = ("┏", "┃", "┡", "│", "└", "Run ")  # the summary table: rich's layout, not checked
    expected = [_normal(line) for line in quoted.splitlines() if not line.startswith(table)]
    assert [line for line in expected if line not in printed] == [], done.stdout
    assert "valid: 5 roles, 7 chapters" in done.stdout  # model check, first
    assert done.stderr.startswith(f"serving {EXAMPLE / 'script.yaml'} on http://127.0.0.1:")

    (units,) = short_tmp.glob("tmp.*/units")
    branch = done.stdout.split("integration branch ", 1)[1].split()[0]
    tree = git(units, "ls-tree", "-r", "--name-only", branch).split()
    assert {"units/length.py", "units/cli.py", "tests/test_length.py", "tests/test_cli.py"} <= set(
        tree
    )
    log = git(units, "log", "--format=%s", "--no-merges", branch).splitlines()
    assert log == [
        "cli: main()",
        "length: name an unknown unit",
        "length: convert()",
        "units: the start",
    ]
    shown = git(units, "show", f"{branch}:units/length.py")
    assert "raise ValueError" in shown


@pytest.mark.parametrize("role", ["planner", "A-review"])
def test_the_example_would_fail_saying_what_to_add_without_a_role(role: str) -> None:
    """Without a role the run asks for, the stand-in's answer names it and what it does."""
    from conductor.standin.script import Script, load_script

    whole = load_script(EXAMPLE / "script.yaml")
    script = Script({name: c for name, c in whole.roles.items() if name != role}, whole.usage)
    assert script.role_for(f"conductor-role: {role}\n\n...") is None
    why = script.why_no_role(f"conductor-role: {role}\n\n...")
    assert f"add roles.{role}," in why
