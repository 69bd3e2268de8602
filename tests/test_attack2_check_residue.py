"""Attack: a check that fails on purpose leaves a plant in the integration tree that outlives
the gate's clean-up, and changes what the next branch's checks say.

The gate undoes a red check with `merge --abort`, `reset --hard` and `git clean -fdqx`. But
`git clean` with a single `-f` leaves alone any untracked folder that holds a `.git` of its
own (a nested repository). A's check (A's code, approved but never merged: it fails) makes
`zz/.git` and `zz/conftest.py` whose pytest hook turns every later test session green. B's
branch, whose tests fail, then passes the merge gate's `pytest` check and lands.

Green = defended: nothing a check left survives into the next merge; B's red branch is
refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support import commit_file, git

from conductor.gates import MergeGate, MergeStatus

pytestmark = pytest.mark.anyio

RUN = "20261124-000000-feed"

PLANT = """
import os, pathlib, subprocess
def test_plant():
    d = pathlib.Path("zz")
    d.mkdir(exist_ok=True)
    subprocess.run(["git", "init", "-q", str(d)], check=True)
    (d / "conftest.py").write_text(
        "import pytest\\n"
        "@pytest.hookimpl(trylast=True)\\n"
        "def pytest_sessionfinish(session, exitstatus):\\n"
        "    session.exitstatus = 0\\n"
    )
    assert False, "A fails on purpose: its code never lands, its plant stays"
"""


def _branch(repo: Path, name: str, files: dict[str, str]) -> str:
    git(repo, "checkout", "-q", "-b", name, "main")
    for path, text in files.items():
        commit_file(repo, path, text, f"{name}: {path}")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return head


async def test_a_red_check_leaves_nothing_for_the_next_merge(repo: Path) -> None:
    commit_file(repo, "test_ok.py", "def test_ok():\n    assert True\n")
    a = _branch(repo, "conductor/run-A", {"test_a.py": PLANT})
    b = _branch(repo, "conductor/run-B", {"test_b.py": "def test_b():\n    assert 1 == 2\n"})
    check = f"{sys.executable} -m pytest -q -p no:cacheprovider"
    gate = MergeGate(
        repo, RUN, base_commit=git(repo, "rev-parse", "main"), checks=[check], jailed=True
    )
    first = await gate.merge("conductor/run-A", a)
    assert first.status is MergeStatus.CHECK_FAILED, first
    left = sorted(p.name for p in gate.tree.iterdir() if p.name != ".git")
    second = await gate.merge("conductor/run-B", b)
    print("left after A's red check:", left, "B:", second.status, second.output[-300:])
    assert second.status is not MergeStatus.MERGED, (
        f"HOLE: B's failing test landed: A's red check left {left} in the integration tree,"
        " and the gate's clean-up kept it"
    )
