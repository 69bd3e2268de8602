"""Resume replay as pure functions: what a resumed run reads back from its events, one
behaviour per test, built from Event records (no store, no processes, no git)."""

from __future__ import annotations

from itertools import count
from typing import Any

from conductor.models import Event
from conductor.run import replay
from conductor.run.replay import VERDICT_VIA, WAKE_VIA, LastMerge

_ids = count(1)


def event(
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    session: str | None = "A",
    summary: str = "",
) -> Event:
    """An event with the next id: events listed oldest first, as the store gives them."""
    return Event(
        id=next(_ids),
        run_id="r",
        session=session,
        kind=kind,
        summary=summary or kind,
        payload=payload,
        created_at=0.0,
    )


def prompt(text: str) -> Event:
    return event("session.prompt", {"prompt": text})


def result(*, is_error: bool = False) -> Event:
    return event("sdk.result", {"is_error": is_error, "num_turns": 1, "cost_usd": 0.1})


def read(*ids: int, via: str | None = None) -> Event:
    payload: dict[str, Any] = {"message_ids": list(ids)}
    if via is not None:
        payload["via"] = via
    return event("message.read", payload)


def merge(status: str, session: str = "A", **payload: Any) -> Event:
    return event(f"merge.{status}", payload, session=session)


def verdict(status: str, requester: str) -> Event:
    return event(f"review.{status}", {"review_id": 1, "requester": requester}, session=None)


# ---------------------------------------------------------------------- the turn it was in


def test_a_session_with_no_events_was_in_no_turn() -> None:
    assert replay.interrupted_prompt([]) is None


def test_a_prompt_answered_by_a_result_is_no_interrupted_turn() -> None:
    assert replay.interrupted_prompt([prompt("work"), result()]) is None


def test_a_prompt_with_no_result_after_it_is_the_interrupted_turn() -> None:
    events = [prompt("work"), result(), prompt("fix the conflict")]
    assert replay.interrupted_prompt(events) == events[-1]


def test_a_turn_that_ended_in_an_error_is_still_interrupted() -> None:
    asked = prompt("work")
    assert replay.interrupted_prompt([asked, result(is_error=True)]) == asked


def test_of_two_prompts_since_the_last_result_the_later_is_the_turn_it_was_in() -> None:
    events = [prompt("work"), prompt("again")]
    assert replay.interrupted_prompt(events) == events[-1]


def test_the_last_finished_turn_is_the_last_result_that_is_not_an_error() -> None:
    events = [prompt("w"), result(), result(is_error=True)]
    assert replay.last_finished_turn(events) == events[1].id


def test_the_interrupted_turn_is_told_with_its_prompt() -> None:
    told = replay.interrupted_turn(prompt("write core.py"))
    assert told.endswith("--- the prompt ---\nwrite core.py")
    assert "git status" in told


def test_a_prompt_recorded_without_its_text_is_told_by_its_summary() -> None:
    assert replay.prompt_text(event("session.prompt", None, summary="the task")) == "the task"


# ---------------------------------------------------------------------- messages it is owed


def test_messages_handed_over_since_the_last_finished_turn_are_owed() -> None:
    events = [prompt("w"), result(), read(4, 5)]
    assert replay.owed_messages(events) == [4, 5]


def test_messages_read_before_the_last_finished_turn_are_not_owed() -> None:
    assert replay.owed_messages([prompt("w"), read(4), result()]) == []


def test_messages_that_woke_the_interrupted_prompt_are_not_owed_again() -> None:
    # The prompt that carried them is sent again whole.
    events = [prompt("w"), result(), read(4, via=WAKE_VIA), prompt("New messages: #4")]
    assert replay.owed_messages(events) == []


def test_messages_read_in_the_interrupted_turn_are_owed() -> None:
    events = [prompt("w"), result(), prompt("again"), read(7, via=WAKE_VIA)]
    assert replay.owed_messages(events) == [7]


def test_a_relayed_review_verdict_is_not_owed() -> None:
    # The gates act on a verdict and tell the session themselves.
    assert replay.owed_messages([result(), read(9, via=VERDICT_VIA)]) == []


def test_nothing_is_owed_to_a_session_between_turns_with_no_mail() -> None:
    assert replay.owed_to([prompt("w"), result()]).nothing


def test_what_is_owed_names_the_turn_and_the_messages() -> None:
    asked = prompt("w")
    owed = replay.owed_to([asked, read(3)])
    assert (owed.interrupted, owed.message_ids, owed.nothing) == (asked, [3], False)


def test_an_unknown_kind_is_skipped_not_misread() -> None:
    events = [prompt("w"), result(), event("sdk.something_new", {"message_ids": [1]})]
    assert replay.owed_to(events).nothing


# ---------------------------------------------------------------------- reviews and merges


def test_decided_reviews_are_counted_per_author() -> None:
    events = [
        verdict("rejected", "A"),
        verdict("approved", "A"),
        verdict("approved", "B"),
        event("review.requested", {"review_id": 2, "requester": "B"}),
    ]
    assert replay.review_rounds(events) == {"A": 2, "B": 1}


def test_the_last_merge_outcome_is_what_the_gate_said_last() -> None:
    events = [merge("conflict"), merge("merged", commits=3), merge("already_merged")]
    assert replay.last_merges(events) == {"A": LastMerge("already_merged", 3)}


def test_a_queued_merge_is_not_an_outcome() -> None:
    assert replay.last_merges([merge("check_failed"), merge("queued")]) == {
        "A": LastMerge("check_failed", 0)
    }


def test_commits_are_counted_when_the_work_landed() -> None:
    events = [merge("merged", commits=2), merge("conflict", commits=9)]
    assert replay.last_merges(events)["A"].commits == 2


def test_each_workstream_landed_the_commit_of_its_last_landing() -> None:
    events = [
        merge("merged", commit="aaa"),
        merge("conflict", session="B", commit="bbb"),
        merge("already_merged", commit="ccc"),
    ]
    assert replay.landed_commits(events) == {"A": "ccc"}


def test_a_merge_outcome_of_no_session_landed_nothing() -> None:
    assert replay.landed_commits([event("merge.merged", {"commit": "x"}, session=None)]) == {}
