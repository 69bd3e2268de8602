"""Sessions: who takes part in a run, what each is doing, and what its turns added up to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from conductor.errors import InvalidInput, UnknownRun
from conductor.events import EventKind, SessionRegistered, SessionUpdated
from conductor.models import Session, SessionKind, SessionStatus
from conductor.store import rows
from conductor.store.claims import release_all_claims
from conductor.store.connection import SqliteBase, transaction
from conductor.store.rows import INTEGRITY_ERRORS, SESSION_COLUMNS, Db, fetch
from conductor.store.shared import insert_event, session_id, session_row
from conductor.text import one_line


class Sessions(SqliteBase):
    @transaction(write=True)
    def add_sessions(
        self, db: Db, run_id: str, specs: Sequence[tuple[str, str, SessionKind, str | None]]
    ) -> list[Session]:
        """Register (name, workstream, kind, branch) sessions; all or none."""
        now = self.clock()
        if not fetch(db, "SELECT 1 FROM runs WHERE id = ?", (run_id,)):
            raise UnknownRun(f"unknown run {run_id!r}")
        made = []
        for name, workstream, kind, branch in specs:
            try:
                found = fetch(
                    db,
                    f"INSERT INTO sessions (run_id, name, workstream, kind, branch,"
                    f" created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    f" RETURNING {SESSION_COLUMNS}",
                    (run_id, name, workstream, kind.value, branch, now, now),
                )
            except INTEGRITY_ERRORS:
                raise InvalidInput(f"session {name} already exists in run {run_id}") from None
            session = rows.session(found[0])
            insert_event(
                db,
                self.clock(),
                run_id,
                session.id,
                EventKind.SESSION_REGISTERED,
                f"{name}: {workstream}" if workstream else name,
                SessionRegistered(workstream, kind.value, branch),
            )
            made.append(session)
        return made

    @transaction(write=False)
    def get_session(self, db: Db, run_id: str, name: str) -> Session:
        return rows.session(session_row(db, run_id, name))

    @transaction(write=False)
    def list_sessions(self, db: Db, run_id: str) -> list[Session]:
        found = fetch(
            db, f"SELECT {SESSION_COLUMNS} FROM sessions WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return [rows.session(r) for r in found]

    @transaction(write=True)
    def update_session(
        self,
        db: Db,
        run_id: str,
        name: str,
        *,
        status: SessionStatus | None = None,
        note: str | None = None,
        branch: str | None = None,
        worktree: str | None = None,
        sdk_session_id: str | None = None,
        release_claims: Callable[[Session], bool] | None = None,
    ) -> Session:
        """Change what is given; nothing changed, no event. `release_claims`: asked of the
        session as the change left it, whether its claims go, in the same transaction (the
        caller's rule: a session that has ended)."""
        changes = {
            "status": status.value if status is not None else None,
            "note": note,
            "branch": branch,
            "worktree": worktree,
            "sdk_session_id": sdk_session_id,
        }
        changes = {k: v for k, v in changes.items() if v is not None}
        row = session_row(db, run_id, name)
        before = rows.session(row)
        changes = {k: v for k, v in changes.items() if row[k] != v}  # no change, no event
        if not changes:
            return before
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        found = fetch(
            db,
            f"UPDATE sessions SET {sets}, updated_at = :now WHERE id = :id"
            f" RETURNING {SESSION_COLUMNS}",
            {**changes, "now": self.clock(), "id": before.id},
        )
        after = rows.session(found[0])
        summary = ", ".join(f"{k}={one_line(str(v), 60)}" for k, v in changes.items())
        insert_event(
            db,
            self.clock(),
            run_id,
            before.id,
            EventKind.SESSION_UPDATED,
            summary,
            SessionUpdated(**changes),
        )
        if release_claims is not None and release_claims(after):
            release_all_claims(db, self.clock(), run_id, before.id, reason=after.status.value)
        return after

    @transaction(write=True)
    def heartbeat(self, db: Db, run_id: str, name: str) -> None:
        """Record that a session is alive. Not an event: it would drown the log."""
        sid = session_id(db, run_id, name)
        db.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (self.clock(), sid))

    @transaction(write=True)
    def record_turn(
        self,
        db: Db,
        run_id: str,
        name: str,
        summary: str,
        payload: dict[str, Any] | None,
        *,
        turns: int,
        cost_usd: float,
    ) -> int:
        """Record a turn's result event and add its turns and cost to the session's, at once:
        the figures are read back from the session's columns, never summed from payloads."""
        sid = session_id(db, run_id, name)
        db.execute(
            "UPDATE sessions SET turns = turns + ?, cost_usd = cost_usd + ? WHERE id = ?",
            (turns, cost_usd, sid),
        )
        return insert_event(db, self.clock(), run_id, sid, EventKind.SDK_RESULT, summary, payload)
