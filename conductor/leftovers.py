"""Session processes that a killed supervisor left behind.

A Claude Code CLI outlives a supervisor killed with SIGKILL (nothing is left to close it),
and a resume started while the old process of the same conversation still runs may do no
work; a merge check left running would share the gate's worktree with the new one. So
`conductor resume` ends them first. Every process conductor starts for a run (its sessions
and their Bash commands, the setup and merge-check commands) carries
`CONDUCTOR_SUPERVISED=<run>` in its environment; a terminal where a person uses the hand
commands does not, so it is never touched.

Finding them reads `/proc/<pid>/environ`, which only Linux has; elsewhere nothing is found
and the old processes are left to end on their own (they exit once their stdin closes).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import anyio
import anyio.to_thread

from conductor.workspace import SUPERVISED_ENV

SESSION_ENV = "CONDUCTOR_SESSION"
PROC = Path("/proc")
GONE_WAIT = 5.0


def supervised_env(run_id: str) -> dict[str, str]:
    """This process's environment, marked as the run's: for the commands conductor runs for
    it (setup, merge checks), so that a resume ends them too if their supervisor was killed."""
    return {**os.environ, SUPERVISED_ENV: run_id}


def _environ(pid: int) -> bytes:
    try:
        return (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return b""


def _ancestors() -> set[int]:
    """This process and its parents: a resume run from inside a session must not kill itself."""
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            stat = (PROC / str(pid) / "stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def supervised_pids(run_id: str, session: str | None = None) -> list[int]:
    """Processes started for `run_id`'s sessions (or its session `session`) still alive."""
    if not PROC.is_dir():
        return []
    markers = {f"{SUPERVISED_ENV}={run_id}".encode()}
    if session is not None:
        markers.add(f"{SESSION_ENV}={session}".encode())
    spared = _ancestors()
    candidates = (int(e.name) for e in PROC.iterdir() if e.name.isdigit())
    return sorted(
        pid
        for pid in candidates
        if pid not in spared and markers <= set(_environ(pid).split(b"\0"))
    )


async def end_leftovers(run_id: str, session: str | None = None) -> list[int]:
    """SIGKILL what is left running of a run's sessions (or of one), and wait until it is
    gone: an earlier supervisor's, or a session CLI's helpers (the sandbox's proxies) once
    that CLI died."""
    pids = await anyio.to_thread.run_sync(supervised_pids, run_id, session)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with anyio.move_on_after(GONE_WAIT):
        while pids and await anyio.to_thread.run_sync(supervised_pids, run_id, session):  # noqa: ASYNC110
            await anyio.sleep(0.05)  # other processes' deaths: nothing to wait on but /proc
    return pids
