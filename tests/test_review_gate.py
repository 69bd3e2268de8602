"""The review gate's pieces: who reviews under each policy, and a reviewer's verdict tool."""

from __future__ import annotations

from typing import Any

import pytest

from conductor.bus import Bus
from conductor.gates import ReviewPolicy, reviewer_for
from conductor.models import SessionKind
from conductor.tools import reviewer_tools

pytestmark = pytest.mark.anyio


async def test_each_policy_names_its_reviewer(bus: Bus) -> None:
    sessions = await bus.sessions()  # A, B, C workers
    assert reviewer_for(ReviewPolicy.AGENT, "B", sessions) == "B-review"
    assert reviewer_for(ReviewPolicy.HUMAN, "B", sessions) == "human"
    assert reviewer_for(ReviewPolicy.AUTO, "B", sessions) == "auto"
    assert reviewer_for(ReviewPolicy.PEER, "A", sessions) == "B"
    assert reviewer_for(ReviewPolicy.PEER, "C", sessions) == "A"  # round robin


async def test_a_peer_that_failed_is_passed_over(bus: Bus) -> None:
    await bus.update("B", status="failed")
    assert reviewer_for(ReviewPolicy.PEER, "A", await bus.sessions()) == "C"


async def test_with_no_peer_left_an_agent_reviews(bus: Bus) -> None:
    await bus.update("B", status="stopped")
    await bus.update("C", status="failed")
    assert reviewer_for(ReviewPolicy.PEER, "A", await bus.sessions()) == "A-review"


@pytest.fixture
async def verdict(bus: Bus) -> Any:
    await bus.register([("A-review", "reviews A")], kind=SessionKind.REVIEWER)
    (tool,) = [t for t in reviewer_tools(bus, "A-review") if t.name == "review_verdict"]
    return tool


async def test_the_show_tool_gives_a_review_with_its_diff(bus: Bus) -> None:
    (show,) = [t for t in reviewer_tools(bus, "B") if t.name == "review_show"]
    review = await bus.request_review("A", commit="c0ffee", diff=b"+x = 1\n", reviewer="B")
    answer = await show.handler({"review_id": str(review.id)})
    text = answer["content"][0]["text"]
    assert text.startswith(f"Review #{review.id} of A, commit c0ffee, pending, for B")
    assert text.endswith("+x = 1\n")


async def test_the_verdict_tool_approves_and_the_author_hears(bus: Bus, verdict: Any) -> None:
    review = await bus.request_review("A", commit="c0ffee", diff=b"+x", reviewer="A-review")
    answer = await verdict.handler(
        {"review_id": str(review.id), "verdict": "approve", "comments": "clean"}
    )
    assert answer["content"][0]["text"] == f"Review #{review.id} approved; A is told."
    assert (await bus.merge_ok("A", "c0ffee")).ok
    heard = (await bus.sync("A")).messages
    assert heard[-1].body == f"review #{review.id} approved by A-review: clean"


async def test_a_rejection_needs_comments(bus: Bus, verdict: Any) -> None:
    review = await bus.request_review("A", commit="c0ffee", diff=b"+x", reviewer="A-review")
    answer = await verdict.handler({"review_id": str(review.id), "verdict": "reject"})
    assert answer.get("is_error") and "say what to fix" in answer["content"][0]["text"]
    answer = await verdict.handler(
        {"review_id": str(review.id), "verdict": "reject", "comments": "no tests"}
    )
    assert not answer.get("is_error")
    assert not (await bus.merge_ok("A", "c0ffee")).ok


async def test_a_reviewer_cannot_decide_a_review_assigned_elsewhere(bus: Bus, verdict: Any) -> None:
    review = await bus.request_review("B", commit="beef", diff=b"+y", reviewer="C")
    answer = await verdict.handler({"review_id": str(review.id), "verdict": "approve"})
    assert answer.get("is_error") and "assigned to C" in answer["content"][0]["text"]
