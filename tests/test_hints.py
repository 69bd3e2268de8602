"""Hints: the commands conductor prints for a person to paste name this conductor as it was
started, so they work where `conductor` is not on PATH; the demo's hints depend on --keep.

The hints of real runs are pasted and run where they are printed: the plan-only hint in
test_planner.py, the resume hint in test_resume.py, the demo's in test_wheel.py.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support import Cli

import conductor.demo
from conductor.cli import hints
from conductor.demo import DemoResult
from conductor.supervisor import RunSummary


def script(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_a_conductor_not_on_path_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = script(tmp_path / "venv" / "bin" / "conductor")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["venv/bin/conductor", "demo"])  # as `make demo` runs it
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert hints.command("resume", "r 1") == f"{started} resume 'r 1'"


def test_the_conductor_on_path_is_named_conductor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = script(tmp_path / "bin" / "conductor")
    monkeypatch.setattr(sys, "argv", [str(started), "run"])
    monkeypatch.setenv("PATH", f"{started.parent}:/usr/bin:/bin")
    line = hints.command("dashboard", db=tmp_path / "x.db", cd=tmp_path / "a b")
    assert line == f"cd '{tmp_path}/a b' && conductor --db {tmp_path}/x.db dashboard"


def test_python_dash_m_conductor_is_named_with_its_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(Path(conductor.__file__).parent / "__main__.py")])
    assert hints.command("demo", "--keep") == f"{sys.executable} -m conductor demo --keep"
    done = subprocess.run(
        ["sh", "-c", hints.command("--help")], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0 and "demo" in done.stdout


# ------------------------------------------------------------------------------ the demo command


@pytest.fixture
def fake_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """`conductor demo` with a stand-in for the run itself (the real one is run in
    test_demo.py and test_wheel.py): the roots it was given."""
    roots: list[Path] = []

    async def run_demo(root: Path, **_: object) -> DemoResult:
        roots.append(root)
        (root / "textstats").mkdir()
        (root / "requests.jsonl").write_text("{}\n")
        summary = RunSummary("r1", "conductor/r1", "0" * 40)
        return DemoResult(root / "textstats", summary, "OK", True, True)

    monkeypatch.setattr(conductor.demo, "run_demo", run_demo)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return roots


def test_the_demo_removes_its_files_and_says_how_to_keep_them(
    tmp_path: Path, fake_demo: list[Path]
) -> None:
    shown = Cli(tmp_path).ok("demo", "--no-live").out
    assert not list((tmp_path / "tmp").iterdir())
    again = f"{sys.executable} -m conductor demo --keep --no-live"
    assert shown.rstrip().endswith(f"To keep its repository and look around in it: {again}")


def test_the_demo_kept_says_where_and_how_to_look(tmp_path: Path, fake_demo: list[Path]) -> None:
    shown = Cli(tmp_path).ok("demo", "--keep").out
    (root,) = fake_demo
    repo = root / "textstats"
    assert list((tmp_path / "tmp").iterdir()) == [root] and repo.is_dir()
    conductor_ = f"{sys.executable} -m conductor"
    assert shown.splitlines()[-7:] == [
        f"The demo's repository is kept in {repo}. Look at it:",
        f"  git -C {repo} log --graph --oneline conductor/r1",
        f"  cd {repo} && {conductor_} dashboard",
        f"  cd {repo} && {conductor_} transcript B",
        f"  cd {repo} && {conductor_} report   # one HTML file, with a timeline",
        f"  cd {repo} && {conductor_} serve   # the run in a browser",
        f"Remove it with: rm -rf {root}",
    ]
    subprocess.run(["sh", "-c", shown.splitlines()[-1].split(": ", 1)[1]], check=True)
    assert not root.exists()
