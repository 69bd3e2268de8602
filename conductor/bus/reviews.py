"""Reviews through the bus: a request bound to a commit, a verdict by the assigned reviewer,
and the merge gate's question (did the latest review approve exactly this head?). The
messages a request and a verdict send are worded here; the store sends them atomically."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from conductor.bus.base import BusBase
from conductor.errors import InvalidInput
from conductor.models import Review, ReviewStatus


@dataclass(frozen=True)
class MergeVerdict:
    ok: bool
    reason: str
    review: Review | None


def request_notice(requester: str, commit: str, note: str) -> Callable[[int], str]:
    """The message the assigned reviewer gets, once the review has its number."""

    def notice(review_id: int) -> str:
        text = f"review #{review_id} requested by {requester} for commit {commit[:12]}"
        return text + (f": {note}" if note else "")

    return notice


def verdict_message(review_id: int, decider: str, *, approve: bool, comment: str) -> str:
    """The message that tells the author a review's verdict."""
    status = ReviewStatus.APPROVED if approve else ReviewStatus.REJECTED
    return f"review #{review_id} {status.value} by {decider}" + (f": {comment}" if comment else "")


class ReviewDoor(BusBase):
    async def request_review(
        self,
        requester: str,
        *,
        commit: str,
        diff: bytes,
        reviewer: str | None = None,
        base: str | None = None,
        note: str = "",
    ) -> Review:
        if not commit:
            raise InvalidInput("a review must name the commit it reviews")
        return await self.store.request_review(
            self.run_id,
            requester,
            reviewer=reviewer,
            commit=commit,
            base=base,
            diff=diff,
            note=note,
            notice=request_notice(requester, commit, note) if reviewer else None,
        )

    async def decide(
        self, review_id: int, decider: str, *, approve: bool, comment: str = ""
    ) -> Review:
        return await self.store.decide_review(
            self.run_id,
            review_id,
            decider,
            approve=approve,
            comment=comment,
            verdict=verdict_message(review_id, decider, approve=approve, comment=comment),
        )

    async def take_verdict(self, review_id: int, *, via: str) -> list[int]:
        """Mark the verdict message of a review read (the author is told another way)."""
        return await self.store.take_verdict(self.run_id, review_id, via=via)

    async def review(self, review_id: int, *, with_diff: bool = True) -> Review:
        return await self.store.get_review(self.run_id, review_id, with_diff=with_diff)

    async def reviews(
        self, *, status: ReviewStatus | str | None = None, session: str | None = None
    ) -> list[Review]:
        if isinstance(status, str):
            try:
                status = ReviewStatus(status)
            except ValueError:
                allowed = ", ".join(s.value for s in ReviewStatus)
                raise InvalidInput(f"unknown review status {status!r}: use {allowed}") from None
        if session is not None:
            await self.store.get_session(self.run_id, session)  # unknown: an error, not []
        return await self.store.list_reviews(self.run_id, status=status, session=session)

    async def latest_review(self, requester: str) -> Review | None:
        """The newest review `requester` asked for, whatever its status."""
        return await self.store.latest_review(self.run_id, requester)

    async def merge_ok(self, name: str, head: str) -> MergeVerdict:
        """Clear to merge only when the latest review approved exactly the current head."""
        review = await self.latest_review(name)
        if review is None:
            return MergeVerdict(False, f"{name} has no review", None)
        if review.status is not ReviewStatus.APPROVED:
            return MergeVerdict(False, f"review #{review.id} is {review.status.value}", review)
        if review.commit != head:
            return MergeVerdict(
                False,
                f"review #{review.id} approved {review.commit[:12]}, but the head is now"
                f" {head[:12]}: request a new review",
                review,
            )
        who = f" by {review.decided_by}" if review.decided_by else ""
        return MergeVerdict(True, f"review #{review.id} approved {head[:12]}{who}", review)
