"""Typed records of the store. Rows become these in one place (`store/rows.py`), nowhere else."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from conductor.errors import InvalidInput


class SessionStatus(StrEnum):
    """A closed set: a session is in exactly one of these, never free text."""

    PENDING = "pending"  # registered, not yet started or heard from
    WORKING = "working"
    IDLE = "idle"  # its turn ended; waiting to be woken
    BLOCKED = "blocked"  # waiting on something; the note says what
    REVIEW = "review"  # waiting for a review verdict
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def ended(self) -> bool:
        return self in (SessionStatus.DONE, SessionStatus.FAILED, SessionStatus.STOPPED)

    @classmethod
    def parse(cls, text: str) -> SessionStatus:
        # claude-swarm called the working state "running"; accept it for hands that remember.
        text = {"running": "working"}.get(text.strip().lower(), text.strip().lower())
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise InvalidInput(f"unknown status {text!r}: use one of {allowed}") from None


HUMAN_SESSION = "human"  # the session a person acts as (and reviews as) by hand
HUMAN_REVIEWER = HUMAN_SESSION  # a person reviews as the session a person acts as
AUTO_REVIEWER = "auto"  # the reviewer name of the `auto` policy: conductor approves at once


def for_a_person(reviewer: str | None, policy: str | None) -> bool:
    """Whether a review is a person's to decide: assigned to `human`, or to no one in a run
    whose review policy is human (a request made by hand, which the supervisor then waits
    on a verdict for). The live view, the browser and notifications all ask this."""
    return reviewer == HUMAN_REVIEWER or (reviewer is None and policy == HUMAN_REVIEWER)


class ReviewPolicy(StrEnum):
    """Who reviews a workstream's branch before the merge gate takes it."""

    AGENT = "agent"  # a dedicated reviewer session per author
    PEER = "peer"  # another workstream's session
    HUMAN = "human"  # a person, through `conductor review approve/reject`
    AUTO = "auto"  # conductor approves at once (the merge gate's checks still apply)


class SessionKind(StrEnum):
    WORKER = "worker"
    PLANNER = "planner"
    REVIEWER = "reviewer"
    HUMAN = "human"


class ContextCategory(StrEnum):
    DECISION = "decision"
    INTERFACE = "interface"
    WARNING = "warning"
    CONVENTION = "convention"
    DISCOVERY = "discovery"

    @classmethod
    def parse(cls, text: str) -> ContextCategory:
        try:
            return cls(text.strip().lower())
        except ValueError:
            allowed = ", ".join(c.value for c in cls)
            raise InvalidInput(f"unknown category {text!r}: use one of {allowed}") from None


class ReviewStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"


class RunState(StrEnum):
    ACTIVE = "active"
    INTERRUPTED = "interrupted"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"


BROADCAST = "all"
_SESSION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,40}$")


def check_session_name(name: str) -> str:
    """Session names end up in branch names and paths, so they follow a strict pattern."""
    if not _SESSION_NAME.match(name) or name.lower() == BROADCAST:
        raise InvalidInput(
            f"bad session id {name!r}: a letter, then up to 31 letters, digits, '-' or '_'"
            f" (and not {BROADCAST!r}, which means every session)"
        )
    return name


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise InvalidInput(f"bad run id {run_id!r}")
    return run_id


class Record:
    """Shared JSON view of every record, for `--json` output."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        data.pop("diff", None)
        return data


@dataclass(frozen=True)
class Run(Record):
    id: str
    goal: str
    state: RunState
    repo_root: str
    base_ref: str | None
    base_commit: str | None
    created_at: float
    updated_at: float
    spec: dict[str, Any] | None = None  # what `conductor run` started it with (plan, config)


@dataclass(frozen=True)
class Session(Record):
    id: int
    run_id: str
    name: str
    workstream: str
    kind: SessionKind
    status: SessionStatus
    note: str
    branch: str | None
    worktree: str | None
    sdk_session_id: str | None
    context_cursor: int
    last_seen_at: float | None
    created_at: float
    updated_at: float
    turns: int = 0  # the turns its results reported, added up
    cost_usd: float = 0.0  # what its turns cost, added up (see conductor.costs)


@dataclass(frozen=True)
class Message(Record):
    id: int
    run_id: str
    sender: str | None  # None: conductor itself
    recipients: tuple[str, ...]
    broadcast: bool
    body: str
    reply_to: int | None
    created_at: float
    read_at: float | None = None  # for the recipient it was fetched for


@dataclass(frozen=True)
class ContextEntry(Record):
    id: int
    run_id: str
    author: str | None
    category: ContextCategory
    body: str
    created_at: float


@dataclass(frozen=True)
class Claim(Record):
    id: int
    run_id: str
    session: str
    path: str
    created_at: float


@dataclass(frozen=True)
class Review(Record):
    id: int
    run_id: str
    requester: str
    reviewer: str | None
    status: ReviewStatus
    commit: str
    base: str | None
    note: str
    comment: str
    decided_by: str | None
    superseded_by: int | None
    created_at: float
    decided_at: float | None
    diff_size: int
    diff: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class Lease(Record):
    name: str
    holder: str
    token: str
    pid: int | None
    host: str | None
    acquired_at: float
    expires_at: float


@dataclass(frozen=True)
class WorkerInfo(Record):
    """A `conductor worker` process as it last said it was alive (`conductor workers`)."""

    id: str
    host: str
    pid: int | None
    slots: int
    started_at: float
    heartbeat_at: float
    stopped_at: float | None


@dataclass(frozen=True)
class Assignment(Record):
    """A workstream of a run handed to workers: queued, taken by one under a lease it renews,
    or ended (its outcome, JSON). A lease that runs out lets another worker take it over."""

    run_id: str
    session: str
    state: str  # queued, taken, ended
    queued_at: float
    worker: str | None
    lease_until: float | None
    attempt: int  # how many times a worker took it
    previous_worker: str | None  # who held it before the current taker (a takeover)
    outcome: str | None


@dataclass(frozen=True)
class MergeRequest(Record):
    """A worker's reviewed commit, waiting for the supervisor's merge gate (which alone
    writes the integration branch); `result` is the gate's outcome, JSON, once answered."""

    id: int
    run_id: str
    session: str
    branch: str
    commit: str
    owners: str  # JSON: path -> the workstream owning it
    worker: str | None
    created_at: float
    result: str | None


@dataclass(frozen=True)
class Event(Record):
    id: int
    run_id: str | None
    session: str | None
    kind: str
    summary: str
    payload: dict[str, Any] | None
    created_at: float


@dataclass(frozen=True)
class SyncResult(Record):
    session: str
    messages: list[Message]
    context: list[ContextEntry]

    @property
    def empty(self) -> bool:
        return not self.messages and not self.context

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "messages": [m.to_json() for m in self.messages],
            "context": [c.to_json() for c in self.context],
        }
