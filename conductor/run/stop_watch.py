"""The supervisor's ear for a stop asked from elsewhere (`conductor stop`, the browser, on
this host or another): a task of the run that looks for a `run.stop_asked` event about once
a second and then stops the run exactly as Ctrl-C does (`Control.stop`): sessions
interrupted, the run `interrupted`, resumable with `conductor resume`.

It polls rather than waking on every change: `wait_for_change` fires on every write of the
run (each tool call of each session), and a stop need not be heard faster than a person
can ask twice. Only stops asked after this supervisor began count (`since`): one asked of
an earlier supervisor of the run, honoured or not, does not stop a resumed run."""

from __future__ import annotations

import contextlib

import anyio

from conductor.bus import Bus
from conductor.errors import ConductorError
from conductor.run.control import Control

POLL_SECONDS = 1.0


async def since(bus: Bus) -> int:
    """The event id a new supervisor of the run watches after: the run's newest now. Read
    before the supervisor takes the run, so that no stop asked once it holds it is missed."""
    newest = await bus.last_event()
    return newest.id if newest is not None else 0


class StopWatch:
    def __init__(
        self, bus: Bus, control: Control, *, after: int, every: float = POLL_SECONDS
    ) -> None:
        self.bus = bus
        self.control = control
        self.after = after  # no stop was asked up to this event id (as far as this run goes)
        self.every = every

    async def __call__(self) -> None:
        """Until a stop is asked (then the run stops) or the run's tasks end."""
        while True:
            await anyio.sleep(self.every)
            with contextlib.suppress(ConductorError):  # the store's trouble: look again later
                if await self.look():
                    return

    async def look(self) -> bool:
        """One look: whether a stop was asked since the last (and the run was stopped)."""
        # The newest id first: every event up to it is visible to the look that follows (ids
        # become visible in order on both backends), so the next look may start after it.
        newest = await self.bus.last_event()
        asked = await self.bus.stop_asked(after=self.after)
        if asked is None:
            self.after = max(self.after, newest.id if newest is not None else 0)
            return False
        with anyio.CancelScope(shield=True):  # the run's scope is what the stop cancels
            await self.control.stop(asked.summary)
        return True
