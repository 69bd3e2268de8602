"""The database: schema, migrations and every query. The only module with SQL in it.

One `Store` wraps one sqlite3 connection. Every public method is one transaction, written as
a plain function of the connection and run whole in a worker thread (one hop from the event
loop, however many statements), so each is atomic against other tasks of this process (an
in-process lock serialises use of the connection) and against other processes (write
transactions start with `BEGIN IMMEDIATE`, which takes SQLite's write lock up front and
waits `busy_timeout` for it). Cursors are row ids,
never timestamps: SQLite runs one writer at a time, so ids become visible in increasing order.

Every state change appends to `events` in the same transaction; later layers build live logs
and resume on that table.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio

from conductor.errors import (
    ClaimConflict,
    InvalidInput,
    NotAddressee,
    NotClaimOwner,
    ReviewRefused,
    StoreError,
    StoreFault,
    UnknownMessage,
    UnknownReview,
    UnknownRun,
    UnknownSession,
)
from conductor.models import (
    Claim,
    ContextCategory,
    ContextEntry,
    Event,
    Lease,
    Message,
    Review,
    ReviewStatus,
    Run,
    RunState,
    Session,
    SessionKind,
    SessionStatus,
    SyncResult,
)
from conductor.text import one_line

BUSY_TIMEOUT_MS = 30_000
LOCK_SLICE_MS = 20  # a write waiting for the lock checks this often whether to give up
CHECKPOINT_SECONDS = 1.0  # how often keep_checkpointed copies the WAL into the database
AUTOCHECKPOINT_PAGES = 1000  # SQLite's default: a commit past this many WAL pages copies them


class NoDatabase(StoreError):
    """No database at the path a reading command was pointed at: nothing has been run there
    yet (or the path is wrong). Reading creates nothing, so this is all it can say."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"no run yet: no database at {path} (to start one: conductor run --help; by"
            ' hand: conductor init --sessions "A:frontend B:api")'
        )


class _Stopped(Exception):
    """The caller of a transaction was cancelled: roll back (raised in the worker)."""


class _Handoff:
    """Between a cancelled caller and the worker thread meant to run its transaction: either
    the worker begins first (then the caller tells it to stop and waits for its end) or the
    caller gives up first (then the worker never begins), never both."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "waiting"  # -> "begun" (by the worker) or "abandoned" (by the caller)
        self.stop = threading.Event()
        self.ended = threading.Event()
        self.committed: tuple[Any] | tuple[()] = ()  # (the result,) once the body committed

    def begin(self) -> bool:
        with self._lock:
            if self._state == "abandoned":
                return False
            self._state = "begun"
            return True

    def abandon(self) -> bool:
        """Give up; True when the worker had begun (it is told to stop: wait for `ended`)."""
        with self._lock:
            if self._state == "waiting":
                self._state = "abandoned"
                return False
            self.stop.set()
            return True


# --------------------------------------------------------------------------- migrations

Migration = Callable[[], str]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Append a forward migration (a function returning its SQL); its place is its version."""
    MIGRATIONS.append(fn)
    return fn


def _enum_check(column: str, values: Iterable[str]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"CHECK ({column} IN ({quoted}))"


@migration
def m001_initial() -> str:
    return f"""
        CREATE TABLE runs (
            id          TEXT PRIMARY KEY,
            goal        TEXT NOT NULL DEFAULT '',
            state       TEXT NOT NULL {_enum_check("state", RunState)},
            repo_root   TEXT NOT NULL,
            base_ref    TEXT,
            base_commit TEXT,
            created_at  REAL NOT NULL,
            updated_at  REAL NOT NULL
        );
        CREATE TABLE sessions (
            id             INTEGER PRIMARY KEY,
            run_id         TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            name           TEXT NOT NULL,
            workstream     TEXT NOT NULL DEFAULT '',
            kind           TEXT NOT NULL DEFAULT 'worker' {_enum_check("kind", SessionKind)},
            status         TEXT NOT NULL DEFAULT 'pending' {_enum_check("status", SessionStatus)},
            note           TEXT NOT NULL DEFAULT '',
            branch         TEXT,
            worktree       TEXT,
            sdk_session_id TEXT,
            context_cursor INTEGER NOT NULL DEFAULT 0,
            last_seen_at   REAL,
            created_at     REAL NOT NULL,
            updated_at     REAL NOT NULL,
            UNIQUE (run_id, name)
        );
        CREATE TABLE messages (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            sender_id  INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
            broadcast  INTEGER NOT NULL DEFAULT 0,
            body       TEXT NOT NULL,
            reply_to   INTEGER REFERENCES messages(id) ON DELETE SET NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE deliveries (
            message_id   INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            recipient_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            read_at      REAL,
            read_via     TEXT,
            PRIMARY KEY (recipient_id, message_id)
        ) WITHOUT ROWID;
        CREATE INDEX deliveries_unread ON deliveries (recipient_id, message_id)
            WHERE read_at IS NULL;
        CREATE INDEX deliveries_by_message ON deliveries (message_id);
        CREATE TABLE context (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            author_id  INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
            category   TEXT NOT NULL {_enum_check("category", ContextCategory)},
            body       TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX context_after_cursor ON context (run_id, id);
        CREATE TABLE claims (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            path       TEXT NOT NULL,
            token      TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (run_id, path)
        );
        CREATE INDEX claims_by_session ON claims (session_id);
        CREATE TABLE reviews (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            requester_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            reviewer_id   INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
            status        TEXT NOT NULL {_enum_check("status", ReviewStatus)},
            commit_sha    TEXT NOT NULL,
            base          TEXT,
            note          TEXT NOT NULL DEFAULT '',
            diff          BLOB NOT NULL,
            comment       TEXT NOT NULL DEFAULT '',
            decided_by    INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
            superseded_by INTEGER REFERENCES reviews(id) ON DELETE SET NULL,
            created_at    REAL NOT NULL,
            decided_at    REAL
        );
        CREATE INDEX reviews_by_requester ON reviews (requester_id, id);
        CREATE INDEX reviews_by_run_status ON reviews (run_id, status);
        CREATE TABLE locks (
            name        TEXT PRIMARY KEY,
            holder      TEXT NOT NULL,
            token       TEXT NOT NULL,
            pid         INTEGER,
            host        TEXT,
            acquired_at REAL NOT NULL,
            expires_at  REAL NOT NULL
        );
        CREATE TABLE events (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id     TEXT REFERENCES runs(id) ON DELETE CASCADE,
            session_id INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
            kind       TEXT NOT NULL,
            summary    TEXT NOT NULL,
            payload    TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX events_by_run ON events (run_id, id);
        CREATE INDEX events_by_session ON events (session_id, id);
    """


@migration
def m002_run_spec() -> str:
    """What a run was started with (its plan and settings), so `conductor resume` can
    rebuild its supervisor from the store alone."""
    return "ALTER TABLE runs ADD COLUMN spec TEXT;"


SCHEMA_VERSION = len(MIGRATIONS)


def _enable_wal(db: Db) -> None:
    """Switch to WAL. SQLite does not apply busy_timeout to this pragma: while another
    connection is writing to a not-yet-WAL file it fails at once, so wait here instead."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _migrate(db: Db) -> None:
    """Bring the file up to SCHEMA_VERSION; runs on every open and is idempotent.

    The version is re-read under the write lock so two processes opening a new database at
    once migrate it exactly once.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _fetch(db, "PRAGMA user_version")[0][0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database is of schema version {version}, newer than this conductor"
                f" understands ({SCHEMA_VERSION}): upgrade conductor"
            )
        for number in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[number]().split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


# --------------------------------------------------------------------------- row mapping

_MESSAGE_COLUMNS = """
    m.id, m.run_id, sender.name AS sender, m.broadcast, m.body, m.reply_to, m.created_at
"""
_SESSION_COLUMNS = """
    id, run_id, name, workstream, kind, status, note, branch, worktree, sdk_session_id,
    context_cursor, last_seen_at, created_at, updated_at
"""
_REVIEW_COLUMNS = """
    r.id, r.run_id, req.name AS requester, rev.name AS reviewer, r.status, r.commit_sha,
    r.base, r.note, r.comment, dec.name AS decided_by, r.superseded_by, r.created_at,
    r.decided_at, length(r.diff) AS diff_size
"""
_REVIEW_JOINS = """
    FROM reviews r
    JOIN sessions req ON req.id = r.requester_id
    LEFT JOIN sessions rev ON rev.id = r.reviewer_id
    LEFT JOIN sessions dec ON dec.id = r.decided_by
"""
_CLAIM_SELECT = """
    SELECT c.id, c.run_id, s.name AS session, c.path, c.created_at
    FROM claims c JOIN sessions s ON s.id = c.session_id
"""
# A claim on P covers P and everything under it; "." is the whole repository.
_COVERS = "(c.path = :path OR c.path = '.' OR substr(:path, 1, length(c.path) + 1) = c.path || '/')"
_INSIDE = "(:path = '.' OR substr(c.path, 1, length(:path) + 1) = :path || '/')"


def _run(row: Any) -> Run:
    return Run(
        id=row["id"],
        goal=row["goal"],
        state=RunState(row["state"]),
        repo_root=row["repo_root"],
        base_ref=row["base_ref"],
        base_commit=row["base_commit"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        spec=json.loads(row["spec"]) if row["spec"] else None,
    )


def _session(row: Any) -> Session:
    return Session(
        id=row["id"],
        run_id=row["run_id"],
        name=row["name"],
        workstream=row["workstream"],
        kind=SessionKind(row["kind"]),
        status=SessionStatus(row["status"]),
        note=row["note"],
        branch=row["branch"],
        worktree=row["worktree"],
        sdk_session_id=row["sdk_session_id"],
        context_cursor=row["context_cursor"],
        last_seen_at=row["last_seen_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _context(row: Any) -> ContextEntry:
    return ContextEntry(
        id=row["id"],
        run_id=row["run_id"],
        author=row["author"],
        category=ContextCategory(row["category"]),
        body=row["body"],
        created_at=row["created_at"],
    )


def _claim(row: Any) -> Claim:
    return Claim(
        id=row["id"],
        run_id=row["run_id"],
        session=row["session"],
        path=row["path"],
        created_at=row["created_at"],
    )


def _review(row: Any, diff: bytes = b"") -> Review:
    return Review(
        id=row["id"],
        run_id=row["run_id"],
        requester=row["requester"],
        reviewer=row["reviewer"],
        status=ReviewStatus(row["status"]),
        commit=row["commit_sha"],
        base=row["base"],
        note=row["note"],
        comment=row["comment"],
        decided_by=row["decided_by"],
        superseded_by=row["superseded_by"],
        created_at=row["created_at"],
        decided_at=row["decided_at"],
        diff_size=row["diff_size"],
        diff=diff,
    )


def _lease(row: Any) -> Lease:
    return Lease(
        name=row["name"],
        holder=row["holder"],
        token=row["token"],
        pid=row["pid"],
        host=row["host"],
        acquired_at=row["acquired_at"],
        expires_at=row["expires_at"],
    )


def _event(row: Any) -> Event:
    payload = row["payload"]
    return Event(
        id=row["id"],
        run_id=row["run_id"],
        session=row["session"],
        kind=row["kind"],
        summary=row["summary"],
        payload=json.loads(payload) if payload else None,
        created_at=row["created_at"],
    )


Db = sqlite3.Connection
P = ParamSpec("P")
T = TypeVar("T")
Operation = Callable[Concatenate["Store", Db, P], T]
Call = Callable[Concatenate["Store", P], Awaitable[T]]


def _fetch(db: Db, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
    return db.execute(sql, params).fetchall()


def _transaction(*, write: bool) -> Callable[[Operation[P, T]], Call[P, T]]:
    """Make a plain function of the connection one transaction of the store.

    The whole body runs in one worker thread, BEGIN to COMMIT: one hop from the event loop
    per operation instead of one per statement (a sync with nothing new is 3 statements and
    a handful of rows). A caller cancelled meanwhile gets nothing done: the worker stops
    waiting for the write lock, or rolls back instead of committing. The same body runs in
    the calling thread on a store opened with `Store.open_blocking`, for a short command
    with no event loop to start (see `without_loop`).
    """

    def wrap(body: Operation[P, T]) -> Call[P, T]:
        async def run(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> T:
            if self._without_loop:  # nothing else uses the connection; nothing to wake
                return self._in_transaction(write, body, args, kwargs)
            async with self._lock:
                result = await self._in_worker(write, body, args, kwargs)
            if write:
                self._writes += 1
                changed, self._changed = self._changed, anyio.Event()
                changed.set()
            return result

        functools.update_wrapper(run, body)
        return run

    return wrap


def _checkpoint_connection(path: Path) -> sqlite3.Connection:
    """A connection that only checkpoints, used from one worker thread at a time."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def without_loop(work: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that awaits nothing but operations of a store opened with
    `Store.open_blocking` (a Bus method over one, say): it ends at its first step, so it
    needs no event loop. Anything that would suspend is a bug here, and an error."""
    try:
        work.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    work.close()
    raise RuntimeError("this needs an event loop: it awaited something besides the store")


# --------------------------------------------------------------------------- the store


class Store:
    """One connection to the conductor database. Open with `async with Store.open(path)`
    (or `with Store.open_blocking(path)` where there is no event loop)."""

    unread_index = "deliveries_unread"  # what marking deliveries read goes through

    _lock: anyio.Lock  # one operation at a time on the one connection
    _changed: anyio.Event  # set (and replaced) when a write here commits

    def __init__(self, db: Db, path: Path, *, without_loop: bool = False) -> None:
        self._db = db
        self.path = path
        self.clock: Callable[[], float] = time.time
        self.busy_timeout = BUSY_TIMEOUT_MS / 1000  # how long a write waits for the lock
        self._without_loop = without_loop  # opened with open_blocking: operations run inline
        self._writes = 0  # write transactions committed through this store
        if not without_loop:  # (anyio's lock and event load machinery a hand command skips)
            self._lock = anyio.Lock()
            self._changed = anyio.Event()

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path, *, create: bool = True) -> AsyncIterator[Store]:
        """The store at `path`; `create=False` (for a command that only reads) raises
        NoDatabase when there is none, creating neither the file nor its folder."""
        store = await anyio.to_thread.run_sync(functools.partial(cls._connect, path, create=create))
        try:
            yield store
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(store._db.close)

    @classmethod
    @contextmanager
    def open_blocking(cls, path: Path, *, create: bool = True) -> Iterator[Store]:
        """The store for this thread alone, with no event loop: each operation runs in the
        calling thread and its coroutine ends without suspending (drive it, and whatever
        awaits only such operations, with `without_loop`). `create` as for `open`."""
        store = cls._connect(path, create=create, without_loop=True)
        try:
            yield store
        finally:
            store._db.close()

    @classmethod
    def _connect(cls, path: Path, *, create: bool = True, without_loop: bool = False) -> Store:
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(f"cannot create {path.parent}: {err.strerror}") from None
        elif not path.exists():
            raise NoDatabase(path)
        if path.is_dir():
            raise StoreError(f"{path} is a folder, not a database file")
        try:
            # Used from one worker thread at a time (the store's lock), not always the same.
            # Not creating: sqlite's mode=rw, so a file removed since the look is not made.
            db = sqlite3.connect(
                path if create else f"{path.absolute().as_uri()}?mode=rw",
                uri=not create,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
            )
        except sqlite3.Error as err:
            raise StoreError(f"cannot open the database {path}: {err}") from err
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _enable_wal(db)
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            _migrate(db)
        except sqlite3.DatabaseError as err:
            db.close()
            raise StoreError(f"cannot use the database {path}: {err}") from err
        except BaseException:
            db.close()
            raise
        return cls(db, path, without_loop=without_loop)

    async def _in_worker(
        self,
        write: bool,
        body: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        """The transaction in a worker thread. When the caller is cancelled, a transaction
        not yet begun never begins, and one under way is told to stop and waited for: the
        connection is free again only when it is done. (A worker thread may never take the
        call at all once it is cancelled: whether it will is settled under `handoff`.)"""
        handoff = _Handoff()

        def work() -> T:
            if not handoff.begin():
                raise _Stopped  # abandoned before it began: nothing to do, no one waits
            try:
                result = self._in_transaction(write, body, args, kwargs, handoff.stop)
                handoff.committed = (result,)
                return result
            finally:
                handoff.ended.set()

        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            if not handoff.abandon():
                raise
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(handoff.ended.wait)
            if not handoff.committed:
                raise
            # Committed before the stop was heard: what it did (messages marked read, say)
            # is the caller's to have. The cancellation comes again at its next checkpoint.
            done: T = handoff.committed[0]
            return done

    def _in_transaction(
        self,
        write: bool,
        body: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        stop: threading.Event | None = None,
    ) -> T:
        """BEGIN, the body, COMMIT; anything raised rolls back, and so does a `stop` that
        came meanwhile. A write takes SQLite's write lock up front (IMMEDIATE), so the body
        never has to upgrade a read lock."""
        db = self._db
        try:
            if write:
                self._begin_immediate(stop)
            else:
                db.execute("BEGIN")
            result = body(self, db, *args, **kwargs)
            if stop is not None and stop.is_set():
                raise _Stopped
            db.execute("COMMIT")
            return result
        except BaseException as err:
            try:
                self._rollback()
            except sqlite3.Error as failed:
                raise StoreFault(
                    f"the database {self.path} failed: {err or type(err).__name__};"
                    f" then its rollback: {failed}"
                ) from err
            if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
                raise StoreFault(
                    f"the database {self.path} stayed locked by another process for"
                    f" {self.busy_timeout:g} s: try again"
                ) from err
            if isinstance(err, sqlite3.OperationalError | sqlite3.DatabaseError) and not (
                isinstance(err, sqlite3.IntegrityError | sqlite3.ProgrammingError)
            ):
                # disk full, read-only, I/O error: the machine's, one line
                raise StoreFault(f"the database {self.path} failed: {err}") from err
            raise

    def _begin_immediate(self, stop: threading.Event | None) -> None:
        """Take the write lock, waiting for another process up to `busy_timeout` in short
        slices, so that a caller who stops waiting is heard within one slice."""
        db = self._db
        deadline = time.monotonic() + self.busy_timeout
        db.execute(f"PRAGMA busy_timeout = {LOCK_SLICE_MS}")
        try:
            while True:
                try:
                    db.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as err:
                    if "locked" not in str(err) or time.monotonic() >= deadline:
                        raise
                    if stop is not None and stop.is_set():
                        raise _Stopped from None
        finally:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    async def keep_checkpointed(self, every: float = CHECKPOINT_SECONDS) -> None:
        """For a long-lived process (the supervisor), run as a task: its own commits stop
        checkpointing the WAL and this does it instead, from a connection of its own, every
        `every` seconds after anything was written. SQLite otherwise makes the commit that
        takes the WAL past 1000 pages copy them into the database, a pause of milliseconds
        in whatever call made it (a sync, a hook). A checkpoint that fails (a full disk) is
        left for the next one: the writes themselves report the machine's trouble."""
        try:
            checkpointer = await anyio.to_thread.run_sync(_checkpoint_connection, self.path)
        except sqlite3.Error:
            return  # (no file descriptor left, say): commits checkpoint as SQLite's default
        try:
            try:
                await self.pragma("wal_autocheckpoint = 0")
            except StoreError:
                return  # the store is failing: its own calls say so
            seen = self._writes
            while True:
                await anyio.sleep(every)
                if self._writes != seen:
                    seen = self._writes
                    with contextlib.suppress(sqlite3.Error):
                        await anyio.to_thread.run_sync(
                            checkpointer.execute, "PRAGMA wal_checkpoint(PASSIVE)"
                        )
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(checkpointer.close)
                with contextlib.suppress(StoreError):  # the store itself may be failing
                    await self.pragma(f"wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")

    async def wait_for_change(self, timeout: float) -> None:
        """Until a write through this store commits, or `timeout` passes: waiters in this
        process wake at once; writes by other processes are seen at the timeout (a poll)."""
        changed = self._changed
        with anyio.move_on_after(timeout):
            await changed.wait()

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.OperationalError as err:
            if "no transaction is active" not in str(err):
                raise

    @_transaction(write=False)
    def schema(self, db: Db) -> list[tuple[str, str]]:
        """(name, sql) of every table and index: what a migration test compares."""
        rows = _fetch(db, "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        return [(r["name"], r["sql"]) for r in rows]

    @_transaction(write=False)
    def pragma(self, db: Db, name: str) -> Any:
        rows = _fetch(db, f"PRAGMA {name}")
        return rows[0][0] if rows else None

    # ----------------------------------------------------------------------- helpers in a tx

    def _add_event(
        self,
        db: Db,
        run_id: str | None,
        session_id: int | None,
        kind: str,
        summary: str,
        payload: dict[str, Any] | None = None,
    ) -> int:
        cur = db.execute(
            "INSERT INTO events (run_id, session_id, kind, summary, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                run_id,
                session_id,
                kind,
                summary,
                json.dumps(payload) if payload is not None else None,
                self.clock(),
            ),
        )
        return int(cur.lastrowid or 0)

    @staticmethod
    def _session_row(db: Db, run_id: str, name: str) -> Any:
        rows = _fetch(
            db,
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE run_id = ? AND name = ?",
            (run_id, name),
        )
        if not rows:
            raise UnknownSession(f"unknown session {name!r} in run {run_id}")
        return rows[0]

    def _session_id(self, db: Db, run_id: str, name: str) -> int:
        return int((self._session_row(db, run_id, name))["id"])

    @staticmethod
    def _messages(db: Db, where: str, params: Sequence[Any]) -> list[Message]:
        rows = _fetch(
            db,
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m"
            f" LEFT JOIN sessions sender ON sender.id = m.sender_id WHERE {where} ORDER BY m.id",
            params,
        )
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        recipients: dict[int, list[str]] = {i: [] for i in ids}
        for r in _fetch(
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
            for r in rows
        ]

    def _insert_message(
        self,
        db: Db,
        run_id: str,
        sender_id: int | None,
        recipient_ids: list[int] | None,
        body: str,
        reply_to: int | None,
        review_id: int | None = None,
    ) -> int:
        """Insert one message and its deliveries; `None` recipients means every other session.
        `review_id`: the message tells a review's verdict (its event says so, for watchers)."""
        broadcast = recipient_ids is None
        if recipient_ids is None:
            rows = _fetch(
                db,
                "SELECT id FROM sessions WHERE run_id = ? AND id IS NOT ? ORDER BY id",
                (run_id, sender_id),
            )
            recipient_ids = [r["id"] for r in rows]
        now = self.clock()
        cur = db.execute(
            "INSERT INTO messages (run_id, sender_id, broadcast, body, reply_to, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, sender_id, int(broadcast), body, reply_to, now),
        )
        message_id = int(cur.lastrowid or 0)
        db.executemany(
            "INSERT INTO deliveries (message_id, recipient_id) VALUES (?, ?)",
            [(message_id, r) for r in dict.fromkeys(recipient_ids)],
        )
        self._add_event(
            db,
            run_id,
            sender_id,
            "message.sent",
            one_line(body),
            {
                "message_id": message_id,
                "recipients": recipient_ids,
                "broadcast": broadcast,
                **({"review_id": review_id} if review_id is not None else {}),
            },
        )
        return message_id

    def _mark_delivered(
        self,
        db: Db,
        recipient_id: int,
        where: str,
        params: Sequence[Any],
        via: str,
        now: float | None = None,
    ) -> list[int]:
        # Through the partial index of unread deliveries: left to itself SQLite takes the
        # primary key, which visits every message the session was ever sent (a sync then
        # slows with the history; bench/sync_history.py).
        rows = _fetch(
            db,
            f"UPDATE deliveries INDEXED BY {self.unread_index} SET read_at = ?, read_via = ?"
            f" WHERE recipient_id = ? AND read_at IS NULL AND {where} RETURNING message_id",
            (self.clock() if now is None else now, via, recipient_id, *params),
        )
        return sorted(r["message_id"] for r in rows)

    # ----------------------------------------------------------------------- runs

    @_transaction(write=True)
    def create_run(
        self,
        db: Db,
        run_id: str,
        *,
        goal: str,
        repo_root: str,
        base_ref: str | None,
        base_commit: str | None,
        spec: Mapping[str, Any] | None = None,
    ) -> Run:
        now = self.clock()
        spec_text = json.dumps(spec) if spec is not None else None
        try:
            db.execute(
                "INSERT INTO runs (id, goal, state, repo_root, base_ref, base_commit,"
                " created_at, updated_at, spec) VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?)",
                (run_id, goal, repo_root, base_ref, base_commit, now, now, spec_text),
            )
        except sqlite3.IntegrityError:
            raise InvalidInput(f"run {run_id} already exists") from None
        self._add_event(db, run_id, None, "run.created", one_line(goal or "run created"))
        rows = _fetch(db, "SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run(rows[0])

    @_transaction(write=False)
    def get_run(self, db: Db, run_id: str) -> Run:
        rows = _fetch(db, "SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise UnknownRun(f"unknown run {run_id!r}")
        return _run(rows[0])

    @_transaction(write=False)
    def latest_run(self, db: Db) -> Run | None:
        rows = _fetch(db, "SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1")
        return _run(rows[0]) if rows else None

    @_transaction(write=False)
    def list_runs(self, db: Db) -> list[Run]:
        rows = _fetch(db, "SELECT * FROM runs ORDER BY created_at, rowid")
        return [_run(r) for r in rows]

    @_transaction(write=True)
    def set_run_state(self, db: Db, run_id: str, state: RunState, note: str = "") -> Run:
        rows = _fetch(
            db,
            "UPDATE runs SET state = ?, updated_at = ? WHERE id = ? RETURNING *",
            (state.value, self.clock(), run_id),
        )
        if not rows:
            raise UnknownRun(f"unknown run {run_id!r}")
        self._add_event(db, run_id, None, "run.state", note or state.value, {"state": state.value})
        return _run(rows[0])

    # ----------------------------------------------------------------------- sessions

    @_transaction(write=True)
    def add_sessions(
        self, db: Db, run_id: str, specs: Sequence[tuple[str, str, SessionKind, str | None]]
    ) -> list[Session]:
        """Register (name, workstream, kind, branch) sessions; all or none."""
        now = self.clock()
        if not _fetch(db, "SELECT 1 FROM runs WHERE id = ?", (run_id,)):
            raise UnknownRun(f"unknown run {run_id!r}")
        made = []
        for name, workstream, kind, branch in specs:
            try:
                rows = _fetch(
                    db,
                    f"INSERT INTO sessions (run_id, name, workstream, kind, branch,"
                    f" created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    f" RETURNING {_SESSION_COLUMNS}",
                    (run_id, name, workstream, kind.value, branch, now, now),
                )
            except sqlite3.IntegrityError:
                raise InvalidInput(f"session {name} already exists in run {run_id}") from None
            session = _session(rows[0])
            self._add_event(
                db,
                run_id,
                session.id,
                "session.registered",
                f"{name}: {workstream}" if workstream else name,
                {"workstream": workstream, "kind": kind.value, "branch": branch},
            )
            made.append(session)
        return made

    @_transaction(write=False)
    def get_session(self, db: Db, run_id: str, name: str) -> Session:
        return _session(self._session_row(db, run_id, name))

    @_transaction(write=False)
    def list_sessions(self, db: Db, run_id: str) -> list[Session]:
        rows = _fetch(
            db,
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE run_id = ? ORDER BY id",
            (run_id,),
        )
        return [_session(r) for r in rows]

    @_transaction(write=True)
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
    ) -> Session:
        """Change what is given. A session that ends loses its claims in the same transaction."""
        changes = {
            "status": status.value if status is not None else None,
            "note": note,
            "branch": branch,
            "worktree": worktree,
            "sdk_session_id": sdk_session_id,
        }
        changes = {k: v for k, v in changes.items() if v is not None}
        row = self._session_row(db, run_id, name)
        before = _session(row)
        changes = {k: v for k, v in changes.items() if row[k] != v}  # no change, no event
        if not changes:
            return before
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        rows = _fetch(
            db,
            f"UPDATE sessions SET {sets}, updated_at = :now WHERE id = :id"
            f" RETURNING {_SESSION_COLUMNS}",
            {**changes, "now": self.clock(), "id": before.id},
        )
        after = _session(rows[0])
        summary = ", ".join(f"{k}={one_line(str(v), 60)}" for k, v in changes.items())
        self._add_event(db, run_id, before.id, "session.updated", summary, changes)
        if after.status.ended:
            self._release_all_claims(db, run_id, before.id, reason=after.status.value)
        return after

    # ----------------------------------------------------------------------- messages

    @_transaction(write=True)
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
        sender_id = self._session_id(db, run_id, sender) if sender is not None else None
        ids = None if recipients is None else [self._session_id(db, run_id, r) for r in recipients]
        message_id = self._insert_message(db, run_id, sender_id, ids, body, reply_to)
        return (self._messages(db, "m.id = ?", (message_id,)))[0]

    @_transaction(write=False)
    def get_message(self, db: Db, run_id: str, message_id: int) -> Message:
        found = self._messages(db, "m.id = ? AND m.run_id = ?", (message_id, run_id))
        if not found:
            raise UnknownMessage(f"unknown message #{message_id}")
        return found[0]

    @_transaction(write=False)
    def inbox(self, db: Db, run_id: str, name: str, *, unread_only: bool = True) -> list[Message]:
        sid = self._session_id(db, run_id, name)
        unread = "AND d.read_at IS NULL" if unread_only else ""
        rows = _fetch(
            db,
            f"SELECT d.message_id, d.read_at FROM deliveries d"
            f" WHERE d.recipient_id = ? {unread} ORDER BY d.message_id",
            (sid,),
        )
        read_at = {r["message_id"]: r["read_at"] for r in rows}
        if not read_at:
            return []
        marks = ",".join("?" * len(read_at))
        found = self._messages(db, f"m.id IN ({marks})", list(read_at))
        return [_with_read_at(m, read_at[m.id]) for m in found]

    @_transaction(write=False)
    def unread_counts(self, db: Db, run_id: str) -> dict[str, int]:
        rows = _fetch(
            db,
            "SELECT s.name, count(d.message_id) AS n FROM sessions s"
            " LEFT JOIN deliveries d ON d.recipient_id = s.id AND d.read_at IS NULL"
            " WHERE s.run_id = ? GROUP BY s.id",
            (run_id,),
        )
        return {r["name"]: r["n"] for r in rows}

    @_transaction(write=False)
    def has_unread(self, db: Db, run_id: str, name: str) -> bool:
        rows = _fetch(
            db,
            f"SELECT EXISTS (SELECT 1 FROM deliveries INDEXED BY {self.unread_index}"
            " WHERE recipient_id = (SELECT id FROM sessions WHERE run_id = ? AND name = ?)"
            " AND read_at IS NULL) AS found",
            (run_id, name),
        )
        return bool(rows[0]["found"])

    def _addressed(self, db: Db, run_id: str, name: str, message_id: int) -> tuple[int, Any]:
        """(session id, message row) when `name` is an addressee of the message; else raise."""
        sid = self._session_id(db, run_id, name)
        rows = _fetch(
            db,
            "SELECT m.sender_id, d.recipient_id FROM messages m"
            " LEFT JOIN deliveries d ON d.message_id = m.id AND d.recipient_id = ?"
            " WHERE m.id = ? AND m.run_id = ?",
            (sid, message_id, run_id),
        )
        if not rows:
            raise UnknownMessage(f"unknown message #{message_id}")
        if rows[0]["recipient_id"] is None:
            raise NotAddressee(f"message #{message_id} is not addressed to {name}")
        return sid, rows[0]

    @_transaction(write=True)
    def mark_read(self, db: Db, run_id: str, name: str, message_id: int) -> bool:
        """Mark one message read for its addressee; False when it already was."""
        sid, _ = self._addressed(db, run_id, name, message_id)
        done = self._mark_delivered(db, sid, "message_id = ?", (message_id,), "mark")
        if done:
            self._add_event(
                db, run_id, sid, "message.read", f"#{message_id}", {"message_ids": done}
            )
        return bool(done)

    @_transaction(write=True)
    def reply(self, db: Db, run_id: str, name: str, message_id: int, body: str) -> Message:
        """Answer a message to its sender and mark the original read, in one transaction."""
        sid, original = self._addressed(db, run_id, name, message_id)
        if original["sender_id"] is None:
            raise InvalidInput(f"message #{message_id} came from conductor itself: no reply")
        done = self._mark_delivered(db, sid, "message_id = ?", (message_id,), "reply")
        if done:
            self._add_event(
                db, run_id, sid, "message.read", f"#{message_id}", {"message_ids": done}
            )
        new_id = self._insert_message(db, run_id, sid, [original["sender_id"]], body, message_id)
        return (self._messages(db, "m.id = ?", (new_id,)))[0]

    @_transaction(write=True)
    def take_unread(self, db: Db, run_id: str, name: str, *, via: str) -> list[Message]:
        """Fetch and mark read every unread message of a session: the delivery primitive."""
        sid = self._session_id(db, run_id, name)
        return self._take_unread(db, run_id, sid, via)

    def _take_unread(self, db: Db, run_id: str, sid: int, via: str) -> list[Message]:
        now = self.clock()
        ids = self._mark_delivered(db, sid, "1", (), via, now)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        messages = self._messages(db, f"m.id IN ({marks})", ids)
        self._add_event(
            db,
            run_id,
            sid,
            "message.read",
            f"{len(ids)} via {via}",
            {"message_ids": ids, "via": via},
        )
        return [_with_read_at(m, now) for m in messages]

    # ----------------------------------------------------------------------- sync

    @_transaction(write=True)
    def sync(self, db: Db, run_id: str, name: str) -> SyncResult:
        """Unread messages + context after the cursor + heartbeat, in one write transaction.

        Holding SQLite's write lock for the whole read-mark-advance makes delivery exactly once
        even when two syncs of the same session race (each sees what the other left).
        """
        row = self._session_row(db, run_id, name)
        sid, cursor = int(row["id"]), int(row["context_cursor"])
        messages = self._take_unread(db, run_id, sid, "sync")
        ctx_rows = _fetch(
            db,
            "SELECT c.id, c.run_id, a.name AS author, c.category, c.body, c.created_at"
            " FROM context c LEFT JOIN sessions a ON a.id = c.author_id"
            " WHERE c.run_id = ? AND c.id > ? ORDER BY c.id",
            (run_id, cursor),
        )
        new_cursor = max((r["id"] for r in ctx_rows), default=cursor)
        status = row["status"]
        if status == SessionStatus.PENDING.value:
            status = SessionStatus.WORKING.value  # first sign of life
            self._add_event(db, run_id, sid, "session.updated", "status=working")
        db.execute(
            "UPDATE sessions SET context_cursor = ?, last_seen_at = ?, status = ? WHERE id = ?",
            (new_cursor, self.clock(), status, sid),
        )
        context = [_context(r) for r in ctx_rows if r["author"] != name]
        if context:
            self._add_event(
                db,
                run_id,
                sid,
                "context.delivered",
                f"{len(context)} entries",
                {"context_ids": [c.id for c in context]},
            )
        return SyncResult(session=name, messages=messages, context=context)

    @_transaction(write=True)
    def heartbeat(self, db: Db, run_id: str, name: str) -> None:
        """Record that a session is alive. Not an event: it would drown the log."""
        sid = self._session_id(db, run_id, name)
        db.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (self.clock(), sid))

    # ----------------------------------------------------------------------- shared context

    @_transaction(write=True)
    def add_context(
        self, db: Db, run_id: str, author: str | None, category: ContextCategory, body: str
    ) -> ContextEntry:
        now = self.clock()
        aid = self._session_id(db, run_id, author) if author is not None else None
        cur = db.execute(
            "INSERT INTO context (run_id, author_id, category, body, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (run_id, aid, category.value, body, now),
        )
        entry_id = int(cur.lastrowid or 0)
        self._add_event(
            db,
            run_id,
            aid,
            "context.added",
            f"[{category.value}] {one_line(body)}",
            {"context_id": entry_id},
        )
        return ContextEntry(entry_id, run_id, author, category, body, now)

    @_transaction(write=False)
    def list_context(
        self, db: Db, run_id: str, *, category: ContextCategory | None = None, after: int = 0
    ) -> list[ContextEntry]:
        rows = _fetch(
            db,
            "SELECT c.id, c.run_id, a.name AS author, c.category, c.body, c.created_at"
            " FROM context c LEFT JOIN sessions a ON a.id = c.author_id"
            " WHERE c.run_id = ? AND c.id > ? AND (? IS NULL OR c.category = ?)"
            " ORDER BY c.id",
            (run_id, after, category, category),
        )
        return [_context(r) for r in rows]

    # ----------------------------------------------------------------------- claims

    @_transaction(write=True)
    def claim(self, db: Db, run_id: str, name: str, path: str, token: str) -> Claim:
        """Claim `path` (already normalised) for `name`; exactly one of racing claimants wins."""
        sid = self._session_id(db, run_id, name)
        conflict = _fetch(
            db,
            f"{_CLAIM_SELECT} WHERE c.run_id = :run AND c.session_id != :sid"
            f" AND ({_COVERS} OR {_INSIDE}) ORDER BY c.id LIMIT 1",
            {"run": run_id, "sid": sid, "path": path},
        )
        if conflict:
            raise ClaimConflict(path, conflict[0]["session"], conflict[0]["path"])
        own = _fetch(db, f"{_CLAIM_SELECT} WHERE c.run_id = ? AND c.path = ?", (run_id, path))
        if own:
            return _claim(own[0])
        cur = db.execute(
            "INSERT INTO claims (run_id, session_id, path, token, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (run_id, sid, path, token, self.clock()),
        )
        self._add_event(db, run_id, sid, "claim.added", path, {"path": path})
        rows = _fetch(db, f"{_CLAIM_SELECT} WHERE c.id = ?", (cur.lastrowid,))
        return _claim(rows[0])

    @_transaction(write=True)
    def release_claim(self, db: Db, run_id: str, name: str, path: str) -> Claim:
        sid = self._session_id(db, run_id, name)
        rows = _fetch(db, f"{_CLAIM_SELECT} WHERE c.run_id = ? AND c.path = ?", (run_id, path))
        if not rows:
            raise NotClaimOwner(f"{path} is not claimed")
        claim = _claim(rows[0])
        if claim.session != name:
            raise NotClaimOwner(f"{path} is claimed by session {claim.session}, not {name}")
        db.execute("DELETE FROM claims WHERE id = ?", (claim.id,))
        self._add_event(db, run_id, sid, "claim.released", path, {"path": path})
        return claim

    def _release_all_claims(self, db: Db, run_id: str, sid: int, *, reason: str) -> None:
        rows = _fetch(db, "DELETE FROM claims WHERE session_id = ? RETURNING path", (sid,))
        for r in rows:
            self._add_event(
                db,
                run_id,
                sid,
                "claim.released",
                f"{r['path']} (session {reason})",
                {"path": r["path"], "reason": reason},
            )

    @_transaction(write=False)
    def list_claims(self, db: Db, run_id: str, session: str | None = None) -> list[Claim]:
        rows = _fetch(
            db,
            f"{_CLAIM_SELECT} WHERE c.run_id = ? AND (? IS NULL OR s.name = ?) ORDER BY c.path",
            (run_id, session, session),
        )
        return [_claim(r) for r in rows]

    @_transaction(write=False)
    def claim_covering(self, db: Db, run_id: str, path: str, *, other_than: str) -> Claim | None:
        """The claim of another session that covers `path`: what stops a write to it."""
        self._session_id(db, run_id, other_than)
        rows = _fetch(
            db,
            f"{_CLAIM_SELECT} WHERE c.run_id = :run AND s.name != :me AND {_COVERS}"
            f" ORDER BY length(c.path) DESC LIMIT 1",
            {"run": run_id, "me": other_than, "path": path},
        )
        return _claim(rows[0]) if rows else None

    # ----------------------------------------------------------------------- reviews

    @_transaction(write=True)
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
    ) -> Review:
        """Open a review of `commit`; every earlier review by the requester is superseded."""
        req_id = self._session_id(db, run_id, requester)
        rev_id = self._session_id(db, run_id, reviewer) if reviewer else None
        if rev_id == req_id:
            raise ReviewRefused(f"{requester} cannot review its own work: ask another session")
        cur = db.execute(
            "INSERT INTO reviews (run_id, requester_id, reviewer_id, status, commit_sha, base,"
            " note, diff, created_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
            (run_id, req_id, rev_id, commit, base, note, diff, self.clock()),
        )
        review_id = int(cur.lastrowid or 0)
        old = _fetch(
            db,
            "UPDATE reviews SET status = 'superseded', superseded_by = ?"
            " WHERE requester_id = ? AND id != ? AND status != 'superseded' RETURNING id",
            (review_id, req_id, review_id),
        )
        self._add_event(
            db,
            run_id,
            req_id,
            "review.requested",
            f"#{review_id} of {commit[:12]}" + (f" for {reviewer}" if reviewer else ""),
            {
                "review_id": review_id,
                "commit": commit,
                "reviewer": reviewer,
                "supersedes": [r["id"] for r in old],
                "diff_size": len(diff),
            },
        )
        if rev_id is not None:
            text = f"review #{review_id} requested by {requester} for commit {commit[:12]}"
            text += f": {note}" if note else ""
            self._insert_message(db, run_id, req_id, [rev_id], text, None, review_id)
        return self._get_review(db, run_id, review_id, with_diff=False)

    @_transaction(write=True)
    def decide_review(
        self, db: Db, run_id: str, review_id: int, decider: str, *, approve: bool, comment: str
    ) -> Review:
        did = self._session_id(db, run_id, decider)
        review = self._get_review(db, run_id, review_id, with_diff=False)
        if review.status is not ReviewStatus.PENDING:
            later = f" by #{review.superseded_by}" if review.superseded_by else ""
            raise ReviewRefused(f"review #{review_id} is {review.status.value}{later}")
        if review.requester == decider:
            raise ReviewRefused(f"{decider} requested review #{review_id} and cannot decide it")
        if review.reviewer is not None and review.reviewer != decider:
            raise ReviewRefused(f"review #{review_id} is assigned to {review.reviewer}")
        status = ReviewStatus.APPROVED if approve else ReviewStatus.REJECTED
        db.execute(
            "UPDATE reviews SET status = ?, comment = ?, decided_by = ?, decided_at = ?"
            " WHERE id = ?",
            (status.value, comment, did, self.clock(), review_id),
        )
        req_id = self._session_id(db, run_id, review.requester)
        text = f"review #{review_id} {status.value} by {decider}" + (
            f": {comment}" if comment else ""
        )
        message_id = self._insert_message(db, run_id, did, [req_id], text, None, review_id)
        self._add_event(
            db,
            run_id,
            did,
            f"review.{status.value}",
            f"#{review_id} of {review.requester}" + (f": {one_line(comment)}" if comment else ""),
            {
                "review_id": review_id,
                "requester": review.requester,
                "comment": comment,
                "message_id": message_id,
            },
        )
        return self._get_review(db, run_id, review_id, with_diff=False)

    @_transaction(write=True)
    def take_verdict(self, db: Db, run_id: str, review_id: int, *, via: str) -> list[int]:
        """Mark the message that told the author a review's verdict read, when the author
        is told some other way (the supervisor's next prompt, or the merge it goes on to):
        a verdict read twice would start a turn that only re-reads it. Returns what it
        marked; nothing when the message was read already or the review is undecided."""
        rows = _fetch(
            db,
            "SELECT json_extract(e.payload, '$.message_id') AS message_id, r.requester_id"
            " FROM events e JOIN reviews r ON r.id = json_extract(e.payload, '$.review_id')"
            " WHERE e.run_id = ? AND e.kind IN ('review.approved', 'review.rejected')"
            " AND r.id = ? AND r.run_id = ?",
            (run_id, review_id, run_id),
        )
        if not rows or rows[-1]["message_id"] is None:
            return []
        message_id, requester_id = rows[-1]["message_id"], rows[-1]["requester_id"]
        ids = self._mark_delivered(db, requester_id, "message_id = ?", (message_id,), via)
        if ids:
            self._add_event(
                db,
                run_id,
                requester_id,
                "message.read",
                f"{len(ids)} via {via}",
                {"message_ids": ids, "via": via},
            )
        return ids

    def _get_review(self, db: Db, run_id: str, review_id: int, *, with_diff: bool) -> Review:
        rows = _fetch(
            db,
            f"SELECT {_REVIEW_COLUMNS}{', r.diff' if with_diff else ''} {_REVIEW_JOINS}"
            f" WHERE r.id = ? AND r.run_id = ?",
            (review_id, run_id),
        )
        if not rows:
            raise UnknownReview(f"unknown review #{review_id}")
        return _review(rows[0], bytes(rows[0]["diff"]) if with_diff else b"")

    @_transaction(write=False)
    def get_review(self, db: Db, run_id: str, review_id: int, *, with_diff: bool = True) -> Review:
        return self._get_review(db, run_id, review_id, with_diff=with_diff)

    @_transaction(write=False)
    def list_reviews(
        self, db: Db, run_id: str, *, status: ReviewStatus | None = None, session: str | None = None
    ) -> list[Review]:
        rows = _fetch(
            db,
            f"SELECT {_REVIEW_COLUMNS} {_REVIEW_JOINS} WHERE r.run_id = ?"
            f" AND (? IS NULL OR r.status = ?)"
            f" AND (? IS NULL OR req.name = ? OR rev.name = ?) ORDER BY r.id",
            (run_id, status, status, session, session, session),
        )
        return [_review(r) for r in rows]

    @_transaction(write=False)
    def latest_review(self, db: Db, run_id: str, requester: str) -> Review | None:
        sid = self._session_id(db, run_id, requester)
        rows = _fetch(
            db,
            f"SELECT {_REVIEW_COLUMNS} {_REVIEW_JOINS} WHERE r.requester_id = ?"
            f" ORDER BY r.id DESC LIMIT 1",
            (sid,),
        )
        return _review(rows[0]) if rows else None

    # ----------------------------------------------------------------------- the lock

    @_transaction(write=True)
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
        rows = _fetch(
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
        if not rows:
            return None
        self._add_event(
            db,
            run_id,
            None,
            "lock.acquired",
            f"{name} by {holder}",
            {"name": name, "holder": holder, "pid": pid, "lease_seconds": lease_seconds},
        )
        return _lease(rows[0])

    @_transaction(write=False)
    def get_lock(self, db: Db, name: str) -> Lease | None:
        rows = _fetch(db, "SELECT * FROM locks WHERE name = ?", (name,))
        return _lease(rows[0]) if rows else None

    @_transaction(write=True)
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
        rows = _fetch(
            db,
            "DELETE FROM locks WHERE name = ? AND (? IS NULL OR token = ?) RETURNING *",
            (name, token, token),
        )
        if not rows:
            return None
        lease = _lease(rows[0])
        self._add_event(
            db,
            run_id,
            None,
            f"lock.{reason}",
            f"{name} held by {lease.holder}",
            {"name": name, "holder": lease.holder, "pid": lease.pid},
        )
        return lease

    # ----------------------------------------------------------------------- events

    @_transaction(write=True)
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
        sid = self._session_id(db, run_id, session) if run_id and session else None
        return self._add_event(db, run_id, sid, kind, summary, payload)

    @_transaction(write=False)
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
        if session is not None and run_id is not None:
            self._session_id(db, run_id, session)
        rows = _fetch(
            db,
            f"SELECT e.id, e.run_id, s.name AS session, e.kind, e.summary, e.payload,"
            f" e.created_at FROM events e LEFT JOIN sessions s ON s.id = e.session_id"
            f" WHERE (:run IS NULL OR e.run_id = :run) AND e.id > :after"
            f" AND (:session IS NULL OR s.name = :session)"
            f" ORDER BY e.id {order} LIMIT :limit",
            {"run": run_id, "after": after, "session": session, "limit": limit or -1},
        )
        events = [_event(r) for r in rows]
        return events[::-1] if newest else events


def _with_read_at(message: Message, read_at: float | None) -> Message:
    return replace(message, read_at=read_at)
