"""The event log: every state change appends to it in its own transaction; views, `logs -f`
and resume read it back. Cursors are row ids, never timestamps: SQLite runs one writer at a
time, so ids become visible in increasing order and a reader after an id never skips one."""

from __future__ import annotations

from typing import Any

from conductor.models import Event
from conductor.store import rows
from conductor.store.connection import SqliteBase, transaction
from conductor.store.rows import Db, fetch
from conductor.store.shared import insert_event, session_id


class EventLog(SqliteBase):
    @transaction(write=True)
    def add_event(
        self,
        db: Db,
        run_id: str | None,
        session: str | None,
        kind: str,
        summary: str,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Record something that happened outside the store (a commit, a push)."""
        sid = session_id(db, run_id, session) if run_id and session else None
        return insert_event(db, self.clock(), run_id, sid, kind, summary, payload)

    @transaction(write=False)
    def list_events(
        self,
        db: Db,
        run_id: str | None,
        *,
        after: int = 0,
        session: str | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[Event]:
        """Events after an id, oldest first; `newest` takes the last `limit` instead."""
        order = "DESC" if newest else "ASC"
        bound = " LIMIT :limit" if limit else ""  # (no clause for all: LIMIT -1 is SQLite's)
        if session is not None and run_id is not None:
            session_id(db, run_id, session)
        found = fetch(
            db,
            f"SELECT e.id, e.run_id, s.name AS session, e.kind, e.summary, e.payload,"
            f" e.created_at FROM events e LEFT JOIN sessions s ON s.id = e.session_id"
            f" WHERE (:run IS NULL OR e.run_id = :run) AND e.id > :after"
            f" AND (:session IS NULL OR s.name = :session)"
            f" ORDER BY e.id {order}{bound}",
            {"run": run_id, "after": after, "session": session, "limit": limit},
        )
        events = [rows.event(r) for r in found]
        return events[::-1] if newest else events

    @transaction(write=False)
    def first_event(self, db: Db, run_id: str, kind: str, *, after: int = 0) -> Event | None:
        """The run's first event of `kind` after the id `after`, if any: what a long-lived
        watcher asks again and again (a stop asked of the supervisor), moving `after` on to
        the newest id it has seen, so that each look reads only the events since the last."""
        found = fetch(
            db,
            "SELECT e.id, e.run_id, s.name AS session, e.kind, e.summary, e.payload,"
            " e.created_at FROM events e LEFT JOIN sessions s ON s.id = e.session_id"
            " WHERE e.run_id = ? AND e.id > ? AND e.kind = ? ORDER BY e.id LIMIT 1",
            (run_id, after, kind),
        )
        return rows.event(found[0]) if found else None
