"""A stop asked of a run's supervisor from anywhere: another process, another host, the
browser. The asker records `run.stop_asked`; the supervisor looks for one about once a
second (`conductor.run.stop_watch`) and stops the run as Ctrl-C would, leaving it
`interrupted` and resumable. The event is the whole channel: it reaches a supervisor on
another host through the shared database, and it stays in the run's history."""

from __future__ import annotations

import os

from conductor.bus.base import BusBase
from conductor.bus.lock import holder_is_dead, supervisor_lock
from conductor.errors import InvalidInput
from conductor.events import EventKind
from conductor.models import Event, Lease, RunState
from conductor.store.work import SUPERVISOR_SILENT
from conductor.text import one_line

ASKER_LIMIT = 200  # characters of who asked and why, kept in the event's summary


class StopDoor(BusBase):
    async def ask_stop(self, by: str, why: str = "") -> int:
        """Ask the run's supervisor to stop the run (the `run.stop_asked` event's id). `by`
        says who asks (a person, a host, "the browser"), `why` anything they add. Refused
        (InvalidInput, one line) when there is nothing to stop: the run is not active, it
        was never supervised (a hand run), or its supervisor is gone (it is resumable as it
        is)."""
        who = one_line(by, ASKER_LIMIT)
        if not who:
            raise InvalidInput("say who asks for the stop")
        run = await self.refresh()
        if run.spec is None:
            raise InvalidInput(
                f"run {run.id} has no supervisor to stop: it was not started by conductor run"
                " (its sessions use the hand commands)"
            )
        if run.state is not RunState.ACTIVE:
            then = "" if run.state is RunState.FINISHED else f": conductor resume {run.id}"
            raise InvalidInput(
                f"run {run.id} is {run.state.value}, not active: nothing to stop{then}"
            )
        lease = await self.store.get_lock(supervisor_lock(run.id))
        if lease is None or holder_is_dead(lease):
            raise InvalidInput(
                f"run {run.id} has no supervisor running (it was killed or has exited):"
                f" nothing to stop; it is resumable as it is: conductor resume {run.id}"
            )
        silent = await self._silent_for(lease)
        if silent is not None:  # its host alone can see it died, and reclaim the run
            raise InvalidInput(
                f"run {run.id}'s supervisor ({lease.holder}) has not been heard from for"
                f" {silent:.0f} s: it is gone, and nothing would stop the run; it is"
                f" resumable as it is, on {lease.host}: conductor resume {run.id}"
            )
        reason = one_line(why, ASKER_LIMIT)
        summary = f"stop asked by {who}" + (f": {reason}" if reason else "")
        return await self.record(None, EventKind.RUN_STOP_ASKED, summary)

    async def supervisor(self) -> Lease | None:
        """The lease of the supervisor driving the run now (its holder says which process on
        which host), or None: nobody holds the run, or its holder is gone. On this host a
        holder is gone when its process is; on another host only a run on workers tells,
        by its supervisor's heartbeat falling silent (see `conductor.run.remote`): any
        other holder there is taken at its word."""
        lease = await self.store.get_lock(supervisor_lock(self.run_id))
        if lease is None or holder_is_dead(lease) or await self._silent_for(lease) is not None:
            return None
        return lease

    async def _silent_for(self, lease: Lease) -> float | None:
        """How long the supervisor holding `lease` on another host has not been heard from,
        when that says it is gone (a run on workers, whose supervisor says it is alive every
        few seconds, silent for over SUPERVISOR_SILENT), else None."""
        if lease.host == os.uname().nodename or not (self.run.spec or {}).get("workers"):
            return None
        seen = await self.store.supervisor_seen(self.run_id)
        silent = self.now() - max(lease.acquired_at, seen or 0.0)  # from its take, till it beats
        return silent if silent > SUPERVISOR_SILENT else None

    async def stop_asked(self, *, after: int) -> Event | None:
        """The first stop asked after the event id `after`, if any."""
        return await self.store.first_event(self.run_id, EventKind.RUN_STOP_ASKED, after=after)
