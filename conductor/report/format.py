"""How the report writes times, lengths of time and money, and text someone else wrote."""

from __future__ import annotations

import html
from datetime import datetime

from conductor.text import escape_controls


def moment(ts: float | None) -> str:
    """A stored time as the local date and time with its offset: `2026-12-03 09:42:15 +0000`."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def clock(ts: float) -> str:
    """A stored time as the local time of day, `09:42:15`."""
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def duration(seconds: float) -> str:
    """`8s`, `2m 05s`, `1h 02m`: a length of time as a person reads it."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{seconds:.1f}s" if 0 < seconds < 10 and seconds != whole else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def elapsed(seconds: float) -> str:
    """Time since the run started, for the axis: `0:00`, `1:30`, `1:02:00`."""
    whole = max(0, round(seconds))
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def money(usd: float) -> str:
    return f"${usd:.4f}"


def attr(text: object) -> str:
    """Text someone else wrote, safe inside an element or a quoted attribute, its control
    characters written out (`\\x1b`) rather than kept."""
    return html.escape(escape_controls(str(text)), quote=True)
