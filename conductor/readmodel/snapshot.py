"""A `RunView` kept up to date from the run's events, read through the bus.

The snapshot is folded from new events only (a cursor, like `logs -f`), so an hour-long run
costs no more per refresh than a minute-long one. Each event is read through the catalogue
(`conductor.events`): a kind this version does not know moves the cursor and the session's
age, and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conductor.bus import Bus, open_run
from conductor.costs import PLANNER, planner_spend
from conductor.events import (
    CostCeiling,
    EventKind,
    MergeGateOutcome,
    MergeQueued,
    Payload,
    ReviewDecided,
    ReviewRequested,
    RunStateChanged,
    SdkAssistant,
    SdkResult,
    WorkChanged,
)
from conductor.models import Event, ReviewStatus, Run, SessionKind, SessionStatus
from conductor.readmodel.doing import assistant_doing
from conductor.readmodel.sessions import ReviewState, SessionView
from conductor.readmodel.state import RunView
from conductor.readmodel.words import (
    DOING_LIMIT,
    MERGE,
    merge_words,
    notable_line,
    payload_of,
    printable,
    what_happened,
)
from conductor.store import Store

PAGE = 500  # events per read: the first read of a long run is paged, not one huge list

# What a session is doing, taken from these notable events (the rest say it in other ways:
# a message or review request by the tool call that made it, a merge by the row's stage).
_DOING_NOTABLE = frozenset(
    {
        EventKind.HOOK_DENIED,
        EventKind.SESSION_DIED,
        EventKind.SESSION_STALLED,
        EventKind.SESSION_RESTARTED,
        EventKind.SESSION_PAUSED,
        EventKind.SESSION_INTERRUPTED,
        EventKind.GIT_COMMIT,
        EventKind.GIT_PUSH,
    }
)
# A turn that ends without a result: what it was estimated to cost is not counted anywhere
# else (a session's row counts results), so the view drops it too.
_TURN_LOST = frozenset(
    {EventKind.SESSION_DIED, EventKind.SESSION_INTERRUPTED, EventKind.SESSION_RESTARTED}
)


@dataclass
class Snapshot(RunView):
    """What the live view shows, brought up to date by `update` from events after `cursor`."""

    cursor: int = 0
    fresh: list[tuple[int, str]] = field(default_factory=list)  # (event id, line) not drained
    names: dict[int, str] = field(default_factory=dict)  # session row id -> name
    loaded: bool = False
    opened: tuple[Store, Bus] | None = field(default=None, repr=False)  # a store's bus

    async def update(self, source: Bus | Store) -> None:
        """Read what is new, through the run's bus (a store is opened to it once). Each await
        is followed by a synchronous fold, so a cancellation anywhere leaves the snapshot
        consistent and the cursor past exactly what was folded.

        The rows come first (the events name sessions by row id). A turn whose result lands
        between the two reads has ended by the events and is not in its row yet: for that one
        refresh its cost is left out, never counted twice."""
        bus = await self._bus(source)
        if not self.loaded:
            self.load(bus.run)
        for s in await bus.sessions():
            self.names[s.id] = s.name
            view = self.view(s.name)
            view.workstream, view.kind, view.status, view.note = (
                s.workstream,
                s.kind,
                s.status,
                s.note,
            )
            # Its finished turns as its row keeps them (each result adds to the row in the
            # result event's own transaction): never summed from payloads here.
            view.turns, view.cost_usd = s.turns, s.cost_usd
        while True:
            events = await bus.events(after=self.cursor, limit=PAGE)
            for event in events:
                self.apply(event)
            if len(events) < PAGE:
                return

    async def _bus(self, source: Bus | Store) -> Bus:
        """The run's bus, with the run as stored now when it is first loaded."""
        if isinstance(source, Bus):
            if not self.loaded:
                await source.refresh()
            return source
        if self.opened is None or self.opened[0] is not source:
            self.opened = (source, await open_run(source, self.run_id))
        return self.opened[1]

    def load(self, run: Run) -> None:
        """What the run's row says: its goal, its state so far, the plan, the planner."""
        self.goal, self.state, self.started_at = run.goal, run.state.value, run.created_at
        config = (run.spec or {}).get("config") or {}
        self.review_policy = config.get("review")
        ceiling = config.get("max_cost")
        self.max_cost = float(ceiling) if isinstance(ceiling, int | float) else 0.0
        self.depends = _depends(run.spec)
        planner = planner_spend(run.spec)
        if planner is not None:  # it ran before the run existed: a row of its own
            view = self.view(PLANNER)
            view.kind, view.status, view.note = SessionKind.PLANNER, SessionStatus.DONE, ""
            view.turns, view.cost_usd = planner.turns, planner.cost_usd
        self.loaded = True

    def apply(self, event: Event) -> None:
        """Fold one event in (events come in id order, each once)."""
        self.cursor = max(self.cursor, event.id)
        payload = payload_of(event)
        line = notable_line(event, self.names, payload)
        if line is not None:
            self.tail.append(line)
            self.fresh.append((event.id, line))
        kind = event.kind
        if isinstance(payload, RunStateChanged) and payload.state:
            self.state = payload.state
        if kind == EventKind.RUN_MAX_COST and isinstance(payload, CostCeiling):
            self.max_cost = payload.max_cost  # conductor resume --max-cost
        self._about_others(event, payload)
        if event.session is None:
            return
        view = self.view(event.session)
        view.last_event_at = event.created_at
        view.stirred = view.stirred or kind != EventKind.SESSION_REGISTERED
        if kind == EventKind.SESSION_PROMPT:
            view.end_turn()  # one before it that ended without a result is not counted
            view.action = view.reason or ("starting" if not view.prompts else "carrying on")
            view.reason, view.prompts = "", view.prompts + 1
        elif isinstance(payload, SdkAssistant):
            view.action = assistant_doing(payload) or view.action
            view.count_call(event.id, payload)
        elif isinstance(payload, SdkResult):
            view.end_turn()  # its figures are in the session's row from now on
        elif kind in _DOING_NOTABLE:
            view.action = printable(what_happened(event, payload, self.names), DOING_LIMIT)
            if kind in _TURN_LOST:
                view.end_turn()
        elif isinstance(payload, ReviewRequested) and payload.review_id:
            review = ReviewState(payload.review_id, ReviewStatus.PENDING, payload.reviewer or None)
            view.review, view.flow = review, "review"
        elif isinstance(payload, ReviewDecided) and payload.requester:
            verdict = kind.removeprefix("review.")
            comment = payload.comment
            view.verdict = printable(
                f"{verdict} #{payload.review_id} of {payload.requester}"
                + (f": {comment}" if comment else ""),
                DOING_LIMIT,
            )
        elif isinstance(payload, MergeQueued | MergeGateOutcome):
            self._merge(view, kind.removeprefix(MERGE), payload)
        elif kind == EventKind.WORK_QUEUED:
            view.reason = "waiting for a worker"
        elif kind == EventKind.WORK_TAKEN and isinstance(payload, WorkChanged):
            view.host = f"{payload.worker}@{payload.host}" if payload.host else payload.worker or ""
            view.reason = f"starting on worker {payload.worker}"

    def _about_others(self, event: Event, payload: Payload | None) -> None:
        """What an event says about a session other than its own: a review's author learns
        its verdict, its reviewer what it is about to do."""
        if isinstance(payload, ReviewRequested) and payload.reviewer and event.session:
            reviewer = self.view(payload.reviewer)
            reviewer.host = self.view(event.session).host  # it runs where its author does
            reviewer.reason = printable(f"reviewing #{payload.review_id} of {event.session}")
        if isinstance(payload, ReviewDecided) and payload.requester:
            author = self.view(payload.requester)
            if author.review is not None and author.review.id == payload.review_id:
                status = ReviewStatus(event.kind.removeprefix("review."))
                author.review = ReviewState(author.review.id, status, author.review.reviewer)
                if status is ReviewStatus.REJECTED:
                    comment = payload.comment
                    author.reason = printable(
                        f"fixing review #{author.review.id}" + (f": {comment}" if comment else ""),
                        DOING_LIMIT,
                    )

    def _merge(
        self, view: SessionView, outcome: str, payload: MergeQueued | MergeGateOutcome
    ) -> None:
        view.merge, view.flow = outcome, "merge"
        conflicts = payload.conflicts if isinstance(payload, MergeGateOutcome) else []
        view.merge_detail = printable(", ".join(conflicts)) if conflicts else ""
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
            view.reason = f"reworking: {merge_words(outcome)}"

    def drain(self) -> list[tuple[int, str]]:
        """The notable lines folded since the last drain, oldest first."""
        taken, self.fresh = self.fresh, []
        return taken


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
