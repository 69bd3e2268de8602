"""Watching a run while it goes on, from the store alone: a live dashboard, or plain lines.

Whatever the supervisor does lands in the store as events, so the view needs nothing from
the supervisor but its run id, and reads the same way from another process. The snapshot is
folded from new events only (a cursor, like `logs -f`), so an hour-long run costs no more per
refresh than a minute-long one.

Start `watch_run` as a task beside the supervisor and cancel it when the supervisor returns:
on the way out (cancelled or not) it reads what is left, shielded and with a deadline, then
prints the remaining notable lines or draws the last frame. Nothing else needs calling.

Everything shown that a session wrote (summaries, notes, tool inputs, message bodies) goes
through `escape_controls`: an ANSI escape in a note is printed as `\\x1b`, never executed.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from conductor import dashboard
from conductor.costs import PLANNER, cost_of, planner_spend, turns_of
from conductor.models import (
    AUTO_REVIEWER,
    HUMAN_REVIEWER,
    Event,
    ReviewStatus,
    SessionKind,
    SessionStatus,
)
from conductor.plan import REVIEWER_SUFFIX
from conductor.store import Store
from conductor.text import escape_controls, one_line
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
DOING_LIMIT = 200  # what a row says it is doing, before the table cuts it to the terminal

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
# What a session is doing, taken from these notable events (the rest say it in other ways:
# a message or review request by the tool call that made it, a merge by the row's stage).
_DOING_NOTABLE = frozenset(
    {
        "hook.denied",
        "session.died",
        "session.stalled",
        "session.restarted",
        "session.paused",
        "session.interrupted",
        "git.commit",
        "git.push",
    }
)
# A turn that ends without a result: what it was estimated to cost is not counted anywhere
# else (costs.run_spend counts results), so the view drops it too.
_TURN_LOST = frozenset({"session.died", "session.interrupted", "session.restarted"})


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
    who = escape_controls(event.session or "conductor")
    what = printable(_what(event, names or {}), WHAT_LIMIT)
    return f"{dashboard.clock(event.created_at)} {who:<10} {what}"


def printable(text: object, limit: int = WHAT_LIMIT) -> str:
    """Text someone else wrote, as one line a terminal shows and never acts on."""
    return one_line(escape_controls(str(text)), limit)


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
        commit = str(payload.get("commit") or "?")[:12]
        own = f"conductor/{event.run_id}-{event.session}"  # worktrees.session_branch
        text = (
            f"{label}: {commit}"
            if payload["branch"] == own
            else f"{label}: {payload['branch']} at {commit}"
        )
        if payload.get("conflicts"):
            text += " in " + ", ".join(map(str, payload["conflicts"]))
        if payload.get("check"):
            text += f" ({payload['check']})"
        return text
    return f"{_LABELS.get(kind, kind)}: {summary}" if summary else _LABELS.get(kind, kind)


# ------------------------------------------------------------------------------ cost during a turn

# List prices in dollars per million tokens (input, output), the prices Claude Code works a
# turn's cost out from; the first pattern found in the model's id wins. A cache write costs
# 1.25 times input (twice for the hour-long cache), a cache read a tenth of it.
_PRICES: tuple[tuple[re.Pattern[str], float, float], ...] = (
    (re.compile(r"opus-4-(?:[5-9]|\d\d)(?!\d)"), 5.0, 25.0),
    (re.compile(r"opus"), 15.0, 75.0),
    (re.compile(r"sonnet"), 3.0, 15.0),
    (re.compile(r"haiku-[4-9]"), 1.0, 5.0),
    (re.compile(r"3-5-haiku"), 0.8, 4.0),
    (re.compile(r"haiku"), 0.25, 1.25),
)


def usage_cost(model: object, usage: object) -> float | None:
    """What one API response's `usage` (as an assistant message carries it) costs at the
    list price of `model`; None when there is no usage or the model's price is not known.

    The CLI writes an assistant message as each content block ends, with the usage the API
    had reported by then: the input and cache tokens in full, the output tokens only as far
    as the stream had counted them (often 1). So this is a floor; the turn's result says the
    real cost."""
    if not isinstance(usage, Mapping) or not usage:
        return None
    found = next((p for p in _PRICES if p[0].search(str(model or "").lower())), None)
    if found is None:
        return None
    per_in, per_out = found[1] / 1e6, found[2] / 1e6
    written = _tokens(usage, "cache_creation_input_tokens")
    split = usage.get("cache_creation")
    hour = min(_tokens(split, "ephemeral_1h_input_tokens"), written)
    read = _tokens(usage, "cache_read_input_tokens")
    inputs = _tokens(usage, "input_tokens") + 1.25 * (written - hour) + 2.0 * hour + 0.1 * read
    return per_in * inputs + per_out * _tokens(usage, "output_tokens")


def _tokens(usage: object, key: str) -> int:
    if not isinstance(usage, Mapping):
        return 0
    value = usage.get(key)
    return value if isinstance(value, int) and value > 0 else 0


# ------------------------------------------------------------------------------ the snapshot


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> SessionKind: ...


Named = TypeVar("Named", bound=_Named)


def does_work(session: _Named) -> bool:
    """Not `human` or `auto`: names a person and conductor decide reviews under, registered
    as sessions so reviews can name them, that never run."""
    return session.kind is not SessionKind.HUMAN and session.name != AUTO_REVIEWER


def real_sessions(sessions: Iterable[Named]) -> list[Named]:
    """The sessions that do work (workers, reviewers, the planner), for counting them."""
    return [s for s in sessions if does_work(s)]


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
    action: str = ""  # what it is doing in its turn, in words, else what it did last
    reason: str = ""  # what its next turn is for ("fixing review #1"), until it starts
    stirred: bool = False  # something happened to it since it was registered
    prompts: int = 0
    turns: int = 0  # of its finished turns, from their results
    cost_usd: float = 0.0  # likewise
    last_event_at: float | None = None
    review: ReviewState | None = None  # its latest review request
    merge: str = ""  # the last merge.* outcome: queued, merged, conflict, ...
    merge_detail: str = ""  # the conflicting paths, of a conflict
    flow: str = ""  # "review" or "merge": which of the two happened last
    verdict: str = ""  # a reviewer's last verdict, in words
    # The turn going on: API responses so far, by message id, with what their usage costs.
    steps: set[str] = field(default_factory=set)  # the top-level ones: the turn's turns
    calls: dict[str, float] = field(default_factory=dict)

    @property
    def turns_so_far(self) -> int:
        """Its turns, counting the API calls of the turn going on."""
        return self.turns + len(self.steps)

    @property
    def cost_so_far(self) -> float:
        """Its cost, counting what the turn going on has used at list price."""
        return self.cost_usd + sum(self.calls.values())

    @property
    def estimating(self) -> bool:
        return bool(self.calls)

    def count_call(self, event: Event) -> None:
        """An assistant message of the turn going on: an API response, perhaps one already
        seen (the CLI writes one message per content block, each with the response's usage)."""
        payload = event.payload or {}
        key = str(payload.get("message_id") or f"event {event.id}")
        if payload.get("parent_tool_use_id") is None:  # a subagent's calls are not turns
            self.steps.add(key)
        cost = usage_cost(payload.get("model"), payload.get("usage"))
        if cost is not None:
            self.calls[key] = max(cost, self.calls.get(key, 0.0))

    def end_turn(self) -> None:
        self.steps.clear()
        self.calls.clear()


@dataclass
class Snapshot:
    """What the live view shows, brought up to date by `update` from events after `cursor`."""

    run_id: str
    goal: str = ""
    state: str = ""
    started_at: float | None = None
    review_policy: str | None = None  # from the run's spec; None for a run made by hand
    depends: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the plan's, by id
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
            self.depends = _depends(run.spec)
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
        kind = event.kind
        if kind == "run.state" and payload.get("state"):
            self.state = str(payload["state"])
        self._about_others(event)
        if event.session is None:
            return
        view = self.view(event.session)
        view.last_event_at = event.created_at
        view.stirred = view.stirred or kind != "session.registered"
        if kind == "session.prompt":
            view.end_turn()  # one before it that ended without a result is not counted
            view.action = view.reason or ("starting" if not view.prompts else "carrying on")
            view.reason, view.prompts = "", view.prompts + 1
        elif kind == "sdk.assistant":
            view.action = _assistant_doing(payload) or view.action
            view.count_call(event)
        elif kind == "sdk.result":
            view.turns += turns_of(payload)
            view.cost_usd += cost_of(payload)
            view.end_turn()
        elif kind in _DOING_NOTABLE:
            view.action = printable(_what(event, self.names), DOING_LIMIT)
            if kind in _TURN_LOST:
                view.end_turn()
        elif kind == "review.requested" and "review_id" in payload:
            reviewer = payload.get("reviewer")
            view.review = ReviewState(
                int(payload["review_id"]), ReviewStatus.PENDING, str(reviewer) if reviewer else None
            )
            view.flow = "review"
        elif kind in ("review.approved", "review.rejected") and payload.get("requester"):
            verdict = kind.removeprefix("review.")
            comment = str(payload.get("comment") or "")
            view.verdict = printable(
                f"{verdict} #{payload.get('review_id')} of {payload['requester']}"
                + (f": {comment}" if comment else ""),
                DOING_LIMIT,
            )
        elif kind.startswith("merge."):
            self._merge(view, kind.removeprefix("merge."), payload)

    def _about_others(self, event: Event) -> None:
        """What an event says about a session other than its own: a review's author learns
        its verdict, its reviewer what it is about to do."""
        payload = event.payload or {}
        if event.kind == "review.requested" and payload.get("reviewer") and event.session:
            reviewer = self.view(str(payload["reviewer"]))
            reviewer.reason = printable(f"reviewing #{payload.get('review_id')} of {event.session}")
        if event.kind in ("review.approved", "review.rejected") and payload.get("requester"):
            author = self.view(str(payload["requester"]))
            if author.review is not None and author.review.id == payload.get("review_id"):
                status = ReviewStatus(event.kind.removeprefix("review."))
                author.review = ReviewState(author.review.id, status, author.review.reviewer)
                if status is ReviewStatus.REJECTED:
                    comment = str(payload.get("comment") or "")
                    author.reason = printable(
                        f"fixing review #{author.review.id}" + (f": {comment}" if comment else ""),
                        DOING_LIMIT,
                    )

    def _merge(self, view: SessionView, outcome: str, payload: Mapping[str, Any]) -> None:
        view.merge, view.flow = outcome, "merge"
        conflicts = payload.get("conflicts") or ()
        view.merge_detail = printable(", ".join(map(str, conflicts))) if conflicts else ""
        if view.name in self.merge_queue:
            self.merge_queue.remove(view.name)
        if outcome == "queued":
            self.merge_queue.append(view.name)
        elif outcome == "conflict":
            view.reason = "resolving the merge conflict" + (
                f" in {view.merge_detail}" if view.merge_detail else ""
            )
        elif outcome == "check_failed":
            view.reason = "fixing the checks that failed on the merge"
        elif outcome not in ("merged", "already_merged"):
            view.reason = f"reworking: {_merge_words(outcome)}"

    def drain(self) -> list[tuple[int, str]]:
        """The notable lines folded since the last drain, oldest first."""
        taken, self.fresh = self.fresh, []
        return taken

    def view(self, name: str) -> SessionView:
        if name not in self.sessions:
            # Named by an event before its row was read: its kind from its name until then.
            reviews = name.endswith(REVIEWER_SUFFIX) or name == AUTO_REVIEWER
            kind = SessionKind.REVIEWER if reviews else SessionKind.WORKER
            if name == HUMAN_REVIEWER:
                kind = SessionKind.HUMAN
            self.sessions[name] = SessionView(name, kind=kind)
        return self.sessions[name]

    def shown(self) -> list[SessionView]:
        """Sessions that do work, each worker followed by its reviewer: `human` and `auto`
        never run, so rows for them would only say `pending`."""
        views = real_sessions(self.sessions.values())
        rows = [v for v in views if v.kind is SessionKind.PLANNER]
        for v in views:
            if v.kind is SessionKind.WORKER:
                rows.append(v)
                reviewer = self.sessions.get(v.name + REVIEWER_SUFFIX)
                if reviewer is not None and reviewer in views and reviewer not in rows:
                    rows.append(reviewer)
        return rows + [v for v in views if v not in rows]

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

    def merged(self, name: str) -> bool:
        view = self.sessions.get(name)
        return view is not None and (
            view.status is SessionStatus.DONE or view.merge in ("merged", "already_merged")
        )

    def waits_for(self, view: SessionView) -> list[str]:
        """The workstreams a pending one waits on: those it depends on not merged yet."""
        if view.status is not SessionStatus.PENDING:
            return []
        return [d for d in self.depends.get(view.name, ()) if not self.merged(d)]

    def doing(self, view: SessionView) -> str:
        """What a row says its session is doing, in words: what it is about in a turn, else
        where its work stands (waiting for A, in review #3, merge queued 2nd, merged)."""
        status = view.status
        if status is SessionStatus.BLOCKED:
            return "blocked" + (f": {printable(view.note)}" if view.note else "")
        review = self.human_review(view)
        if review is not None:
            return f"waiting on you: review #{review.id}"
        if status is SessionStatus.WORKING:
            return view.action or "working"
        if view.kind is SessionKind.PLANNER:
            n = len(self.depends)
            return f"planned {n} workstream{'' if n == 1 else 's'}" if n else "planned"
        if status in (SessionStatus.FAILED, SessionStatus.STOPPED):
            return status.value + (f": {printable(view.note)}" if view.note else "")
        stage = self.stage(view)
        if status is SessionStatus.PENDING and not stage:
            waits = self.waits_for(view)
            if waits:
                return "waiting for " + ", ".join(waits)
            if view.reason:
                return view.reason
            return "starting" if view.stirred else "waiting to start"
        return stage or view.verdict or view.action

    def stage(self, view: SessionView) -> str:
        """Where its work stands with the reviews and the merge gate; "" before either."""
        if view.flow == "merge" and view.merge:
            if view.merge == "queued" and view.name in self.merge_queue:
                return f"merge queued {_ordinal(self.merge_queue.index(view.name) + 1)}"
            if view.merge == "conflict" and view.merge_detail:
                return f"merge conflict in {view.merge_detail}"
            return _merge_words(view.merge)
        review = view.review
        if review is None:
            return ""
        if review.status is ReviewStatus.PENDING:
            return f"in review #{review.id}"
        return f"review #{review.id} {review.status.value}"

    def workstreams(self) -> tuple[int, int]:
        """(workstreams, merged): the plan's, or the workers of a run made by hand."""
        names = list(self.depends) or [
            v.name for v in self.sessions.values() if v.kind is SessionKind.WORKER
        ]
        return len(names), sum(1 for n in names if self.merged(n))

    @property
    def turns(self) -> int:
        return sum(v.turns_so_far for v in self.sessions.values())

    @property
    def cost_usd(self) -> float:
        return sum(v.cost_so_far for v in self.sessions.values())

    @property
    def estimating(self) -> bool:
        """Whether the cost counts turns going on (at list price), not only results."""
        return any(v.estimating for v in self.sessions.values())


def _depends(spec: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """Workstream id -> the ids it depends on, in the plan's order (a run made by hand has
    no plan: nothing)."""
    plan = (spec or {}).get("plan")
    workstreams = plan.get("workstreams") if isinstance(plan, Mapping) else None
    found: dict[str, tuple[str, ...]] = {}
    for w in workstreams if isinstance(workstreams, list) else ():
        if isinstance(w, Mapping) and w.get("id"):
            found[str(w["id"])] = tuple(str(d) for d in w.get("depends_on") or ())
    return found


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


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


def _merge_words(outcome: str) -> str:
    return _MERGE_WORDS.get(outcome, "merge " + outcome.replace("_", " "))


# ------------------------------------------------------------------------------ doing, in words


def _assistant_doing(payload: Mapping[str, Any]) -> str:
    """What an assistant message says its session is doing: its tool calls, else its words."""
    if payload.get("error"):
        return printable(f"API error: {payload['error']}")
    blocks = [b for b in payload.get("content") or () if isinstance(b, Mapping)]
    tools = [b for b in blocks if "name" in b]
    if tools:
        return printable("; ".join(tool_doing(b) for b in tools), DOING_LIMIT)
    text = " ".join(str(b["text"]) for b in blocks if isinstance(b.get("text"), str))
    if text.strip():
        return printable(f"“{' '.join(text.split())}”", DOING_LIMIT)
    if any("thinking" in b for b in blocks):
        return "thinking"
    return ""


_FILE_TOOLS = frozenset({"Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "NotebookRead"})
_SEARCH_TOOLS = frozenset({"Grep", "Glob", "LS"})


def tool_doing(block: Mapping[str, Any]) -> str:
    """A tool call in words: `Write textstats/words.py`, `Bash: pytest -q`, `message to B:
    …`. Never its JSON: a tool not known here shows its name and first short argument."""
    name = str(block.get("name") or "a tool")
    given = block.get("input")
    args: Mapping[str, Any] = given if isinstance(given, Mapping) else {}

    def arg(*keys: str) -> str:
        for key in keys:
            value = args.get(key)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                return printable(value, DOING_LIMIT)
        return ""

    if name.startswith("mcp__"):
        server, _, tool = name.removeprefix("mcp__").partition("__")
        if server == "bus":
            return _bus_doing(tool, arg)
        return printable(f"{tool or server} ({server})")
    if name == "Bash":
        return f"Bash: {arg('command')}".rstrip(": ")
    if name in _FILE_TOOLS:
        return f"{name} {_in_worktree(arg('file_path', 'notebook_path', 'path'))}".rstrip()
    if name in _SEARCH_TOOLS:
        where = _in_worktree(arg("path"))
        return f"{name} {arg('pattern')}".rstrip() + (f" in {where}" if where else "")
    if name == "WebFetch":
        return f"WebFetch {arg('url')}".rstrip()
    if name == "WebSearch":
        return f"WebSearch {arg('query')}".rstrip()
    if name in ("Task", "Agent"):
        return f"{name}: {arg('description', 'subagent_type')}".rstrip(": ")
    if name == "TodoWrite":
        return "updating its to-do list"
    first = next((k for k, v in args.items() if isinstance(v, str) and v.strip()), None)
    return printable(name) + (f" {arg(first)}" if first else "")


def _bus_doing(tool: str, arg: Any) -> str:
    """A call of a conductor tool (mcp__bus__*) in words."""
    text = arg("text")
    if tool == "send":
        return f"message to {arg('to') or '?'}" + (f": {text}" if text else "")
    if tool == "reply":
        return f"reply to #{arg('message_id') or '?'}" + (f": {text}" if text else "")
    if tool == "sync":
        return "reading its messages"
    if tool == "context_add":
        return f"sharing {arg('category') or 'context'}" + (f": {text}" if text else "")
    if tool == "context_show":
        return "reading the shared context"
    if tool == "claim":
        return f"claiming {arg('path')}".rstrip()
    if tool == "release":
        return f"releasing {arg('path')}".rstrip()
    if tool == "set_status":
        reason = arg("reason")
        return f"says it is {arg('status') or '?'}" + (f": {reason}" if reason else "")
    if tool == "request_review":
        note = arg("note")
        return "asking for review" + (f": {note}" if note else "")
    if tool == "done":
        summary = arg("summary")
        return "saying it is done" + (f": {summary}" if summary else "")
    if tool == "review_show":
        given = arg("review_id")
        return "reading the diff" + (f" of #{given}" if given else "")
    if tool == "review_verdict":
        verdict = arg("verdict").lower()
        word = {"approve": "approving", "reject": "rejecting"}.get(verdict, f"deciding ({verdict})")
        given, comments = arg("review_id"), arg("comments")
        return word + (f" #{given}" if given else "") + (f": {comments}" if comments else "")
    return printable(f"bus {tool}")


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
