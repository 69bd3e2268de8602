"""Session processes that a killed supervisor left behind, or a session's CLI when it died.

A Claude Code CLI outlives a supervisor killed with SIGKILL (nothing is left to close it),
and a resume started while the old process of the same conversation still runs may do no
work; a merge check left running would share the gate's worktree with the new one. So
`conductor resume` ends them first, and a session that closes ends what its CLI left (the
sandbox's proxies). Every process conductor starts for a run (its sessions and their Bash
commands, the setup and merge-check commands) carries `CONDUCTOR_SUPERVISED=<run>` in its
environment; a terminal where a person uses the hand commands does not, so it is never
touched.

Several conductor processes on one host may run sessions of the same run, even of the same
workstream: the supervisor and `conductor worker`s, or a worker paused past its lease and
the worker that took its workstream over. So each process also carries
`CONDUCTOR_OWNER=<host>:<pid>:<start>`, naming the conductor process that started it
(`owner_marker()`: its pid and its start time, which together name one process where a pid
alone is reused). A closing session ends only its own process's leftovers (`owned_by`); a resume
ends only those whose owner is gone (`orphaned`), which spares every live worker's, paused
or not. The owner is not asked for its kind: a resume can only start once the supervisor
it replaces is gone, so what that supervisor left is orphaned, and so is what a killed
worker left on this host, which nothing will ever drive again either. Processes without an
owner were started before owners were marked: a resume ends them as it always did.

Finding them reads `/proc/<pid>/environ`, which only Linux has; elsewhere nothing is found
and the old processes are left to end on their own (they exit once their stdin closes).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread

from conductor.workspace import OWNER_ENV, SUPERVISED_ENV

SESSION_ENV = "CONDUCTOR_SESSION"
PROC = Path("/proc")
GONE_WAIT = 5.0
GONE_STATES = frozenset("ZXx")  # /proc/<pid>/stat: a zombie is dead, only not yet reaped

# Which processes of a run to end, by their owner marker (None: they carry none).
Whose = Callable[[str | None], bool]


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command's name (the 3rd field on), or []."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _start_time(pid: int) -> str | None:
    """When process `pid` started, in clock ticks after boot (stat's 22nd field)."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else None


def marker_of(pid: int) -> str:
    """The owner marker of this host's process `pid`."""
    start = _start_time(pid) or secrets.token_hex(8)  # no /proc: nothing is found anyway
    return f"{socket.gethostname()}:{pid}:{start}"


def owner_marker() -> str:
    """This conductor process's marker, for the processes it starts (`OWNER_ENV`)."""
    return _own_marker(os.getpid())  # by pid: a forked child is another owner


@functools.cache
def _own_marker(pid: int) -> str:
    return marker_of(pid)


def owner_alive(marker: str) -> bool:
    """Whether the process `marker` names still runs. One on another host (or a marker that
    is not one) cannot be looked at here: taken as alive, so that nothing of it is ended."""
    parts = marker.rsplit(":", 2)
    if len(parts) != 3:
        return True
    host, pid, start = parts
    if host != socket.gethostname() or not pid.isdigit():
        return True
    fields = _stat(int(pid))
    return len(fields) > 19 and fields[0] not in GONE_STATES and fields[19] == start


def anyones(owner: str | None) -> bool:
    """Every process of the run, whoever started it."""
    return True


def owned_by(marker: str) -> Whose:
    """The processes that the conductor process `marker` started."""
    return lambda owner: owner == marker


def orphaned(owner: str | None) -> bool:
    """Processes whose owner is gone (a killed supervisor's, or a killed worker's), or which
    carry no owner (started before owners were marked)."""
    return owner is None or not owner_alive(owner)


def supervised_env(run_id: str) -> dict[str, str]:
    """This process's environment, marked as the run's and this process's: for the commands
    conductor runs for it (setup, merge checks), so that a resume ends them too if their
    supervisor was killed."""
    return {**os.environ, SUPERVISED_ENV: run_id, OWNER_ENV: owner_marker()}


def _environ(pid: int) -> list[bytes]:
    try:
        return (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:  # gone, or not ours to read
        return []


def _owner_in(environ: list[bytes]) -> str | None:
    prefix = f"{OWNER_ENV}=".encode()
    found = next((e[len(prefix) :] for e in environ if e.startswith(prefix)), None)
    return None if found is None else found.decode("utf-8", "replace")


def _ancestors() -> set[int]:
    """This process and its parents: a resume run from inside a session must not kill itself."""
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        fields = _stat(pid)
        if len(fields) < 2 or not fields[1].isdigit():
            break
        pid = int(fields[1])
    return found


def supervised_pids(
    run_id: str, session: str | None = None, *, whose: Whose = anyones
) -> list[int]:
    """Processes started for `run_id`'s sessions (or its session `session`) still alive,
    of the owners `whose` chooses."""
    if not PROC.is_dir():
        return []
    markers = {f"{SUPERVISED_ENV}={run_id}".encode()}
    if session is not None:
        markers.add(f"{SESSION_ENV}={session}".encode())
    spared = _ancestors()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        environ = _environ(int(entry.name))
        if markers <= set(environ) and whose(_owner_in(environ)):
            found.append(int(entry.name))
    return sorted(found)


async def end_leftovers(
    run_id: str, session: str | None = None, *, whose: Whose = anyones
) -> list[int]:
    """SIGKILL what is left running of a run's sessions (or of one), of the owners `whose`
    chooses, and wait until it is gone: a closed session's CLI's helpers (`owned_by` the
    process that ran it), or a killed supervisor's (`orphaned`)."""
    pids = await anyio.to_thread.run_sync(
        functools.partial(supervised_pids, run_id, session, whose=whose)
    )
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with anyio.move_on_after(GONE_WAIT):
        while pids and await anyio.to_thread.run_sync(  # noqa: ASYNC110
            functools.partial(supervised_pids, run_id, session, whose=whose)
        ):
            await anyio.sleep(0.05)  # other processes' deaths: nothing to wait on but /proc
    return pids
