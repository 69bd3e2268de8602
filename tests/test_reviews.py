"""Reviews: a session asks another to approve a commit; merging waits for that approval."""

from __future__ import annotations

import pytest

from conductor.bus import Bus
from conductor.errors import InvalidInput, ReviewRefused, UnknownReview
from conductor.models import ReviewStatus

pytestmark = pytest.mark.anyio

HEAD = "a" * 40
NEXT = "b" * 40


# --------------------------------------------------------------------------- requesting


async def test_a_review_request_is_pending_and_bound_to_its_commit(bus: Bus) -> None:
    review = await bus.request_review(
        "A", commit=HEAD, base="main", diff=b"+x\n", reviewer="B", note="please"
    )
    assert (review.requester, review.reviewer, review.status) == ("A", "B", ReviewStatus.PENDING)
    assert (review.commit, review.base, review.note) == (HEAD, "main", "please")
    assert review.diff_size == 3
    assert (review.decided_by, review.decided_at, review.superseded_by) == (None, None, None)


@pytest.mark.parametrize(
    "diff",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"before\x00after\x00\x00", id="nul bytes"),
        pytest.param(b"caf\xe9 \xff\xfe\x80 not utf-8", id="not utf-8"),
        pytest.param(bytes(range(256)) * 4500, id="over 1 MB"),
    ],
)
async def test_a_diff_comes_back_byte_for_byte(bus: Bus, diff: bytes) -> None:
    requested = await bus.request_review("A", commit=HEAD, diff=diff)
    shown = await bus.review(requested.id)
    assert shown.diff == diff
    assert shown.diff_size == requested.diff_size == len(diff)


async def test_a_diff_over_one_megabyte_really_is_stored_whole(bus: Bus) -> None:
    diff = b"\x00\xff" + b"-" * (1024 * 1024) + b"\xfe\x00"
    review = await bus.request_review("A", commit=HEAD, diff=diff)
    assert len(diff) > 1024 * 1024
    assert (await bus.review(review.id)).diff == diff


async def test_a_review_can_be_shown_without_its_diff(bus: Bus) -> None:
    requested = await bus.request_review("A", commit=HEAD, diff=b"0123456789")
    shown = await bus.review(requested.id, with_diff=False)
    assert (shown.diff, shown.diff_size, shown.commit) == (b"", 10, HEAD)


async def test_a_review_must_name_its_commit(bus: Bus) -> None:
    with pytest.raises(InvalidInput, match="commit"):
        await bus.request_review("A", commit="", diff=b"x")
    assert await bus.reviews() == []


async def test_a_session_cannot_be_assigned_its_own_review(bus: Bus) -> None:
    with pytest.raises(ReviewRefused, match="own work"):
        await bus.request_review("A", commit=HEAD, diff=b"x", reviewer="A")
    assert await bus.reviews() == []


async def test_an_unknown_review_is_an_error(bus: Bus) -> None:
    with pytest.raises(UnknownReview, match="#42"):
        await bus.review(42)
    with pytest.raises(UnknownReview, match="#42"):
        await bus.decide(42, "B", approve=True)


# --------------------------------------------------------------------------- listing


async def test_reviews_are_listed_and_filtered_by_status_and_session(bus: Bus) -> None:
    first = await bus.request_review("A", commit=HEAD, diff=b"a", reviewer="B")
    second = await bus.request_review("C", commit=NEXT, diff=b"c")
    await bus.decide(second.id, "B", approve=False, comment="no tests")
    assert [r.id for r in await bus.reviews()] == [first.id, second.id]
    assert [r.id for r in await bus.reviews(status="pending")] == [first.id]
    assert [r.id for r in await bus.reviews(status=ReviewStatus.REJECTED)] == [second.id]
    assert [r.id for r in await bus.reviews(session="A")] == [first.id]
    assert [r.id for r in await bus.reviews(session="B")] == [first.id]  # as the reviewer
    assert [r.id for r in await bus.reviews(session="C")] == [second.id]
    assert all(r.diff == b"" for r in await bus.reviews())


async def test_an_unknown_review_status_filter_is_invalid(bus: Bus) -> None:
    with pytest.raises(InvalidInput, match="unknown review status"):
        await bus.reviews(status="accepted")


# --------------------------------------------------------------------------- deciding


@pytest.mark.parametrize(
    ("approve", "status"), [(True, ReviewStatus.APPROVED), (False, ReviewStatus.REJECTED)]
)
async def test_a_session_other_than_the_requester_decides_an_unassigned_review(
    bus: Bus, approve: bool, status: ReviewStatus
) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x")
    decided = await bus.decide(review.id, "C", approve=approve, comment="looked at it")
    assert (decided.status, decided.decided_by, decided.comment) == (status, "C", "looked at it")
    assert decided.decided_at is not None
    assert await bus.review(review.id, with_diff=False) == decided


@pytest.mark.parametrize("approve", [True, False])
async def test_the_requester_cannot_decide_its_own_review(bus: Bus, approve: bool) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x")
    with pytest.raises(ReviewRefused, match="A requested review"):
        await bus.decide(review.id, "A", approve=approve)
    assert (await bus.review(review.id)).status is ReviewStatus.PENDING


async def test_only_the_assigned_reviewer_decides_an_assigned_review(bus: Bus) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x", reviewer="B")
    with pytest.raises(ReviewRefused, match="assigned to B"):
        await bus.decide(review.id, "C", approve=True)
    assert (await bus.review(review.id)).status is ReviewStatus.PENDING
    assert (await bus.decide(review.id, "B", approve=True)).status is ReviewStatus.APPROVED


@pytest.mark.parametrize("first", [True, False], ids=["approved", "rejected"])
@pytest.mark.parametrize("second", [True, False], ids=["then approve", "then reject"])
async def test_a_decided_review_cannot_be_decided_again(
    bus: Bus, first: bool, second: bool
) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x", reviewer="B")
    decided = await bus.decide(review.id, "B", approve=first)
    with pytest.raises(ReviewRefused, match=f"is {decided.status.value}"):
        await bus.decide(review.id, "B", approve=second)
    assert await bus.review(review.id, with_diff=False) == decided


async def test_a_superseded_review_cannot_be_decided(bus: Bus) -> None:
    old = await bus.request_review("A", commit=HEAD, diff=b"x", reviewer="B")
    new = await bus.request_review("A", commit=NEXT, diff=b"y", reviewer="B")
    with pytest.raises(ReviewRefused, match=f"superseded by #{new.id}"):
        await bus.decide(old.id, "B", approve=True)
    assert (await bus.review(old.id)).status is ReviewStatus.SUPERSEDED


async def test_rerequesting_after_a_rejection_supersedes_the_old_review(bus: Bus) -> None:
    old = await bus.request_review("A", commit=HEAD, diff=b"x", reviewer="B")
    await bus.decide(old.id, "B", approve=False, comment="missing tests")
    new = await bus.request_review("A", commit=NEXT, diff=b"y", reviewer="B")
    old_now = await bus.review(old.id)
    assert (old_now.status, old_now.superseded_by) == (ReviewStatus.SUPERSEDED, new.id)
    assert (old_now.comment, old_now.decided_by) == ("missing tests", "B")
    assert (new.status, new.commit, new.superseded_by) == (ReviewStatus.PENDING, NEXT, None)
    [event] = [e for e in await bus.events() if e.kind == "review.requested"][-1:]
    assert event.payload["supersedes"] == [old.id]


async def test_a_new_request_supersedes_only_the_requesters_own_reviews(bus: Bus) -> None:
    mine = await bus.request_review("A", commit=HEAD, diff=b"x")
    theirs = await bus.request_review("C", commit=HEAD, diff=b"x")
    await bus.request_review("A", commit=NEXT, diff=b"y")
    assert (await bus.review(mine.id)).status is ReviewStatus.SUPERSEDED
    assert (await bus.review(theirs.id)).status is ReviewStatus.PENDING


# --------------------------------------------------------------------------- merge gate


async def test_merge_is_ok_only_when_the_latest_review_approved_exactly_the_head(
    bus: Bus,
) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x", reviewer="B")
    await bus.decide(review.id, "B", approve=True)
    verdict = await bus.merge_ok("A", HEAD)
    assert (verdict.ok, verdict.review.id if verdict.review else None) == (True, review.id)
    assert "approved" in verdict.reason and "by B" in verdict.reason


async def test_merge_is_not_ok_for_a_session_without_a_review(bus: Bus) -> None:
    verdict = await bus.merge_ok("A", HEAD)
    assert (verdict.ok, verdict.review, verdict.reason) == (False, None, "A has no review")


async def test_merge_is_not_ok_while_the_review_is_pending(bus: Bus) -> None:
    await bus.request_review("A", commit=HEAD, diff=b"x")
    verdict = await bus.merge_ok("A", HEAD)
    assert (verdict.ok, verdict.reason.endswith("is pending")) == (False, True)


async def test_merge_is_not_ok_after_a_rejection(bus: Bus) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x")
    await bus.decide(review.id, "B", approve=False)
    verdict = await bus.merge_ok("A", HEAD)
    assert (verdict.ok, verdict.reason.endswith("is rejected")) == (False, True)


async def test_merge_is_not_ok_when_the_head_moved_after_the_approval(bus: Bus) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x")
    await bus.decide(review.id, "B", approve=True)
    verdict = await bus.merge_ok("A", NEXT)
    assert verdict.ok is False
    assert "request a new review" in verdict.reason


async def test_merge_is_not_ok_when_an_approval_was_superseded_by_a_new_request(
    bus: Bus,
) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x")
    await bus.decide(review.id, "B", approve=True)
    await bus.request_review("A", commit=HEAD, diff=b"x")
    assert (await bus.merge_ok("A", HEAD)).ok is False


async def test_another_sessions_approval_does_not_clear_a_session_to_merge(bus: Bus) -> None:
    review = await bus.request_review("C", commit=HEAD, diff=b"x")
    await bus.decide(review.id, "B", approve=True)
    assert (await bus.merge_ok("C", HEAD)).ok is True
    assert (await bus.merge_ok("A", HEAD)).ok is False


# --------------------------------------------------------------------------- notifications


async def test_the_assigned_reviewer_is_told_of_the_request(bus: Bus) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x", reviewer="B", note="auth")
    [message] = await bus.inbox("B")
    assert (message.sender, message.recipients) == ("A", ("B",))
    assert message.body == f"review #{review.id} requested by A for commit {HEAD[:12]}: auth"
    assert await bus.inbox("C") == []


async def test_an_unassigned_request_messages_nobody(bus: Bus) -> None:
    await bus.request_review("A", commit=HEAD, diff=b"x")
    assert await bus.unread_counts() == {"A": 0, "B": 0, "C": 0}


@pytest.mark.parametrize(("approve", "word"), [(True, "approved"), (False, "rejected")])
async def test_the_requester_is_told_of_the_decision(bus: Bus, approve: bool, word: str) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x", reviewer="B")
    await bus.decide(review.id, "B", approve=approve, comment="see line 3")
    [message] = await bus.inbox("A")
    assert (message.sender, message.recipients) == ("B", ("A",))
    assert message.body == f"review #{review.id} {word} by B: see line 3"


async def test_a_verdict_taken_by_the_supervisor_is_not_delivered_again(bus: Bus) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x", reviewer="B")
    await bus.decide(review.id, "B", approve=False, comment="see line 3")
    await bus.send("C", "A", "also: rename it")
    taken = await bus.take_verdict(review.id, via="supervisor")
    assert len(taken) == 1
    assert [m.body for m in await bus.take_unread("A", via="wake")] == ["also: rename it"]
    assert await bus.take_verdict(review.id, via="supervisor") == []  # once


async def test_an_undecided_review_has_no_verdict_to_take(bus: Bus) -> None:
    review = await bus.request_review("A", commit=HEAD, diff=b"x", reviewer="B")
    assert await bus.take_verdict(review.id, via="supervisor") == []
    assert len(await bus.inbox("B")) == 1  # the request to B, still unread
