"""The event catalogue: every kind has one payload type, the parser reads what writers store
(today's and older runs' payloads alike), and skips kinds it does not know."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from conductor import events
from conductor.bus import Bus
from conductor.events import EventKind
from conductor.models import Event


def event(kind: str, payload: Any = None, *, session: str | None = "A") -> Event:
    return Event(1, "run", session, kind, "summary", payload, 0.0)


def test_every_kind_has_exactly_one_payload_type() -> None:
    assert set(events.PAYLOADS) == set(EventKind)
    for payload in set(events.PAYLOADS.values()):
        assert all(events.PAYLOADS[kind] is payload for kind in payload.kinds)


def test_a_kind_this_version_does_not_know_is_skipped() -> None:
    stream = [
        event("sdk.system.api_retry", {"attempt": 1}),
        event("a.kind.from.a.newer.conductor", {"x": 1}),
        event("run.state", {"state": "done"}),
    ]
    parsed = list(events.parse_all(stream))
    assert [p.kind for p in parsed] == [EventKind.RUN_STATE]
    assert events.parse(stream[0]) is None


def test_a_merge_outcome_reads_what_the_supervisor_stores() -> None:
    stored = {
        "branch": "conductor/r/A",
        "commit": "abc123",
        "integration_head": "def456",
        "conflicts": ["src/app.py"],
        "foreign": {"docs/x.md": "B"},
        "check": None,
        "commits": 3,
    }
    outcome = events.read(event("merge.merged", stored), events.MergeGateOutcome)
    assert outcome == events.MergeGateOutcome(
        "conductor/r/A", "abc123", "def456", ["src/app.py"], {"docs/x.md": "B"}, None, 3
    )
    assert outcome.to_json() == stored


def test_a_key_missing_from_an_older_run_reads_as_its_default() -> None:
    outcome = events.read(event("merge.merged", {"commit": "abc"}), events.MergeGateOutcome)
    assert outcome is not None
    assert (outcome.commit, outcome.commits, outcome.conflicts) == ("abc", 0, [])


def test_a_value_of_another_type_reads_as_the_default() -> None:
    stored = {"num_turns": "3", "is_error": "yes", "cost_usd": [1], "subtype": 7}
    result = events.read(event("sdk.result", stored), events.SdkResult)
    assert result == events.SdkResult()


def test_a_payload_that_is_not_an_object_reads_as_all_defaults() -> None:
    for payload in (None, [1, 2], "text"):
        read = events.read(event("message.read", payload), events.MessagesRead)
        assert read == events.MessagesRead()


def test_a_result_without_conductors_turn_cost_falls_back_to_the_running_total() -> None:
    old = events.read(
        event("sdk.result", {"total_cost_usd": 0.5, "num_turns": 2}), events.SdkResult
    )
    new = events.read(
        event("sdk.result", {"total_cost_usd": 0.5, "cost_usd": 0.1}), events.SdkResult
    )
    assert old is not None and (old.cost_usd, old.num_turns) == (0.5, 2)
    assert new is not None and new.cost_usd == 0.1


def test_read_answers_none_for_an_event_of_another_payload_type() -> None:
    assert events.read(event("run.state", {"state": "done"}), events.SdkResult) is None
    assert events.read(event("sdk.result", {}), events.RunStateChanged) is None


def test_optional_keys_are_left_out_as_writers_always_left_them_out() -> None:
    assert events.MessageSent(4, [2], False).to_json() == {
        "message_id": 4,
        "recipients": [2],
        "broadcast": False,
    }
    assert events.MessageSent(4, [2], False, review_id=9).to_json()["review_id"] == 9
    assert events.SessionUpdated(status="done").to_json() == {"status": "done"}
    assert events.MessagesRead([1, 2]).to_json() == {"message_ids": [1, 2]}


def test_the_init_message_gives_the_conversation_id_from_its_data() -> None:
    stored = {"subtype": "init", "data": {"session_id": "abc-1", "tools": []}, "type": "X"}
    assert events.read(event("sdk.system.init", stored), events.SdkInit) == events.SdkInit("abc-1")


def test_a_tool_result_keeps_its_content_blocks_or_its_text() -> None:
    blocks = {"content": [{"type": "tool_result", "content": "ok"}, "junk"]}
    text = {"content": "plain"}
    assert events.read(event("sdk.tool_result", blocks), events.SdkUser) == events.SdkUser(
        [{"type": "tool_result", "content": "ok"}]
    )
    assert events.read(event("sdk.user", text), events.SdkUser) == events.SdkUser("plain")


# What conductor writes itself (SdkInit and SdkUser are stored as the SDK dumps its message).
WRITTEN = sorted(
    set(events.PAYLOADS.values()) - {events.SdkInit, events.SdkUser}, key=lambda p: p.__name__
)


@pytest.mark.parametrize("payload", WRITTEN)
def test_every_payload_type_reads_back_what_it_writes(payload: type[events.Payload]) -> None:
    samples: dict[str, Any] = {
        "str": "x",
        "str | None": "y",
        "int": 3,
        "int | None": 4,
        "float": 1.5,
        "float | None": 2.5,
        "bool": True,
        "list[int]": [1, 2],
        "list[str]": ["a"],
        "dict[str, str]": {"p": "B"},
        "dict[str, Any] | None": {"k": 1},
        "list[dict[str, Any]]": [{"type": "text"}],
        "Any": {"command": "ls"},
    }
    written = payload(**{f.name: samples[f.type] for f in payload.record_fields})
    assert payload.from_json(written.to_json()) == written


def test_the_helpers_name_the_kind_of_an_outcome() -> None:
    assert EventKind.merge_outcome("already_merged") is EventKind.MERGE_ALREADY_MERGED
    assert EventKind.review_verdict("rejected") is EventKind.REVIEW_REJECTED
    assert EventKind.lock_end("reclaimed") is EventKind.LOCK_RECLAIMED
    assert EventKind.MERGE_QUEUED not in events.MERGE_OUTCOMES
    assert events.sdk_system_kind("init") == EventKind.SDK_SYSTEM_INIT


def test_a_payload_is_frozen_compared_by_value_and_fills_its_defaults() -> None:
    read = events.MessagesRead([1], "sync")
    assert read == events.MessagesRead(message_ids=[1], via="sync") != events.MessagesRead([1])
    assert events.MessagesRead().message_ids == [] and events.MessagesRead().message_ids is not (
        events.MessagesRead().message_ids
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.via = "wake"  # type: ignore[misc]
    with pytest.raises(TypeError):
        events.MessagesRead([1], "sync", "extra")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        events.CommitMade(sha="abc")  # type: ignore[call-arg]
    assert repr(events.CommitMade("abc")) == "CommitMade(commit='abc')"
    written = events.MessagesRead([1]).to_json()
    written["message_ids"].append(2)
    assert read.message_ids == [1]  # what was written is a copy


def test_every_outcome_the_gates_can_record_has_its_kind() -> None:
    """Kinds built from a status (`merge.<status>`, `review.<verdict>`) must stay in the
    catalogue as statuses are added: the bus refuses an unknown kind, mid-run."""
    from conductor.gates import MergeStatus
    from conductor.models import ReviewStatus

    for status in MergeStatus:
        assert EventKind.merge_outcome(status.value) in events.MERGE_OUTCOMES
    for verdict in (ReviewStatus.APPROVED, ReviewStatus.REJECTED):
        assert EventKind.review_verdict(verdict.value) in events.REVIEW_VERDICTS
    for reason in ("released", "reclaimed", "forced"):
        assert EventKind.lock_end(reason) in events.LOCK_ENDS


@pytest.mark.anyio
async def test_the_bus_refuses_a_kind_outside_the_catalogue(bus: Bus) -> None:
    with pytest.raises(ValueError, match=r"not in conductor\.events\.EventKind"):
        await bus.record("A", "merge.mergd", "a misspelt kind")
    await bus.record("A", events.sdk_kind("StreamEvent"), "the SDK names its own")
    await bus.record("A", EventKind.GIT_COMMIT, "abc", events.CommitMade("abc"))
    kinds = [e.kind for e in await bus.events(session="A")]
    assert "merge.mergd" not in kinds
    assert kinds[-2:] == ["sdk.StreamEvent", "git.commit"]
    assert (await bus.events(session="A"))[-1].payload == {"commit": "abc"}
