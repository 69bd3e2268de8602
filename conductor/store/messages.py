"""Messages and their deliveries: one row per message, one delivery per addressee, read
once. Marking read and fetching are one statement, so a message is taken exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from conductor.errors import InvalidInput, NotAddressee, UnknownMessage
from conductor.events import EventKind, MessageSent, MessagesRead
from conductor.models import Message
from conductor.store.connection import SqliteBase, transaction
from conductor.store.rows import MESSAGE_COLUMNS, Db, Row, fetch
from conductor.store.shared import insert_event, session_id
from conductor.text import one_line

UNREAD_INDEX = "deliveries_unread"  # what marking deliveries read goes through


def load_messages(db: Db, where: str, params: Sequence[Any]) -> list[Message]:
    found = fetch(
        db,
        f"SELECT {MESSAGE_COLUMNS} FROM messages m"
        f" LEFT JOIN sessions sender ON sender.id = m.sender_id WHERE {where} ORDER BY m.id",
        params,
    )
    if not found:
        return []
    ids = [r["id"] for r in found]
    marks = ",".join("?" * len(ids))
    recipients: dict[int, list[str]] = {i: [] for i in ids}
    for r in fetch(
        db,
        f"SELECT d.message_id, s.name FROM deliveries d"
        f" JOIN sessions s ON s.id = d.recipient_id"
        f" WHERE d.message_id IN ({marks}) ORDER BY s.name",
        ids,
    ):
        recipients[r["message_id"]].append(r["name"])
    return [
        Message(
            id=r["id"],
            run_id=r["run_id"],
            sender=r["sender"],
            recipients=tuple(recipients[r["id"]]),
            broadcast=bool(r["broadcast"]),
            body=r["body"],
            reply_to=r["reply_to"],
            created_at=r["created_at"],
        )
        for r in found
    ]


def insert_message(
    db: Db,
    at: float,
    run_id: str,
    sender_id: int | None,
    recipient_ids: list[int] | None,
    body: str,
    reply_to: int | None,
    review_id: int | None = None,
) -> int:
    """Insert one message and its deliveries; `None` recipients means every other session.
    `review_id`: the message is about a review (its event says so, for watchers)."""
    broadcast = recipient_ids is None
    if recipient_ids is None:
        found = fetch(
            db,
            "SELECT id FROM sessions WHERE run_id = ? AND id IS NOT ? ORDER BY id",
            (run_id, sender_id),
        )
        recipient_ids = [r["id"] for r in found]
    cur = db.execute(
        "INSERT INTO messages (run_id, sender_id, broadcast, body, reply_to, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (run_id, sender_id, int(broadcast), body, reply_to, at),
    )
    message_id = int(cur.lastrowid or 0)
    db.executemany(
        "INSERT INTO deliveries (message_id, recipient_id) VALUES (?, ?)",
        [(message_id, r) for r in dict.fromkeys(recipient_ids)],
    )
    insert_event(
        db,
        at,
        run_id,
        sender_id,
        EventKind.MESSAGE_SENT,
        one_line(body),
        MessageSent(message_id, recipient_ids, broadcast, review_id),
    )
    return message_id


def mark_delivered(
    db: Db,
    index: str,
    at: float,
    recipient_id: int,
    where: str,
    params: Sequence[Any],
    via: str,
) -> list[int]:
    """Mark the recipient's unread deliveries matching `where` read; the ids marked."""
    # Through the partial index of unread deliveries: left to itself SQLite takes the
    # primary key, which visits every message the session was ever sent (a sync then
    # slows with the history; bench/sync_history.py).
    found = fetch(
        db,
        f"UPDATE deliveries INDEXED BY {index} SET read_at = ?, read_via = ?"
        f" WHERE recipient_id = ? AND read_at IS NULL AND {where} RETURNING message_id",
        (at, via, recipient_id, *params),
    )
    return sorted(r["message_id"] for r in found)


def mark_message(
    db: Db, index: str, at: float, recipient_id: int, message_id: int, via: str
) -> list[int]:
    """Mark one message read for its recipient: [its id], or [] when it already was."""
    return mark_delivered(db, index, at, recipient_id, "message_id = ?", (message_id,), via)


def record_read(
    db: Db, at: float, run_id: str, sid: int, ids: list[int], summary: str, via: str | None
) -> None:
    """The `message.read` event of messages just marked read."""
    insert_event(db, at, run_id, sid, EventKind.MESSAGE_READ, summary, MessagesRead(ids, via))


def take_unread(db: Db, index: str, at: float, run_id: str, sid: int, via: str) -> list[Message]:
    """Fetch and mark read every unread message of a session: the delivery primitive."""
    ids = mark_delivered(db, index, at, sid, "TRUE", (), via)
    if not ids:
        return []
    messages = load_messages(db, f"m.id IN ({','.join('?' * len(ids))})", ids)
    record_read(db, at, run_id, sid, ids, f"{len(ids)} via {via}", via)
    return [replace(m, read_at=at) for m in messages]


def _addressed(db: Db, run_id: str, name: str, message_id: int) -> tuple[int, Row]:
    """(session id, message row) when `name` is an addressee of the message; else raise."""
    sid = session_id(db, run_id, name)
    found = fetch(
        db,
        "SELECT m.sender_id, d.recipient_id FROM messages m"
        " LEFT JOIN deliveries d ON d.message_id = m.id AND d.recipient_id = ?"
        " WHERE m.id = ? AND m.run_id = ?",
        (sid, message_id, run_id),
    )
    if not found:
        raise UnknownMessage(f"unknown message #{message_id}")
    if found[0]["recipient_id"] is None:
        raise NotAddressee(f"message #{message_id} is not addressed to {name}")
    return sid, found[0]


class Messages(SqliteBase):
    unread_index = UNREAD_INDEX  # (a benchmark swaps it to measure the index's worth)

    @transaction(write=True)
    def send_message(
        self,
        db: Db,
        run_id: str,
        sender: str | None,
        recipients: Sequence[str] | None,
        body: str,
        reply_to: int | None = None,
    ) -> Message:
        """Send to named sessions, or to every other session when `recipients` is None."""
        sender_id = session_id(db, run_id, sender) if sender is not None else None
        ids = None if recipients is None else [session_id(db, run_id, r) for r in recipients]
        message_id = insert_message(db, self.clock(), run_id, sender_id, ids, body, reply_to)
        return load_messages(db, "m.id = ?", (message_id,))[0]

    @transaction(write=False)
    def get_message(self, db: Db, run_id: str, message_id: int) -> Message:
        found = load_messages(db, "m.id = ? AND m.run_id = ?", (message_id, run_id))
        if not found:
            raise UnknownMessage(f"unknown message #{message_id}")
        return found[0]

    @transaction(write=False)
    def inbox(self, db: Db, run_id: str, name: str, *, unread_only: bool = True) -> list[Message]:
        sid = session_id(db, run_id, name)
        unread = "AND d.read_at IS NULL" if unread_only else ""
        found = fetch(
            db,
            f"SELECT d.message_id, d.read_at FROM deliveries d"
            f" WHERE d.recipient_id = ? {unread} ORDER BY d.message_id",
            (sid,),
        )
        read_at = {r["message_id"]: r["read_at"] for r in found}
        if not read_at:
            return []
        messages = load_messages(db, f"m.id IN ({','.join('?' * len(read_at))})", list(read_at))
        return [replace(m, read_at=read_at[m.id]) for m in messages]

    @transaction(write=False)
    def unread_counts(self, db: Db, run_id: str) -> dict[str, int]:
        found = fetch(
            db,
            "SELECT s.name, count(d.message_id) AS n FROM sessions s"
            " LEFT JOIN deliveries d ON d.recipient_id = s.id AND d.read_at IS NULL"
            " WHERE s.run_id = ? GROUP BY s.id",
            (run_id,),
        )
        return {r["name"]: r["n"] for r in found}

    @transaction(write=False)
    def has_unread(self, db: Db, run_id: str, name: str) -> bool:
        found = fetch(
            db,
            f"SELECT EXISTS (SELECT 1 FROM deliveries INDEXED BY {self.unread_index}"
            " WHERE recipient_id = (SELECT id FROM sessions WHERE run_id = ? AND name = ?)"
            " AND read_at IS NULL) AS found",
            (run_id, name),
        )
        return bool(found[0]["found"])

    @transaction(write=True)
    def mark_read(self, db: Db, run_id: str, name: str, message_id: int) -> bool:
        """Mark one message read for its addressee; False when it already was."""
        sid, _ = _addressed(db, run_id, name, message_id)
        done = mark_message(db, self.unread_index, self.clock(), sid, message_id, "mark")
        if done:
            record_read(db, self.clock(), run_id, sid, done, f"#{message_id}", None)
        return bool(done)

    @transaction(write=True)
    def reply(self, db: Db, run_id: str, name: str, message_id: int, body: str) -> Message:
        """Answer a message to its sender and mark the original read, in one transaction."""
        sid, original = _addressed(db, run_id, name, message_id)
        if original["sender_id"] is None:
            raise InvalidInput(f"message #{message_id} came from conductor itself: no reply")
        done = mark_message(db, self.unread_index, self.clock(), sid, message_id, "reply")
        if done:
            record_read(db, self.clock(), run_id, sid, done, f"#{message_id}", None)
        new_id = insert_message(
            db, self.clock(), run_id, sid, [original["sender_id"]], body, message_id
        )
        return load_messages(db, "m.id = ?", (new_id,))[0]

    @transaction(write=True)
    def take_unread(self, db: Db, run_id: str, name: str, *, via: str) -> list[Message]:
        """Fetch and mark read every unread message of a session: the delivery primitive."""
        sid = session_id(db, run_id, name)
        return take_unread(db, self.unread_index, self.clock(), run_id, sid, via)
