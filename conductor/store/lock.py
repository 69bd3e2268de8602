"""Leased locks by name (the git lock, a run's supervisor): taken when free or when the
lease has run out, by one atomic statement; released by the token that took it."""

from __future__ import annotations

from conductor.events import EventKind, LockChanged
from conductor.models import Lease
from conductor.store import rows
from conductor.store.connection import SqliteBase, transaction
from conductor.store.rows import Db, fetch
from conductor.store.shared import insert_event


class Locks(SqliteBase):
    @transaction(write=True)
    def acquire_lock(
        self,
        db: Db,
        name: str,
        *,
        holder: str,
        token: str,
        pid: int | None,
        host: str | None,
        lease_seconds: float,
        run_id: str | None = None,
    ) -> Lease | None:
        """Take the lock if it is free or its lease has run out. One atomic statement."""
        now = self.clock()
        found = fetch(
            db,
            "INSERT INTO locks (name, holder, token, pid, host, acquired_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
            " token = excluded.token, pid = excluded.pid, host = excluded.host,"
            " acquired_at = excluded.acquired_at, expires_at = excluded.expires_at"
            " WHERE locks.expires_at <= excluded.acquired_at"
            " RETURNING *",
            (name, holder, token, pid, host, now, now + lease_seconds),
        )
        if not found:
            return None
        insert_event(
            db,
            self.clock(),
            run_id,
            None,
            EventKind.LOCK_ACQUIRED,
            f"{name} by {holder}",
            LockChanged(name, holder, pid, lease_seconds),
        )
        return rows.lease(found[0])

    @transaction(write=False)
    def get_lock(self, db: Db, name: str) -> Lease | None:
        found = fetch(db, "SELECT * FROM locks WHERE name = ?", (name,))
        return rows.lease(found[0]) if found else None

    @transaction(write=True)
    def release_lock(
        self,
        db: Db,
        name: str,
        *,
        token: str | None,
        reason: str = "released",
        run_id: str | None = None,
    ) -> Lease | None:
        """Release when `token` matches (None: whoever holds it). Returns the lease released."""
        found = fetch(
            db,
            "DELETE FROM locks WHERE name = ? AND (? IS NULL OR token = ?) RETURNING *",
            (name, token, token),
        )
        if not found:
            return None
        lease = rows.lease(found[0])
        insert_event(
            db,
            self.clock(),
            run_id,
            None,
            EventKind.lock_end(reason),
            f"{name} held by {lease.holder}",
            LockChanged(name, lease.holder, lease.pid),
        )
        return lease
