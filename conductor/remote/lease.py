"""A worker's lease on the workstream it runs: renewed every third of its length, and
confirmed before anything that hands work on (a push of the session's branch, a merge
request). A worker cut off from the database for longer than its lease (a paused VM, a
partition) has had its workstream taken over by another meanwhile: it stops at the first
confirmation instead of racing that worker with pushes of the same branch."""

from __future__ import annotations

import anyio

from conductor.bus import Bus
from conductor.bus import work as work_queue
from conductor.errors import ConductorError
from conductor.models import Assignment, RunState
from conductor.run.control import Control


class LeaseLost(ConductorError):
    """The lease ran out and another worker took the workstream over."""


class HeldLease:
    def __init__(self, bus: Bus, taken: Assignment, *, seconds: float, control: Control) -> None:
        """`taken`: the workstream as this worker took it (its attempt is the lease's token:
        a worker of the same name that took it again later holds another one)."""
        self.bus = bus
        self.taken = taken
        self.name = taken.session
        self.seconds = seconds
        self.control = control
        self.lost = False

    async def renew(self) -> bool:
        held = await work_queue.renew(self.bus, self.taken, self.seconds)
        self.lost = self.lost or not held
        return held

    async def confirm(self) -> None:
        """Still this worker's, renewed; else the workstream stops here (LeaseLost)."""
        if await self.renew():
            return
        await self.control.stop()
        raise LeaseLost(f"{self.name}: this worker's lease ran out and another took it over")

    async def keep(self) -> None:
        """Renew every third of the lease; stop the workstream when the lease was lost or
        the run stopped (Ctrl-C on the supervisor, a fault, an end). A renewal the store
        could not take (a dropped connection) is tried again while the lease has time left;
        past it, another worker may hold the workstream, so this one stops."""
        held_until = anyio.current_time() + self.seconds
        while True:
            await anyio.sleep(self.seconds / 3)
            try:
                held = await self.renew()
                run = await self.bus.refresh()
            except ConductorError:
                if anyio.current_time() < held_until:
                    continue
                self.lost = True
                await self.control.stop()
                return
            held_until = anyio.current_time() + self.seconds
            if not held or run.state is not RunState.ACTIVE:
                await self.control.stop()
                return
