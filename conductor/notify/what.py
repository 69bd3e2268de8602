"""Which events need a person, and the notification made of each.

A notification is made from one event the run recorded, so that anything that follows the
events (this process now, a resumed supervisor later) makes the same one, and its `event_id`
names it for good: a receiver that gets one twice (see follow.py for when) can tell.

    review.requested, assigned to `human`   -> review.waiting     (answer: review approve)
    session.updated to `blocked`            -> session.blocked    (answer: message it)
    session.updated to `failed`, a workstream's session -> workstream.failed
    run.state finished / failed / interrupted -> run.<state>   (interrupted: resume)

An event that comes later may answer a notification before it went out (a review decided, a
session no longer blocked, the run resumed): `answers` says so, and a notification caught up
on after a restart is then not sent at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conductor.events import (
    EventKind,
    Payload,
    ReviewDecided,
    ReviewRequested,
    RunStateChanged,
    SessionUpdated,
    parse,
)
from conductor.models import HUMAN_REVIEWER, Event, Run, RunState, SessionStatus, for_a_person
from conductor.readmodel.words import printable

GOAL_LIMIT = 80  # characters of the goal in a notification's text
NOTE_LIMIT = 160  # of what a session said (why it is blocked, why it failed)
# How a supervised run ends (`stopped` is a state no supervisor sets: a stop is `interrupted`).
ENDS = frozenset({RunState.FINISHED, RunState.FAILED, RunState.INTERRUPTED})

# Words -> a conductor command line to paste (`hints.command` of the supervising process,
# which names this conductor and a database that is not the default one, never a password).
Wording = Callable[..., str]


@dataclass(frozen=True)
class RunFacts:
    """What a notification says of its run, read from the run's row once."""

    run_id: str
    goal: str
    review_policy: str | None = None  # the run's `review` setting
    workstreams: frozenset[str] = field(default_factory=frozenset)  # the plan's ids

    @classmethod
    def of(cls, run: Run) -> RunFacts:
        spec = run.spec or {}
        config = spec.get("config") or {}
        plan = spec.get("plan") or {}
        ids = {w.get("id") for w in plan.get("workstreams") or [] if isinstance(w, Mapping)}
        return cls(
            run.id,
            run.goal,
            config.get("review") if isinstance(config.get("review"), str) else None,
            frozenset(i for i in ids if isinstance(i, str)),
        )


@dataclass(frozen=True)
class Notification:
    """What a receiver gets, as JSON (`to_json`): see the README's Notifications."""

    kind: str  # a name of config.NOTIFICATIONS
    text: str  # one line for a person
    run_id: str
    goal: str
    session: str | None  # the session it is about; None for the run's own
    event_id: int  # the event it was made of: the same notification has the same id
    time: str  # when that event happened, ISO 8601 in UTC
    answer: str | None = None  # the command that answers it, to paste
    review_id: int | None = None  # review.waiting: the review

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "run_id": self.run_id,
            "goal": self.goal,
            "session": self.session,
            "event_id": self.event_id,
            "time": self.time,
            "answer": self.answer,
            "review_id": self.review_id,
        }

    def body(self) -> bytes:
        """The JSON a receiver reads, one line of UTF-8 ending in a newline."""
        return (json.dumps(self.to_json(), ensure_ascii=False) + "\n").encode()


def notification_of(event: Event, run: RunFacts, wording: Wording) -> Notification | None:
    """The notification `event` makes, or None when it needs no person."""
    parsed = parse(event)
    if parsed is None:
        return None
    payload = parsed.payload
    made = _made(event, payload, run, wording)
    if made is None:
        return None
    kind, text, answer, review_id = made
    goal = printable(run.goal, GOAL_LIMIT)
    # (a run.* text names the run already)
    about = goal if kind.startswith("run.") else f"run {run.run_id}: {goal}"
    return Notification(
        kind=kind,
        text=f"{text} ({about})",
        run_id=run.run_id,
        goal=run.goal,
        session=event.session,
        event_id=event.id,
        time=datetime.fromtimestamp(event.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        answer=answer,
        review_id=review_id,
    )


def _made(
    event: Event, payload: Payload, run: RunFacts, wording: Wording
) -> tuple[str, str, str | None, int | None] | None:
    """(kind, text, answer, review id) of the notification, or None."""
    who = printable(event.session or "?", 40)
    on_run = ("--run", run.run_id)
    if isinstance(payload, ReviewRequested) and for_a_person(payload.reviewer, run.review_policy):
        review = payload.review_id
        answer = wording("review", "approve", str(review), "--from", HUMAN_REVIEWER, *on_run)
        return "review.waiting", f"review #{review} of {who} waits for you", answer, review
    if isinstance(payload, SessionUpdated) and event.session is not None:
        note = f": {printable(payload.note, NOTE_LIMIT)}" if payload.note else ""
        if payload.status == SessionStatus.BLOCKED:
            answer = wording(
                "message", event.session, "your answer", "--from", HUMAN_REVIEWER, *on_run
            )
            return "session.blocked", f"{who} is blocked{note}", answer, None
        if payload.status == SessionStatus.FAILED and event.session in run.workstreams:
            return "workstream.failed", f"workstream {who} failed{note}", None, None
        return None
    if isinstance(payload, RunStateChanged) and payload.state in ENDS:
        state = payload.state
        why = f": {printable(event.summary, NOTE_LIMIT)}" if event.summary else ""
        resume = wording("resume", run.run_id) if state == RunState.INTERRUPTED else None
        return f"run.{state}", f"run {run.run_id} {state}{why}", resume, None
    return None


def answers(event: Event, notification: Notification) -> bool:
    """Whether `event`, recorded after the one `notification` was made of, makes it moot:
    its review decided or superseded, its session's status changed, its run's state moved
    (a resume after an interruption)."""
    parsed = parse(event)
    if parsed is None:
        return False
    payload, kind = parsed.payload, notification.kind
    if kind == "review.waiting":
        if isinstance(payload, ReviewDecided):
            return payload.review_id == notification.review_id
        if isinstance(payload, ReviewRequested):
            return notification.review_id in payload.supersedes
        return False
    if kind in ("session.blocked", "workstream.failed"):
        return (
            isinstance(payload, SessionUpdated)
            and event.session == notification.session
            and payload.status is not None
            and payload.status != _status_of(kind)
        )
    return parsed.kind == EventKind.RUN_STATE  # a run.* notification: the run moved on


def _status_of(kind: str) -> str:
    return SessionStatus.BLOCKED if kind == "session.blocked" else SessionStatus.FAILED
