"""Waiting for a usage window: a 429 that says when the limit resets is waited out until then.

A rate limit that outlasts the CLI's own retries is usually paused with back-off, doubling
toward a failure (`backoff`). A usage limit is no moment's congestion: it lifts at a known
time (a subscription's five-hour or weekly window, an organisation's limit), and trying
earlier only hits it again. So when the 429 says when it resets, the session waits until
then (at most `max_usage_wait`), the event says when it resumes, and the wait counts toward
no failure. The reset reaches conductor in one of two ways: the CLI's rate-limit event with
its `resets_at` (a claude.ai login), or the API's error text the CLI passes on in the turn's
result ("... resets at 2026-12-03T14:00:00Z", or the older "usage limit reached|<epoch>").

Every session of a run shares one `UsageWindow`: a session that hits the same limit without
being told the reset (or before it) waits for the same time rather than trying again.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import anyio

from conductor.bus import Bus
from conductor.events import EventKind, SessionPaused
from conductor.session import TurnResult

RATE_LIMITED = 429
# "resets at 2026-12-03T14:00:00Z" (or +00:00, or no seconds), "resets 1764770400",
# "limit reached|1764770400".
_ISO = re.compile(
    r"resets?\s+(?:at\s+)?(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)",
    re.IGNORECASE,
)
_EPOCH = re.compile(r"(?:resets?\s+(?:at\s+)?|\|)(\d{10})\b", re.IGNORECASE)


def reset_of(result: TurnResult) -> float | None:
    """When the usage limit a 429 turn hit resets (epoch seconds), if it says; else None."""
    if not result.is_error or result.api_error_status != RATE_LIMITED:
        return None
    if result.resets_at:
        return result.resets_at
    text = result.result or ""
    found = _ISO.search(text)
    if found is not None:
        stamp = found.group(1).replace(" ", "T").replace("Z", "+00:00")
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    epoch = _EPOCH.search(text)
    return float(epoch.group(1)) if epoch is not None else None


class UsageWindow:
    """The run's usage limit, once a session hit one that said when it resets: every
    session waits for the same time."""

    def __init__(self) -> None:
        self.until: float | None = None  # epoch seconds

    def reset_for(self, result: TurnResult, now: float | None = None) -> float | None:
        """When a session that got `result` may try again, if it hit a usage limit (its own
        reset, or one another session was told of that is still ahead); None: not a usage
        limit, back off as usual."""
        now = time.time() if now is None else now
        if not result.is_error or result.api_error_status != RATE_LIMITED:
            return None
        told = reset_of(result)
        if told is not None and told > now:
            self.until = max(self.until or told, told)
        if self.until is not None and self.until > now:
            return self.until
        return None

    def ahead(self, waited: float | None = None, now: float | None = None) -> float | None:
        """The reset a session about to start a turn waits for first (rather than asking
        and being refused): one still ahead that this session has not itself waited for
        (`waited`: the last it did; once waited for, the cap lets it try)."""
        now = time.time() if now is None else now
        if self.until is None or self.until <= now or self.until == waited:
            return None
        return self.until


def resumes_at(until: float) -> str:
    """HH:MM on this host's clock: seconds too when it is less than a minute away, the day
    too when it is not today (a weekly limit)."""
    local = datetime.fromtimestamp(until).astimezone()
    if local.date() != datetime.now().astimezone().date():
        return local.strftime("%b %d %H:%M")
    return local.strftime("%H:%M:%S" if until - time.time() < 60 else "%H:%M")


async def wait_for_window(bus: Bus, name: str, until: float, max_wait: float) -> str:
    """Record the wait with the time it resumes, wait (at most `max_wait` seconds), and
    return the prompt that carries on."""
    now = time.time()
    capped = until - now > max_wait
    resume = now + max_wait if capped else until
    seconds = max(0.0, resume - now)
    summary = f"waiting for the usage window: resumes at {resumes_at(resume)}" + (
        f" (the limit resets at {resumes_at(until)}, after max_usage_wait: trying then)"
        if capped
        else ""
    )
    stamp = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
    await bus.record(
        name,
        EventKind.SESSION_PAUSED,
        summary,
        SessionPaused(status=RATE_LIMITED, seconds=seconds, pause=0, until=stamp).to_json(),
    )
    await anyio.sleep(seconds)
    return (
        "The usage limit was reached and conductor waited for it to reset."
        " Carry on with your task from where you were."
    )
