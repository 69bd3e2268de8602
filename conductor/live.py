"""Watching a run while it goes on, from what it recorded alone: a live dashboard, or plain
lines.

Whatever the supervisor does lands in the store as events, so the view needs nothing from
the supervisor but its run id, and reads the same way from another process. What it shows is
the read model (`conductor.readmodel.Snapshot`), folded from new events only; this module is
the loop that keeps it fresh and draws it (`dashboard.live_view`) or prints its notable lines.

Start `watch_run` as a task beside the supervisor and cancel it when the supervisor returns:
on the way out (cancelled or not) it reads what is left, shielded and with a deadline, then
prints the remaining notable lines or draws the last frame. Nothing else needs calling.
"""

from __future__ import annotations

import contextlib

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from conductor import dashboard
from conductor.bus import Bus
from conductor.readmodel import (
    Snapshot,
    does_work,
    notable_line,
    printable,
    real_sessions,
    usage_cost,
)
from conductor.store import Store

# Names other modules and tests import from here.
__all__ = [
    "Snapshot",
    "does_work",
    "notable_line",
    "printable",
    "real_sessions",
    "usage_cost",
    "watch_run",
]

FLUSH_SECONDS = 5.0  # the final read may not hold up the end of the command longer


async def watch_run(
    source: Bus | Store,
    run_id: str,
    *,
    console: Console,
    live: bool,
    poll: float = 0.5,
    after: int = 0,
) -> None:
    """Show the run on `console` until cancelled: a `rich.live.Live` dashboard, or (`live`
    False: logs, pipes, CI) one plain line per notable event after event id `after`, each once
    and in id order. When cancelled it still prints what is left, or draws the last frame.
    `source`: the run's bus, or the store it is in (the snapshot opens the run's bus once)."""
    snapshot = Snapshot(run_id)
    if live:
        await _watch_live(source, snapshot, console, poll)
    else:
        await _watch_plain(source, snapshot, console, poll, after)


async def _watch_plain(
    source: Bus | Store, snapshot: Snapshot, console: Console, poll: float, after: int
) -> None:
    def emit() -> None:
        for event_id, line in snapshot.drain():
            if event_id > after:
                console.print(Text(line), soft_wrap=True)

    try:
        while True:
            await snapshot.update(source)
            emit()
            await anyio.sleep(poll)
    finally:
        await _last_update(source, snapshot)
        emit()


async def _watch_live(
    source: Bus | Store, snapshot: Snapshot, console: Console, poll: float
) -> None:
    # Rendered on every refresh, so the ages move and a line printed above redraws it too.
    with Live(
        console=console,
        auto_refresh=False,
        get_renderable=lambda: dashboard.live_view(snapshot, width=console.width),
    ) as screen:
        try:
            while True:
                await snapshot.update(source)
                snapshot.drain()  # the tail keeps the lines the view shows
                screen.refresh()
                await anyio.sleep(poll)
        finally:
            await _last_update(source, snapshot)
            snapshot.drain()
            # Leaving the `with` draws the last frame and leaves it on the screen.


async def _last_update(source: Bus | Store, snapshot: Snapshot) -> None:
    """What happened since the last poll (the run's final state among it), read even while
    being cancelled. Best effort: the view failing to read must not replace the cancellation
    or the error that ended the watch, and must not hold up the command's exit."""
    with (
        anyio.move_on_after(FLUSH_SECONDS, shield=True),
        contextlib.suppress(Exception),
    ):
        await snapshot.update(source)
