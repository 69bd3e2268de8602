"""Attack: a background process of the session moves its branch while the review gate reads it.

A background command (Bash `run_in_background`, which outlives the command and the turn) flips
the session's branch between its commit and the integration tip it started from, while the
session calls `mcp__bus__request_review` again and again, hoping a review opens on the tip
("0 bytes of diff"): the merge gate would find that commit already merged and count the
workstream `merged`, the run reporting success with the session's work missing. Defended when
the gate checks and reviews one collected head (it once collected the branch twice: checked
the first, reviewed the second). Green = defended: no success without A's file.
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

ONE = {"workstreams": [{"id": "A", "name": "a", "task": "a.py", "owns": ["a.py"]}]}

FLIP = r"""
import os, pathlib, random, subprocess, time
def out(*a):
    return subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
git = pathlib.Path(".git")
ref, mine = git / out("symbolic-ref", "HEAD"), out("rev-parse", "HEAD")
tip = out("rev-parse", os.environ["CONDUCTOR_INTEGRATION_BRANCH"])
stop, tmp = pathlib.Path(os.environ["TMPDIR"]) / "stop", git / "flip.tmp"
i = 0
while not stop.exists() and i < 200000:
    tmp.write_text((mine if i % 2 else tip) + "\n")
    os.replace(tmp, ref)
    i += 1
    time.sleep(random.uniform(0.0, 0.04))
tmp.write_text(tip + "\n")
os.replace(tmp, ref)
"""

SCRIPT = {
    "roles": {
        "A": [
            [
                {"tool": "Write", "input": {"file_path": "${cwd}/a.py", "content": "A = 1\n"}},
                {"tool": "Bash", "input": {"command": "git add -A && git commit -qm a"}},
                {
                    "tool": "Bash",
                    "input": {
                        "command": f"python3 - <<'EOF'\n{FLIP}\nEOF",
                        "run_in_background": True,
                    },
                },
                {
                    "tool": "mcp__bus__request_review",
                    "input": {},
                    "until": "(0 bytes of diff)",
                    "max": 80,
                },
                {
                    "tool": "Bash",
                    "input": {
                        "command": 'touch "$TMPDIR/stop";'
                        " python3 -c 'import time; time.sleep(1)'; git log --oneline -1"
                    },
                },
                {"text": "A asked for review."},
            ],
            [{"text": "ok"}],
            [{"text": "ok"}],
            [{"text": "ok"}],
        ]
    }
}


async def run_plan(off: Offline, plan: dict[str, Any]) -> RunSummary:
    config = Config(checks=(), review="auto", model=STANDIN_MODEL, stall_seconds=60)
    async with Store.open(off.repo / ".conductor" / "conductor.db") as store:
        supervisor = Supervisor(
            off.repo, store, parse_plan(plan, off.repo), goal="attack", config=config, env=off.env
        )
        with anyio.fail_after(200):
            return await supervisor.run()


async def test_a_review_opens_on_the_head_the_gate_checked(tmp_path: Path) -> None:
    async with offline(SCRIPT, tmp_path / "offline") as off:
        summary = await run_plan(off, ONE)
        files = git(off.repo, "ls-tree", "--name-only", summary.integration_branch).split()
    assert not summary.ok or "a.py" in files, (
        f"the run reports success without A's work: {summary.outcomes}"
    )
