"""Claims: the paths a session has said it alone writes. A claim on P covers P and everything
under it ("." is the whole repository); two sessions' claims never overlap."""

from __future__ import annotations

from conductor.errors import ClaimConflict, NotClaimOwner
from conductor.events import ClaimChanged, EventKind
from conductor.models import Claim
from conductor.store import rows
from conductor.store.connection import SqliteBase, transaction
from conductor.store.rows import CLAIM_SELECT, Db, fetch
from conductor.store.shared import insert_event, session_id

COVERS = "(c.path = :path OR c.path = '.' OR substr(:path, 1, length(c.path) + 1) = c.path || '/')"
INSIDE = "(:path = '.' OR substr(c.path, 1, length(:path) + 1) = :path || '/')"


def release_all_claims(db: Db, at: float, run_id: str, sid: int, *, reason: str) -> None:
    """Every claim of the session goes, each with its event (`reason`: why, in its summary)."""
    for r in fetch(db, "DELETE FROM claims WHERE session_id = ? RETURNING path", (sid,)):
        insert_event(
            db,
            at,
            run_id,
            sid,
            EventKind.CLAIM_RELEASED,
            f"{r['path']} (session {reason})",
            ClaimChanged(r["path"], reason),
        )


class Claims(SqliteBase):
    @transaction(write=True)
    def claim(self, db: Db, run_id: str, name: str, path: str, token: str) -> Claim:
        """Claim `path` (already normalised) for `name`; exactly one of racing claimants wins."""
        sid = session_id(db, run_id, name)
        conflict = fetch(
            db,
            f"{CLAIM_SELECT} WHERE c.run_id = :run AND c.session_id != :sid"
            f" AND ({COVERS} OR {INSIDE}) ORDER BY c.id LIMIT 1",
            {"run": run_id, "sid": sid, "path": path},
        )
        if conflict:
            raise ClaimConflict(path, conflict[0]["session"], conflict[0]["path"])
        own = fetch(db, f"{CLAIM_SELECT} WHERE c.run_id = ? AND c.path = ?", (run_id, path))
        if own:
            return rows.claim(own[0])
        cur = db.execute(
            "INSERT INTO claims (run_id, session_id, path, token, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (run_id, sid, path, token, self.clock()),
        )
        insert_event(db, self.clock(), run_id, sid, EventKind.CLAIM_ADDED, path, ClaimChanged(path))
        return rows.claim(fetch(db, f"{CLAIM_SELECT} WHERE c.id = ?", (cur.lastrowid,))[0])

    @transaction(write=True)
    def release_claim(self, db: Db, run_id: str, name: str, path: str) -> Claim:
        sid = session_id(db, run_id, name)
        found = fetch(db, f"{CLAIM_SELECT} WHERE c.run_id = ? AND c.path = ?", (run_id, path))
        if not found:
            raise NotClaimOwner(f"{path} is not claimed")
        claim = rows.claim(found[0])
        if claim.session != name:
            raise NotClaimOwner(f"{path} is claimed by session {claim.session}, not {name}")
        db.execute("DELETE FROM claims WHERE id = ?", (claim.id,))
        insert_event(
            db, self.clock(), run_id, sid, EventKind.CLAIM_RELEASED, path, ClaimChanged(path)
        )
        return claim

    @transaction(write=False)
    def list_claims(self, db: Db, run_id: str, session: str | None = None) -> list[Claim]:
        found = fetch(
            db,
            f"{CLAIM_SELECT} WHERE c.run_id = ? AND (? IS NULL OR s.name = ?) ORDER BY c.path",
            (run_id, session, session),
        )
        return [rows.claim(r) for r in found]

    @transaction(write=False)
    def claim_covering(self, db: Db, run_id: str, path: str, *, other_than: str) -> Claim | None:
        """The claim of another session that covers `path`: what stops a write to it."""
        session_id(db, run_id, other_than)
        found = fetch(
            db,
            f"{CLAIM_SELECT} WHERE c.run_id = :run AND s.name != :me AND {COVERS}"
            f" ORDER BY length(c.path) DESC LIMIT 1",
            {"run": run_id, "me": other_than, "path": path},
        )
        return rows.claim(found[0]) if found else None
