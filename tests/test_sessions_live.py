"""Headless sessions in their own worktrees, on the bus, with claims enforced: real CLI,
scripted stand-in model, real git."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import git

from conductor import actions, worktrees
from conductor.bus import Bus, create_run
from conductor.session import HeadlessSession, SessionConfig, TurnResult
from conductor.standin.harness import STANDIN_MODEL, Offline
from conductor.store import Store

pytestmark = pytest.mark.anyio

Standin = Callable[[str], AbstractAsyncContextManager[Offline]]

TWO_SESSIONS = """
roles:
  A:
    - - tool: mcp__bus__claim
        input: {path: "src/core/"}
      - tool: mcp__bus__send
        input: {to: B, text: "src/core is mine"}
      - tool: Write
        input: {file_path: "${cwd}/src/core/types.py", content: "Token = str\\n"}
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'core types'"}
      - tool: mcp__bus__sync
        input: {}
        until: "waiting for types"
        max: 60
        delay: 0.1
      - tool: mcp__bus__send
        input: {to: B, text: "types exported"}
      - text: "A done."
  B:
    - - tool: mcp__bus__sync
        input: {}
        until: "is mine"
        max: 60
        delay: 0.1
      - tool: Write
        input: {file_path: "${cwd}/src/core/x.py", content: "mine = True\\n"}
      - tool: Write
        input: {file_path: "${cwd}/../A/evil.txt", content: "not yours\\n"}
      - tool: Write
        input: {file_path: "${cwd}/src/cli.py", content: "from core.types import Token\\n"}
      - tool: mcp__bus__send
        input: {to: A, text: "waiting for types"}
      - tool: Bash
        input: {command: "sleep 0.2"}
        until: "types exported"
        max: 60
      - tool: Bash
        input: {command: "git push origin HEAD"}
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'cli'"}
      - tool: mcp__bus__sync
        input: {}
      - text: "B done."
"""


@dataclass
class Team:
    offline: Offline
    bus: Bus
    base: str
    trees: dict[str, Path]


@pytest.fixture
async def team(standin: Standin) -> AsyncIterator[Team]:
    async with standin(TWO_SESSIONS) as offline:
        repo = offline.repo
        base = git(repo, "rev-parse", "HEAD")
        async with Store.open(repo / ".conductor" / "conductor.db") as store:
            bus = await create_run(
                store,
                goal="two sessions",
                repo_root=repo,
                base_ref="main",
                base_commit=base,
                sessions=[("A", "core"), ("B", "cli")],
            )
            trees = {
                name: (await actions.place_session(bus, repo, name, base)).path
                for name in ("A", "B")
            }
            yield Team(offline, bus, base, trees)


async def run_both(team: Team) -> dict[str, TurnResult]:
    config = SessionConfig(
        env=team.offline.env,
        config_dir=team.offline.repo / ".conductor" / "claude",
        model=STANDIN_MODEL,
    )
    results: dict[str, TurnResult] = {}

    async def one(name: str) -> None:
        async with HeadlessSession(team.bus, name, team.trees[name], config) as session:
            results[name] = await session.turn(f"conductor-role: {name}\nDo your part.")

    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "A")
            tg.start_soon(one, "B")
    return results


def tool_results(team: Team, role: str) -> list[dict[str, Any]]:
    """Every tool result in the longest conversation the stand-in saw for `role`."""
    bodies = [r.body for r in team.offline.server.requests if r.answer.startswith(f"{role} ")]
    last = bodies[-1]
    return [
        block
        for message in last["messages"]
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def text_of(block: dict[str, Any]) -> str:
    content = block["content"]
    return content if isinstance(content, str) else "".join(c.get("text", "") for c in content)


async def test_two_sessions_coordinate_and_every_gate_holds(team: Team) -> None:
    results = await run_both(team)
    assert not results["A"].is_error and not results["B"].is_error
    b_results = tool_results(team, "B")

    # B's write into A's claimed directory was denied, and B's model was told who owns it.
    denied_claim = next(b for b in b_results if "claimed by session A" in text_of(b))
    assert denied_claim.get("is_error") is True
    assert "claimed by session A" in text_of(denied_claim)
    assert not (team.trees["B"] / "src" / "core" / "x.py").exists()

    # A write outside B's own worktree was denied.
    outside = next(b for b in b_results if "outside your worktree" in text_of(b))
    assert outside.get("is_error") is True
    assert not (team.trees["A"] / "evil.txt").exists()

    # B's git push was denied with a pointer to the review flow.
    push = next(b for b in b_results if "git push is not allowed" in text_of(b))
    assert push.get("is_error") is True and "request_review" in text_of(push)

    # A's message arrived mid-turn and rode in on B's next tool call, exactly once.
    b_requests = [r.body for r in team.offline.server.requests if r.answer.startswith("B ")]
    carried = [str(body["messages"]) for body in b_requests]
    assert any("types exported" in text and "PostToolUse" in text for text in carried)
    assert text_of(b_results[-1]).startswith("Nothing new")  # sync did not repeat it
    inbox = await team.bus.inbox("B", include_read=True)
    exported = [m for m in inbox if m.body == "types exported"]
    assert len(exported) == 1 and exported[0].read_at is not None
    assert await team.bus.inbox("B") == []

    # Each branch (in the session's own repository) has exactly its own commit; nothing
    # outside the worktrees changed.
    repo = team.offline.repo
    for name, subject in (("A", "core types"), ("B", "cli")):
        branch = worktrees.session_branch(team.bus.run_id, name)
        log = git(team.trees[name], "log", "--format=%s", f"{team.base}..{branch}").splitlines()
        assert log == [subject]
        assert git(team.trees[name], "status", "--porcelain") == ""
    assert git(repo, "rev-parse", "HEAD") == team.base
    assert git(repo, "status", "--porcelain") == ""
    assert sorted(p.name for p in repo.iterdir()) == [".conductor", ".git", "README.md"]

    # Every denial is an event; the SDK session ids were stored; the stream became events.
    events = await team.bus.events(session="B")
    denied = [e for e in events if e.kind == "hook.denied"]
    assert [e.payload["tool"] for e in denied if e.payload] == ["Write", "Write", "Bash"]
    for name in ("A", "B"):
        session = await team.bus.session(name)
        assert session.sdk_session_id
        assert session.status.value == "idle"
    kinds = {e.kind for e in events}
    assert {
        "session.prompt",
        "sdk.system.init",
        "sdk.assistant",
        "sdk.tool_result",
        "sdk.result",
    } <= kinds
