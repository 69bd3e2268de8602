"""The read model: a run as its views show it, folded from the run's events.

Plain typed state, no terminal: `Snapshot` reads new events through the bus and keeps a
`RunView` (sessions, what each is doing, reviews, the merge queue, totals, notable lines) that
the terminal dashboard (`dashboard.py`, redrawn by `live.py`), the web view and an HTML report
all read. Everything a session wrote is escaped (`printable`) before it is kept.

Parts: `words` (an event in words), `doing` (a tool call in words), `spend` (a turn's cost
so far at list price), `sessions` (one session's row), `state` (the run's view and the
questions asked of it), `snapshot` (the fold), `transcript` (a session's conversation).
"""

from __future__ import annotations

from conductor.readmodel.doing import assistant_doing, tool_doing
from conductor.readmodel.sessions import ReviewState, SessionView, does_work, real_sessions
from conductor.readmodel.snapshot import PAGE, Snapshot
from conductor.readmodel.spend import usage_cost
from conductor.readmodel.state import TAIL, RunView
from conductor.readmodel.transcript import transcript_lines
from conductor.readmodel.words import (
    DOING_LIMIT,
    WHAT_LIMIT,
    cost_text,
    is_notable,
    notable_line,
    printable,
)

__all__ = [
    "DOING_LIMIT",
    "PAGE",
    "TAIL",
    "WHAT_LIMIT",
    "ReviewState",
    "RunView",
    "SessionView",
    "Snapshot",
    "assistant_doing",
    "cost_text",
    "does_work",
    "is_notable",
    "notable_line",
    "printable",
    "real_sessions",
    "tool_doing",
    "transcript_lines",
    "usage_cost",
]
