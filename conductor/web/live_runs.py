"""One fold per run for every page that shows it: the run pages and their streams share a
`LiveRun`, brought up to date at most once a poll however many tabs are open (each page
folding the run for itself made ten tabs of a long run cost ten folds of it)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio

from conductor.bus import Bus
from conductor.models import Review
from conductor.readmodel import Snapshot
from conductor.store import Store
from conductor.web.state import run_state

POLL = 0.5  # as the terminal's live view
BACKLOG = 500  # notable lines kept for pages (a fresh page shows them; a stream resumes in them)


@dataclass
class LiveRun:
    """A run's page data, shared: the snapshot, its latest lines, its reviews and the state
    a person reads, as of `updated_at`."""

    run_id: str
    snapshot: Snapshot
    lines: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=BACKLOG))
    reviews: list[Review] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    updated_at: float = -POLL
    lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def fresh(self, store: Store) -> None:
        """Up to date within a poll: the first caller folds what is new, the rest wait for
        it and read the same."""
        async with self.lock:
            if time.monotonic() - self.updated_at < POLL:
                return
            snapshot = self.snapshot
            cursor = snapshot.cursor
            await snapshot.update(store)
            assert snapshot.opened is not None  # update() opened the run's bus
            bus: Bus = snapshot.opened[1]
            await bus.refresh()
            seen = await bus.seen_state()
            if snapshot.cursor != cursor or not self.state:  # something happened
                self.reviews = await bus.reviews()
            self.lines.extend(snapshot.drain())
            self.state = run_state(snapshot, seen, self.reviews)
            self.updated_at = time.monotonic()

    def lines_after(self, after: int) -> list[dict[str, Any]]:
        return [{"id": i, "text": t} for i, t in self.lines if i > after]


@dataclass
class LiveRuns:
    """The runs pages are open on, by id (a run no page asked for costs nothing)."""

    runs: dict[str, LiveRun] = field(default_factory=dict)

    async def of(self, store: Store, run_id: str) -> LiveRun:
        live = self.runs.get(run_id)
        if live is None:  # kept before its first fold: a second tab waits for that fold
            live = self.runs[run_id] = LiveRun(run_id, Snapshot(run_id))
        try:
            await live.fresh(store)
        except BaseException:
            if not live.state:  # never folded (an unknown run): not kept
                self.runs.pop(run_id, None)
            raise
        return live
