"""One payload type per event kind: the keys a kind is stored with, read back by type.

Payloads keep the keys they were always stored under, so the events of runs recorded before
this catalogue read the same; a key missing from an old payload reads as its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any, ClassVar, TypeVar

from conductor.events.fields import blocks, mapping, reader
from conductor.events.kinds import LOCK_ENDS, MERGE_OUTCOMES, EventKind
from conductor.events.record import Record

P = TypeVar("P", bound="Payload")


class Payload(Record):
    """A kind's payload. `to_json` writes the keys readers of older runs also find."""

    kinds: ClassVar[tuple[EventKind, ...]] = ()
    # Keys left out of the stored JSON while None (as writers have always stored them).
    omitted_when_none: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_json(cls: type[P], data: Mapping[str, Any]) -> P:
        """Each field from its key, read as its declared type; missing or mistyped: default."""
        values: dict[str, Any] = {}
        for f in cls.record_fields:
            if f.name in data and data[f.name] is not None:
                value = reader(f.type)(data[f.name])
                if value is not None:
                    values[f.name] = value
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        written = {f.name: _copied(getattr(self, f.name)) for f in self.record_fields}
        for key in self.omitted_when_none:
            if written[key] is None:
                del written[key]
        return written


class Nothing(Payload):
    """Kinds whose summary says it all."""

    kinds = (
        EventKind.RUN_CREATED,
        EventKind.RUN_FAULT,
        EventKind.RUN_STOP_ASKED,
        EventKind.SESSION_CLOSED,
        EventKind.SESSION_INTERRUPTED,
        EventKind.SESSION_STALLED,
    )


class RunStateChanged(Payload):
    kinds = (EventKind.RUN_STATE,)
    state: str = ""


class CostCeiling(Payload):
    """The run's spend against its hard ceiling (max_cost), in dollars: passed 80 % of it,
    reached it, or a new ceiling set on resume."""

    kinds = (EventKind.RUN_COST_WARNING, EventKind.RUN_COST_CEILING, EventKind.RUN_MAX_COST)
    spent_usd: float = 0.0
    max_cost: float = 0.0


class LeftoversEnded(Payload):
    """The session processes a dead supervisor left, ended by the next one."""

    kinds = (EventKind.RUN_LEFTOVERS,)
    pids: list[int] = field(default_factory=list)


class SessionRegistered(Payload):
    kinds = (EventKind.SESSION_REGISTERED,)
    workstream: str | None = None
    kind: str = ""
    branch: str | None = None


class SessionUpdated(Payload):
    """What changed: only the fields that did are set (and stored)."""

    kinds = (EventKind.SESSION_UPDATED,)
    omitted_when_none = frozenset({"status", "note", "branch", "worktree", "sdk_session_id"})
    status: str | None = None
    note: str | None = None
    branch: str | None = None
    worktree: str | None = None
    sdk_session_id: str | None = None


class PromptSent(Payload):
    kinds = (EventKind.SESSION_PROMPT,)
    prompt: str = ""


class SessionFailed(Payload):
    kinds = (EventKind.SESSION_DIED,)
    error: str = ""


class SessionRestarted(Payload):
    kinds = (EventKind.SESSION_RESTARTED,)
    resume: str | None = None  # the conversation it was resumed into (None: a fresh one)
    restart: int = 0


class SessionPaused(Payload):
    """The API answered `status` (overloaded, rate limited): the session waits `seconds`.
    `until`: a usage window's reset it waits for (ISO 8601, UTC), when the API said one."""

    kinds = (EventKind.SESSION_PAUSED,)
    status: int | None = None
    seconds: float = 0.0
    pause: int = 0
    until: str | None = None


class SessionModelChanged(Payload):
    """Its next turns run on `model` (None: the CLI's default): a merge conflict's turn on
    the resolver model, and back."""

    kinds = (EventKind.SESSION_MODEL,)
    model: str | None = None


class SessionTidied(Payload):
    kinds = (EventKind.SESSION_TIDIED,)
    removed: list[str] = field(default_factory=list)


class MessageSent(Payload):
    kinds = (EventKind.MESSAGE_SENT,)
    omitted_when_none = frozenset({"review_id"})
    message_id: int = 0
    recipients: list[int] = field(default_factory=list)  # session ids
    broadcast: bool = False
    review_id: int | None = None  # a review's request or verdict, carried as a message


class MessagesRead(Payload):
    """Messages a session was handed, and how (`via`: a sync, a wake-up prompt, a verdict)."""

    kinds = (EventKind.MESSAGE_READ,)
    omitted_when_none = frozenset({"via"})
    message_ids: list[int] = field(default_factory=list)
    via: str | None = None


class ContextAdded(Payload):
    kinds = (EventKind.CONTEXT_ADDED,)
    context_id: int = 0


class ContextDelivered(Payload):
    kinds = (EventKind.CONTEXT_DELIVERED,)
    context_ids: list[int] = field(default_factory=list)


class ClaimChanged(Payload):
    """A claim taken or released (`reason`: why it went when its session ended)."""

    kinds = (EventKind.CLAIM_ADDED, EventKind.CLAIM_RELEASED)
    omitted_when_none = frozenset({"reason"})
    path: str = ""
    reason: str | None = None


class ReviewRequested(Payload):
    kinds = (EventKind.REVIEW_REQUESTED,)
    review_id: int = 0
    commit: str = ""
    reviewer: str | None = None
    supersedes: list[int] = field(default_factory=list)
    diff_size: int = 0


class ReviewDecided(Payload):
    kinds = (EventKind.REVIEW_APPROVED, EventKind.REVIEW_REJECTED)
    review_id: int = 0
    requester: str = ""
    comment: str = ""
    message_id: int | None = None  # the verdict's message to the requester


class MergeQueued(Payload):
    kinds = (EventKind.MERGE_QUEUED,)
    branch: str = ""
    commit: str = ""


class WorkChanged(Payload):
    """A workstream handed to workers: queued, taken (`attempt` > 1 with `previous`: taken
    over from a worker whose lease ran out) or ended (`state`: the outcome)."""

    kinds = (EventKind.WORK_QUEUED, EventKind.WORK_TAKEN, EventKind.WORK_ENDED)
    worker: str | None = None
    host: str | None = None
    attempt: int = 0
    previous: str | None = None
    state: str | None = None


class MergeGateOutcome(Payload):
    """What the merge gate made of a reviewed commit (the kind says which outcome)."""

    kinds = tuple(sorted(MERGE_OUTCOMES))
    omitted_when_none = frozenset({"output"})
    branch: str = ""
    commit: str = ""
    integration_head: str | None = None
    conflicts: list[str] = field(default_factory=list)
    foreign: dict[str, str] = field(default_factory=dict)  # path -> the workstream owning it
    check: str | None = None  # the check that failed
    commits: int = 0  # what it delivered, counted when it landed
    output: str | None = None  # a failed check's output, its tail (gates/checks bounds it)


class LockChanged(Payload):
    kinds = (EventKind.LOCK_ACQUIRED, *sorted(LOCK_ENDS))
    omitted_when_none = frozenset({"lease_seconds"})
    name: str = ""
    holder: str = ""
    pid: int | None = None
    lease_seconds: float | None = None  # set when acquired


class CommitMade(Payload):
    kinds = (EventKind.GIT_COMMIT,)
    commit: str = ""


class Pushed(Payload):
    kinds = (EventKind.GIT_PUSH,)
    omitted_when_none = frozenset({"commit"})
    branch: str = ""
    remote: str = ""
    commit: str | None = None


class ToolDenied(Payload):
    """A hook refused a tool call; `input` is the call's input as the session gave it."""

    kinds = (EventKind.HOOK_DENIED,)
    tool: str = ""
    input: Any = None
    reason: str = ""


class NotifyDelivered(Payload):
    """A notification (`notification`: its name, e.g. `review.waiting`) made of the event
    `event_id`, delivered to `receiver` (`command` or `webhook`), or given up on (`error`)."""

    kinds = (EventKind.NOTIFY_SENT, EventKind.NOTIFY_FAILED)
    omitted_when_none = frozenset({"error"})
    event_id: int = 0
    receiver: str = ""
    notification: str = ""
    error: str | None = None


# The session's stream: the payload is the SDK message as the SDK's dataclass dumps it (plus
# `type`, and conductor's `cost_usd` on a result). These types read what conductor uses of it.

COST_KEY = "cost_usd"  # conductor's own field in an `sdk.result` payload: that turn's cost


class SdkInit(Payload):
    kinds = (EventKind.SDK_SYSTEM_INIT,)
    session_id: str = ""  # the conversation, what a restart resumes into

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SdkInit:
        return super().from_json(mapping(data.get("data")) or {})


class SdkAssistant(Payload):
    kinds = (EventKind.SDK_ASSISTANT,)
    content: list[dict[str, Any]] = field(default_factory=list)  # text / tool_use blocks
    model: str | None = None
    usage: dict[str, Any] | None = None
    message_id: str | None = None  # one API message may stream as several events
    parent_tool_use_id: str | None = None  # set: a subagent's message, not a turn's
    error: str | None = None


class SdkUser(Payload):
    kinds = (EventKind.SDK_USER, EventKind.SDK_TOOL_RESULT)
    content: list[dict[str, Any]] | str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SdkUser:
        value = data.get("content")
        return cls(value if isinstance(value, str) else blocks(value) or [])


class SdkResult(Payload):
    """A turn's end. `cost_usd` is that turn's cost; runs recorded before conductor stored it
    carry only the CLI's running total, which is what they were counted by then."""

    kinds = (EventKind.SDK_RESULT,)
    is_error: bool = False
    num_turns: int = 0
    cost_usd: float = 0.0
    subtype: str = ""
    result: str | None = None
    api_error_status: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SdkResult:
        if COST_KEY not in data:
            data = {**data, COST_KEY: data.get("total_cost_usd")}
        return super().from_json(data)


PAYLOADS: dict[EventKind, type[Payload]] = {
    kind: payload
    for payload in (
        Nothing,
        RunStateChanged,
        CostCeiling,
        LeftoversEnded,
        SessionRegistered,
        SessionUpdated,
        PromptSent,
        SessionFailed,
        SessionRestarted,
        SessionPaused,
        SessionModelChanged,
        SessionTidied,
        MessageSent,
        MessagesRead,
        ContextAdded,
        ContextDelivered,
        ClaimChanged,
        ReviewRequested,
        ReviewDecided,
        MergeQueued,
        WorkChanged,
        MergeGateOutcome,
        LockChanged,
        CommitMade,
        Pushed,
        ToolDenied,
        NotifyDelivered,
        SdkInit,
        SdkAssistant,
        SdkUser,
        SdkResult,
    )
    for kind in payload.kinds
}


def _copied(value: Any) -> Any:
    """A payload's lists and objects copied into what it writes (as `asdict` did), so the
    JSON written is not the record's own."""
    if isinstance(value, list):
        return [_copied(v) for v in value]
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    return value
