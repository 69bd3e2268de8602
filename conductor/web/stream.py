"""A run's page kept live: server-sent events folded from the events table.

Every page of a run reads one shared fold (`live_runs.LiveRun`), polled as often as the
terminal view polls. A message goes out when something the page shows changed: `state` (the
whole page's data, small) and `lines` (notable events, each with its id). The stream's id is
the last event sent, so a browser that reconnects (it does so by itself, sending
`Last-Event-ID`) gets the lines it missed and none twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

from conductor.store import Store
from conductor.text import escape_invisible
from conductor.web.live_runs import POLL, LiveRuns

KEEPALIVE = 15.0  # a comment this often, so proxies and the browser keep the stream open


def visible(data: Any) -> Any:
    """`data` with every text's invisible characters written out (bidi overrides, zero-width
    characters: a diff or a note that reads otherwise than it is)."""
    if isinstance(data, str):
        return escape_invisible(data)
    if isinstance(data, list):
        return [visible(v) for v in data]
    if isinstance(data, dict):
        return {k: visible(v) for k, v in data.items()}
    return data


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One server-sent event: JSON data on one line (JSON escapes its newlines)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    text = json.dumps(visible(data), ensure_ascii=False)
    return f"{head}event: {event}\ndata: {text}\n\n".encode()


async def run_updates(
    runs: LiveRuns,
    store: Store,
    run_id: str,
    *,
    after: int,
    gone: Callable[[], Awaitable[bool]],
    poll: float = POLL,
) -> AsyncIterator[bytes]:
    """The stream of one run's page until `gone` (the client left, or the server stops).
    `after`: the last event id the page has (its lines up to there are on it already)."""
    last: dict[str, Any] | None = None
    quiet = 0.0
    while not await gone():
        live = await runs.of(store, run_id)
        lines = live.lines_after(after)
        if lines:
            after = lines[-1]["id"]
            yield frame("lines", lines, after)
        if live.state != last:
            yield frame("state", live.state, after or None)
            last, quiet = live.state, 0.0
        elif not lines:
            quiet += poll
            if quiet >= KEEPALIVE:
                yield b": keepalive\n\n"
                quiet = 0.0
        await anyio.sleep(poll)
