"""Shared context: what a session wrote down for every other (decisions, interfaces, ...),
and `sync`, which hands a session its unread messages and the context new to it at once."""

from __future__ import annotations

from conductor.events import ContextAdded, ContextDelivered, EventKind
from conductor.models import ContextCategory, ContextEntry, SessionStatus, SyncResult
from conductor.store import rows
from conductor.store.connection import transaction
from conductor.store.messages import Messages, take_unread
from conductor.store.rows import CONTEXT_SELECT, Db, fetch
from conductor.store.shared import insert_event, session_id, session_row
from conductor.text import one_line


class Context(Messages):
    @transaction(write=True)
    def add_context(
        self, db: Db, run_id: str, author: str | None, category: ContextCategory, body: str
    ) -> ContextEntry:
        now = self.clock()
        aid = session_id(db, run_id, author) if author is not None else None
        cur = db.execute(
            "INSERT INTO context (run_id, author_id, category, body, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (run_id, aid, category.value, body, now),
        )
        entry_id = int(cur.lastrowid or 0)
        insert_event(
            db,
            self.clock(),
            run_id,
            aid,
            EventKind.CONTEXT_ADDED,
            f"[{category.value}] {one_line(body)}",
            ContextAdded(entry_id),
        )
        return ContextEntry(entry_id, run_id, author, category, body, now)

    @transaction(write=False)
    def list_context(
        self, db: Db, run_id: str, *, category: ContextCategory | None = None, after: int = 0
    ) -> list[ContextEntry]:
        found = fetch(
            db,
            f"{CONTEXT_SELECT} WHERE c.run_id = ? AND c.id > ? AND (? IS NULL OR c.category = ?)"
            " ORDER BY c.id",
            (run_id, after, category, category),
        )
        return [rows.context(r) for r in found]

    @transaction(write=True)
    def sync(self, db: Db, run_id: str, name: str) -> SyncResult:
        """Unread messages + context after the cursor + heartbeat, in one write transaction.

        Holding SQLite's write lock for the whole read-mark-advance makes delivery exactly once
        even when two syncs of the same session race (each sees what the other left).
        """
        row = session_row(db, run_id, name)
        sid, cursor = int(row["id"]), int(row["context_cursor"])
        messages = take_unread(db, self.unread_index, self.clock(), run_id, sid, "sync")
        found = fetch(
            db, f"{CONTEXT_SELECT} WHERE c.run_id = ? AND c.id > ? ORDER BY c.id", (run_id, cursor)
        )
        new_cursor = max((r["id"] for r in found), default=cursor)
        status = row["status"]
        if status == SessionStatus.PENDING.value:
            status = SessionStatus.WORKING.value  # first sign of life
            insert_event(db, self.clock(), run_id, sid, EventKind.SESSION_UPDATED, "status=working")
        db.execute(
            "UPDATE sessions SET context_cursor = ?, last_seen_at = ?, status = ? WHERE id = ?",
            (new_cursor, self.clock(), status, sid),
        )
        context = [rows.context(r) for r in found if r["author"] != name]
        if context:
            insert_event(
                db,
                self.clock(),
                run_id,
                sid,
                EventKind.CONTEXT_DELIVERED,
                f"{len(context)} entries",
                ContextDelivered([c.id for c in context]),
            )
        return SyncResult(session=name, messages=messages, context=context)
