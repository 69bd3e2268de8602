"""`conductor run`'s supervisor, end to end: real CLI sessions against the stand-in, real
worktrees, the review gate and the merge gate with a check on the merged result."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import pytest
from support import git

from conductor.config import Config
from conductor.plan import parse_plan
from conductor.standin.harness import STANDIN_MODEL, Offline
from conductor.store import Store
from conductor.supervisor import RunSummary, Supervisor

pytestmark = pytest.mark.anyio

Standin = Callable[[str], AbstractAsyncContextManager[Offline]]

PLAN = {
    "workstreams": [
        {
            "id": "A",
            "name": "core",
            "task": "Write core.greet()",
            "owns": ["core.py"],
            "interface": "core.greet() -> 'hello'",
        },
        {
            "id": "B",
            "name": "cli",
            "task": "Write cli.main() using core",
            "owns": ["cli.py"],
            "depends_on": ["A"],
        },
    ]
}

CHECK = f"{sys.executable} -c \"import core; assert core.greet() == 'hello'\""

TWO_STREAMS = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'core: greet'"}
      - tool: mcp__bus__request_review
        input: {note: "core is ready"}
      - text: "A is done."
  B:
    - - tool: Bash
        input: {command: "cat core.py"}
      - tool: Write
        input:
          file_path: "${cwd}/cli.py"
          content: "from core import greet\\n\\ndef main():\\n    return greet()\\n"
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'cli: main'"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "B is done."
"""


async def run_plan(offline: Offline, plan: dict[str, Any], **config: Any) -> RunSummary:
    settings = {"checks": (CHECK,), "review": "auto", "model": STANDIN_MODEL, **config}
    async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
        supervisor = Supervisor(
            offline.repo,
            store,
            parse_plan(plan, offline.repo),
            goal="greet from a CLI",
            config=Config(**settings),
            env=offline.env,
        )
        with anyio.fail_after(120):
            return await supervisor.run()


async def test_a_plan_runs_to_merged_checked_code(standin: Standin) -> None:
    async with standin(TWO_STREAMS) as offline:
        summary = await run_plan(offline, PLAN)
        repo = offline.repo
        assert summary.ok, summary.outcomes
        assert [o.state for o in summary.outcomes] == ["merged", "merged"]
        files = git(repo, "ls-tree", "--name-only", summary.integration_branch).split()
        assert {"core.py", "cli.py", "README.md"} <= set(files)
        assert git(repo, "rev-parse", summary.integration_branch) == summary.integration_head
        # B started from the integration branch with A merged: it could read core.py.
        b_results = [r.body for r in offline.server.requests if r.answer.startswith("B ")]
        assert "def greet()" in str(b_results[1]["messages"])
        assert git(repo, "rev-parse", "main") == git(repo, "rev-parse", "HEAD")  # main untouched
        assert all(o.cost_usd > 0 and o.turns > 0 for o in summary.outcomes)
