"""The catalogue of event kinds, one payload type per kind, and the one parser.

Every event a run records is a row with a kind and a JSON payload. Before this module the
kinds were string literals in eight modules and every reader (resume, the views, the cost
sums) picked keys out of the JSON by hand, so a key renamed by a writer silently broke a
reader. Now a writer names its kind from `EventKind` and builds its payload from the kind's
type here; a reader gets that same type back from `parse`/`read`, and an event of a kind this
version does not know (a newer conductor wrote it, or a `sdk.*` message the SDK added) is
skipped rather than misread. Payloads keep the keys they were always stored under, so the
events of runs recorded before this catalogue read the same; a key missing from an old
payload reads as its default.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from conductor.events.kinds import (
    LOCK_ENDS,
    MERGE_OUTCOMES,
    REVIEW_VERDICTS,
    SDK_PREFIX,
    SDK_SYSTEM,
    EventKind,
    sdk_kind,
    sdk_system_kind,
)
from conductor.events.payloads import (
    COST_KEY,
    PAYLOADS,
    ClaimChanged,
    CommitMade,
    ContextAdded,
    ContextDelivered,
    CostCeiling,
    LeftoversEnded,
    LockChanged,
    MergeGateOutcome,
    MergeQueued,
    MessageSent,
    MessagesRead,
    Nothing,
    P,
    Payload,
    PromptSent,
    Pushed,
    ReviewDecided,
    ReviewRequested,
    RunStateChanged,
    SdkAssistant,
    SdkInit,
    SdkResult,
    SdkUser,
    SessionFailed,
    SessionModelChanged,
    SessionPaused,
    SessionRegistered,
    SessionRestarted,
    SessionTidied,
    SessionUpdated,
    ToolDenied,
    WorkChanged,
)
from conductor.models import Event

__all__ = [
    "COST_KEY",
    "LOCK_ENDS",
    "MERGE_OUTCOMES",
    "PAYLOADS",
    "REVIEW_VERDICTS",
    "SDK_PREFIX",
    "SDK_SYSTEM",
    "ClaimChanged",
    "CommitMade",
    "ContextAdded",
    "ContextDelivered",
    "CostCeiling",
    "EventKind",
    "LeftoversEnded",
    "LockChanged",
    "MergeGateOutcome",
    "MergeQueued",
    "MessageSent",
    "MessagesRead",
    "Nothing",
    "Parsed",
    "Payload",
    "PromptSent",
    "Pushed",
    "ReviewDecided",
    "ReviewRequested",
    "RunStateChanged",
    "SdkAssistant",
    "SdkInit",
    "SdkResult",
    "SdkUser",
    "SessionFailed",
    "SessionModelChanged",
    "SessionPaused",
    "SessionRegistered",
    "SessionRestarted",
    "SessionTidied",
    "SessionUpdated",
    "ToolDenied",
    "WorkChanged",
    "parse",
    "parse_all",
    "read",
    "sdk_kind",
    "sdk_system_kind",
]


@dataclass(frozen=True)
class Parsed:
    """An event with its kind from the catalogue and its payload typed."""

    event: Event
    kind: EventKind
    payload: Payload


def parse(event: Event) -> Parsed | None:
    """The event typed, or None for a kind this version does not know."""
    try:
        kind = EventKind(event.kind)
    except ValueError:
        return None
    data = event.payload if isinstance(event.payload, Mapping) else {}
    return Parsed(event, kind, PAYLOADS[kind].from_json(data))


def parse_all(events: Iterable[Event]) -> Iterator[Parsed]:
    """The known events of `events`, in order; unknown kinds are skipped."""
    for event in events:
        parsed = parse(event)
        if parsed is not None:
            yield parsed


def read(event: Event, payload: type[P]) -> P | None:
    """`event`'s payload as `payload`, or None when its kind carries another type (or is
    unknown): `if (result := read(event, SdkResult)) and not result.is_error: ...`."""
    parsed = parse(event)
    if parsed is None or not isinstance(parsed.payload, payload):
        return None
    return parsed.payload
