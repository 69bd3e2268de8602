"""A run read for its report, through the bus: the run's row, its sessions and reviews, and its
events in pages (`PAGE` at a time, folded as they come: a long run is never one huge list),
each event folded once into the timeline and the merge gate's outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conductor.bus import Bus
from conductor.costs import PLANNER, Spend, spend_of
from conductor.models import Review, Run, Session, SessionKind, SessionStatus
from conductor.plan import REVIEWER_SUFFIX
from conductor.readmodel import PAGE, does_work
from conductor.report.gate import GateFold, GateOutcome
from conductor.report.timeline import Timeline, TimelineFold

ROLES = ("planner", "workers", "reviewers")
_ROLE_OF = {
    SessionKind.PLANNER: "planner",
    SessionKind.WORKER: "workers",
    SessionKind.REVIEWER: "reviewers",
}
_LANDED = frozenset({"merged", "already_merged"})


@dataclass(frozen=True)
class SessionCost:
    name: str
    role: str  # planner, workers, reviewers
    turns: int
    cost_usd: float


@dataclass(frozen=True)
class Workstream:
    """A workstream of the plan (or a worker of a run made by hand) and how it ended."""

    name: str
    title: str
    outcome: str  # merged, failed, stopped, or where it stands (pending, working, ...)
    note: str
    review_rounds: int
    merge_attempts: int

    @property
    def merged(self) -> bool:
        return self.outcome == "merged"

    @property
    def failed(self) -> bool:
        return self.outcome in (SessionStatus.FAILED, SessionStatus.STOPPED)


@dataclass(frozen=True)
class RunReport:
    """Everything the report shows of one run, read at one moment."""

    run: Run
    state: str  # as a person should read it (`seen_state`: a dead supervisor's run reads so)
    timeline: Timeline
    lanes: list[str]  # the timeline's lanes in the order shown
    sessions: list[Session]  # those that do work
    costs: list[SessionCost]
    reviews: dict[str, list[Review]]  # by the session that asked, oldest first
    gate: list[GateOutcome]
    workstreams: list[Workstream]
    events: int

    @property
    def started_at(self) -> float:
        return self.run.created_at

    @property
    def ended_at(self) -> float | None:
        return self.timeline.ended_at

    @property
    def roles(self) -> dict[str, Spend]:
        spent = {role: Spend() for role in ROLES}
        for cost in self.costs:
            spent[cost.role] = spent.get(cost.role, Spend()) + Spend(cost.turns, cost.cost_usd)
        return spent

    @property
    def total(self) -> Spend:
        return sum((Spend(c.turns, c.cost_usd) for c in self.costs), Spend())


async def read_report(bus: Bus, *, now: float | None = None) -> RunReport:
    """The run as its report shows it. `now`: where the timeline of a run still going on
    ends (default: its last event)."""
    run = await bus.refresh()
    state = await bus.seen_state()
    rows = await bus.sessions()
    names = {s.id: s.name for s in rows}
    timeline = TimelineFold(names, start=run.created_at, depends=depends(run.spec))
    gate = GateFold()
    cursor = count = 0
    while True:
        page = await bus.events(after=cursor, limit=PAGE)
        for event in page:
            timeline.apply(event)
            gate.apply(event)
            cursor = event.id
        count += len(page)
        if len(page) < PAGE:
            break
    reviews = await bus.reviews()
    folded = timeline.finish(None if timeline.ended_at is not None else now)
    working = [s for s in rows if does_work(s)]
    by_author: dict[str, list[Review]] = {}
    for review in reviews:
        by_author.setdefault(review.requester, []).append(review)
    return RunReport(
        run=run,
        state=state,
        timeline=folded,
        lanes=lane_order(working, folded),
        sessions=working,
        costs=costs(run.spec, rows),
        reviews=by_author,
        gate=gate.outcomes,
        workstreams=workstreams(run.spec, working, by_author, gate.outcomes),
        events=count,
    )


def lane_order(sessions: list[Session], timeline: Timeline) -> list[str]:
    """Each worker followed by its reviewer, then every other session with a lane."""
    names = [s.name for s in sessions]
    shown: list[str] = []
    for s in sessions:
        if s.kind is SessionKind.WORKER:
            shown.append(s.name)
            reviewer = s.name + REVIEWER_SUFFIX
            if reviewer in names:
                shown.append(reviewer)
    shown += [n for n in names if n not in shown]
    shown += [n for n in timeline.lanes if n not in shown and timeline.lanes[n].phases]
    return [n for n in shown if n in timeline.lanes]


def costs(spec: Mapping[str, Any] | None, rows: list[Session]) -> list[SessionCost]:
    """What each session spent (the planner from the run's spec, the rest from the turns and
    cost the store keeps on each session, as every view reads them: `spend_of`)."""
    kinds = {s.name: s.kind for s in rows}
    found = []
    for name, spend in spend_of(spec, rows).items():
        kind = SessionKind.PLANNER if name == PLANNER else kinds.get(name, SessionKind.WORKER)
        role = _ROLE_OF.get(kind, kind.value)
        found.append(SessionCost(name, role, spend.turns, spend.cost_usd))
    return found


def workstreams(
    spec: Mapping[str, Any] | None,
    sessions: list[Session],
    reviews: dict[str, list[Review]],
    gate: list[GateOutcome],
) -> list[Workstream]:
    """The plan's workstreams (a run made by hand: its workers), each with how it ended."""
    rows = {s.name: s for s in sessions}
    planned = _planned(spec) or [
        (s.name, s.workstream) for s in sessions if s.kind is SessionKind.WORKER
    ]
    last: dict[str, str] = {}
    attempts: dict[str, int] = {}
    for tried in gate:
        last[tried.session] = tried.outcome
        attempts[tried.session] = attempts.get(tried.session, 0) + 1
    found = []
    for name, title in planned:
        row = rows.get(name)
        status = row.status if row is not None else SessionStatus.PENDING
        if status is SessionStatus.DONE or last.get(name) in _LANDED:
            outcome = "merged"
        else:
            outcome = status.value
        found.append(
            Workstream(
                name,
                title,
                outcome,
                row.note if row is not None else "",
                len(reviews.get(name, [])),
                attempts.get(name, 0),
            )
        )
    return found


def depends(spec: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Workstream -> those it depends on, as the plan says (a run without a plan: none)."""
    return {
        str(w["id"]): [str(d) for d in w.get("depends_on") or ()]
        for w in _plan(spec)
        if isinstance(w.get("depends_on") or (), list)
    }


def _plan(spec: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The plan's workstreams, each with an id, in its order."""
    plan = (spec or {}).get("plan")
    listed = plan.get("workstreams") if isinstance(plan, Mapping) else None
    if not isinstance(listed, list):
        return []
    return [w for w in listed if isinstance(w, Mapping) and w.get("id")]


def _planned(spec: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The plan's workstreams as (id, name), in its order; none for a run without a plan."""
    return [(str(w["id"]), str(w.get("name") or "")) for w in _plan(spec)]
