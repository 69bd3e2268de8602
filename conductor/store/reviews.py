"""Reviews: a requester's commit, bound to that commit, decided once by its assigned reviewer.
A new request supersedes the requester's earlier ones; a verdict is a message to the author,
sent in the transaction that records it (its wording is the caller's)."""

from __future__ import annotations

from collections.abc import Callable

from conductor.errors import ReviewRefused, UnknownReview
from conductor.events import EventKind, ReviewDecided, ReviewRequested
from conductor.models import Review, ReviewStatus
from conductor.store import rows
from conductor.store.connection import transaction
from conductor.store.messages import Messages, insert_message, mark_message, record_read
from conductor.store.rows import REVIEW_COLUMNS, REVIEW_JOINS, Db, fetch
from conductor.store.shared import insert_event, session_id
from conductor.text import one_line


def _get_review(db: Db, run_id: str, review_id: int, *, with_diff: bool) -> Review:
    found = fetch(
        db,
        f"SELECT {REVIEW_COLUMNS}{', r.diff' if with_diff else ''} {REVIEW_JOINS}"
        f" WHERE r.id = ? AND r.run_id = ?",
        (review_id, run_id),
    )
    if not found:
        raise UnknownReview(f"unknown review #{review_id}")
    return rows.review(found[0], bytes(found[0]["diff"]) if with_diff else b"")


class Reviews(Messages):
    @transaction(write=True)
    def request_review(
        self,
        db: Db,
        run_id: str,
        requester: str,
        *,
        reviewer: str | None,
        commit: str,
        base: str | None,
        diff: bytes,
        note: str,
        notice: Callable[[int], str] | None = None,
    ) -> Review:
        """Open a review of `commit`; every earlier review by the requester is superseded.
        `notice(review_id)`: the message the assigned reviewer is sent, in this transaction."""
        req_id = session_id(db, run_id, requester)
        rev_id = session_id(db, run_id, reviewer) if reviewer else None
        if rev_id == req_id:
            raise ReviewRefused(f"{requester} cannot review its own work: ask another session")
        cur = db.execute(
            "INSERT INTO reviews (run_id, requester_id, reviewer_id, status, commit_sha, base,"
            " note, diff, created_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
            (run_id, req_id, rev_id, commit, base, note, diff, self.clock()),
        )
        review_id = int(cur.lastrowid or 0)
        old = fetch(
            db,
            "UPDATE reviews SET status = 'superseded', superseded_by = ?"
            " WHERE requester_id = ? AND id != ? AND status != 'superseded' RETURNING id",
            (review_id, req_id, review_id),
        )
        insert_event(
            db,
            self.clock(),
            run_id,
            req_id,
            EventKind.REVIEW_REQUESTED,
            f"#{review_id} of {commit[:12]}" + (f" for {reviewer}" if reviewer else ""),
            ReviewRequested(review_id, commit, reviewer, [r["id"] for r in old], len(diff)),
        )
        if rev_id is not None and notice is not None:
            text = notice(review_id)
            insert_message(db, self.clock(), run_id, req_id, [rev_id], text, None, review_id)
        return _get_review(db, run_id, review_id, with_diff=False)

    @transaction(write=True)
    def decide_review(
        self,
        db: Db,
        run_id: str,
        review_id: int,
        decider: str,
        *,
        approve: bool,
        comment: str,
        verdict: str,
    ) -> Review:
        """Decide a pending review and send the requester `verdict` (the message's body) in
        the same transaction; the message is kept as the review's verdict message."""
        did = session_id(db, run_id, decider)
        review = _get_review(db, run_id, review_id, with_diff=False)
        if review.status is not ReviewStatus.PENDING:
            later = f" by #{review.superseded_by}" if review.superseded_by else ""
            raise ReviewRefused(f"review #{review_id} is {review.status.value}{later}")
        if review.requester == decider:
            raise ReviewRefused(f"{decider} requested review #{review_id} and cannot decide it")
        if review.reviewer is not None and review.reviewer != decider:
            raise ReviewRefused(f"review #{review_id} is assigned to {review.reviewer}")
        status = ReviewStatus.APPROVED if approve else ReviewStatus.REJECTED
        req_id = session_id(db, run_id, review.requester)
        message_id = insert_message(
            db, self.clock(), run_id, did, [req_id], verdict, None, review_id
        )
        db.execute(
            "UPDATE reviews SET status = ?, comment = ?, decided_by = ?, decided_at = ?,"
            " verdict_message_id = ? WHERE id = ?",
            (status.value, comment, did, self.clock(), message_id, review_id),
        )
        insert_event(
            db,
            self.clock(),
            run_id,
            did,
            EventKind.review_verdict(status.value),
            f"#{review_id} of {review.requester}" + (f": {one_line(comment)}" if comment else ""),
            ReviewDecided(review_id, review.requester, comment, message_id),
        )
        return _get_review(db, run_id, review_id, with_diff=False)

    @transaction(write=True)
    def take_verdict(self, db: Db, run_id: str, review_id: int, *, via: str) -> list[int]:
        """Mark the message that told the author a review's verdict read, when the author
        is told some other way (the supervisor's next prompt, or the merge it goes on to):
        a verdict read twice would start a turn that only re-reads it. Returns what it
        marked; nothing when the message was read already or the review is undecided."""
        found = fetch(
            db,
            "SELECT verdict_message_id, requester_id FROM reviews WHERE id = ? AND run_id = ?",
            (review_id, run_id),
        )
        if not found or found[0]["verdict_message_id"] is None:
            return []
        message_id, requester_id = found[0]["verdict_message_id"], found[0]["requester_id"]
        ids = mark_message(db, self.unread_index, self.clock(), requester_id, message_id, via)
        if ids:
            record_read(db, self.clock(), run_id, requester_id, ids, f"{len(ids)} via {via}", via)
        return ids

    @transaction(write=False)
    def get_review(self, db: Db, run_id: str, review_id: int, *, with_diff: bool = True) -> Review:
        return _get_review(db, run_id, review_id, with_diff=with_diff)

    @transaction(write=False)
    def list_reviews(
        self, db: Db, run_id: str, *, status: ReviewStatus | None = None, session: str | None = None
    ) -> list[Review]:
        found = fetch(
            db,
            f"SELECT {REVIEW_COLUMNS} {REVIEW_JOINS} WHERE r.run_id = ?"
            f" AND (? IS NULL OR r.status = ?)"
            f" AND (? IS NULL OR req.name = ? OR rev.name = ?) ORDER BY r.id",
            (run_id, status, status, session, session, session),
        )
        return [rows.review(r) for r in found]

    @transaction(write=False)
    def latest_review(self, db: Db, run_id: str, requester: str) -> Review | None:
        sid = session_id(db, run_id, requester)
        found = fetch(
            db,
            f"SELECT {REVIEW_COLUMNS} {REVIEW_JOINS} WHERE r.requester_id = ?"
            f" ORDER BY r.id DESC LIMIT 1",
            (sid,),
        )
        return rows.review(found[0]) if found else None
