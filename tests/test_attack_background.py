"""Attack: a session's background process outlives its session.

A Bash command started with `run_in_background` runs with an empty environment (so it does
not carry the `CONDUCTOR_SUPERVISED` / `CONDUCTOR_SESSION` marks that conductor's leftover
sweep looks for) in a new session (`setsid -w`), and keeps writing its tree. Once
the workstream has merged and its session is closed, nothing of it may still be running.
Green = defended.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from conductor.config import Config
from conductor.plan import parse_plan
from conductor.standin.harness import STANDIN_MODEL, Offline, offline
from conductor.store import Store
from conductor.supervisor import RunSummary, Supervisor

pytestmark = pytest.mark.anyio

ONE = {"workstreams": [{"id": "A", "name": "a", "task": "a.py", "owns": ["a.py"]}]}

BEAT = (
    "env -i /usr/bin/setsid -w /usr/bin/python3 -c '"
    "import pathlib, time\n"
    'beat = pathlib.Path("${cwd}/heartbeat")\n'
    "for i in range(600):\n"
    "    beat.write_text(str(time.time()))\n"
    "    time.sleep(0.1)\n"
    "'"
)

SCRIPT = {
    "roles": {
        "A": [
            [
                {"tool": "Write", "input": {"file_path": "${cwd}/a.py", "content": "A = 1\n"}},
                {"tool": "Bash", "input": {"command": "git add -A && git commit -qm a"}},
                {"tool": "mcp__bus__request_review", "input": {}},
                {"tool": "Bash", "input": {"command": BEAT, "run_in_background": True}},
                {"tool": "Bash", "input": {"command": "python3 -c 'import time; time.sleep(1)'"}},
                {"text": "A asked for review."},
            ]
        ]
    }
}


async def run_plan(off: Offline, plan: dict[str, Any]) -> RunSummary:
    config = Config(checks=(), review="auto", model=STANDIN_MODEL)
    async with Store.open(off.repo / ".conductor" / "conductor.db") as store:
        supervisor = Supervisor(
            off.repo, store, parse_plan(plan, off.repo), goal="attack", config=config, env=off.env
        )
        with anyio.fail_after(120):
            return await supervisor.run()


async def test_nothing_a_session_started_outlives_it(tmp_path: Path) -> None:
    async with offline(SCRIPT, tmp_path / "offline") as off:
        summary = await run_plan(off, ONE)
        assert summary.ok, summary.outcomes
        beats = list((off.repo / ".conductor" / "worktrees").glob("*/A/heartbeat"))
        assert beats, "the background process never ran"
        before = beats[0].read_text()
        await anyio.sleep(1.0)
        assert beats[0].read_text() == before, "a background process outlived its session"
