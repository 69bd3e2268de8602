"""Waiting out a busy model API: which answers to wait out, and the pause between tries."""

from __future__ import annotations

import anyio

from conductor.bus import Bus
from conductor.events import EventKind, SessionPaused
from conductor.session import TurnResult

OVERLOADED = (429, 529)  # rate-limited, overloaded: wait and go on, never fail the run
MAX_PAUSES = 8  # pauses in a row before a session's turn counts as failed
MAX_PAUSE_SECONDS = 600.0


def busy(result: TurnResult) -> bool:
    """An answer to wait out, not to fail on: rate-limited, overloaded, or any 5xx that
    outlasted the CLI's own retries."""
    status = result.api_error_status
    return result.is_error and status is not None and (status in OVERLOADED or status >= 500)


def may_pause(pauses: int) -> bool:
    """Whether `pauses` pauses in a row are still within what a turn may wait out."""
    return pauses <= MAX_PAUSES


def pause_seconds(backoff_seconds: float, pauses: int) -> float:
    """The `pauses`th pause in a row: doubling each time, up to MAX_PAUSE_SECONDS."""
    return min(backoff_seconds * 2.0 ** (pauses - 1), MAX_PAUSE_SECONDS)


async def pause(bus: Bus, name: str, result: TurnResult, pauses: int, backoff: float) -> str:
    """An overloaded or rate-limited API: record the wait, wait, and return the prompt that
    carries on."""
    seconds = pause_seconds(backoff, pauses)
    status = result.api_error_status
    await bus.record(
        name,
        EventKind.SESSION_PAUSED,
        f"API answered {status}: waiting {seconds:.0f}s (pause {pauses})",
        SessionPaused(status=status, seconds=seconds, pause=pauses).to_json(),
    )
    await anyio.sleep(seconds)
    return (
        f"The model API was busy (HTTP {status}) and conductor waited {seconds:.0f}s."
        " Carry on with your task from where you were."
    )
