"""Every run of a database in a line: what `conductor runs` prints and the browser's runs
page shows, read once here."""

from __future__ import annotations

from dataclasses import dataclass

from conductor.bus import Bus
from conductor.bus import list_runs as stored_runs
from conductor.costs import spend_of
from conductor.models import Run
from conductor.readmodel.sessions import real_sessions
from conductor.store.interface import Storage


@dataclass(frozen=True)
class RunLine:
    run: Run
    state: str  # as a person should read it (`Bus.seen_state`)
    sessions: int  # those that run (not `human`, `auto`)
    cost_usd: float  # the planner's, sessions' and reviewers'


async def run_lines(store: Storage) -> list[RunLine]:
    """Every run, oldest first."""
    lines = []
    for run in await stored_runs(store):
        bus = Bus(store, run)
        every = await bus.sessions()
        cost = sum(s.cost_usd for s in spend_of(run.spec, every).values())
        lines.append(RunLine(run, await bus.seen_state(), len(real_sessions(every)), cost))
    return lines
