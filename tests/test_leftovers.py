"""Ending what a killed supervisor left running: only the processes marked for that run, and
of them only the ones whose owner (the supervisor or worker that started them) is gone; what
a closed session's CLI left: only its own process's (another worker's session of the same
name on this host lives on)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from conductor.bus import Bus
from conductor.events import EventKind
from conductor.leftovers import (
    SESSION_ENV,
    SUPERVISED_ENV,
    end_leftovers,
    marker_of,
    orphaned,
    owner_alive,
    owner_marker,
    supervised_env,
    supervised_pids,
)
from conductor.run.accounting import Ledger
from conductor.run.lifecycle import _pick_up
from conductor.run.started import StartedRun
from conductor.session import SessionConfig
from conductor.session.headless import HeadlessSession
from conductor.workspace import OWNER_ENV

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not os.path.isdir("/proc"), reason="finding them needs /proc (Linux)"),
]

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def processes() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    started: dict[str, subprocess.Popen[bytes]] = {}

    def env(run: str | None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k != SUPERVISED_ENV}
        return {**base, SUPERVISED_ENV: run} if run else base

    started["mine"] = subprocess.Popen(SLEEPER, env=env("run-1"))
    started["other run"] = subprocess.Popen(SLEEPER, env=env("run-2"))
    started["a person's"] = subprocess.Popen(SLEEPER, env=env(None))
    yield started
    for proc in started.values():
        proc.kill()
        proc.wait()


async def test_the_processes_of_a_run_are_found_by_their_marker(
    processes: dict[str, subprocess.Popen[bytes]],
) -> None:
    assert supervised_pids("run-1") == [processes["mine"].pid]


async def test_ending_leftovers_kills_the_runs_processes_and_nothing_else(
    processes: dict[str, subprocess.Popen[bytes]],
) -> None:
    assert await end_leftovers("run-1") == [processes["mine"].pid]
    assert processes["mine"].wait(timeout=5) == -9
    assert processes["other run"].poll() is None
    assert processes["a person's"].poll() is None
    assert supervised_pids("run-1") == []


# ---------------------------------------------------------------------------- owners

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Sleepers standing for session processes (or conductor processes), with `marks` in
    their environment (none of the test process's own conductor marks)."""
    started: list[subprocess.Popen[bytes]] = []
    ours = (SUPERVISED_ENV, SESSION_ENV, OWNER_ENV)

    def start(**marks: str) -> subprocess.Popen[bytes]:
        base = {k: v for k, v in os.environ.items() if k not in ours}
        started.append(subprocess.Popen(SLEEPER, env={**base, **marks}))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def session_of(owner: str, session: str = "A", run: str = "run-1") -> dict[str, str]:
    return {SUPERVISED_ENV: run, SESSION_ENV: session, OWNER_ENV: owner}


def dead_marker(spawn: Spawn) -> str:
    """The marker of a conductor process that was killed (a supervisor, SIGKILLed)."""
    gone = spawn()
    marker = marker_of(gone.pid)
    gone.kill()
    gone.wait()
    return marker


async def test_a_closing_session_ends_its_own_leftovers_not_another_workers_of_that_name(
    spawn: Spawn, bus: Bus, tmp_path: Path
) -> None:
    other_worker = spawn()  # a live conductor worker on this host that took A over
    mine = spawn(**session_of(owner_marker()))
    theirs = spawn(**session_of(marker_of(other_worker.pid)))
    my_other_session = spawn(**session_of(owner_marker(), session="B"))
    config = SessionConfig(env=session_of(owner_marker()), config_dir=tmp_path / "claude")
    session = HeadlessSession(bus, "A", tmp_path, config)
    await session.__aexit__(None, None, None)  # never connected: it only cleans up
    assert mine.wait(timeout=5) == -9
    assert theirs.poll() is None
    assert my_other_session.poll() is None


async def test_a_resume_ends_a_dead_supervisors_leftovers_not_a_live_workers(
    spawn: Spawn,
) -> None:
    worker = spawn()
    left = spawn(**session_of(dead_marker(spawn)))
    workers = spawn(**session_of(marker_of(worker.pid)))
    assert await end_leftovers("run-1", whose=orphaned) == [left.pid]
    assert left.wait(timeout=5) == -9
    assert workers.poll() is None


async def test_a_resume_ends_processes_without_an_owner_as_before(spawn: Spawn) -> None:
    old = spawn(**{SUPERVISED_ENV: "run-1", SESSION_ENV: "A"})  # started before owners
    assert await end_leftovers("run-1", whose=orphaned) == [old.pid]
    assert old.wait(timeout=5) == -9


async def test_picking_a_run_up_ends_what_the_dead_supervisor_left_and_spares_a_worker(
    spawn: Spawn, bus: Bus
) -> None:
    worker = spawn()
    run = bus.run_id
    left = spawn(**session_of(dead_marker(spawn), run=run))
    old = spawn(**{SUPERVISED_ENV: run, SESSION_ENV: "B"})
    workers = spawn(**session_of(marker_of(worker.pid), run=run))
    started = SimpleNamespace(bus=bus, ledger=Ledger(10.0), outcomes={})
    await _pick_up(cast(StartedRun, started))
    assert left.wait(timeout=5) == -9
    assert old.wait(timeout=5) == -9
    assert workers.poll() is None
    ended = [e for e in await bus.events() if e.kind == EventKind.RUN_LEFTOVERS]
    assert [e.summary for e in ended] == ["ended 2 session processes the last supervisor left"]


def test_a_paused_worker_still_owns_its_sessions(spawn: Spawn) -> None:
    paused = spawn()
    paused.send_signal(signal.SIGSTOP)  # a worker paused past its lease
    assert owner_alive(marker_of(paused.pid))


def test_a_killed_owner_not_reaped_yet_is_gone(spawn: Spawn) -> None:
    zombie = spawn()
    marker = marker_of(zombie.pid)
    zombie.kill()  # not waited for: a zombie until the fixture reaps it
    stat = Path(f"/proc/{zombie.pid}/stat")
    deadline = time.monotonic() + 5
    while ") Z" not in stat.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not owner_alive(marker)


def test_a_reused_pid_is_not_the_owner_and_another_hosts_owner_is_not_judged() -> None:
    assert owner_alive(owner_marker())
    assert not owner_alive(f"{socket.gethostname()}:{os.getpid()}:1")  # started at another time
    assert owner_alive(f"not-{socket.gethostname()}:1:1")


def test_the_commands_run_for_a_run_carry_this_processs_marker() -> None:
    env = supervised_env("run-1")
    assert (env[SUPERVISED_ENV], env[OWNER_ENV]) == ("run-1", owner_marker())
