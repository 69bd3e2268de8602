"""`conductor run`'s supervisor, end to end: real CLI sessions against the stand-in, real
worktrees, the review gate and the merge gate with a check on the merged result."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import CLIConnectionError
from support import clean_env, commit_file, git

from conductor.config import Config
from conductor.costs import Spend
from conductor.errors import InvalidInput
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


def supervisor_for(
    offline: Offline,
    store: Store,
    plan: dict[str, Any],
    planner: Spend | None = None,
    **config: Any,
) -> Supervisor:
    settings = {"checks": (CHECK,), "review": "auto", "model": STANDIN_MODEL, **config}
    return Supervisor(
        offline.repo,
        store,
        parse_plan(plan, offline.repo),
        goal="greet from a CLI",
        config=Config(**settings),
        env=offline.env,
        planner=planner,
    )


async def run_plan(offline: Offline, plan: dict[str, Any], **config: Any) -> RunSummary:
    async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
        with anyio.fail_after(120):
            return await supervisor_for(offline, store, plan, **config).run()


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
        # B's review shows B's change alone: its diff is against the integration branch.
        async with Store.open(repo / ".conductor" / "conductor.db") as store:
            b_review = (await store.list_reviews(summary.run_id, session="B"))[-1]
            b_diff = (await store.get_review(summary.run_id, b_review.id)).diff
        assert b"cli.py" in b_diff and b"core.py" not in b_diff
        # Claude Code's own system prompt, with conductor's CLAUDE.md section after it.
        system = str(offline.server.requests[-1].body["system"])
        assert "Working under conductor" in system and "Claude Code" in system


ONE = {"workstreams": [{"id": "A", "name": "core", "task": "core", "owns": ["core.py"]}]}
WRITE_CORE = """
      - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
      - tool: Bash
        input: {command: "git add -A && git commit -qm core"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "Asked for review."
"""

REJECT_THEN_APPROVE = f"""
roles:
  A:
    - {WRITE_CORE.strip()}
    - - tool: Write
        input:
          file_path: "${{cwd}}/core.py"
          content: "def greet():\\n    \\"\\"\\"Hi.\\"\\"\\"\\n    return 'hello'\\n"
      - tool: Bash
        input: {{command: "git commit -qam 'core: docstring'"}}
      - tool: mcp__bus__request_review
        input: {{}}
      - text: "Fixed."
  A-review:
    - - tool: Read
        input: {{file_path: "${{cwd}}/core.py"}}
      - tool: mcp__bus__review_verdict
        input: {{verdict: reject, comments: "greet() needs a docstring"}}
      - text: "Rejected."
    - - tool: mcp__bus__review_verdict
        input: {{verdict: approve, comments: "good"}}
      - text: "Approved."
"""


async def test_a_sessions_commits_are_counted_without_the_work_it_started_from(
    standin: Standin,
) -> None:
    async with standin(TWO_STREAMS) as offline:
        summary = await run_plan(offline, PLAN)
        # B's branch starts at the integration branch, A's commit and merge already on it.
        assert [(o.id, o.commits) for o in summary.outcomes] == [("A", 1), ("B", 1)]


async def test_an_agent_reviewer_rejects_then_approves(standin: Standin) -> None:
    async with standin(REJECT_THEN_APPROVE) as offline:
        summary = await run_plan(offline, ONE, review="agent")
        assert summary.ok
        outcome = summary.outcomes[0]
        assert outcome.review_rounds == 2
        a_requests = [
            str(r.body["messages"])
            for r in offline.server.requests
            if r.answer.startswith("A chapter 2")
        ]
        assert "greet() needs a docstring" in a_requests[0]
        reviewer = [r for r in offline.server.requests if r.answer.startswith("A-review")]
        tools = {t["name"] for t in reviewer[0].body["tools"]}
        assert "Write" not in tools and "Bash" not in tools  # the reviewer only reads
        merged = git(offline.repo, "show", f"{summary.integration_branch}:core.py")
        assert '"""Hi."""' in merged


RED_CHECK = f"""
roles:
  A:
    - - tool: Write
        input: {{file_path: "${{cwd}}/core.py", content: "def greet():\\n    return 'bye'\\n"}}
      - tool: Bash
        input: {{command: "git add -A && git commit -qm core"}}
      - tool: mcp__bus__request_review
        input: {{}}
      - text: "Asked."
    - {WRITE_CORE.strip()}
"""


async def test_a_red_check_goes_back_to_the_author_who_fixes_it(standin: Standin) -> None:
    async with standin(RED_CHECK) as offline:
        summary = await run_plan(offline, ONE)
        assert summary.ok and summary.outcomes[0].review_rounds == 2
        told = next(
            str(r.body["messages"])
            for r in offline.server.requests
            if r.answer.startswith("A chapter 2")
        )
        assert "The checks failed on the merged result" in told and "AssertionError" in told
        assert "'hello'" in git(offline.repo, "show", f"{summary.integration_branch}:core.py")


TWO_EDIT_README = {
    "workstreams": [
        {"id": "A", "name": "a", "task": "a", "owns": ["a.py"]},
        {"id": "B", "name": "b", "task": "b", "owns": ["b.py"]},
    ]
}
CONFLICT = """
roles:
  A:
    - - tool: Bash
        input:
          command: "echo 'A was here' > README.md && touch a.py && git add -A && git commit -qm a"
      - tool: mcp__bus__request_review
        input: {}
      - text: "A asked."
  B:
    - - tool: Bash
        input:
          command: "echo 'B was here' > README.md && touch b.py && git add -A && git commit -qm b"
        delay: 1.5
      - tool: mcp__bus__request_review
        input: {}
      - text: "B asked."
    - - tool: Bash
        input: {command: "git merge -X ours --no-edit \\"$CONDUCTOR_INTEGRATION_BRANCH\\""}
      - tool: mcp__bus__request_review
        input: {}
      - text: "B merged the integration branch in."
"""


async def test_a_conflict_goes_back_with_its_files_and_is_resolved(standin: Standin) -> None:
    async with standin(CONFLICT) as offline:
        summary = await run_plan(offline, TWO_EDIT_README, checks=())
        assert summary.ok, summary.outcomes
        b = summary.outcomes[1]
        told = next(
            str(r.body["messages"])
            for r in offline.server.requests
            if r.answer.startswith("B chapter 2")
        )
        assert "Merging it conflicts in" in told and "README.md" in told
        assert b.review_rounds == 2
        files = git(offline.repo, "ls-tree", "--name-only", summary.integration_branch).split()
        assert {"a.py", "b.py"} <= set(files)


MID_TURN = """
roles:
  A:
    - - tool: Bash
        input: {command: "echo 'work of A' > a.py && git add -A && git commit -qm a"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "A asked."
  B:
    - - tool: Bash
        input:
          command: "sleep 0.3; git show \\"$CONDUCTOR_INTEGRATION_BRANCH\\":a.py 2>&1"
        until: "work of A"
        max: 60
      - tool: Bash
        input: {command: "touch b.py && git add -A && git commit -qm b"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "B saw A's work land."
"""


async def test_a_session_in_the_middle_of_a_turn_sees_a_teammates_merge_land(
    standin: Standin,
) -> None:
    async with standin(MID_TURN) as offline:
        summary = await run_plan(offline, TWO_EDIT_README, checks=())
        assert summary.ok, summary.outcomes
        b_requests = [r for r in offline.server.requests if r.answer.startswith("B ")]
        assert any("work of A" in str(r.body["messages"]) for r in b_requests)
        assert all(r.answer.startswith("B chapter 1") for r in b_requests)  # in one turn


async def test_the_run_budget_stops_the_run(standin: Standin) -> None:
    async with standin(TWO_STREAMS) as offline:
        summary = await run_plan(offline, PLAN, max_usd_per_run=0.000001)
        assert not summary.ok
        assert summary.outcomes[0].state == "budget"
        assert summary.outcomes[1].state == "skipped"  # B needed A, which never merged
        assert not [r for r in offline.server.requests if r.answer.startswith("B ")]
        told = [
            str(r.body["messages"])
            for r in offline.server.requests
            if r.answer.startswith("A chapter 2")
        ]
        assert told and "The run's budget is spent" in told[0]  # asked to wrap up


THREE = {
    "workstreams": [
        {"id": n, "name": n, "task": n, "owns": [f"{n.lower()}.py"]} for n in ("A", "B", "C")
    ]
}
SLOW_THREE = "roles:\n" + "".join(
    f"""
  {n}:
    - - tool: Bash
        input: {{command: "touch {n.lower()}.py && git add -A && git commit -qm {n}"}}
        delay: 0.5
      - tool: mcp__bus__request_review
        input: {{}}
      - text: "{n} asked."
"""
    for n in ("A", "B", "C")
)


async def test_max_parallel_caps_the_sessions_at_work(standin: Standin) -> None:
    async with standin(SLOW_THREE) as offline:
        summary = await run_plan(offline, THREE, checks=(), max_parallel=2)
        assert summary.ok
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            events = await store.list_events(summary.run_id)
        spans: dict[str, list[int]] = {}
        for e in events:
            if e.session in ("A", "B", "C") and e.kind.startswith(("session.prompt", "sdk.")):
                spans.setdefault(e.session, []).append(e.id)
        intervals = [(min(ids), max(ids)) for ids in spans.values()]
        most = max(sum(1 for a, b in intervals if a <= t <= b) for t, _ in intervals)
        assert most == 2  # two at once, never three


async def test_conductor_run_takes_a_plan_file_to_merged_code(standin: Standin) -> None:
    async with standin(TWO_STREAMS) as offline:
        repo = offline.repo
        (repo / "plan.json").write_text(json.dumps(PLAN))
        (repo / "conductor.toml").write_text(
            f'checks = [{json.dumps(CHECK)}]\nreview = "auto"\nmodel = "{STANDIN_MODEL}"\n'
        )
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "plan and config")
        done = await anyio.run_process(
            [sys.executable, "-m", "conductor", "run", "greet from a CLI", "--plan", "plan.json"],
            cwd=repo,
            env={**clean_env(), **offline.env},
            check=False,
        )
        printed = done.stdout.decode()
        assert done.returncode == 0, printed + done.stderr.decode()
        assert "everything merged" in printed
        assert printed.count("merged") >= 3  # two rows and the closing line
        branch = printed.split("integration branch ", 1)[1].split()[0]
        assert {"core.py", "cli.py"} <= set(git(repo, "ls-tree", "--name-only", branch).split())
        runs = await anyio.run_process(
            [sys.executable, "-m", "conductor", "runs", "--json"],
            cwd=repo,
            env=clean_env(),
            check=True,
        )
        (row,) = json.loads(runs.stdout)
        assert row["state"] == "finished" and row["cost_usd"] > 0 and row["sessions"] >= 2


DIES_MID_TURN = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
      - tool: Bash
        input: {command: "python3 -c 'import time; time.sleep(30)'"}
      - text: "Never reached: the CLI is dead."
    - - tool: Bash
        input: {command: "git add -A && git commit -qm 'core: greet'"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "Committed after the restart."
"""


async def _kill_mid_turn(repo: Path, name: str, written: str) -> None:
    """SIGKILL session `name`'s processes (its jailed CLI among them) once it has written
    `written` and is in the middle of its next step. (Its own Bash cannot reach the CLI:
    the sandbox gives it a process namespace of its own.)"""
    tree = repo / ".conductor" / "worktrees"
    while not list(tree.glob(f"*/{name}/{written}")):  # noqa: ASYNC110
        await anyio.sleep(0.05)  # another process: nothing to wait on but the file system
    await anyio.sleep(0.5)
    for pid in _pids_of_session(name, repo):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_a_session_whose_cli_dies_mid_turn_is_resumed_and_finishes(
    standin: Standin,
) -> None:
    async with standin(DIES_MID_TURN) as offline:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_kill_mid_turn, offline.repo, "A", "core.py")
            summary = await run_plan(offline, ONE)
        assert summary.ok, summary.outcomes
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            kinds = [e.kind for e in await store.list_events(summary.run_id, session="A")]
        assert "session.died" in kinds and "session.restarted" in kinds
        resumed = [r.body for r in offline.server.requests if r.answer.startswith("A chapter 2")]
        assert "core.py" in str(resumed[0]["messages"])  # the earlier conversation came back
        assert "'hello'" in git(offline.repo, "show", f"{summary.integration_branch}:core.py")


ALWAYS_DIES = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/life-1", content: "x"}
      - tool: Bash
        input: {command: "python3 -c 'import time; time.sleep(30)'"}
    - - tool: Write
        input: {file_path: "${cwd}/life-2", content: "x"}
      - tool: Bash
        input: {command: "python3 -c 'import time; time.sleep(30)'"}
"""


async def test_a_session_that_keeps_dying_fails_after_the_retry_limit(standin: Standin) -> None:
    async def kill_twice(repo: Path) -> None:
        await _kill_mid_turn(repo, "A", "life-1")
        await _kill_mid_turn(repo, "A", "life-2")

    async with standin(ALWAYS_DIES) as offline:
        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_twice, offline.repo)
            summary = await run_plan(offline, ONE, retries=1)
        assert not summary.ok
        assert summary.outcomes[0].state == "failed"
        assert "after 1 restarts" in summary.outcomes[0].detail


STALLS = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'core: greet'"}
        delay: 30
    - - tool: Bash
        input: {command: "git add -A && git commit -qm 'core: greet'"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "Done after the restart."
"""


async def test_a_stalled_session_is_interrupted_and_resumed(standin: Standin) -> None:
    async with standin(STALLS) as offline:
        started = anyio.current_time()
        summary = await run_plan(offline, ONE, stall_seconds=1.5)
        assert summary.ok, summary.outcomes
        assert anyio.current_time() - started < 25  # not the 30 s the model "took"
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            kinds = [e.kind for e in await store.list_events(summary.run_id, session="A")]
        assert kinds.index("session.stalled") < kinds.index("session.restarted")


HUMAN = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'core: greet'"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "Waiting for a person."
"""


async def test_the_human_policy_waits_for_conductor_review_approve(standin: Standin) -> None:
    async with standin(HUMAN) as offline:
        db = offline.repo / ".conductor" / "conductor.db"
        approved: list[str] = []

        async def person() -> None:
            while True:
                await anyio.sleep(0.2)
                done = await anyio.run_process(
                    [
                        sys.executable,
                        "-m",
                        "conductor",
                        "review",
                        "approve",
                        "1",
                        "--from",
                        "human",
                        "--comment",
                        "looks right to me",
                    ],
                    cwd=offline.repo,
                    env={**clean_env(), "CONDUCTOR_DB": str(db)},
                    check=False,
                )
                if done.returncode == 0:
                    approved.append(done.stdout.decode())
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(person)
            summary = await run_plan(offline, ONE, review="human")
        assert summary.ok and approved and "approved by human" in approved[0]


async def test_a_session_that_hits_its_turn_budget_stops_as_budget(standin: Standin) -> None:
    async with standin(TWO_STREAMS) as offline:
        summary = await run_plan(offline, PLAN, max_turns=2)
        a = summary.outcomes[0]
        assert (a.state, a.detail) == ("budget", "error_max_turns")
        assert summary.outcomes[1].state == "skipped" and not summary.ok


WAKES = """
roles:
  A:
    - - tool: mcp__bus__set_status
        input: {status: blocked, reason: "waiting for B's go-ahead"}
      - text: "Waiting for B."
    - - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'core: greet'"}
      - tool: mcp__bus__done
        input: {summary: "core after B's go-ahead"}
      - text: "Done."
  B:
    - - tool: Bash
        input: {command: "touch b.py && git add -A && git commit -qm b"}
        delay: 0.5
      - tool: mcp__bus__send
        input: {to: A, text: "go ahead with core"}
      - tool: mcp__bus__done
        input: {}
      - text: "B done."
"""


async def test_a_blocked_session_is_woken_with_its_inbox(standin: Standin) -> None:
    independent = {
        "workstreams": [
            {"id": "A", "name": "a", "task": "a", "owns": ["core.py"]},
            {"id": "B", "name": "b", "task": "b", "owns": ["b.py"]},
        ]
    }
    async with standin(WAKES) as offline:
        summary = await run_plan(offline, independent)
        assert summary.ok, summary.outcomes
        woken = [r for r in offline.server.requests if r.answer.startswith("A chapter 2")]
        assert "New messages for you" in str(woken[0].body["messages"])
        assert "go ahead with core" in str(woken[0].body["messages"])


PEERS = """
roles:
  A:
    - - tool: Bash
        input: {command: "touch a.py && git add -A && git commit -qm a"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "A asked B."
  B:
    - - tool: mcp__bus__review_verdict
        input: {review_id: "1", verdict: approve, comments: "peer ok"}
        until: "approved"
        max: 100
        delay: 0.2
      - tool: Bash
        input: {command: "touch b.py && git add -A && git commit -qm b"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "B asked."
  B-review:
    - - tool: mcp__bus__review_verdict
        input: {verdict: approve, comments: "agent stood in for the peer"}
      - text: "Approved."
"""


async def test_peer_review_by_a_teammate_and_an_agent_when_the_peer_is_gone(
    standin: Standin,
) -> None:
    pair = {
        "workstreams": [
            {"id": "A", "name": "a", "task": "a", "owns": ["a.py"]},
            {"id": "B", "name": "b", "task": "b", "owns": ["b.py"]},
        ]
    }
    async with standin(PEERS) as offline:
        summary = await run_plan(offline, pair, checks=(), review="peer", stall_seconds=3.0)
        assert summary.ok, summary.outcomes
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            reviews = await store.list_reviews(summary.run_id)
        by_author = {r.requester: r for r in reviews}
        assert (by_author["A"].decided_by, by_author["A"].comment) == ("B", "peer ok")
        assert by_author["B"].decided_by == "B-review"  # A had merged and left: an agent


async def test_a_workstream_that_cannot_start_fails_with_its_reason_and_the_run_reports(
    standin: Standin,
) -> None:
    independent = {
        "workstreams": [
            {"id": "A", "name": "a", "task": "a", "owns": ["core.py"]},
            {"id": "B", "name": "b", "task": "b", "owns": ["b.py"]},
        ]
    }
    script = TWO_STREAMS.replace('input: {command: "cat core.py"}', 'input: {command: "true"}')
    async with standin(script) as offline:
        summary = await run_plan(
            offline, independent, checks=(), setup=f"{sys.executable} -c 'raise SystemExit(3)'"
        )
        assert [o.state for o in summary.outcomes] == ["failed", "failed"]
        assert all("setup command failed (3)" in o.detail for o in summary.outcomes)
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            statuses = {s.name: s.status.value for s in await store.list_sessions(summary.run_id)}
        assert (statuses["A"], statuses["B"]) == ("failed", "failed")


# The CLI retries nothing here (CLAUDE_CODE_MAX_RETRIES=0): each 529 ends the turn as an
# API error. A prompt that got no answer is merged by the CLI with the next one, so the
# "carry on" prompt after a pause asks the same chapter again.
OVERLOADED_TWICE = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
        fault: {status: 529, times: 2}
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'core: greet'"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "Done after waiting out the API."
"""


async def test_an_overloaded_api_pauses_the_session_with_back_off_and_it_finishes(
    standin: Standin,
) -> None:
    async with standin(OVERLOADED_TWICE) as offline:
        summary = await run_plan(offline, ONE, backoff_seconds=0.3)
        assert summary.ok, summary.outcomes
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            events = await store.list_events(summary.run_id, session="A")
        pauses = [e.payload for e in events if e.kind == "session.paused"]
        assert [(p["status"], p["seconds"]) for p in pauses] == [(529, 0.3), (529, 0.6)]
        assert "'hello'" in git(offline.repo, "show", f"{summary.integration_branch}:core.py")


@pytest.mark.parametrize("status", [500, 503])
async def test_a_server_error_that_outlasts_the_cli_retries_pauses_like_an_overload(
    standin: Standin, status: int
) -> None:
    async with standin(OVERLOADED_TWICE.replace("status: 529", f"status: {status}")) as offline:
        summary = await run_plan(offline, ONE, backoff_seconds=0.2)
        assert summary.ok, summary.outcomes
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            events = await store.list_events(summary.run_id, session="A")
        pauses = [e.payload for e in events if e.kind == "session.paused"]
        assert [(p["status"], p["seconds"]) for p in pauses] == [(status, 0.2), (status, 0.4)]


# Two separate overloads, each in its own turn, with a turn that got through between them.
OVERLOADED_IN_TWO_TURNS = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
        fault: {status: 529, times: 1}
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'core: greet'"}
      - text: "Committed; no review asked yet."
    - - tool: mcp__bus__request_review
        input: {}
        fault: {status: 529, times: 1}
      - text: "Asked for review."
"""


async def test_pauses_are_counted_in_a_row_so_each_overload_starts_afresh(
    standin: Standin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("conductor.run.backoff.MAX_PAUSES", 1)
    async with standin(OVERLOADED_IN_TWO_TURNS) as offline:
        summary = await run_plan(offline, ONE, backoff_seconds=0.2)
        assert summary.ok, summary.outcomes
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            events = await store.list_events(summary.run_id, session="A")
        pauses = [e.payload for e in events if e.kind == "session.paused"]
        assert [(p["pause"], p["seconds"]) for p in pauses] == [(1, 0.2), (1, 0.2)]


OVERLOADED_REVIEWER = f"""
roles:
  A:
    - {WRITE_CORE.strip()}
  A-review:
    - - tool: mcp__bus__review_verdict
        input: {{verdict: approve, comments: "good"}}
        fault: {{status: 529, times: 2}}
      - text: "Approved."
"""


async def test_an_overloaded_reviewer_pauses_instead_of_rejecting(standin: Standin) -> None:
    async with standin(OVERLOADED_REVIEWER) as offline:
        summary = await run_plan(offline, ONE, review="agent", backoff_seconds=0.2)
        assert summary.ok, summary.outcomes
        assert summary.outcomes[0].review_rounds == 1
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            events = await store.list_events(summary.run_id, session="A-review")
            reviews = await store.list_reviews(summary.run_id, session="A")
        assert [e.payload["status"] for e in events if e.kind == "session.paused"] == [529, 529]
        assert [(r.status.value, r.decided_by) for r in reviews] == [("approved", "A-review")]


async def test_a_supervisor_lock_left_by_an_earlier_process_with_this_pid_is_reclaimed(
    standin: Standin,
) -> None:
    """A container's pid 1 comes back as pid 1: the old lock names a live pid, ours."""
    async with standin(f"roles:\n  A:\n    - {WRITE_CORE.strip()}\n") as offline:
        failing = f"{sys.executable} -c 'raise SystemExit(3)'"
        first = await run_plan(offline, ONE, checks=(), setup=failing)
        assert not first.ok
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            await store.acquire_lock(  # as the earlier process left it: its token is not ours
                f"supervisor {first.run_id}",
                holder="an earlier life",
                token="the earlier process's",
                pid=os.getpid(),
                host=socket.gethostname(),
                lease_seconds=3600,
            )
            supervisor = await Supervisor.for_run(
                offline.repo, store, first.run_id, env=offline.env
            )
            with anyio.fail_after(60):
                again = await supervisor.run()
            assert again.run_id == first.run_id
            assert (await store.get_lock(f"supervisor {first.run_id}")) is None


SLOW_REVIEWER = f"""
roles:
  A:
    - {WRITE_CORE.strip()}
  A-review:
    - - tool: mcp__bus__review_verdict
        input: {{verdict: approve, comments: "good"}}
        delay: 4
      - text: "Approved."
    - - tool: mcp__bus__review_verdict
        input: {{verdict: approve, comments: "good, after a restart"}}
      - text: "Approved."
"""


def _pids_of_session(name: str, under: Path | None = None) -> list[int]:
    """Processes started for session `name` of a supervised run (they carry its name), and
    working `under` a folder (this test's, not another's leftovers) when given."""
    mark = f"CONDUCTOR_SESSION={name}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if under is not None and not cwd.startswith(str(under)):
                continue
            if mark in environ and any(e.startswith(b"CONDUCTOR_SUPERVISED=") for e in environ):
                found.append(int(entry.name))
    return found


async def test_a_reviewer_whose_cli_dies_is_resumed_and_the_author_goes_on(
    standin: Standin,
) -> None:
    async def kill_the_reviewer_once() -> None:
        while not (pids := _pids_of_session("A-review", offline.repo)):  # noqa: ASYNC110
            await anyio.sleep(0.05)  # another process: nothing to wait on but /proc
        await anyio.sleep(1)  # its verdict is delayed 4 s: it is in the middle of its turn
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    async with standin(SLOW_REVIEWER) as offline:
        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_the_reviewer_once)
            summary = await run_plan(offline, ONE, review="agent")
        assert summary.ok, summary.outcomes
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            events = await store.list_events(summary.run_id)
            (review,) = await store.list_reviews(summary.run_id, session="A")
        kinds = [(e.session, e.kind) for e in events]
        assert ("A-review", "session.died") in kinds and ("A-review", "session.restarted") in kinds
        assert ("A", "session.restarted") not in kinds  # the author was left alone
        assert (review.status.value, review.decided_by) == ("approved", "A-review")


UNCOMMITTED = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
      - tool: mcp__bus__done
        input: {summary: "all done"}
      - text: "Done, I said."
    - - text: "Still done."
    - - text: "Done."
"""


async def test_done_with_uncommitted_work_is_refused_and_the_workstream_ends_empty(
    standin: Standin,
) -> None:
    async with standin(UNCOMMITTED) as offline:
        summary = await run_plan(offline, ONE)
        assert not summary.ok
        (a,) = summary.outcomes
        assert a.state == "empty" and "uncommitted changes (core.py)" in a.detail
        told = [r.body for r in offline.server.requests if r.answer.startswith("A chapter 1")]
        assert "you have uncommitted changes (core.py): commit them first" in str(told[-1])
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            assert await store.list_reviews(summary.run_id) == []
        base = git(offline.repo, "rev-parse", "main")
        assert git(offline.repo, "rev-parse", summary.integration_branch) == base


NOTHING_DONE = """
roles:
  A:
    - - tool: mcp__bus__request_review
        input: {}
      - text: "Review please."
    - - text: "Nothing to add."
    - - text: "Nothing."
"""


async def test_a_workstream_with_no_commits_of_its_own_is_empty_not_merged(
    standin: Standin,
) -> None:
    async with standin(NOTHING_DONE) as offline:
        summary = await run_plan(offline, ONE)
        assert not summary.ok
        assert summary.outcomes[0].state == "empty"
        assert "no commits of its own" in summary.outcomes[0].detail
        told = [r.body for r in offline.server.requests if r.answer.startswith("A chapter 1")]
        assert "has no commits of its own that change anything" in str(told[-1])


async def test_a_session_killed_while_it_starts_is_started_again(standin: Standin) -> None:
    async def kill_at_birth(repo: Path) -> None:
        while not (pids := _pids_of_session("A", repo)):  # noqa: ASYNC110
            await anyio.sleep(0.005)  # another process: nothing to wait on but /proc
        for pid in pids:  # the jail and the CLI, before the SDK has connected
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # The SDK answers the CLI's control requests in tasks of its own; one that meets the
    # dead process fails there, outside any task group (in a real run asyncio logs it). The
    # test's loop would raise it into the test, so it is set aside here, and only it.
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def set_aside(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not isinstance(context.get("exception"), CLIConnectionError):
            (previous or asyncio.BaseEventLoop.default_exception_handler)(loop, context)  # type: ignore[arg-type]

    loop.set_exception_handler(set_aside)
    async with standin(f"roles:\n  A:\n    - {WRITE_CORE.strip()}\n") as offline:
        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_at_birth, offline.repo)
            summary = await run_plan(offline, ONE)
        assert summary.ok, summary.outcomes
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            kinds = [e.kind for e in await store.list_events(summary.run_id, session="A")]
        assert kinds.count("session.died") == 1 and "session.restarted" in kinds, kinds
        assert kinds.index("session.died") < kinds.index("sdk.system.init")  # it never began


async def test_a_run_into_a_branch_that_is_checked_out_is_refused(standin: Standin) -> None:
    async with standin(f"roles:\n  A:\n    - {WRITE_CORE.strip()}\n") as offline:
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            supervisor = Supervisor(
                offline.repo,
                store,
                parse_plan(ONE, offline.repo),
                goal="g",
                config=Config(review="auto", model=STANDIN_MODEL),
                env=offline.env,
                into="main",
            )
            with pytest.raises(InvalidInput, match="--into main: it is checked out in"):
                await supervisor.run()
            assert await store.latest_run() is None  # refused before anything started
        assert git(offline.repo, "branch", "--list", "conductor/*") == ""


async def test_merged_is_said_only_of_work_that_is_on_the_integration_branch(
    standin: Standin,
) -> None:
    async with standin(TWO_STREAMS) as offline:
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            supervisor = supervisor_for(offline, store, PLAN)
            with anyio.fail_after(120):
                assert (await supervisor.run()).ok
            # However the records came to say it (a crash between two of them, a bug),
            # a landed commit the integration branch lacks is not merged work.
            elsewhere = commit_file(offline.repo, "stray.py", "x = 1\n")
            assert supervisor.running is not None
            bus = supervisor.running.bus
            await bus.record("A", "merge.merged", "forged", {"commit": elsewhere})
            summary = await supervisor.summary()
        assert [(o.id, o.state) for o in summary.outcomes] == [("A", "missing"), ("B", "merged")]
        assert not summary.ok


async def test_a_workstream_is_done_when_its_merge_lands_not_when_its_cli_has_shut_down(
    standin: Standin,
) -> None:
    async with standin(TWO_STREAMS) as offline:
        summary = await run_plan(offline, PLAN)
        assert summary.ok
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            events = await store.list_events(summary.run_id)
        of_a = [
            e.kind if e.kind != "session.updated" else f"status={(e.payload or {}).get('status')}"
            for e in events
            if e.session == "A"
            and e.kind in ("merge.merged", "session.updated", "session.closed")
            and (e.kind != "session.updated" or "status" in (e.payload or {}))
        ]
        landed = of_a.index("merge.merged")
        assert of_a[landed + 1] == "status=done"  # at once: claims released, B may start
        assert of_a[landed + 2 :] == ["session.closed"]  # then its CLI ends; done said once
        b_starts = next(e.id for e in events if e.session == "B" and e.kind == "session.prompt")
        a_done = next(
            e.id
            for e in events
            if e.session == "A"
            and e.kind == "session.updated"
            and (e.payload or {}).get("status") == "done"
        )
        assert a_done < b_starts  # B depends on A


async def test_the_planners_spend_counts_toward_the_runs_budget(standin: Standin) -> None:
    async with standin(TWO_STREAMS) as offline:
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            planned = Spend(turns=3, cost_usd=2.0)  # planning alone spent the whole budget
            supervisor = supervisor_for(offline, store, PLAN, planned, max_usd_per_run=1.0)
            with anyio.fail_after(120):
                summary = await supervisor.run()
        assert [o.state for o in summary.outcomes] == ["budget", "skipped"]  # B waits on A
        assert summary.others["planner"] == planned and summary.cost_usd == 2.0
