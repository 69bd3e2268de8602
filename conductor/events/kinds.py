"""Every kind of event conductor writes, and the groups readers ask about."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """Every kind of event conductor writes (StrEnum: a member equals its stored string)."""

    RUN_CREATED = "run.created"
    RUN_STATE = "run.state"
    RUN_FAULT = "run.fault"
    RUN_LEFTOVERS = "run.leftovers"
    RUN_STOP_ASKED = "run.stop_asked"  # `conductor stop` or the browser: the supervisor stops
    RUN_COST_WARNING = "run.cost_warning"  # the run's spend passed 80 % of its max_cost
    RUN_COST_CEILING = "run.cost_ceiling"  # it reached max_cost: sessions pause, nothing starts
    RUN_MAX_COST = "run.max_cost"  # `conductor resume --max-cost`: a new, higher ceiling

    SESSION_REGISTERED = "session.registered"
    SESSION_UPDATED = "session.updated"
    SESSION_PROMPT = "session.prompt"
    SESSION_DIED = "session.died"
    SESSION_CLOSED = "session.closed"
    SESSION_INTERRUPTED = "session.interrupted"
    SESSION_RESTARTED = "session.restarted"
    SESSION_PAUSED = "session.paused"
    SESSION_MODEL = "session.model"  # its next turns run on another model (a conflict's turn)
    SESSION_STALLED = "session.stalled"
    SESSION_TIDIED = "session.tidied"

    MESSAGE_SENT = "message.sent"
    MESSAGE_READ = "message.read"
    CONTEXT_ADDED = "context.added"
    CONTEXT_DELIVERED = "context.delivered"
    CLAIM_ADDED = "claim.added"
    CLAIM_RELEASED = "claim.released"

    REVIEW_REQUESTED = "review.requested"
    REVIEW_APPROVED = "review.approved"
    REVIEW_REJECTED = "review.rejected"

    MERGE_QUEUED = "merge.queued"
    MERGE_MERGED = "merge.merged"
    MERGE_ALREADY_MERGED = "merge.already_merged"
    MERGE_CONFLICT = "merge.conflict"
    MERGE_CHECK_FAILED = "merge.check_failed"
    MERGE_FOREIGN_PATHS = "merge.foreign_paths"
    MERGE_NOTHING = "merge.nothing"
    MERGE_TAMPERED = "merge.tampered"

    WORK_QUEUED = "work.queued"
    WORK_TAKEN = "work.taken"
    WORK_ENDED = "work.ended"

    LOCK_ACQUIRED = "lock.acquired"
    LOCK_RELEASED = "lock.released"
    LOCK_RECLAIMED = "lock.reclaimed"
    LOCK_FORCED = "lock.forced"

    GIT_COMMIT = "git.commit"
    GIT_PUSH = "git.push"
    HOOK_DENIED = "hook.denied"

    # A notification of what needs a person (conductor.notify) delivered to a receiver, or
    # given up on: each once per receiver, so a resumed run does not send it again.
    NOTIFY_SENT = "notify.sent"
    NOTIFY_FAILED = "notify.failed"

    # The session's stream, one event per SDK message (`sdk.system.<subtype>` for system
    # messages: only `init` is read back; other subtypes are kept, shown, and not parsed).
    SDK_SYSTEM_INIT = "sdk.system.init"
    SDK_ASSISTANT = "sdk.assistant"
    SDK_USER = "sdk.user"
    SDK_TOOL_RESULT = "sdk.tool_result"
    SDK_RESULT = "sdk.result"

    @classmethod
    def merge_outcome(cls, status: str) -> EventKind:
        """The kind a merge gate's outcome is recorded under (`merged` -> `merge.merged`)."""
        return cls(f"merge.{status}")

    @classmethod
    def review_verdict(cls, status: str) -> EventKind:
        """The kind a decided review is recorded under (`approved` -> `review.approved`)."""
        return cls(f"review.{status}")

    @classmethod
    def lock_end(cls, reason: str) -> EventKind:
        """The kind a lock's end is recorded under (`released`, `reclaimed`, `forced`)."""
        return cls(f"lock.{reason}")


MERGE_OUTCOMES = frozenset(k for k in EventKind if k.startswith("merge.") and k != "merge.queued")
REVIEW_VERDICTS = frozenset({EventKind.REVIEW_APPROVED, EventKind.REVIEW_REJECTED})
LOCK_ENDS = frozenset({EventKind.LOCK_RELEASED, EventKind.LOCK_RECLAIMED, EventKind.LOCK_FORCED})
SDK_PREFIX = "sdk."  # a session's stream: one kind per SDK message type, named by the SDK
SDK_SYSTEM = f"{SDK_PREFIX}system."  # the prefix of every system message's kind


def sdk_kind(message_type: str) -> str:
    """The kind an SDK message of a type outside the catalogue is recorded under (kept for the
    log, never parsed: `sdk.StreamEvent`, say)."""
    return f"{SDK_PREFIX}{message_type}"


def sdk_system_kind(subtype: str) -> str:
    """The kind a system message of `subtype` is recorded under; `init` is in the catalogue,
    other subtypes (retries, compaction notices) are recorded for the log and never parsed."""
    return f"{SDK_SYSTEM}{subtype}"
