"""The run's hard cost ceiling (`max_cost`): a warning at 80 %, and at 100 % the run pauses.

What the run has spent is, at any moment, what the store's session rows say the finished
turns cost (the planner's from the run's spec: `costs.spend_of`, as every view counts it),
plus the turns in flight: each API response a session's CLI streamed since its turn began,
at list price (`costs.usage_cost`, the live view's `~` figure). The CLI says what a turn
cost only when it ends; a turn of fifty API calls must not run past the ceiling unseen.

It is looked at in two places: at every tool boundary of every session (its hooks, in
`conductor.session.hooks`, ask `at_tool_boundary` before a judged tool runs and after any
tool ran, so before the next API call), and about once a second by a task of the run (a
turn of plain text has no tool boundary; a turn that starts after the ceiling is held at its
first tool call). At 100 % the run's task stops the run as Ctrl-C does (`Control.stop`):
sessions are interrupted, nothing new starts, and their interrupted turns' results (what
they cost) are waited for; a hook that saw the ceiling holds its call until the interrupt,
and answers "stop here" if it did not come. The run ends `interrupted`, resumable with
`conductor resume RUN --max-cost N`, a ceiling higher than what it spent
(`on_max_cost = "stop"`: the run ends failed instead). A worker on another host holds its
sessions the same way, and leaves the rest to the supervisor (`watch_on_worker`).

How far past the ceiling a run can go: the API call each live session had in flight when
the ceiling was crossed (its response is counted at the next boundary, and no call follows
it). The count of a turn in flight has a response's output tokens only as far as the stream
had counted them; its result, when the turn ends, says the real cost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace

import anyio

from conductor.bus import Bus
from conductor.config import Config
from conductor.costs import spend_of, usage_cost
from conductor.errors import ConductorError, InvalidInput
from conductor.events import CostCeiling, EventKind, SdkAssistant, read
from conductor.run.control import Control

WARN_AT = 0.8  # of max_cost: the warning
POLL_SECONDS = 1.0
SETTLE = 20.0  # how long the stop waits for interrupted turns to report what they cost
HOLD_SECONDS = 30.0  # how long a hook holds its call for the interrupt, before it says stop
# A turn's in-flight estimate ends with these (its figures are in the session's row from its
# result on; a turn that ends without one is counted nowhere, as the views count it).
_TURN_OVER = frozenset(
    {
        EventKind.SDK_RESULT,
        EventKind.SESSION_PROMPT,
        EventKind.SESSION_DIED,
        EventKind.SESSION_INTERRUPTED,
        EventKind.SESSION_RESTARTED,
    }
)


def usd(amount: float) -> str:
    return f"${amount:.2f}"


async def spent_by_run(bus: Bus) -> float:
    """What the run's finished turns (and its planner) cost, as the store has it."""
    return sum(s.cost_usd for s in spend_of(bus.run.spec, await bus.sessions()).values())


async def ceiling_of(bus: Bus, config: Config) -> float:
    """The run's ceiling now: the last one `conductor resume --max-cost` set, or its own."""
    ceiling = config.max_cost
    for event in await bus.events():
        if event.kind == EventKind.RUN_MAX_COST:
            found = read(event, CostCeiling)
            if found is not None:
                ceiling = found.max_cost
    return ceiling


async def watch_on_worker(bus: Bus, control: Control, config: Config) -> CostWatch:
    """A worker's watch of the run's ceiling (the last one set): it holds the worker's
    sessions at their tool boundary; the supervisor does the rest."""
    ceiling = await ceiling_of(bus, config)
    watch = CostWatch(bus, control, replace(config, max_cost=ceiling), records=False)
    await watch.begin()
    return watch


async def resumed_config(bus: Bus, config: Config, max_cost: float | None) -> Config:
    """A resumed run's settings with its ceiling: the one asked for now (higher than what it
    spent, or 0 for none; recorded, so later resumes keep it), else the last one set."""
    spent = await spent_by_run(bus)
    if max_cost is None:
        ceiling = await ceiling_of(bus, config)
        if ceiling and spent >= ceiling:
            raise InvalidInput(
                f"run {bus.run_id} has spent {usd(spent)}, its whole cost ceiling of"
                f" {usd(ceiling)}: resume it with --max-cost HIGHER"
            )
        return replace(config, max_cost=ceiling)
    if max_cost and max_cost <= spent:
        raise InvalidInput(
            f"--max-cost {usd(max_cost)} is not more than run {bus.run_id} has spent"
            f" ({usd(spent)}): give a higher ceiling"
        )
    held = await bus.supervisor()
    if held is not None:  # its supervisor keeps the ceiling it has: not changed under it
        raise InvalidInput(
            f"run {bus.run_id} is being supervised already ({held.holder}): stop that one"
            " first (Ctrl-C), then resume it with --max-cost"
        )
    shown = usd(max_cost) if max_cost else "none"
    await bus.record(
        None,
        EventKind.RUN_MAX_COST,
        f"cost ceiling {shown} ({usd(spent)} spent)",
        CostCeiling(spent_usd=spent, max_cost=max_cost).to_json(),
    )
    return replace(config, max_cost=max_cost)


class CostWatch:
    """The run's spend held against `max_cost` (0: no ceiling: it never looks)."""

    def __init__(self, bus: Bus, control: Control, config: Config, *, records: bool = True) -> None:
        """`records`: False on a worker on another host: it holds its sessions at their tool
        boundary, while the supervisor alone warns, records and stops the run (the worker's
        session then stops as its lease sees the run is no longer active)."""
        self.records = records
        self.bus = bus
        self.control = control
        self.max_cost = config.max_cost
        self.stops = config.on_max_cost == "stop"
        self.cursor = 0  # events folded up to here
        self.in_flight: dict[str, dict[str, float]] = {}  # session -> API response -> cost
        self.warned = False
        self.reached = False
        self.spent = 0.0  # as last looked at
        self._reached = anyio.Event()
        self._lock = anyio.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_cost > 0

    async def begin(self) -> None:
        """Before the run's sessions start: the events so far folded (a resumed run's turns
        in flight ended with its last supervisor), and the warning not given twice for the
        same ceiling."""
        if not self.enabled:
            return
        for event in await self.bus.events():
            self.cursor = max(self.cursor, event.id)
            if event.kind == EventKind.RUN_COST_WARNING:
                found = read(event, CostCeiling)
                self.warned = found is not None and found.max_cost == self.max_cost

    async def __call__(self) -> None:
        """The run's task: a look about once a second until the ceiling is reached (here or
        at a session's tool boundary), and then the run's stop."""
        if not self.enabled:
            return
        while not self.reached:
            with contextlib.suppress(ConductorError):  # the store's trouble: look again later
                await self.look()
            with anyio.move_on_after(POLL_SECONDS):
                await self._reached.wait()
        self.control.ceiling = self.max_cost
        if self.stops:
            self.control.ended = f"cost ceiling {usd(self.max_cost)} reached (on_max_cost = stop)"
        with anyio.CancelScope(shield=True):  # the run's scope is what the stop cancels
            # The interrupted turns' results say what they cost: waited for, or a resumed
            # run would not know what it had spent.
            await self.control.stop(f"cost ceiling {usd(self.max_cost)} reached", settle=SETTLE)

    async def look(self) -> bool:
        """What the run has spent now, warned about or stopped at; True: the ceiling is
        reached (the run is stopping)."""
        if not self.enabled:
            return False
        async with self._lock:
            if self.reached:
                return True
            self.spent = await self._spent()
            if self.spent >= WARN_AT * self.max_cost and not self.warned:
                self.warned = True
                await self._record(
                    EventKind.RUN_COST_WARNING,
                    f"cost {usd(self.spent)}: {self.spent / self.max_cost:.0%} of the"
                    f" {usd(self.max_cost)} ceiling (max_cost)",
                )
            if self.spent < self.max_cost:
                return False
            self.reached = True
            then = (
                "the run stops"
                if self.stops
                else f"sessions pause; continue with conductor resume {self.bus.run_id}"
                " --max-cost HIGHER"
            )
            await self._record(
                EventKind.RUN_COST_CEILING,
                f"cost ceiling reached: {usd(self.spent)} of {usd(self.max_cost)}: {then}",
            )
        self._reached.set()  # the run's task stops the run
        return True

    async def at_tool_boundary(self, session: str) -> str | None:
        """A session's hook, at a tool call: None, go on; or (the ceiling reached, after
        holding the call until the run's stop interrupts the session) why it must stop."""
        if not await self.look():
            return None
        with anyio.move_on_after(HOLD_SECONDS):
            await anyio.sleep_forever()  # the interrupt ends the turn meanwhile
        return (
            f"the run's cost ceiling ({usd(self.max_cost)}) is reached: stop here and end your turn"
        )

    async def _spent(self) -> float:
        """Finished turns from the rows, turns in flight from the events. The events are
        read first: a result landing between the two reads is then counted twice for one
        look (more, never less, than was spent)."""
        while True:
            events = await self.bus.events(after=self.cursor, limit=500)
            for event in events:
                self.cursor = event.id
                self._fold(event.session, event.kind, event.id, event.payload)
            if len(events) < 500:
                break
        finished = await spent_by_run(self.bus)
        return finished + sum(sum(calls.values()) for calls in self.in_flight.values())

    def _fold(
        self, session: str | None, kind: str, event_id: int, payload: Mapping[str, object] | None
    ) -> None:
        if session is None:
            return
        if kind in _TURN_OVER:
            self.in_flight.pop(session, None)
        elif kind == EventKind.SDK_ASSISTANT:
            message = SdkAssistant.from_json(payload or {})
            cost = usage_cost(message.model, message.usage)
            if cost is not None:  # one response streams as several messages: counted once
                key = message.message_id or f"event {event_id}"
                calls = self.in_flight.setdefault(session, {})
                calls[key] = max(cost, calls.get(key, 0.0))

    async def _record(self, kind: EventKind, summary: str) -> None:
        if not self.records:
            return
        payload = CostCeiling(spent_usd=self.spent, max_cost=self.max_cost)
        with contextlib.suppress(ConductorError):
            await self.bus.record(None, kind, summary, payload.to_json())


__all__ = ["CostWatch", "ceiling_of", "resumed_config", "spent_by_run", "watch_on_worker"]
