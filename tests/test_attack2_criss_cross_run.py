"""Attack, end to end: the criss-cross head of tests/test_attack2_criss_cross.py made by a
real session's Bash in a real run (review = "auto", sandbox on).

B and C each write a file they own and merge. A (which depends on both) makes its head a
merge commit of the integration tip's two parents, with the tree of the merge base git names
first plus its own a.txt: the review diff and the merge gate's foreign-path check see a.txt
alone, the merge (ort, virtual base) drops the work of the other base.

Green = defended: the run does not report success while B's or C's file is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from support import git

from conductor.config import Config
from conductor.plan import parse_plan
from conductor.standin.harness import STANDIN_MODEL, Offline, offline
from conductor.store import Store
from conductor.supervisor import RunSummary, Supervisor

pytestmark = pytest.mark.anyio

PLAN = {
    "workstreams": [
        {"id": "B", "name": "b", "task": "b.txt", "owns": ["b.txt"]},
        {"id": "C", "name": "c", "task": "c.txt", "owns": ["c.txt"]},
        {"id": "A", "name": "a", "task": "a.txt", "owns": ["a.txt"], "depends_on": ["B", "C"]},
    ]
}

CRAFT = r"""set -e
I=$CONDUCTOR_INTEGRATION_BRANCH
L=$(git rev-parse "$I^1"); R=$(git rev-parse "$I^2")
P=$(git commit-tree "$L^{tree}" -p "$L" -p "$R" -m probe)
F=$(git merge-base "$I" "$P")
export GIT_INDEX_FILE="$TMPDIR/idx"
git read-tree "$F"
BLOB=$(echo "A's work" | git hash-object -w --stdin)
git update-index --add --cacheinfo "100644,$BLOB,a.txt"
T=$(git write-tree)
unset GIT_INDEX_FILE
H=$(git commit-tree "$T" -p "$L" -p "$R" -m "A: a.txt")
git reset -q --hard "$H"
git log --oneline --graph -5
"""


def _writer(name: str) -> list[Any]:
    return [
        [
            {
                "tool": "Write",
                "input": {
                    "file_path": f"${{cwd}}/{name.lower()}.txt",
                    "content": f"{name}'s work\n",
                },
            },
            {"tool": "Bash", "input": {"command": f"git add -A && git commit -qm {name}"}},
            {"tool": "mcp__bus__request_review", "input": {}},
            {"text": f"{name} asked for review."},
        ],
        [{"text": "ok"}],
        [{"text": "ok"}],
    ]


SCRIPT = {
    "roles": {
        "B": _writer("B"),
        "C": _writer("C"),
        "A": [
            [
                {"tool": "Bash", "input": {"command": CRAFT}},
                {"tool": "mcp__bus__request_review", "input": {}},
                {"text": "A asked for review."},
            ],
            [{"text": "ok"}],
            [{"text": "ok"}],
        ],
    }
}


async def run_plan(off: Offline) -> RunSummary:
    config = Config(checks=(), review="auto", model=STANDIN_MODEL, stall_seconds=60)
    async with Store.open(off.repo / ".conductor" / "conductor.db") as store:
        supervisor = Supervisor(
            off.repo, store, parse_plan(PLAN, off.repo), goal="attack", config=config, env=off.env
        )
        with anyio.fail_after(200):
            return await supervisor.run()


async def test_a_run_never_reports_success_with_a_teammates_work_dropped(tmp_path: Path) -> None:
    async with offline(SCRIPT, tmp_path / "offline") as off:
        summary = await run_plan(off)
        files = git(off.repo, "ls-tree", "--name-only", summary.integration_branch).split()
    print("ok:", summary.ok, [(o.id, o.state, o.detail) for o in summary.outcomes], files)
    missing = [f for f in ("a.txt", "b.txt", "c.txt") if f not in files]
    assert not (summary.ok and missing), (
        f"HOLE: the run reports everything merged, but the integration branch lacks {missing}"
    )
