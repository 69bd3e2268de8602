"""A run stopped from another process or host (`conductor stop`, the browser), not only by
Ctrl-C on its supervisor: the stop is asked through the store (`Bus.ask_stop`, a
`run.stop_asked` event), and the supervisor's watch (`StopWatch`) stops the run as Ctrl-C
does. Bus and store on both backends (SQLite, a real PostgreSQL server); one end-to-end run
with the real Claude Code CLI against the stand-in, stopped by `conductor stop` in another
process and resumed to the end."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import test_storage_conformance as conformance
from support import Cli, clean_env, git, one_line_error

from conductor.bus import Bus, create_run, supervisor_lock
from conductor.errors import InvalidInput
from conductor.events import EventKind
from conductor.models import RunState
from conductor.run.control import Control
from conductor.run.stop_watch import StopWatch, since
from conductor.standin.harness import STANDIN_MODEL, Offline, offline
from conductor.store import Storage, Store

pytestmark = pytest.mark.anyio

# The conformance suite's fixtures: every backend, and two connections to one database.
backend, storage, other = conformance.backend, conformance.storage, conformance.other

SPEC: dict[str, Any] = {
    "plan": {"workstreams": []}
}  # a run `conductor run` started (only its having one counts)


async def _run(store: Storage, *, spec: dict[str, Any] | None = SPEC) -> Bus:
    return await create_run(
        store, goal="g", repo_root=None, base_ref=None, base_commit=None, spec=spec
    )


async def _supervised(store: Storage, *, host: str | None = None, pid: int | None = None) -> Bus:
    """A run whose supervisor is this process (or the holder named by `host` and `pid`)."""
    bus = await _run(store)
    if host is None and pid is None:
        await bus.acquire_lock("pid here", name=supervisor_lock(bus.run_id), lease_seconds=3600)
    else:
        await store.acquire_lock(
            supervisor_lock(bus.run_id),
            holder=f"pid {pid} on {host}",
            token="t",
            pid=pid,
            host=host,
            lease_seconds=3600,
            run_id=bus.run_id,
        )
    return bus


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------------ the store


async def test_the_first_event_of_a_kind_after_an_id_is_found_by_another_connection(
    storage: Storage, other: Storage
) -> None:
    bus = await _run(storage)
    start = await since(bus)
    await bus.record(None, EventKind.RUN_FAULT, "not a stop")
    assert await other.first_event(bus.run_id, EventKind.RUN_STOP_ASKED, after=start) is None
    first = await bus.record(None, EventKind.RUN_STOP_ASKED, "stop asked by one")
    second = await bus.record(None, EventKind.RUN_STOP_ASKED, "stop asked by two")
    found = await other.first_event(bus.run_id, EventKind.RUN_STOP_ASKED, after=start)
    assert found is not None and (found.id, found.summary) == (first, "stop asked by one")
    later = await other.first_event(bus.run_id, EventKind.RUN_STOP_ASKED, after=first)
    assert later is not None and later.id == second
    assert await other.first_event(bus.run_id, EventKind.RUN_STOP_ASKED, after=second) is None


async def test_another_runs_stop_is_not_this_runs(storage: Storage) -> None:
    mine, theirs = await _supervised(storage), await _supervised(storage)
    await theirs.ask_stop("someone")
    assert await mine.stop_asked(after=0) is None


# ------------------------------------------------------------------------------ asking


async def test_a_stop_asked_of_a_supervised_run_says_who_asked(storage: Storage) -> None:
    bus = await _supervised(storage)
    asked = await bus.ask_stop("ann on laptop", "lunch\nbreak")
    found = await bus.stop_asked(after=0)
    assert found is not None and found.id == asked
    assert found.kind == EventKind.RUN_STOP_ASKED
    assert found.summary == "stop asked by ann on laptop: lunch break"


async def test_a_supervisor_on_another_host_is_taken_at_its_word(storage: Storage) -> None:
    bus = await _supervised(storage, host="elsewhere.invalid", pid=_dead_pid())
    assert await bus.ask_stop("ann") > 0


async def _on_workers(store: Storage, *, seen_since_take: float | None) -> Bus:
    """A run on workers whose supervisor took it on another host 60 s ago, and said it was
    alive `seen_since_take` seconds after (None: never)."""
    now = store.clock()
    store.clock = lambda: now - 60
    bus = await _run(store, spec={**SPEC, "workers": True})
    await store.acquire_lock(
        supervisor_lock(bus.run_id),
        holder="pid 4321 on elsewhere.invalid",
        token="t",
        pid=4321,
        host="elsewhere.invalid",
        lease_seconds=3600,
        run_id=bus.run_id,
    )
    if seen_since_take is not None:
        store.clock = lambda: now - 60 + seen_since_take
        await store.supervisor_alive(bus.run_id)
    store.clock = lambda: now
    return bus


async def test_a_run_on_workers_whose_supervisor_beats_on_another_host_is_stopped(
    storage: Storage,
) -> None:
    bus = await _on_workers(storage, seen_since_take=55)
    assert await bus.ask_stop("ann") > 0


@pytest.mark.parametrize("seen_since_take", [None, 30])
async def test_a_run_on_workers_whose_supervisor_fell_silent_is_refused(
    storage: Storage, seen_since_take: float | None
) -> None:
    bus = await _on_workers(storage, seen_since_take=seen_since_take)
    with pytest.raises(InvalidInput) as refused:
        await bus.ask_stop("ann")
    silent = 60 - (seen_since_take or 0)
    assert str(refused.value) == (
        f"run {bus.run_id}'s supervisor (pid 4321 on elsewhere.invalid) has not been heard"
        f" from for {silent} s: it is gone, and nothing would stop the run; it is resumable"
        f" as it is, on elsewhere.invalid: conductor resume {bus.run_id}"
    )
    assert await bus.supervisor() is None


async def test_a_run_nobody_supervises_is_refused_as_resumable_already(storage: Storage) -> None:
    bus = await _run(storage)
    with pytest.raises(InvalidInput) as refused:
        await bus.ask_stop("ann")
    assert str(refused.value) == (
        f"run {bus.run_id} has no supervisor running (it was killed or has exited): nothing"
        f" to stop; it is resumable as it is: conductor resume {bus.run_id}"
    )
    assert await bus.stop_asked(after=0) is None


async def test_a_run_whose_supervisor_died_is_refused(storage: Storage) -> None:
    bus = await _supervised(storage, host=os.uname().nodename, pid=_dead_pid())
    with pytest.raises(InvalidInput, match="has no supervisor running"):
        await bus.ask_stop("ann")


@pytest.mark.parametrize(
    ("state", "then"),
    [(RunState.INTERRUPTED, ": conductor resume"), (RunState.FINISHED, "")],
)
async def test_a_run_that_is_not_active_is_refused(
    storage: Storage, state: RunState, then: str
) -> None:
    bus = await _supervised(storage)
    await bus.set_state(state, "ended")
    with pytest.raises(InvalidInput) as refused:
        await bus.ask_stop("ann")
    said = f"run {bus.run_id} is {state.value}, not active: nothing to stop"
    assert str(refused.value) == said + (f"{then} {bus.run_id}" if then else "")


async def test_a_hand_run_has_no_supervisor_to_stop(storage: Storage) -> None:
    bus = await _run(storage, spec=None)
    with pytest.raises(InvalidInput, match="has no supervisor to stop"):
        await bus.ask_stop("ann")


async def test_a_stop_needs_someone_who_asks(storage: Storage) -> None:
    bus = await _supervised(storage)
    with pytest.raises(InvalidInput, match="say who asks"):
        await bus.ask_stop(" \n ")


# ------------------------------------------------------------------------------ the watch


async def test_the_watch_stops_the_run_when_a_stop_is_asked(
    storage: Storage, other: Storage
) -> None:
    bus = await _supervised(storage)
    control = Control()
    watch = StopWatch(bus, control, after=await since(bus), every=0.05)
    assert not await watch.look()
    asker = Bus(other, bus.run)  # another process, or another host
    await asker.ask_stop("ann", "enough")
    with anyio.fail_after(10):
        await watch()
    assert control.stopping and control.scope.cancel_called
    assert control.asked_by == "stop asked by ann: enough"
    assert control.stop_note == "stopped (stop asked by ann: enough): resumable"


async def test_a_stop_asked_before_the_supervisor_began_does_not_stop_it(
    storage: Storage,
) -> None:
    bus = await _supervised(storage)
    await bus.ask_stop("ann")  # the last supervisor's, honoured (or not) before it ended
    control = Control()
    watch = StopWatch(bus, control, after=await since(bus))
    assert not await watch.look()
    assert not control.stopping


async def test_the_watch_moves_on_past_what_it_has_seen(storage: Storage) -> None:
    bus = await _supervised(storage)
    watch = StopWatch(bus, Control(), after=0)
    last = await bus.record(None, EventKind.RUN_FAULT, "something else")
    assert not await watch.look()
    assert watch.after == last


# ------------------------------------------------------------------------------ the command


def test_stop_of_a_hand_run_is_a_one_line_error(team: Cli) -> None:
    assert "has no supervisor to stop" in one_line_error(team.fails("stop"))


def test_stop_of_an_unknown_run_is_a_one_line_error(team: Cli) -> None:
    assert "unknown run 'nope'" in one_line_error(team.fails("stop", "nope"))


def test_a_session_may_not_stop_its_own_run(team: Cli) -> None:
    line = one_line_error(team.fails("stop", CONDUCTOR_SUPERVISED="r", CONDUCTOR_SESSION="A"))
    assert "you may not run 'conductor stop'" in line


def _supervised_here(repo: Path, db: str | None = None, **holder: Any) -> Bus:
    """A run in `repo`'s database (or `db`), supervised by this process (where `cli` runs
    too) or the holder given (`host`, `pid`)."""

    async def make() -> Bus:
        async with Store.open(db or repo / ".conductor" / "conductor.db") as store:
            return await _supervised(store, **holder)

    return anyio.run(make)


def test_stop_without_waiting_says_whom_it_asked(cli: Cli, repo: Path) -> None:
    bus = _supervised_here(repo)
    said = cli.ok("stop", "--no-wait", "--why", "a test").out
    assert said.startswith(f"stop asked of run {bus.run_id} (pid here): it stops within")
    assert said.rstrip().endswith(f"conductor resume {bus.run_id}")
    assert "then continue with: " in said
    asked = json.loads(cli.ok("logs", "--json").out.splitlines()[-1])  # one event a line
    assert asked["kind"] == EventKind.RUN_STOP_ASKED
    assert asked["summary"].endswith("(conductor stop): a test")


def test_stop_as_json_gives_the_run_the_stop_and_the_resume_command(cli: Cli, repo: Path) -> None:
    bus = _supervised_here(repo)
    said = cli.ok("stop", "--no-wait", "--json").json()
    assert said["run"] == bus.run_id and said["asked"] > 0
    assert said["supervisor"] == "pid here" and not said["stopped"]
    assert said["resume"].endswith(f"conductor resume {bus.run_id}")


def test_stop_on_postgresql_of_a_supervisor_on_another_host(
    cli: Cli, repo: Path, postgres_url: str
) -> None:
    bus = _supervised_here(repo, postgres_url, host="elsewhere.invalid", pid=4321)
    said = cli.ok("--db", postgres_url, "stop", bus.run_id, "--no-wait").out
    assert f"stop asked of run {bus.run_id} (pid 4321 on elsewhere.invalid)" in said
    assert f"--db {shlex.quote(postgres_url)} resume {bus.run_id}" in said  # where --db said


def test_stop_that_is_not_honoured_in_time_exits_1(cli: Cli, repo: Path) -> None:
    bus = _supervised_here(repo)  # this process's: nobody watches for the stop
    result = cli.fails("stop", "--wait", "0.3", code=1)
    assert f"run {bus.run_id} has not stopped within 0.3 s (pid here was asked)" in result.err


# ------------------------------------------------------------------------------ end to end

COMMIT = "git add -A && (git diff --cached --quiet || git commit -qm '${role}: work')"
WRITE = {"file_path": "${cwd}/core.py", "content": "def greet():\n    return 'hello'\n"}
SCRIPT: dict[str, Any] = {
    "roles": {
        "A": [
            [  # the first turn: stopped while it waits for its model
                {"tool": "Bash", "input": {"command": "true"}},
                {"tool": "Write", "input": WRITE, "delay": 30.0},
                {"text": "never reached"},
            ],
            [  # resumed: told it was cut short, it does the work
                {"tool": "Write", "input": WRITE},
                {"tool": "Bash", "input": {"command": COMMIT}},
                {"tool": "mcp__bus__request_review", "input": {"note": "core"}},
                {"text": "A is done."},
            ],
        ],
    }
}
PLAN = {
    "workstreams": [{"id": "A", "name": "core", "task": "Write core.greet()", "owns": ["core.py"]}]
}
TOML = f'model = "{STANDIN_MODEL}"\nreview = "auto"\nstall_seconds = 60\n'


async def _conductor(off: Offline, *args: str, log: str) -> anyio.abc.Process:
    with open(off.repo.parent / log, "ab") as out:  # noqa: ASYNC230 -- the child has its copy
        return await anyio.open_process(
            [sys.executable, "-m", "conductor", *args],
            cwd=off.repo,
            env=clean_env(**off.env),
            stdout=out,
            stderr=out,
        )


async def _exit(proc: anyio.abc.Process, timeout: float = 120) -> int:
    try:
        with anyio.fail_after(timeout):
            return await proc.wait()
    except TimeoutError:
        proc.kill()
        raise


def _log(off: Offline, name: str) -> str:
    return (off.repo.parent / name).read_text(errors="replace")


@pytest.fixture
async def stoppable(tmp_path: Path) -> AsyncIterator[Offline]:
    async with offline(SCRIPT, tmp_path / "stop") as off:
        (off.repo / "conductor.toml").write_text(TOML)
        (off.repo.parent / "plan.json").write_text(json.dumps(PLAN))
        git(off.repo, "add", "conductor.toml")
        git(off.repo, "commit", "-qm", "conductor settings")
        yield off


async def test_conductor_stop_from_another_process_interrupts_the_run_and_resume_ends_it(
    stoppable: Offline,
) -> None:
    off = stoppable
    plan = off.repo.parent / "plan.json"
    run = await _conductor(off, "run", "x", "--plan", str(plan), "--no-live", log="run.log")
    db = off.repo / ".conductor" / "conductor.db"
    with anyio.fail_after(60):  # A's first turn is under way (its model delays the Write)
        while True:
            if db.exists():
                async with Store.open(db) as store:
                    latest = await store.latest_run()
                    events = await store.list_events(latest.id) if latest else []
                if any(e.kind == "sdk.tool_result" and e.session == "A" for e in events):
                    break
            assert run.returncode is None, _log(off, "run.log")
            await anyio.sleep(0.1)
    assert latest is not None
    run_id = latest.id
    stop = await _conductor(off, "stop", "--why", "end to end", log="stop.log")
    assert await _exit(stop, 60) == 0, _log(off, "stop.log")
    assert await _exit(run, 30) == 130, _log(off, "run.log")
    said = _log(off, "stop.log")
    assert f"run {run_id} stopped, interrupted: continue with: " in said, said
    assert said.rstrip().endswith(f"conductor resume {run_id}")
    assert "interrupted: continue with: " in _log(off, "run.log")
    async with Store.open(db) as store:
        assert (await store.get_run(run_id)).state is RunState.INTERRUPTED
        asked = await store.first_event(run_id, EventKind.RUN_STOP_ASKED)
        assert asked is not None and asked.summary.endswith("(conductor stop): end to end")
    resumed = await _conductor(off, "resume", run_id, "--no-live", log="resume.log")
    assert await _exit(resumed) == 0, _log(off, "resume.log")  # the old stop stops it not
    assert "core.py" in git(off.repo, "ls-tree", "--name-only", f"conductor/{run_id}").split()
    async with Store.open(db) as store:
        assert (await store.get_run(run_id)).state is RunState.FINISHED
