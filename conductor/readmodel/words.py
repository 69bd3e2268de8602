"""An event in words: the notable lines a watched run prints (the live view's tail, the plain
lines of `conductor run` in a pipe), and the words for a merge's outcome.

Plain text, no terminal: the terminal dashboard, the web view and an HTML report all print
these. Everything a session wrote goes through `printable`: an ANSI escape in a note is
written out as `\\x1b`, never acted on.
"""

from __future__ import annotations

from collections.abc import Mapping

from conductor.events import (
    EventKind,
    MergeGateOutcome,
    MergeQueued,
    MessageSent,
    Payload,
    RunStateChanged,
    SessionPaused,
    SessionUpdated,
    parse,
)
from conductor.models import Event, SessionStatus
from conductor.text import clock, escape_controls, one_line

MERGE = "merge."  # the prefix of every merge outcome's kind
NOTABLE: frozenset[str] = frozenset(
    {
        EventKind.RUN_STOP_ASKED,
        EventKind.RUN_COST_WARNING,
        EventKind.RUN_COST_CEILING,
        EventKind.RUN_MAX_COST,
        EventKind.MESSAGE_SENT,
        EventKind.HOOK_DENIED,
        EventKind.REVIEW_REQUESTED,
        EventKind.REVIEW_APPROVED,
        EventKind.REVIEW_REJECTED,
        EventKind.MERGE_QUEUED,
        EventKind.MERGE_MERGED,
        EventKind.MERGE_ALREADY_MERGED,
        EventKind.MERGE_CONFLICT,
        EventKind.MERGE_CHECK_FAILED,
        EventKind.SESSION_DIED,
        EventKind.SESSION_STALLED,
        EventKind.SESSION_RESTARTED,
        EventKind.SESSION_PAUSED,
        EventKind.SESSION_INTERRUPTED,
        EventKind.SESSION_UPDATED,  # only for the statuses below
        EventKind.GIT_COMMIT,
        EventKind.GIT_PUSH,
        EventKind.RUN_STATE,
    }
)
NOTABLE_PREFIXES = (MERGE,)  # a merge outcome added later is still worth a line
NOTABLE_STATUSES = frozenset(
    {SessionStatus.DONE, SessionStatus.FAILED, SessionStatus.STOPPED, SessionStatus.BLOCKED}
)

WHAT_LIMIT = 160
DOING_LIMIT = 200  # what a row says it is doing, before the table cuts it to the terminal

_LABELS: dict[str, str] = {
    EventKind.HOOK_DENIED: "denied",
    EventKind.REVIEW_REQUESTED: "review requested",
    EventKind.REVIEW_APPROVED: "review approved",
    EventKind.REVIEW_REJECTED: "review rejected",
    EventKind.SESSION_DIED: "died",
    EventKind.SESSION_STALLED: "stalled",
    EventKind.SESSION_RESTARTED: "restarted",
    EventKind.SESSION_INTERRUPTED: "interrupted",
    EventKind.GIT_COMMIT: "commit",
    EventKind.GIT_PUSH: "push",
}
_MERGE_LABELS: dict[str, str] = {
    "queued": "merge queued",
    "merged": "merged",
    "already_merged": "already merged",
    "conflict": "merge conflict",
    "check_failed": "merge check failed",
}
_MERGE_WORDS = {
    "queued": "merge queued",
    "merged": "merged",
    "already_merged": "already merged",
    "conflict": "merge conflict",
    "check_failed": "checks failed on the merge",
    "foreign_paths": "merge refused: it changes paths others own",
    "nothing": "nothing to merge",
    "tampered": "merge stopped: the integration branch moved",
}


def printable(text: object, limit: int = WHAT_LIMIT) -> str:
    """Text someone else wrote, as one line a terminal shows and never acts on."""
    return one_line(escape_controls(str(text)), limit)


def payload_of(event: Event) -> Payload | None:
    """The event's typed payload; None for a kind this version does not know, except a merge
    outcome added later, which reads like the outcomes known (it is still worth a line)."""
    parsed = parse(event)
    if parsed is not None:
        return parsed.payload
    if event.kind.startswith(MERGE):
        return MergeGateOutcome.from_json(event.payload or {})
    return None


def is_notable(event: Event, payload: Payload | None = None) -> bool:
    """Worth a line of its own. `payload`: the event's, if already read (`payload_of`)."""
    if event.kind == EventKind.SESSION_UPDATED:
        updated = payload if payload is not None else payload_of(event)
        return isinstance(updated, SessionUpdated) and updated.status in NOTABLE_STATUSES
    if event.kind == EventKind.MESSAGE_SENT:
        sent = payload if payload is not None else payload_of(event)
        if isinstance(sent, MessageSent) and sent.review_id is not None:
            return False  # a review's request or verdict: the review.* line says it
    return event.kind in NOTABLE or event.kind.startswith(NOTABLE_PREFIXES)


def notable_line(
    event: Event, names: Mapping[int, str] | None = None, payload: Payload | None = None
) -> str | None:
    """`HH:MM:SS session    what happened`, or None for an event not worth a line.

    `names` maps session row ids to names: a message event stores its recipients by id.
    `payload`: the event's, if already read (`payload_of`).
    """
    payload = payload if payload is not None else payload_of(event)
    if not is_notable(event, payload):
        return None
    who = escape_controls(event.session or "conductor")
    what = printable(what_happened(event, payload, names or {}), WHAT_LIMIT)
    return f"{clock(event.created_at)} {who:<10} {what}"


def what_happened(event: Event, payload: Payload | None, names: Mapping[int, str]) -> str:
    """The event in words, without its time and session."""
    kind, summary = event.kind, event.summary
    if isinstance(payload, MessageSent):
        if payload.broadcast:
            to = "all"
        else:
            to = ", ".join(names.get(i, f"#{i}") for i in payload.recipients)
        return f"message to {to or '?'}: {summary}"
    if isinstance(payload, SessionUpdated):
        note = payload.note
        return f"status {payload.status}" + (f": {note}" if note else "")
    if isinstance(payload, SessionPaused) and payload.until:  # a usage window: its time
        return f"paused: {summary}"
    if isinstance(payload, SessionPaused) and payload.status is not None:
        return f"paused: API answered {payload.status}, waiting {payload.seconds:.0f}s"
    if isinstance(payload, RunStateChanged):
        state = payload.state
        return f"run {state}" + (f": {summary}" if summary and summary != state else "")
    if kind.startswith(MERGE) and isinstance(payload, MergeQueued | MergeGateOutcome):
        return _merge_line(event, payload)
    label = _LABELS.get(kind, kind)
    return f"{label}: {summary}" if summary else label


def _merge_line(event: Event, payload: MergeQueued | MergeGateOutcome) -> str:
    outcome = event.kind.removeprefix(MERGE)
    label = _MERGE_LABELS.get(outcome, "merge " + outcome.replace("_", " "))
    if not payload.branch:
        return f"{label}: {event.summary}"
    commit = (payload.commit or "?")[:12]
    own = f"conductor/{event.run_id}-{event.session}"  # worktrees.session_branch
    text = (
        f"{label}: {commit}" if payload.branch == own else f"{label}: {payload.branch} at {commit}"
    )
    if isinstance(payload, MergeGateOutcome):
        if payload.conflicts:
            text += " in " + ", ".join(payload.conflicts)
        if payload.check:
            text += f" ({payload.check})"
    return text


def cost_text(usd: float, estimating: bool = False) -> str:
    """`$0.2250`, or `~$0.2250` when it counts turns going on at list price."""
    return ("~" if estimating else "") + f"${usd:.4f}"


def merge_words(outcome: str) -> str:
    """Where a merge stands, in words: `merged`, `checks failed on the merge`, ..."""
    return _MERGE_WORDS.get(outcome, "merge " + outcome.replace("_", " "))


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
