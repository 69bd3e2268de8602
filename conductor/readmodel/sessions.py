"""One session as the views show it: its row (status, note) and what its events said (what it
is doing, its turns and spend, its review, where its merge stands)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from conductor.events import SdkAssistant
from conductor.models import AUTO_REVIEWER, ReviewStatus, SessionKind, SessionStatus
from conductor.readmodel.spend import usage_cost


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
    turns: int = 0  # of its finished turns, as its session row adds their results up
    cost_usd: float = 0.0  # likewise
    last_event_at: float | None = None
    review: ReviewState | None = None  # its latest review request
    merge: str = ""  # the last merge.* outcome: queued, merged, conflict, ...
    merge_detail: str = ""  # the conflicting paths, of a conflict
    flow: str = ""  # "review" or "merge": which of the two happened last
    verdict: str = ""  # a reviewer's last verdict, in words
    host: str = ""  # the worker (and its host) that runs it, on a run with --workers
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

    def count_call(self, event_id: int, message: SdkAssistant) -> None:
        """An assistant message of the turn going on: an API response, perhaps one already
        seen (the CLI writes one message per content block, each with the response's usage)."""
        key = message.message_id or f"event {event_id}"
        if message.parent_tool_use_id is None:  # a subagent's calls are not turns
            self.steps.add(key)
        cost = usage_cost(message.model, message.usage)
        if cost is not None:
            self.calls[key] = max(cost, self.calls.get(key, 0.0))

    def end_turn(self) -> None:
        self.steps.clear()
        self.calls.clear()
