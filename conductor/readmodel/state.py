"""A run as the views show it: plain typed state, and the questions every rendering asks of
it (which rows, what each is doing, what waits on a person, the totals).

No terminal here and nothing read from the store: `Snapshot` (snapshot.py) keeps a `RunView`
up to date from events; the terminal dashboard, the web view and an HTML report read it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from conductor.models import (
    AUTO_REVIEWER,
    HUMAN_REVIEWER,
    ReviewStatus,
    SessionKind,
    SessionStatus,
    for_a_person,
)
from conductor.plan import REVIEWER_SUFFIX
from conductor.readmodel.sessions import ReviewState, SessionView, real_sessions
from conductor.readmodel.words import cost_text, merge_words, ordinal, printable

TAIL = 8  # notable lines kept for the view


@dataclass
class RunView:
    """What the live view shows of one run."""

    run_id: str
    goal: str = ""
    state: str = ""
    started_at: float | None = None
    review_policy: str | None = None  # from the run's spec; None for a run made by hand
    max_cost: float = 0.0  # the run's hard cost ceiling (its spec's, or the last resume's); 0: none
    depends: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the plan's, by id
    sessions: dict[str, SessionView] = field(default_factory=dict)
    merge_queue: list[str] = field(default_factory=list)  # in the order they entered it
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))

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
        return review if for_a_person(review.reviewer, self.review_policy) else None

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
                return f"merge queued {ordinal(self.merge_queue.index(view.name) + 1)}"
            if view.merge == "conflict" and view.merge_detail:
                return f"merge conflict in {view.merge_detail}"
            return merge_words(view.merge)
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
    def spent(self) -> str:
        """`$0.2250 of $5.00`: its cost so far (`~` counting turns going on at list price),
        against its hard ceiling (max_cost) when it has one."""
        ceiling = f" of ${self.max_cost:.2f}" if self.max_cost else ""
        return cost_text(self.cost_usd, self.estimating) + ceiling

    @property
    def estimating(self) -> bool:
        """Whether the cost counts turns going on (at list price), not only results."""
        return any(v.estimating for v in self.sessions.values())
