"""A run's page kept live: server-sent events folded from the events table.

Each client has its own `Snapshot` (folded from new events only, as the terminal view is),
polled as often as the terminal view polls. A message goes out when something the page shows
changed: `state` (the whole page's data, small) and `lines` (notable events, each with its
id). The stream's id is the last event folded, so a browser that reconnects (it does so by
itself, sending `Last-Event-ID`) gets the lines it missed and none twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

from conductor.bus import Bus
from conductor.models import Review
from conductor.readmodel import Snapshot
from conductor.store import Store
from conductor.web.state import run_state

POLL = 0.5  # as the terminal's live view
KEEPALIVE = 15.0  # a comment this often, so proxies and the browser keep the stream open
BACKLOG = 200  # lines a fresh page starts with


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One server-sent event: JSON data on one line (JSON escapes its newlines)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def run_updates(
    store: Store,
    run_id: str,
    *,
    after: int,
    gone: Callable[[], Awaitable[bool]],
    poll: float = POLL,
) -> AsyncIterator[bytes]:
    """The stream of one run's page until `gone` (the client left, or the server stops).
    `after`: the last event id the page has (its lines up to there are on it already)."""
    snapshot = Snapshot(run_id)
    last: dict[str, Any] | None = None
    reviews: list[Review] = []
    quiet = 0.0
    while not await gone():
        cursor = snapshot.cursor
        await snapshot.update(store)
        bus = _bus_of(snapshot)
        seen = await _seen(bus)
        if snapshot.cursor != cursor:  # something happened: a review may have
            reviews = await bus.reviews()
        fresh = [(i, t) for i, t in snapshot.drain() if i > after]
        lines = [{"id": i, "text": t} for i, t in fresh]
        state = run_state(snapshot, seen, reviews)
        if fresh:
            after = fresh[-1][0]
            yield frame("lines", lines, after)
        if state != last:
            yield frame("state", state, after or None)
            last, quiet = state, 0.0
        elif not lines:
            quiet += poll
            if quiet >= KEEPALIVE:
                yield b": keepalive\n\n"
                quiet = 0.0
        await anyio.sleep(poll)


def _bus_of(snapshot: Snapshot) -> Bus:
    assert snapshot.opened is not None  # update() opened the run's bus
    return snapshot.opened[1]


async def _seen(bus: Bus) -> str:
    await bus.refresh()
    return await bus.seen_state()


async def first_page(store: Store, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run page's data and its last lines, for the first render (the stream goes on
    from the last of them)."""
    snapshot = Snapshot(run_id)
    await snapshot.update(store)
    bus = _bus_of(snapshot)
    seen = await _seen(bus)
    lines = [{"id": i, "text": t} for i, t in snapshot.drain()[-BACKLOG:]]
    return run_state(snapshot, seen, await bus.reviews()), lines
