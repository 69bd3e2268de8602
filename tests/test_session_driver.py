"""One headless session: wake-ups, interrupts, its environment, its tools and its transcript.
Real CLI against the stand-in, real git."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import Cli, git

from conductor import actions, worktrees
from conductor.bus import Bus, create_run
from conductor.config import load_config
from conductor.session import HeadlessSession, SessionConfig, worker_config
from conductor.standin.harness import STANDIN_MODEL, Offline
from conductor.store import Store
from conductor.tools import coordination_tools

pytestmark = pytest.mark.anyio

Standin = Callable[[str], AbstractAsyncContextManager[Offline]]

# The Bash tool's parent process is the CLI itself: its own environment is what must lack
# CLAUDECODE (Claude Code sets CLAUDECODE=1 for the commands it runs, by design).
SCRIPT = r"""
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/notes.md", content: "[bold]not markup[/bold]\n"}
      - tool: Bash
        input: {command: 'tr ''\0'' ''\n'' < /proc/$PPID/environ | grep -c ^CLAUDECODE= || true'}
      - text: "First turn over."
    - - tool: Bash
        input: {command: "git add -A && git commit -qm 'notes'"}
      - text: "Woken, committed."
  sleeper:
    - - tool: Bash
        input: {command: "python3 -c 'import time; time.sleep(30)'"}
      - text: "Should not get here."
"""


@asynccontextmanager
async def session_in_worktree(
    standin: Standin, role: str
) -> AsyncIterator[tuple[Offline, Bus, HeadlessSession]]:
    async with standin(SCRIPT) as offline:
        repo = offline.repo
        base = git(repo, "rev-parse", "HEAD")
        async with Store.open(repo / ".conductor" / "conductor.db") as store:
            bus = await create_run(
                store,
                goal="driver",
                repo_root=repo,
                base_ref="main",
                base_commit=base,
                sessions=[(role, "solo")],
            )
            tree = await actions.place_session(bus, repo, role, base)
            config = SessionConfig(
                env={**offline.env, "CLAUDECODE": "1"},
                config_dir=repo / ".conductor" / "claude",
                model=STANDIN_MODEL,
            )
            async with HeadlessSession(bus, role, tree.path, config) as session:
                yield offline, bus, session


async def test_a_session_is_woken_with_a_new_prompt_after_its_turn(standin: Standin) -> None:
    async with session_in_worktree(standin, "A") as (_, bus, session):
        first = await session.turn("conductor-role: A\nStart.")
        assert (await bus.session("A")).status.value == "idle"
        second = await session.turn("Wake up: commit your notes.")
        assert first.session_id == second.session_id
        assert (first.result, second.result) == ("First turn over.", "Woken, committed.")
        branch = worktrees.session_branch(bus.run_id, "A")
        assert git(session.worktree, "log", "-1", "--format=%s", branch) == "notes"


async def test_claudecode_never_reaches_the_session(
    standin: Standin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDECODE", "1")  # as when conductor runs inside Claude Code
    async with session_in_worktree(standin, "A") as (_, bus, session):
        await session.turn("conductor-role: A\nStart.")
        results = [e.summary for e in await bus.events(session="A") if e.kind == "sdk.tool_result"]
        assert results[1] == "0"  # no CLAUDECODE in the CLI process's environment


async def test_a_session_can_be_interrupted_mid_turn(standin: Standin) -> None:
    async with session_in_worktree(standin, "sleeper") as (_, bus, session):
        started = anyio.current_time()
        outcome: list[Any] = []

        async def turn() -> None:
            outcome.append(await session.turn("conductor-role: sleeper\nSleep."))

        async with anyio.create_task_group() as tg:
            tg.start_soon(turn)
            with anyio.fail_after(20):
                while not any(e.kind == "sdk.assistant" for e in await bus.events()):  # noqa: ASYNC110 (polling the store, which has no event to wait on)
                    await anyio.sleep(0.05)
            await anyio.sleep(0.5)  # the Bash tool is running now
            await session.interrupt()
        assert anyio.current_time() - started < 20  # not the 30 s sleep
        assert outcome and outcome[0].is_error  # the CLI ends an interrupted turn as an error
        assert any(e.kind == "session.interrupted" for e in await bus.events())
        after = await session.turn("Carry on.")  # and the session still takes a prompt
        assert not after.is_error and after.session_id == outcome[0].session_id


async def test_the_stored_events_print_as_a_readable_transcript(
    standin: Standin, tmp_path: Path
) -> None:
    async with session_in_worktree(standin, "A") as (offline, _, session):
        await session.turn("conductor-role: A\nStart.")
        out = Cli(offline.repo, process=True).ok("transcript", "A").out
    lines = out.splitlines()
    assert lines[0].endswith("> conductor-role: A")
    assert any("→ Write(file_path=" in line and "notes.md" in line for line in lines)
    assert any("← File created successfully" in line for line in lines)
    assert any("content='[bold]no" in line for line in lines)  # literal, not markup
    assert lines[-1].split(" ", 1)[1].startswith("  ■ ok: 3 turns")


# ------------------------------------------------------------------------------ the tools


@pytest.fixture
def tools(bus: Bus, tmp_path: Path) -> dict[str, Any]:
    return {t.name: t for t in coordination_tools(bus, "A", tmp_path)}


async def call(tools: dict[str, Any], name: str, **args: str) -> tuple[bool, str]:
    answer = await tools[name].handler(args)
    return bool(answer.get("is_error")), answer["content"][0]["text"]


async def test_every_coordination_tool_answers_with_text(tools: dict[str, Any], bus: Bus) -> None:
    await bus.send("B", "A", "hello A")
    assert await call(tools, "sync") == (False, 'MSG #1 from=B: "hello A"')
    assert await call(tools, "sync") == (False, "Nothing new.")
    assert (await call(tools, "send", to="B", text="hi"))[1].startswith("Message #2 sent to B")
    assert (await call(tools, "reply", message_id="1", text="yes"))[0] is False
    assert (await call(tools, "context_add", category="interface", text="POST /x"))[0] is False
    assert "POST /x" in (await call(tools, "context_show"))[1]
    assert (await call(tools, "claim", path="src/"))[1].startswith("src is yours")
    assert (await call(tools, "release", path="src"))[1] == "Released src."
    assert (await call(tools, "set_status", status="blocked", reason="needs B"))[0] is False
    assert (await bus.session("A")).note == "needs B"


async def test_a_bad_tool_call_is_an_error_the_model_can_read(
    tools: dict[str, Any], bus: Bus
) -> None:
    await bus.claim("B", "api/", root=Path("/r"))
    assert await call(tools, "send", to="Z", text="x") == (
        True,
        f"error: unknown session 'Z' in run {bus.run_id}",
    )
    failed, text = await call(tools, "claim", path="api/x.py")
    assert failed and "claimed by session B" in text
    assert (await call(tools, "claim", path="../outside"))[0] is True
    assert (await call(tools, "context_add", category="gossip", text="x"))[0] is True
    assert (await call(tools, "set_status", status="blocked"))[0] is True  # no reason
    assert (await call(tools, "set_status", status="done"))[0] is True  # not through here
    assert (await call(tools, "reply", message_id="x", text="y"))[0] is True


async def test_request_review_reviews_the_sessions_branch(repo: Path, store: Store) -> None:
    base = git(repo, "rev-parse", "HEAD")
    bus = await create_run(
        store,
        goal="r",
        repo_root=repo,
        base_ref="main",
        base_commit=base,
        sessions=[("A", "x"), ("B", "y")],
    )
    tree = await actions.place_session(bus, repo, "A", base)
    (tree.path / "feature.py").write_text("def f() -> int:\n    return 1\n")
    git(tree.path, "add", "feature.py")
    git(tree.path, "commit", "-qm", "feature")
    review_tool = {t.name: t for t in coordination_tools(bus, "A", tree.path)}["request_review"]
    answer = await review_tool.handler({"note": "first cut"})
    assert answer["content"][0]["text"].startswith("Review #1 requested for commit")
    review = await bus.review(1)
    assert review.commit == git(tree.path, "rev-parse", "HEAD")
    assert b"+def f() -> int:" in review.diff and review.note == "first cut"


FROM_CONFIG = r"""
roles:
  A:
    - - tool: Bash
        input: {command: 'cat .env; cat setup.done; echo "port=$SERVICE_PORT"'}
      - text: "Looked."
"""

CONDUCTOR_TOML = f"""
copy_files = [".env"]
setup = "{sys.executable} -c \\"open('setup.done', 'w').write('setup ran\\\\n')\\""
[env]
SERVICE_PORT = "9107"
"""


async def test_conductor_toml_bootstraps_the_worktree_and_the_session_env(
    standin: Standin,
) -> None:
    async with standin(FROM_CONFIG) as offline:
        repo = offline.repo
        (repo / ".gitignore").write_text(".env\n")
        (repo / ".env").write_text("SECRET=from-main-checkout\n")
        (repo / "conductor.toml").write_text(CONDUCTOR_TOML)
        config = load_config(repo).override(model=STANDIN_MODEL)
        base = git(repo, "rev-parse", "HEAD")
        async with Store.open(repo / ".conductor" / "conductor.db") as store:
            bus = await create_run(
                store,
                goal="cfg",
                repo_root=repo,
                base_ref="main",
                base_commit=base,
                sessions=[("A", "solo")],
            )
            bootstrap = worktrees.Bootstrap(copy_files=config.copy_files, setup=config.setup_argv)
            tree = await actions.place_session(bus, repo, "A", base, bootstrap)
            session_config = worker_config(config, repo / ".conductor", offline.env)
            async with HeadlessSession(bus, "A", tree.path, session_config) as session:
                await session.turn("conductor-role: A\nLook around.")
            seen = next(
                str(e.payload) for e in await bus.events(session="A") if e.kind == "sdk.tool_result"
            )
    assert "SECRET=from-main-checkout" in seen
    assert "setup ran" in seen
    assert "port=9107" in seen


async def test_done_asks_for_review_of_the_head_once(repo: Path, store: Store) -> None:
    base = git(repo, "rev-parse", "HEAD")
    bus = await create_run(
        store, goal="d", repo_root=repo, base_ref="main", base_commit=base, sessions=[("A", "x")]
    )
    tree = await actions.place_session(bus, repo, "A", base)
    (tree.path / "a.py").write_text("a = 1\n")
    git(tree.path, "add", "a.py")
    git(tree.path, "commit", "-qm", "a")
    done = {t.name: t for t in coordination_tools(bus, "A", tree.path)}["done"]
    first = (await done.handler({"summary": "a is in"}))["content"][0]["text"]
    assert first.startswith("Review #1 requested") and "Marked done" in first
    again = (await done.handler({}))["content"][0]["text"]
    assert again.startswith("Marked done")  # the head is under review already
    assert len(await bus.reviews()) == 1
    assert (await bus.session("A")).status.value == "review"


async def test_a_transcript_that_holds_no_conversation_starts_the_session_afresh(
    standin: Standin,
) -> None:
    async with session_in_worktree(standin, "A") as (_, bus, session):
        await session.__aexit__(None, None, None)
        lost = "bce9e7c1-cde8-487c-8301-9410ad774d3a"  # written as the disk filled: empty
        (session.config.config_dir / "projects" / "cut-short").mkdir(parents=True)
        (session.config.config_dir / "projects" / "cut-short" / f"{lost}.jsonl").touch()
        again = HeadlessSession(bus, "A", session.worktree, session.config, resume=lost)
        async with again:
            assert not again.restored
            result = await again.turn("conductor-role: A\nStart.")
        assert not result.is_error and result.session_id != lost
        died = [e.summary for e in await bus.events(session="A") if e.kind == "session.died"]
        assert len(died) == 1 and "No conversation found" in died[0]  # asked once, then afresh
