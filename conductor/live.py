"""Watching a run while it goes on, from the store alone: a live dashboard, or plain lines.

Whatever the supervisor does lands in the store as events, so the view needs nothing from
the supervisor but its run id, and reads the same way from another process. The snapshot is
folded from new events only (a cursor, like `logs -f`), so an hour-long run costs no more per
refresh than a minute-long one.

Start `watch_run` as a task beside the supervisor and cancel it when the supervisor returns:
on the way out (cancelled or not) it reads what is left, shielded and with a deadline, then
prints the remaining notable lines or draws the last frame. Nothing else needs calling.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from conductor import dashboard
from conductor.costs import PLANNER, cost_of, planner_spend, turns_of
from conductor.gates import AUTO_REVIEWER, HUMAN_REVIEWER
from conductor.models import Event, ReviewStatus, SessionKind, SessionStatus
from conductor.store import Store
from conductor.text import one_line
from conductor.workspace import STATE_DIR

NOTABLE: frozenset[str] = frozenset(
    {
        "message.sent",
        "hook.denied",
        "review.requested",
        "review.approved",
        "review.rejected",
        "merge.queued",
        "merge.merged",
        "merge.already_merged",
        "merge.conflict",
        "merge.check_failed",
        "session.died",
        "session.stalled",
        "session.restarted",
        "session.paused",
        "session.interrupted",
        "session.updated",  # only for the statuses below
        "git.commit",
        "git.push",
        "run.state",
    }
)
NOTABLE_PREFIXES = ("merge.",)  # a merge outcome added later is still worth a line
NOTABLE_STATUSES = frozenset(
    {SessionStatus.DONE, SessionStatus.FAILED, SessionStatus.STOPPED, SessionStatus.BLOCKED}
)

TAIL = 8
PAGE = 500  # events per read: the first read of a long run is paged, not one huge list
FLUSH_SECONDS = 5.0  # the final read may not hold up the end of the command longer
WHAT_LIMIT = 160

_LABELS = {
    "hook.denied": "denied",
    "review.requested": "review requested",
    "review.approved": "review approved",
    "review.rejected": "review rejected",
    "session.died": "died",
    "session.stalled": "stalled",
    "session.restarted": "restarted",
    "session.interrupted": "interrupted",
    "git.commit": "commit",
    "git.push": "push",
}
_MERGE_LABELS = {
    "queued": "merge queued",
    "merged": "merged",
    "already_merged": "already merged",
    "conflict": "merge conflict",
    "check_failed": "merge check failed",
}
_DOING_LABELS = {
    "claim.added": "claimed",
    "claim.released": "released",
    "context.added": "shared",
}
_QUIET = frozenset({"message.read", "context.delivered", "session.closed"})  # bookkeeping


# ------------------------------------------------------------------------------ notable lines


def is_notable(event: Event) -> bool:
    if event.kind == "session.updated":
        return (event.payload or {}).get("status") in NOTABLE_STATUSES
    if event.kind == "message.sent" and "review_id" in (event.payload or {}):
        return False  # a review's request or verdict: the review.* line says it
    return event.kind in NOTABLE or event.kind.startswith(NOTABLE_PREFIXES)


def notable_line(event: Event, names: Mapping[int, str] | None = None) -> str | None:
    """`HH:MM:SS session    what happened`, or None for an event not worth a line.

    `names` maps session row ids to names: a message event stores its recipients by id.
    """
    if not is_notable(event):
        return None
    who = event.session or "conductor"
    what = one_line(_what(event, names or {}), WHAT_LIMIT)
    return f"{dashboard.clock(event.created_at)} {who:<10} {what}"


def _what(event: Event, names: Mapping[int, str]) -> str:
    payload = event.payload or {}
    kind, summary = event.kind, event.summary
    if kind == "message.sent":
        if payload.get("broadcast"):
            to = "all"
        else:
            to = ", ".join(names.get(i, f"#{i}") for i in payload.get("recipients") or ())
        return f"message to {to or '?'}: {summary}"
    if kind == "session.updated":
        note = payload.get("note")
        return f"status {payload.get('status')}" + (f": {note}" if note else "")
    if kind == "session.paused" and "status" in payload and "seconds" in payload:
        return f"paused: API answered {payload['status']}, waiting {payload['seconds']:.0f}s"
    if kind == "run.state":
        state = str(payload.get("state") or "")
        return f"run {state}" + (f": {summary}" if summary and summary != state else "")
    if kind.startswith("merge."):
        outcome = kind.removeprefix("merge.")
        label = _MERGE_LABELS.get(outcome, "merge " + outcome.replace("_", " "))
        if not payload.get("branch"):
            return f"{label}: {summary}"
        text = f"{label}: {payload['branch']} at {str(payload.get('commit') or '?')[:12]}"
        if payload.get("conflicts"):
            text += " in " + ", ".join(map(str, payload["conflicts"]))
        if payload.get("check"):
            text += f" ({payload['check']})"
        return text
    return f"{_LABELS.get(kind, kind)}: {summary}" if summary else _LABELS.get(kind, kind)


# ------------------------------------------------------------------------------ the snapshot


@dataclass(frozen=True)
class ReviewState:
    id: int
    status: ReviewStatus
    reviewer: str | None  # None: whoever the run's review policy picks


@dataclass
class SessionView:
    """One row of the live view. Status and note come from the session row; the rest is
    folded from its events."""

    name: str
    workstream: str = ""
    kind: SessionKind = SessionKind.WORKER
    status: SessionStatus = SessionStatus.PENDING
    note: str = ""
    doing: str = ""  # the tool in use, else what it did last
    turns: int = 0
    cost_usd: float = 0.0
    last_event_at: float | None = None
    review: ReviewState | None = None  # its latest review request
    merge: str = ""  # the last merge.* outcome: queued, merged, conflict, ...


@dataclass
class Snapshot:
    """What the live view shows, brought up to date by `update` from events after `cursor`."""

    run_id: str
    goal: str = ""
    state: str = ""
    started_at: float | None = None
    review_policy: str | None = None  # from the run's spec; None for a run made by hand
    sessions: dict[str, SessionView] = field(default_factory=dict)
    merge_queue: list[str] = field(default_factory=list)  # in the order they entered it
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))
    cursor: int = 0
    fresh: list[tuple[int, str]] = field(default_factory=list)  # (event id, line) not drained
    names: dict[int, str] = field(default_factory=dict)  # session row id -> name
    loaded: bool = False

    async def update(self, store: Store) -> None:
        """Read what is new. Each await is followed by a synchronous fold, so a cancellation
        anywhere leaves the snapshot consistent and the cursor past exactly what was folded."""
        if not self.loaded:
            run = await store.get_run(self.run_id)
            self.goal, self.state, self.started_at = run.goal, run.state.value, run.created_at
            config = (run.spec or {}).get("config") or {}
            self.review_policy = config.get("review")
            planner = planner_spend(run.spec)
            if planner is not None:  # it ran before the run existed: a row of its own
                view = self.view(PLANNER)
                view.kind, view.status, view.note = SessionKind.PLANNER, SessionStatus.DONE, ""
                view.turns, view.cost_usd = planner.turns, planner.cost_usd
            self.loaded = True
        for s in await store.list_sessions(self.run_id):
            self.names[s.id] = s.name
            view = self.view(s.name)
            view.workstream, view.kind, view.status, view.note = (
                s.workstream,
                s.kind,
                s.status,
                s.note,
            )
        while True:
            events = await store.list_events(self.run_id, after=self.cursor, limit=PAGE)
            for event in events:
                self.apply(event)
            if len(events) < PAGE:
                return

    def apply(self, event: Event) -> None:
        """Fold one event in (events come in id order, each once)."""
        self.cursor = max(self.cursor, event.id)
        line = notable_line(event, self.names)
        if line is not None:
            self.tail.append(line)
            self.fresh.append((event.id, line))
        payload = event.payload or {}
        if event.kind == "run.state" and payload.get("state"):
            self.state = str(payload["state"])
        if event.kind in ("review.approved", "review.rejected") and payload.get("requester"):
            author = self.view(str(payload["requester"]))
            if author.review is not None and author.review.id == payload.get("review_id"):
                status = ReviewStatus(event.kind.removeprefix("review."))
                author.review = ReviewState(author.review.id, status, author.review.reviewer)
        if event.session is None:
            return
        view = self.view(event.session)
        view.last_event_at = event.created_at
        doing = _doing(event, self.names)
        if doing:
            view.doing = doing
        if event.kind == "sdk.result":
            view.turns += turns_of(payload)
            view.cost_usd += cost_of(payload)
        elif event.kind == "review.requested" and "review_id" in payload:
            reviewer = payload.get("reviewer")
            view.review = ReviewState(
                int(payload["review_id"]), ReviewStatus.PENDING, str(reviewer) if reviewer else None
            )
        elif event.kind.startswith("merge."):
            view.merge = event.kind.removeprefix("merge.")
            if event.session in self.merge_queue:
                self.merge_queue.remove(event.session)
            if view.merge == "queued":
                self.merge_queue.append(event.session)

    def drain(self) -> list[tuple[int, str]]:
        """The notable lines folded since the last drain, oldest first."""
        taken, self.fresh = self.fresh, []
        return taken

    def view(self, name: str) -> SessionView:
        if name not in self.sessions:
            self.sessions[name] = SessionView(name)
        return self.sessions[name]

    def shown(self) -> list[SessionView]:
        """Sessions that do work. `human` and `auto` are names a person and conductor decide
        reviews under; they never run, so rows for them would only say `pending`."""
        return [
            v
            for v in self.sessions.values()
            if v.kind is not SessionKind.HUMAN and v.name != AUTO_REVIEWER
        ]

    def waits_on_person(self, view: SessionView) -> bool:
        return view.status is SessionStatus.BLOCKED or self.human_review(view) is not None

    def human_review(self, view: SessionView) -> ReviewState | None:
        """The session's review when it is pending on a person: assigned to `human`, or to
        no one in a run whose policy is human (the supervisor then waits for a verdict)."""
        review = view.review
        if review is None or review.status is not ReviewStatus.PENDING:
            return None
        if review.reviewer == HUMAN_REVIEWER:
            return review
        if review.reviewer is None and self.review_policy == HUMAN_REVIEWER:
            return review
        return None

    def waiting(self) -> list[SessionView]:
        return [v for v in self.shown() if self.waits_on_person(v)]

    @property
    def turns(self) -> int:
        return sum(v.turns for v in self.sessions.values())

    @property
    def cost_usd(self) -> float:
        return sum(v.cost_usd for v in self.sessions.values())


def _doing(event: Event, names: Mapping[int, str]) -> str | None:
    """What an event says a session is doing now, for its row; None to leave it as it was."""
    payload = event.payload or {}
    if event.kind in _QUIET or event.kind.startswith("sdk.system"):
        return None
    if is_notable(event):
        return _what(event, names)
    if event.kind == "sdk.assistant":
        tools = [b for b in payload.get("content") or () if isinstance(b, dict) and "name" in b]
        if tools:
            return "→ " + "; ".join(_tool_use(b) for b in tools)
        return event.summary
    if event.kind == "sdk.tool_result":
        return f"← {event.summary}"
    if event.kind == "sdk.result":
        return f"■ {event.summary}"
    if event.kind == "session.prompt":
        return f"> {event.summary}"
    if event.kind in _DOING_LABELS:
        return f"{_DOING_LABELS[event.kind]} {event.summary}"
    if event.kind in ("session.updated", "session.registered"):
        return None  # the status column says it
    return f"{event.kind} {event.summary}"


def _tool_use(block: Mapping[str, Any]) -> str:
    args = block.get("input") or {}
    for key in ("file_path", "command", "path", "pattern", "url"):
        if isinstance(args, dict) and key in args:
            value = str(args[key])
            if key in ("file_path", "path"):
                value = _in_worktree(value)
            return f"{block['name']} {one_line(value, 60)}"
    return f"{block['name']} {one_line(json.dumps(args, default=str), 60)}"


def _in_worktree(path: str) -> str:
    """A path inside a session's worktree as the session sees it, relative to its tree:
    `words.py`, not `/home/…/.conductor/worktrees/<run>/A/words.py`."""
    _, marker, rest = path.partition(f"/{STATE_DIR}/worktrees/")
    if not marker:
        return path
    parts = rest.split("/", 2)  # <run>/<session>/<path in the tree>
    return parts[2] if len(parts) == 3 and parts[2] else path


# ------------------------------------------------------------------------------ watching


async def watch_run(
    store: Store,
    run_id: str,
    *,
    console: Console,
    live: bool,
    poll: float = 0.5,
    after: int = 0,
) -> None:
    """Show the run on `console` until cancelled: a `rich.live.Live` dashboard, or (`live`
    False: logs, pipes, CI) one plain line per notable event after event id `after`, each once
    and in id order. When cancelled it still prints what is left, or draws the last frame."""
    snapshot = Snapshot(run_id)
    if live:
        await _watch_live(store, snapshot, console, poll)
    else:
        await _watch_plain(store, snapshot, console, poll, after)


async def _watch_plain(
    store: Store, snapshot: Snapshot, console: Console, poll: float, after: int
) -> None:
    def emit() -> None:
        for event_id, line in snapshot.drain():
            if event_id > after:
                console.print(Text(line), soft_wrap=True)

    try:
        while True:
            await snapshot.update(store)
            emit()
            await anyio.sleep(poll)
    finally:
        await _last_update(store, snapshot)
        emit()


async def _watch_live(store: Store, snapshot: Snapshot, console: Console, poll: float) -> None:
    # Rendered on every refresh, so the ages move and a line printed above redraws it too.
    with Live(
        console=console,
        auto_refresh=False,
        get_renderable=lambda: dashboard.live_view(snapshot, width=console.width),
    ) as screen:
        try:
            while True:
                await snapshot.update(store)
                snapshot.drain()  # the tail keeps the lines the view shows
                screen.refresh()
                await anyio.sleep(poll)
        finally:
            await _last_update(store, snapshot)
            snapshot.drain()
            # Leaving the `with` draws the last frame and leaves it on the screen.


async def _last_update(store: Store, snapshot: Snapshot) -> None:
    """What happened since the last poll (the run's final state among it), read even while
    being cancelled. Best effort: the view failing to read must not replace the cancellation
    or the error that ended the watch, and must not hold up the command's exit."""
    with (
        anyio.move_on_after(FLUSH_SECONDS, shield=True),
        contextlib.suppress(Exception),
    ):
        await snapshot.update(store)
