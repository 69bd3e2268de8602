"""Leases: the git lock sessions take by hand, and the lock a run's one supervisor holds. A
lease whose holder process is known to be dead is reclaimed instead of waited out."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio

from conductor.bus.base import BusBase, token
from conductor.errors import LockHeld
from conductor.models import Lease, Run, RunState
from conductor.store.interface import Storage

GIT_LOCK = "git"
# Tokens of the leases this process holds. A lease naming this process's pid with a token not
# in here was taken by an earlier process that had the same pid (a container's pid 1 after a
# restart): its holder is dead, though a process with its pid is alive.
_HELD_HERE: set[str] = set()
SUPERVISOR_GONE = "interrupted (supervisor not running: conductor resume {run})"


def _host() -> str:
    """This machine's name, as `socket.gethostname()` gives it on POSIX."""
    return os.uname().nodename


class LockDoor(BusBase):
    async def acquire_lock(
        self,
        holder: str,
        *,
        lease_seconds: float = 300.0,
        wait_seconds: float = 0.0,
        name: str = GIT_LOCK,
    ) -> Lease:
        """Take the lock, waiting up to `wait_seconds`. A lease whose holder process is known
        to be dead (same host, no such pid, or this pid in an earlier process) is reclaimed at
        once instead of waited out."""
        mine = token(16)
        deadline = time.monotonic() + wait_seconds
        while True:
            lease = await self.store.acquire_lock(
                name,
                holder=holder,
                token=mine,
                pid=os.getpid(),
                host=_host(),
                lease_seconds=lease_seconds,
                run_id=self.run_id,
            )
            if lease is not None:
                _HELD_HERE.add(mine)
                return lease
            current = await self.store.get_lock(name)
            if current is not None and holder_is_dead(current):
                await self.store.release_lock(
                    name, token=current.token, reason="reclaimed", run_id=self.run_id
                )
                continue
            if time.monotonic() >= deadline:
                if current is None:
                    continue  # released between our two statements: try again
                raise LockHeld(name, current.holder, current.expires_at - self.now())
            await anyio.sleep(0.05)

    async def release_lock(self, lease: Lease) -> bool:
        """False when the lease had already ended (expired and taken by someone else)."""
        _HELD_HERE.discard(lease.token)
        released = await self.store.release_lock(lease.name, token=lease.token, run_id=self.run_id)
        return released is not None

    async def lock(self, name: str = GIT_LOCK) -> Lease | None:
        return await self.store.get_lock(name)

    async def force_release_lock(self, name: str = GIT_LOCK) -> Lease | None:
        return await self.store.release_lock(name, token=None, reason="forced", run_id=self.run_id)

    async def seen_state(self) -> str:
        """The run's state as a person should read it (see `seen_state`)."""
        return await seen_state(self.store, self.run)


async def seen_state(store: Storage, run: Run) -> str:
    """A run's state as a person should read it. A supervised run that says `active` while
    its supervisor is gone (killed: it could not say otherwise) reads interrupted, with the
    command that continues it; everything else as stored."""
    if run.state is RunState.ACTIVE and run.spec is not None:
        lease = await store.get_lock(supervisor_lock(run.id))
        if lease is None or holder_is_dead(lease):
            return SUPERVISOR_GONE.format(run=run.id)
    return run.state.value


def supervisor_lock(run_id: str) -> str:
    """The lock a run's one supervisor holds while it drives the run."""
    return f"supervisor {run_id}"


def holder_is_dead(lease: Lease) -> bool:
    if lease.pid is None or lease.host != _host():
        return False
    if lease.pid == os.getpid():
        return lease.token not in _HELD_HERE
    return not pid_alive(lease.pid)


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a killed child nobody has reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"
