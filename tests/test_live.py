"""The live view of a run: plain lines for notable events, and the dashboard's snapshot,
both read from the store alone."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.console import Console

from conductor import bus as bus_module
from conductor.bus import Bus
from conductor.cli.supervising import supervise
from conductor.dashboard import live_view
from conductor.events import COST_KEY
from conductor.live import Snapshot, notable_line, watch_run
from conductor.models import Event, RunState, SessionKind
from conductor.store import Store

pytestmark = pytest.mark.anyio

POLL = 0.05
COMMIT = "c0ffee" * 6 + "abcd"


def plain_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, markup=False, emoji=False, highlight=False), buffer


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        # The condition is on output another task writes: there is no event to wait for.
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


@asynccontextmanager
async def watching(bus: Bus, console: Console, **options: Any) -> AsyncIterator[None]:
    """watch_run beside the body, cancelled when the body ends, as the CLI runs it."""
    async with anyio.create_task_group() as tg:
        options = {"poll": POLL, **options}
        tg.start_soon(partial(watch_run, bus.store, bus.run_id, console=console, **options))
        yield
        tg.cancel_scope.cancel()


async def snapshot_of(bus: Bus) -> Snapshot:
    snapshot = Snapshot(bus.run_id)
    await snapshot.update(bus)
    return snapshot


def render(snapshot: Snapshot, width: int = 120) -> str:
    console = Console(record=True, width=width, markup=False, emoji=False, file=io.StringIO())
    console.print(live_view(snapshot, width=width))
    return console.export_text()


def event(kind: str, payload: dict[str, Any] | None = None, session: str | None = "A") -> Event:
    return Event(1, "run", session, kind, "the summary", payload, 0.0)


async def result(bus: Bus, name: str, turns: int, cost: float) -> None:
    """A turn's result as a session records it: `cost_usd` is that turn's cost."""
    payload = {"num_turns": turns, "total_cost_usd": cost, COST_KEY: cost, "is_error": False}
    await bus.record(name, "sdk.result", "ok", payload)


# ------------------------------------------------------------------------------ plain lines


async def test_plain_mode_prints_each_notable_event_once_and_skips_the_rest(bus: Bus) -> None:
    console, buffer = plain_console()
    await bus.send("A", "B", "can you export the types? [B]")
    await bus.record("A", "sdk.assistant", "thinking out loud", {"content": []})
    await bus.claim("C", "src/", root=Path("/repo"), cwd=Path("/repo"))
    async with watching(bus, console, live=False):
        await until(lambda: "can you export" in buffer.getvalue())
        await bus.record("B", "hook.denied", "Write: src/x.py is claimed by session C", {})
        await bus.record("B", "sdk.tool_result", "chatty tool output")
        await until(lambda: "denied" in buffer.getvalue())
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert [line.split(None, 2)[1:] for line in lines] == [
        ["A", "message to B: can you export the types? [B]"],
        ["B", "denied: Write: src/x.py is claimed by session C"],
    ]
    assert "\x1b" not in buffer.getvalue()


async def test_plain_mode_starts_after_the_given_event(bus: Bus) -> None:
    console, buffer = plain_console()
    first = await bus.record("A", "git.commit", "abc first")
    await bus.record("A", "git.commit", "def second")
    async with watching(bus, console, live=False, after=first):
        await until(lambda: "second" in buffer.getvalue())
    assert "first" not in buffer.getvalue()


async def test_events_just_before_the_cancel_are_still_printed(bus: Bus) -> None:
    console, buffer = plain_console()
    await bus.record("A", "git.commit", "abc123 before")
    async with watching(bus, console, live=False, poll=60):
        await until(lambda: "before" in buffer.getvalue())  # read once; now asleep for 60 s
        await bus.update("A", status="done")
        await bus.set_state(RunState.FINISHED, "everything merged")
    out = buffer.getvalue()
    assert "status done" in out
    assert "run finished: everything merged" in out


async def test_a_status_change_is_notable_only_when_someone_should_look() -> None:
    assert notable_line(event("session.updated", {"status": "blocked", "note": "needs B"}))
    assert notable_line(event("session.updated", {"status": "failed"}))
    assert notable_line(event("session.updated", {"status": "working"})) is None
    assert notable_line(event("session.updated", {"note": "halfway"})) is None


@pytest.mark.parametrize(
    "kind", ["sdk.assistant", "sdk.result", "claim.added", "context.added", "message.read"]
)
async def test_chatter_is_not_notable(kind: str) -> None:
    assert notable_line(event(kind, {})) is None


async def test_a_pause_says_what_the_api_answered_and_how_long_it_waits() -> None:
    line = notable_line(event("session.paused", {"status": 529, "seconds": 30.0, "pause": 1}))
    assert line is not None and "paused: API answered 529, waiting 30s" in line


async def test_a_merge_line_names_the_branch_commit_and_conflicts() -> None:
    payload = {"branch": "conductor/A", "commit": COMMIT, "conflicts": ["README.md"]}
    line = notable_line(event("merge.conflict", payload))
    assert line is not None
    assert f"merge conflict: conductor/A at {COMMIT[:12]} in README.md" in line


async def test_a_message_names_its_recipients(bus: Bus) -> None:
    await bus.send("A", "all", "heads up")
    snapshot = await snapshot_of(bus)
    assert any("message to all: heads up" in line for line in snapshot.tail)


# ------------------------------------------------------------------------------ the snapshot


async def test_turns_and_cost_are_summed_from_result_events(bus: Bus) -> None:
    await result(bus, "A", 3, 0.25)
    await result(bus, "A", 2, 0.5)
    await result(bus, "B", 1, 0.125)
    snapshot = await snapshot_of(bus)
    assert (snapshot.sessions["A"].turns, snapshot.sessions["A"].cost_usd) == (5, 0.75)
    assert (snapshot.turns, snapshot.cost_usd) == (6, 0.875)


async def test_an_update_folds_only_the_new_events(bus: Bus) -> None:
    await result(bus, "A", 3, 0.25)
    snapshot = await snapshot_of(bus)
    await result(bus, "A", 1, 0.25)
    await snapshot.update(bus)
    await snapshot.update(bus)
    assert (snapshot.sessions["A"].turns, snapshot.sessions["A"].cost_usd) == (4, 0.5)


async def test_the_merge_queue_holds_sessions_queued_and_not_yet_decided(bus: Bus) -> None:
    for name in ("A", "B", "C"):
        payload = {"branch": f"conductor/{name}", "commit": COMMIT}
        await bus.record(name, "merge.queued", "waits", payload)
    await bus.record("B", "merge.merged", "merged", {"branch": "conductor/B", "commit": COMMIT})
    await bus.record("C", "merge.conflict", "conflict", {"branch": "conductor/C"})
    snapshot = await snapshot_of(bus)
    assert snapshot.merge_queue == ["A"]
    assert [snapshot.sessions[n].merge for n in ("A", "B", "C")] == ["queued", "merged", "conflict"]


async def test_a_session_queued_again_after_a_conflict_is_back_in_the_queue(bus: Bus) -> None:
    await bus.record("A", "merge.queued", "waits")
    await bus.record("A", "merge.check_failed", "red")
    await bus.record("A", "merge.queued", "waits again")
    assert (await snapshot_of(bus)).merge_queue == ["A"]


async def test_a_session_row_shows_the_tool_it_is_using(bus: Bus) -> None:
    content = [{"id": "t1", "name": "Write", "input": {"file_path": "src/app.py", "content": ""}}]
    await bus.update("A", status="working")
    await bus.record("A", "sdk.assistant", "Write ...", {"content": content})
    await bus.record("A", "message.read", "#1")
    await bus.record("A", "sdk.tool_result", '[{"type": "text", "text": "done"}]')
    snapshot = await snapshot_of(bus)
    assert snapshot.doing(snapshot.sessions["A"]) == "Write src/app.py"


async def test_a_session_being_set_up_is_starting_whatever_it_claimed(
    bus: Bus, tmp_path: Path
) -> None:
    await bus.claim("A", "src/app.py", root=tmp_path)
    snapshot = await snapshot_of(bus)
    assert [snapshot.doing(snapshot.sessions[n]) for n in "AB"] == ["starting", "waiting to start"]


async def test_a_path_in_the_sessions_worktree_is_shown_as_the_session_sees_it(
    bus: Bus,
) -> None:
    path = f"/home/me/repo/.conductor/worktrees/{bus.run_id}/A/src/app.py"
    content = [{"id": "t1", "name": "Edit", "input": {"file_path": path}}]
    await bus.record("A", "sdk.assistant", "Edit ...", {"content": content})
    assert (await snapshot_of(bus)).sessions["A"].action == "Edit src/app.py"


async def test_the_latest_review_is_tracked_through_its_verdict(bus: Bus) -> None:
    first = await bus.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="B")
    second = await bus.request_review("A", commit=COMMIT, diff=b"+y\n", reviewer="B")
    await bus.decide(second.id, "B", approve=False, comment="needs tests")
    review = (await snapshot_of(bus)).sessions["A"].review
    assert review is not None and first.id != review.id == second.id
    assert review.status.value == "rejected"


# ------------------------------------------------------------------------------ waiting on you


async def human_run(store: Store, tmp_path: Path, policy: str) -> Bus:
    run = await bus_module.create_run(
        store,
        goal="a goal",
        repo_root=tmp_path,
        base_ref="main",
        base_commit=None,
        sessions=[("A", "api"), ("B", "ui")],
        spec={"plan": {}, "config": {"review": policy}},
    )
    await run.register([("human", "human reviews")], kind=SessionKind.HUMAN)
    await run.register([("auto", "auto reviews")], kind=SessionKind.REVIEWER)
    return run


async def test_a_review_assigned_to_human_stands_out_with_the_approve_command(bus: Bus) -> None:
    await bus.register([("human", "human reviews")], kind=SessionKind.HUMAN)
    review = await bus.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="human")
    snapshot = await snapshot_of(bus)
    assert [v.name for v in snapshot.waiting()] == ["A"]
    assert f"waiting on you: conductor review approve {review.id} --from human" in render(snapshot)


async def test_under_the_human_policy_an_unassigned_review_waits_on_you(
    store: Store, tmp_path: Path
) -> None:
    run = await human_run(store, tmp_path, "human")
    await run.request_review("B", commit=COMMIT, diff=b"+x\n")
    snapshot = await snapshot_of(run)
    assert [v.name for v in snapshot.waiting()] == ["B"]
    assert "conductor review approve 1 --from human" in render(snapshot)


async def test_under_another_policy_an_unassigned_review_does_not(
    store: Store, tmp_path: Path
) -> None:
    run = await human_run(store, tmp_path, "agent")
    await run.request_review("B", commit=COMMIT, diff=b"+x\n")
    snapshot = await snapshot_of(run)
    assert snapshot.waiting() == []
    assert "waiting on you" not in render(snapshot)


async def test_a_decided_review_no_longer_waits(bus: Bus) -> None:
    await bus.register([("human", "human reviews")], kind=SessionKind.HUMAN)
    review = await bus.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="human")
    await bus.decide(review.id, "human", approve=True)
    assert (await snapshot_of(bus)).waiting() == []


async def test_a_blocked_session_stands_out_with_its_note(bus: Bus) -> None:
    await bus.update("C", status="blocked", note="needs credentials from you")
    snapshot = await snapshot_of(bus)
    assert [v.name for v in snapshot.waiting()] == ["C"]
    assert "blocked: C: needs credentials from you" in render(snapshot)


# ------------------------------------------------------------------------------ the live view


def rows(text: str, names: list[str]) -> dict[str, int]:
    return {n: sum(1 for line in text.splitlines() if line.startswith(f"{n} ")) for n in names}


async def test_the_live_view_has_one_row_per_session(bus: Bus) -> None:
    await result(bus, "B", 4, 0.0123)
    await bus.send("A", "C", "ping")
    text = render(await snapshot_of(bus))
    assert rows(text, ["A", "B", "C"]) == {"A": 1, "B": 1, "C": 1}
    b_row = next(line for line in text.splitlines() if line.startswith("B "))
    assert "4" in b_row and "$0.0123" in b_row
    assert "message to C: ping" in text
    assert "merge queue: empty" in text


async def test_each_session_stays_one_line_at_80_columns(bus: Bus) -> None:
    await result(bus, "A", 12, 1.5)
    await bus.update("A", status="working")
    content = [{"id": "t1", "name": "Bash", "input": {"command": "pytest -q " + "tests/x " * 30}}]
    await bus.record("A", "sdk.assistant", "Bash ...", {"content": content})
    text = render(await snapshot_of(bus), width=80)
    assert all(len(line) <= 80 for line in text.splitlines())
    a_row = next(line for line in text.splitlines() if line.startswith("A "))
    assert (
        "$1.5000" in a_row and "Bash: pytest -q tests/x" in a_row and a_row.rstrip().endswith("…")
    )


async def test_the_people_and_conductor_that_decide_reviews_get_no_row(
    store: Store, tmp_path: Path
) -> None:
    text = render(await snapshot_of(await human_run(store, tmp_path, "agent")))
    assert rows(text, ["A", "B", "human", "auto"]) == {"A": 1, "B": 1, "human": 0, "auto": 0}


async def test_user_text_is_printed_as_written(bus: Bus) -> None:
    await bus.update("A", status="blocked", note="[bold]not markup[/bold] :bomb:")
    text = render(await snapshot_of(bus))
    assert "[bold]not markup[/bold] :bomb:" in text


async def test_live_mode_leaves_the_last_frame_when_cancelled(bus: Bus) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, markup=False, emoji=False)  # not a terminal:
    async with watching(bus, console, live=True):  # Live draws only its final frame here
        await anyio.sleep(POLL * 2)
        await bus.record("A", "git.commit", "abc123 the last word")
    out = buffer.getvalue()
    assert rows(out, ["A", "B", "C"]) == {"A": 1, "B": 1, "C": 1}
    assert "commit: abc123 the last word" in out


async def test_a_review_request_and_verdict_are_one_line_each(bus: Bus) -> None:
    review = await bus.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="B")
    await bus.decide(review.id, "B", approve=True, comment="fine")
    lines = [line for _, line in (await snapshot_of(bus)).drain()]
    assert [line.split(None, 1)[1] for line in lines] == [
        f"A          review requested: #{review.id} of {COMMIT[:12]} for B",
        f"B          review approved: #{review.id} of A: fine",
    ]


class _IdleStore:
    location = "/repo/.conductor/conductor.db"  # the run's default database

    async def keep_checkpointed(self) -> None:
        await anyio.sleep_forever()


class _QuickRun:
    """Stands in for a supervisor: the view is what is under test, not the run."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.run_id = "20261201-000000-abcd"
        self.repo = Path("/repo")
        self.store = _IdleStore()

    async def run(self) -> str:
        self.started.set()
        await anyio.sleep(0.2)
        return "the summary"


async def test_a_view_that_breaks_does_not_end_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no terminal after all")

    monkeypatch.setattr("conductor.cli.supervising.watch_run", broken)
    out = io.StringIO()
    summary = await supervise(
        _QuickRun(),
        console=Console(file=out, width=200),
        live=False,
        resumable=False,
    )
    assert summary == "the summary"
    assert "the run's view stopped (RuntimeError: no terminal after all)" in out.getvalue()


async def test_the_live_header_is_what_its_rows_add_up_to(bus: Bus) -> None:
    await result(bus, "A", 3, 0.0125)
    await result(bus, "A", 2, 0.0031)  # a second turn of the same session
    await result(bus, "B", 4, 0.0044)
    text = render(await snapshot_of(bus))
    header = text.splitlines()[2]  # under the run's line and its goal
    assert header == "3 workstreams, 0 merged · 3 sessions · 9 turns · $0.0200"
    row = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith(("A ", "B "))}
    assert "$0.0156" in row["A"] and "$0.0044" in row["B"]


async def test_a_snapshot_reads_the_same_from_the_store_as_from_the_runs_bus(bus: Bus) -> None:
    """`conductor run` hands the view its store; the snapshot opens the run's bus from it."""
    await result(bus, "A", 3, 0.25)
    await bus.record("A", "git.commit", "abc123 first")
    through_bus = await snapshot_of(bus)
    from_store = Snapshot(bus.run_id)
    await from_store.update(bus.store)
    await result(bus, "A", 1, 0.25)
    await through_bus.update(bus)
    await from_store.update(bus.store)
    now = time.time()  # one instant for both: the ages in a frame move with the clock
    frames = [Console(record=True, width=120, file=io.StringIO()) for _ in range(2)]
    for console, snapshot in zip(frames, (from_store, through_bus), strict=True):
        console.print(live_view(snapshot, now=now, width=120))
    assert frames[0].export_text() == frames[1].export_text()
    assert from_store.cursor == through_bus.cursor
    assert from_store.sessions["A"].turns == 4
