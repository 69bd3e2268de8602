"""A run's timeline, folded from its events: a lane per session with its phases, messages
between sessions as arrows, and marks where the merge gate or a reviewer said something.

Pure: events in (in id order, each once), a `Timeline` out; no store, no rendering. Each event
costs the same whatever came before it, so an hour-long run folds in time linear in its events,
and in bounded memory: it keeps the last messages sent (`recent`) and the last marks, and
merges a lane's phases too short to see (`coarse`), counting what it leaves out.

A lane is in one phase at a time, the first of these that holds: `working` (a turn:
`session.prompt` until its `sdk.result`, or until the turn ends otherwise), `review` (one of
its review requests awaits a verdict), `merge` (its reviewed commit is in the merge gate),
`waiting` (its session is there but doing none of these: not started, idle, blocked). A
session whose CLI has closed or whose work has ended shows no phase until it works again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from conductor.events import (
    EventKind,
    MergeGateOutcome,
    MergeQueued,
    MessageSent,
    MessagesRead,
    Payload,
    PromptSent,
    ReviewDecided,
    ReviewRequested,
    RunStateChanged,
    SdkResult,
    SessionFailed,
    SessionUpdated,
    WorkChanged,
    parse,
)
from conductor.models import AUTO_REVIEWER, HUMAN_SESSION, Event, RunState, SessionStatus
from conductor.readmodel.words import merge_words
from conductor.report import coarse
from conductor.report.parts import Arrow, Lane, Mark, Phase, RunMoment, Timeline
from conductor.report.recent import Messages
from conductor.text import one_line

__all__ = ["Arrow", "Lane", "Mark", "Phase", "RunMoment", "Timeline", "TimelineFold", "fold"]

WORKING, WAITING, REVIEW, MERGE = "working", "waiting", "review", "merge"
PHASES = (WORKING, WAITING, REVIEW, MERGE)
# Marks: what the merge gate or a reviewer decided, and a session that died.
MERGED, REJECTED, CHECK_FAILED, CONFLICT, REFUSED, DIED = (
    "merged",
    "rejected",
    "check-failed",
    "conflict",
    "refused",
    "died",
)
_MERGE_MARKS = {
    "merged": MERGED,
    "already_merged": MERGED,
    "check_failed": CHECK_FAILED,
    "conflict": CONFLICT,
    "foreign_paths": CONFLICT,
}
# Names reviews are decided under that never run: no lane of their own.
NOT_SESSIONS = frozenset({AUTO_REVIEWER, HUMAN_SESSION})
TEXT_LIMIT = 200  # a tooltip's text, at most
NOT_STARTED = "waiting to start"
MARKS_SHOWN = 1000  # the last marks drawn (a run of thousands of merges counts the rest)
# The kinds the fold reads; any other is not parsed at all.
_FOLDED = frozenset(
    kind
    for payload in (
        RunStateChanged,
        MessageSent,
        MessagesRead,
        ReviewDecided,
        PromptSent,
        SdkResult,
        SessionFailed,
        SessionUpdated,
        WorkChanged,
        ReviewRequested,
        MergeQueued,
        MergeGateOutcome,
    )
    for kind in payload.kinds
) | {
    EventKind.SESSION_REGISTERED,
    EventKind.SESSION_INTERRUPTED,
    EventKind.SESSION_RESTARTED,
    EventKind.SESSION_CLOSED,
    EventKind.WORK_QUEUED,
}
_KNOWN = frozenset(EventKind)


@dataclass
class _LaneState:
    """Where one session stands while the fold goes on."""

    lane: Lane
    alive: bool = False  # registered or working, and not closed or ended
    turn: bool = False
    turns: int = 0
    turn_what: str = ""  # the turn going on, in words
    reviews: dict[int, str] = field(default_factory=dict)  # pending review id -> in words
    merging: str = ""  # the commit in the merge gate, in words ("" when none)
    status: str = NOT_STARTED  # what a waiting phase says
    not_started: str = NOT_STARTED  # what it says before the first turn
    open: tuple[str, float, str] | None = None  # the phase going on: kind, start, what
    # How a phase of a kind ended, added to its words when it closes (an ending said of a
    # phase that was not the one going on is dropped at the next close).
    endings: dict[str, str] = field(default_factory=dict)

    def phase_now(self) -> tuple[str, str] | None:
        if self.turn:
            return WORKING, self.turn_what
        if self.reviews:
            return REVIEW, "; ".join(self.reviews.values())
        if self.merging:
            return MERGE, self.merging
        if self.alive:
            return WAITING, self.status
        return None

    def settle(self, at: float) -> None:
        """The phase as it stands now: the one going on goes on, or closes at `at` and the
        new one opens."""
        now = self.phase_now()
        if self.open is not None and now is not None and (self.open[0], self.open[2]) == now:
            return  # the same phase, in the same words
        self.close(at)
        if now is not None:
            self.open = (now[0], at, now[1])

    def close(self, at: float) -> None:
        if self.open is None:
            return
        kind, start, what = self.open
        ending = self.endings.get(kind, "")
        self.open = None
        self.endings.clear()
        if kind == WAITING and at <= start:
            return  # a wait of no length says nothing
        what = what + (f" — {ending}" if ending else "")
        self.lane.phases.append(Phase(kind, start, max(at, start), one_line(what, TEXT_LIMIT)))
        self.lane.phases = coarse.bound(self.lane.phases)


class TimelineFold:
    """Fold events into a `Timeline`: `apply` each event in id order, then `finish`.

    `names`: session row id -> name (a message's event names its recipients by row id).
    `start`: when the run was created (default: its first event). `depends`: workstream ->
    those it waits for (the plan's), to say what a workstream not started waits for."""

    def __init__(
        self,
        names: Mapping[int, str],
        *,
        start: float | None = None,
        hidden: Collection[str] = NOT_SESSIONS,
        depends: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.names = names
        self.depends = depends or {}
        self.start = start
        self.last = start or 0.0
        self.hidden = frozenset(hidden)
        self.states: dict[str, _LaneState] = {}
        self.messages = Messages()  # the last ones sent, with when each was read
        self.marks: deque[Mark] = deque(maxlen=MARKS_SHOWN)
        self.marked = 0
        self.ended_at: float | None = None
        self.verdicts: dict[int, str] = {}
        self.moments: list[RunMoment] = []

    def lane(self, name: str) -> _LaneState:
        if name not in self.states:
            waits = self.depends.get(name)
            status = f"waiting for {', '.join(waits)}" if waits else NOT_STARTED
            self.states[name] = _LaneState(Lane(name), status=status, not_started=status)
        return self.states[name]

    def apply(self, event: Event) -> None:
        at = event.created_at
        if self.start is None:
            self.start = at
        self.last = max(self.last, at)
        if event.kind not in _FOLDED:  # most of a real run's events: the SDK's stream
            name = event.session
            if event.kind in _KNOWN and name is not None and name not in self.hidden:
                self.lane(name)  # a known kind gives its session a lane, as it always has
            return
        parsed = parse(event)
        if parsed is None:
            return
        payload = parsed.payload
        if isinstance(payload, RunStateChanged) and payload.state:
            self.ended_at = None if payload.state == RunState.ACTIVE else at
            what = f"run {payload.state}" + (
                f": {event.summary}" if event.summary and event.summary != payload.state else ""
            )
            self.moments.append(RunMoment(at, payload.state, one_line(what, TEXT_LIMIT)))
        self._messages(event, payload)
        self._about_others(event, payload)
        name = event.session
        if name is None or name in self.hidden:
            return
        state = self.lane(name)
        self._own(state, event, parsed.kind, payload)
        state.settle(at)

    def _own(self, state: _LaneState, event: Event, kind: EventKind, payload: Payload) -> None:
        """What an event says of its own session's phase."""
        name, at = state.lane.session, event.created_at
        if kind == EventKind.SESSION_REGISTERED:
            state.alive = True
        elif isinstance(payload, PromptSent):
            if state.turn:  # the one before ended without a result
                state.endings[WORKING] = "ended without a result"
                state.close(at)
            state.alive, state.turn, state.turns = True, True, state.turns + 1
            if state.status == state.not_started:
                state.status = "idle"  # what it is between its turns, until it says otherwise
            state.turn_what = f"turn {state.turns}: {one_line(payload.prompt, TEXT_LIMIT)}"
        elif isinstance(payload, SdkResult):
            said = payload.result or payload.subtype or "ended"
            state.endings[WORKING] = ("error: " if payload.is_error else "") + said
            state.turn = False
        elif kind in (EventKind.SESSION_INTERRUPTED, EventKind.SESSION_RESTARTED):
            state.endings[WORKING] = kind.removeprefix("session.")
            state.turn = False
        elif isinstance(payload, SessionFailed):
            state.endings[WORKING] = f"died: {payload.error}"
            state.turn = False
            self._mark(name, at, DIED, f"{name} died: {payload.error or event.summary}")
        elif kind == EventKind.SESSION_CLOSED:
            state.turn, state.alive = False, False
        elif isinstance(payload, SessionUpdated) and payload.status:
            self._status(state, payload)
        elif kind == EventKind.WORK_QUEUED:  # a run on workers: it waits for one to take it
            state.alive, state.status = True, "waiting for a worker"
        elif isinstance(payload, WorkChanged) and kind == EventKind.WORK_TAKEN:
            host = f" on {payload.host}" if payload.host else ""
            state.status = f"taken by worker {payload.worker or '?'}{host}"
        elif isinstance(payload, ReviewRequested) and payload.review_id:
            for old in payload.supersedes:
                state.reviews.pop(old, None)
            by = payload.reviewer or "the review policy's reviewer"
            state.reviews[payload.review_id] = (
                f"review #{payload.review_id} of {payload.commit[:12]} by {by}"
            )
        elif isinstance(payload, MergeQueued):
            state.merging = f"in the merge gate: {payload.commit[:12]}"
        elif isinstance(payload, MergeGateOutcome):
            outcome = kind.removeprefix("merge.")
            state.endings[MERGE], state.merging = outcome.replace("_", " "), ""
            self._mark(
                name, at, _MERGE_MARKS.get(outcome, REFUSED), _outcome_words(outcome, payload)
            )

    def _status(self, state: _LaneState, payload: SessionUpdated) -> None:
        try:
            status = SessionStatus(payload.status or "")
        except ValueError:
            return
        state.alive = not status.ended
        if status is not SessionStatus.WORKING:
            note = payload.note
            state.status = status.value + (f": {note}" if note else "")

    def _about_others(self, event: Event, payload: Payload) -> None:
        """A verdict ends its requester's review phase, and marks a rejection on its lane."""
        if not isinstance(payload, ReviewDecided) or not payload.requester:
            return
        verdict = event.kind.removeprefix("review.")
        self.verdicts[payload.review_id] = verdict
        author = payload.requester
        if author in self.hidden:
            return
        state = self.lane(author)
        if state.reviews.pop(payload.review_id, None) is None:
            return
        by = event.session or "conductor"
        said = f"review #{payload.review_id} {verdict} by {by}" + (
            f": {payload.comment}" if payload.comment else ""
        )
        state.endings[REVIEW] = said
        if event.kind == EventKind.REVIEW_REJECTED:
            self._mark(author, event.created_at, REJECTED, said)
        state.settle(event.created_at)

    def _messages(self, event: Event, payload: Payload) -> None:
        """A message is an arrow from its sender, sent, to each recipient, read."""
        if isinstance(payload, MessageSent) and event.session not in (None, *self.hidden):
            for rid in payload.recipients:
                recipient = self.names.get(rid)
                if recipient is None or recipient in self.hidden:
                    continue
                self.lane(recipient)  # a lane for it, even before it does anything
                review = payload.review_id is not None
                sender, at = str(event.session), event.created_at
                self.messages.sent(payload.message_id, sender, recipient, at, event.summary, review)
        elif isinstance(payload, MessagesRead) and event.session is not None:
            for mid in payload.message_ids:
                self.messages.read(mid, event.session, event.created_at)

    def _mark(self, name: str, at: float, kind: str, what: str) -> None:
        self.marks.append(Mark(name, at, kind, one_line(what, TEXT_LIMIT)))
        self.marked += 1

    def finish(self, end: float | None = None) -> Timeline:
        """The timeline up to `end` (default: the run's end, else its last event): phases
        still going on are closed there, messages never read are arrows read at no time."""
        start = self.start if self.start is not None else 0.0
        stop = end if end is not None else (self.ended_at or self.last)
        stop = max(stop, self.last, start)
        merged = 0
        for state in self.states.values():
            state.close(stop)
            lane = state.lane
            lane.phases = coarse.final(lane.phases, start, stop)
            merged += sum(phase.merged for phase in lane.phases) - len(lane.phases)
        lanes = {name: state.lane for name, state in self.states.items()}
        return Timeline(
            start,
            stop,
            lanes,
            self.messages.arrows(),
            list(self.marks),
            self.ended_at,
            self.verdicts,
            self.moments,
            messages_not_shown=self.messages.plain.not_shown,
            reviews_not_shown=self.messages.reviews.not_shown,
            marks_not_shown=self.marked - len(self.marks),
            phases_merged=merged,
        )


def _outcome_words(outcome: str, payload: MergeGateOutcome) -> str:
    """`merge conflict in README.md`, `checks failed on the merge: pytest -q`, ..."""
    words = f"{merge_words(outcome)} ({payload.commit[:12]})"
    if payload.conflicts:
        words += " in " + ", ".join(payload.conflicts)
    if payload.foreign:
        words += ": " + ", ".join(f"{p} (owned by {o})" for p, o in payload.foreign.items())
    if payload.check:
        words += f": {payload.check}"
    return words


def fold(
    events: Iterable[Event],
    names: Mapping[int, str],
    *,
    start: float | None = None,
    depends: Mapping[str, Sequence[str]] | None = None,
) -> Timeline:
    """The timeline of `events` at once (tests, and runs read in one go)."""
    folding = TimelineFold(names, start=start, depends=depends)
    for event in events:
        folding.apply(event)
    return folding.finish()
