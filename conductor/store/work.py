"""Work handed to workers on other hosts: the workers' heartbeats, a run's workstreams as
assignments under leases, and the merge requests workers leave for the supervisor's gate.

An assignment is taken by one atomic step: every write transaction is serialized (SQLite's
single writer; PostgreSQL's write lock, an advisory lock taken before the first write), so
the row a worker selects and updates in one transaction cannot be taken by another worker in
between. That is what `FOR UPDATE SKIP LOCKED` buys on a server whose writers run side by
side; here writers never do, so a plain select-and-update is exactly once on both backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conductor.events import EventKind, WorkChanged
from conductor.models import Assignment, MergeRequest, WorkerInfo
from conductor.store.connection import SqliteBase, transaction
from conductor.store.rows import Db, Row, fetch
from conductor.store.shared import insert_event, session_id

_ASSIGNMENT = (
    "run_id, session, state, queued_at, worker, lease_until, attempt, previous_worker, outcome"
)
_MERGE_REQUEST = "id, run_id, session, branch, commit_sha, owners, worker, created_at, result"


def _assignment(row: Row) -> Assignment:
    return Assignment(
        run_id=row["run_id"],
        session=row["session"],
        state=row["state"],
        queued_at=row["queued_at"],
        worker=row["worker"],
        lease_until=row["lease_until"],
        attempt=row["attempt"],
        previous_worker=row["previous_worker"],
        outcome=row["outcome"],
    )


def _find(db: Db, run_id: str, session: str) -> Assignment | None:
    found = fetch(
        db,
        f"SELECT {_ASSIGNMENT} FROM assignments WHERE run_id = ? AND session = ?",
        (run_id, session),
    )
    return _assignment(found[0]) if found else None


def _merge_request(row: Row) -> MergeRequest:
    return MergeRequest(
        id=row["id"],
        run_id=row["run_id"],
        session=row["session"],
        branch=row["branch"],
        commit=row["commit_sha"],
        owners=row["owners"],
        worker=row["worker"],
        created_at=row["created_at"],
        result=row["result"],
    )


def _worker(row: Row) -> WorkerInfo:
    return WorkerInfo(
        id=row["id"],
        host=row["host"],
        pid=row["pid"],
        slots=row["slots"],
        started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"],
        stopped_at=row["stopped_at"],
    )


SUPERVISOR_SILENT = 15.0  # a run whose supervisor was not heard from for this long waits


def _takeable(now: float, skip_runs: Sequence[str], columns: str) -> tuple[str, tuple[Any, ...]]:
    """The query for the oldest assignment a worker may take now: of an active run whose
    supervisor is alive (a killed one leaves its run `active`: nobody would merge the work,
    so no worker starts any until `conductor resume`), queued or with its lease run out,
    and of none of `skip_runs`."""
    skipped = ", ".join("?" for _ in skip_runs)
    return (
        f"SELECT {columns} FROM assignments a JOIN runs r ON r.id = a.run_id"
        " WHERE r.state = 'active' AND r.supervisor_seen_at > ? AND (a.state = 'queued'"
        " OR (a.state = 'taken' AND a.lease_until <= ?))"
        + (f" AND a.run_id NOT IN ({skipped})" if skip_runs else "")
        + " ORDER BY a.queued_at, a.run_id, a.session LIMIT 1",
        (now - SUPERVISOR_SILENT, now, *skip_runs),
    )


class Work(SqliteBase):
    # ------------------------------------------------------------------------ workers

    @transaction(write=True)
    def worker_alive(self, db: Db, worker: str, *, host: str, pid: int, slots: int) -> None:
        """A worker's heartbeat (its first one registers it)."""
        now = self.clock()
        db.execute(
            "INSERT INTO workers (id, host, pid, slots, started_at, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,"
            " slots = excluded.slots, host = excluded.host, pid = excluded.pid,"
            " stopped_at = NULL",
            (worker, host, pid, slots, now, now),
        )

    @transaction(write=True)
    def worker_stopped(self, db: Db, worker: str) -> None:
        db.execute("UPDATE workers SET stopped_at = ? WHERE id = ?", (self.clock(), worker))

    @transaction(write=False)
    def workers(self, db: Db) -> list[WorkerInfo]:
        return [_worker(r) for r in fetch(db, "SELECT * FROM workers ORDER BY started_at, id")]

    @transaction(write=True)
    def supervisor_alive(self, db: Db, run_id: str) -> None:
        """The run's supervisor is alive: its workstreams may be taken (see `_takeable`)."""
        db.execute("UPDATE runs SET supervisor_seen_at = ? WHERE id = ?", (self.clock(), run_id))

    @transaction(write=False)
    def supervisor_seen(self, db: Db, run_id: str) -> float | None:
        """When the run's supervisor last said it was alive (a run on workers), if ever."""
        found = fetch(db, "SELECT supervisor_seen_at FROM runs WHERE id = ?", (run_id,))
        return float(found[0][0]) if found and found[0][0] is not None else None

    # ------------------------------------------------------------------------ assignments

    @transaction(write=True)
    def queue_assignment(self, db: Db, run_id: str, session: str) -> Assignment:
        """The workstream waits for a worker; one that ended (a resumed run gives it another
        go) is queued again; one queued or taken is left as it is (a live worker may hold it,
        and one whose lease ran out is taken over by the next worker that asks)."""
        now = self.clock()
        found = fetch(
            db,
            "INSERT INTO assignments (run_id, session, state, queued_at, attempt)"
            " VALUES (?, ?, 'queued', ?, 0)"
            " ON CONFLICT (run_id, session) DO UPDATE SET state = 'queued',"
            " queued_at = excluded.queued_at, worker = NULL, lease_until = NULL,"
            " outcome = NULL WHERE assignments.state = 'ended'"
            f" RETURNING {_ASSIGNMENT}",
            (run_id, session, now),
        )
        if found:
            insert_event(
                db, now, run_id, session_id(db, run_id, session), EventKind.WORK_QUEUED,
                f"{session} waits for a worker", WorkChanged(),
            )  # fmt: skip
            return _assignment(found[0])
        held = _find(db, run_id, session)
        assert held is not None  # (the insert's conflict was on this very row)
        return held

    @transaction(write=True)
    def take_assignment(
        self,
        db: Db,
        worker: str,
        *,
        host: str,
        lease_seconds: float,
        skip_runs: Sequence[str] = (),
    ) -> Assignment | None:
        """The oldest workstream of an active run that is queued, or whose worker's lease ran
        out (a takeover), now `worker`'s until `lease_seconds` from now unless renewed.
        `skip_runs`: runs this worker cannot work on (another repository's)."""
        now = self.clock()
        found = fetch(db, *_takeable(now, skip_runs, "a.run_id, a.session"))
        if not found:
            return None
        run_id, session = found[0]["run_id"], found[0]["session"]
        taken = _assignment(
            fetch(
                db,
                "UPDATE assignments SET state = 'taken', previous_worker = worker,"
                " worker = ?, lease_until = ?, attempt = attempt + 1"
                f" WHERE run_id = ? AND session = ? RETURNING {_ASSIGNMENT}",
                (worker, now + lease_seconds, run_id, session),
            )[0]
        )
        over = f", taken over from {taken.previous_worker}" if taken.previous_worker else ""
        insert_event(
            db, now, run_id, session_id(db, run_id, session), EventKind.WORK_TAKEN,
            f"{session} taken by worker {worker} on {host}{over}",
            WorkChanged(worker, host, taken.attempt, taken.previous_worker),
        )  # fmt: skip
        return taken

    @transaction(write=False)
    def takeable_assignment(self, db: Db, *, skip_runs: Sequence[str] = ()) -> bool:
        """Whether `take_assignment` would find one now: a read, so that idle workers asking
        again and again take no write lock (and wake nobody) while there is nothing to take."""
        return bool(fetch(db, *_takeable(self.clock(), skip_runs, "a.run_id")))

    @transaction(write=True)
    def renew_assignment(
        self,
        db: Db,
        run_id: str,
        session: str,
        worker: str,
        *,
        attempt: int,
        lease_seconds: float,
    ) -> bool:
        """The lease held on: False when this taking (`worker`'s `attempt`) no longer holds it
        (it ran out and was taken over, even by a worker of the same name, or the workstream
        was ended or queued again)."""
        return bool(
            fetch(
                db,
                "UPDATE assignments SET lease_until = ? WHERE run_id = ? AND session = ?"
                " AND worker = ? AND attempt = ? AND state = 'taken' RETURNING session",
                (self.clock() + lease_seconds, run_id, session, worker, attempt),
            )
        )

    @transaction(write=True)
    def end_assignment(
        self,
        db: Db,
        run_id: str,
        session: str,
        worker: str,
        *,
        attempt: int,
        state: str,
        outcome: str,
    ) -> bool:
        """The workstream's end as its worker saw it (`outcome`, JSON); False (and nothing
        changed) when this taking no longer holds it."""
        now = self.clock()
        ended = fetch(
            db,
            "UPDATE assignments SET state = 'ended', outcome = ?, lease_until = NULL"
            " WHERE run_id = ? AND session = ? AND worker = ? AND attempt = ?"
            " AND state = 'taken' RETURNING session",
            (outcome, run_id, session, worker, attempt),
        )
        if ended:
            insert_event(
                db, now, run_id, session_id(db, run_id, session), EventKind.WORK_ENDED,
                f"{session} ended on worker {worker}: {state}",
                WorkChanged(worker=worker, state=state),
            )  # fmt: skip
        return bool(ended)

    @transaction(write=False)
    def assignment(self, db: Db, run_id: str, session: str) -> Assignment | None:
        return _find(db, run_id, session)

    @transaction(write=False)
    def assignments(self, db: Db, run_id: str | None = None) -> list[Assignment]:
        """A run's assignments, or every run's (None)."""
        where, params = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
        return [
            _assignment(r)
            for r in fetch(
                db,
                f"SELECT {_ASSIGNMENT} FROM assignments {where}"
                " ORDER BY queued_at, run_id, session",
                params,
            )
        ]

    # ------------------------------------------------------------------------ merge requests

    @transaction(write=True)
    def request_merge(
        self,
        db: Db,
        run_id: str,
        session: str,
        *,
        branch: str,
        commit: str,
        owners: str,
        worker: str | None,
    ) -> int:
        made = fetch(
            db,
            "INSERT INTO merge_requests (run_id, session, branch, commit_sha, owners, worker,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (run_id, session, branch, commit, owners, worker, self.clock()),
        )
        return int(made[0]["id"])

    @transaction(write=False)
    def pending_merge_requests(self, db: Db, run_id: str) -> list[MergeRequest]:
        """A run's merge requests not yet answered, oldest first (the gate's queue order)."""
        return [
            _merge_request(r)
            for r in fetch(
                db,
                f"SELECT {_MERGE_REQUEST} FROM merge_requests"
                " WHERE run_id = ? AND result IS NULL ORDER BY id",
                (run_id,),
            )
        ]

    @transaction(write=True)
    def answer_merge_request(self, db: Db, request_id: int, result: str) -> None:
        db.execute(
            "UPDATE merge_requests SET result = ? WHERE id = ? AND result IS NULL",
            (result, request_id),
        )

    @transaction(write=False)
    def merge_request(self, db: Db, request_id: int) -> MergeRequest | None:
        found = fetch(
            db, f"SELECT {_MERGE_REQUEST} FROM merge_requests WHERE id = ?", (request_id,)
        )
        return _merge_request(found[0]) if found else None
