"""The SQLite connection and its transactions: what every aggregate's queries run inside.

One store wraps one sqlite3 connection. Every public operation is one transaction, written as
a plain function of the connection and run whole in a worker thread (one hop from the event
loop, however many statements), so each is atomic against other tasks of this process (an
in-process lock serialises use of the connection) and against other processes (write
transactions start with `BEGIN IMMEDIATE`, which takes SQLite's write lock up front and
waits `busy_timeout` for it).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import anyio

from conductor.errors import StoreError, StoreFault
from conductor.store.handoff import Handoff, Stopped
from conductor.store.rows import Db, fetch
from conductor.store.schema import migrate

BUSY_TIMEOUT_MS = 30_000
LOCK_SLICE_MS = 20  # a write waiting for the lock checks this often whether to give up
CHECKPOINT_SECONDS = 1.0  # how often keep_checkpointed copies the WAL into the database
AUTOCHECKPOINT_PAGES = 1000  # SQLite's default: a commit past this many WAL pages copies them

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="SqliteBase")


class NoDatabase(StoreError):
    """No database at the path a reading command was pointed at: nothing has been run there
    yet (or the path is wrong). Reading creates nothing, so this is all it can say."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"no run yet: no database at {path} (to start one: conductor run --help; by"
            ' hand: conductor init --sessions "A:frontend B:api")'
        )


def transaction(
    *, write: bool
) -> Callable[[Callable[Concatenate[S, Db, P], T]], Callable[Concatenate[S, P], Awaitable[T]]]:
    """Make a plain function of the connection one transaction of the store.

    The whole body runs in one worker thread, BEGIN to COMMIT: one hop from the event loop
    per operation instead of one per statement (a sync with nothing new is 3 statements and
    a handful of rows). A caller cancelled meanwhile gets nothing done: the worker stops
    waiting for the write lock, or rolls back instead of committing. The same body runs in
    the calling thread on a store opened with `Store.open_blocking`, for a short command
    with no event loop to start (see `without_loop`).
    """

    def wrap(body: Callable[Concatenate[S, Db, P], T]) -> Callable[Concatenate[S, P], Awaitable[T]]:
        async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
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


def _checkpoint_connection(path: Path) -> sqlite3.Connection:
    """A connection that only checkpoints, used from one worker thread at a time."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def connect(path: Path, *, create: bool) -> Db:
    """The connection to the database at `path`, migrated; `create=False` raises NoDatabase
    when there is none, creating neither the file nor its folder."""
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
        migrate(db)
    except sqlite3.DatabaseError as err:
        db.close()
        raise StoreError(f"cannot use the database {path}: {err}") from err
    except BaseException:
        db.close()
        raise
    return db


class SqliteBase:
    """One connection to the conductor database and the running of transactions on it. The
    aggregates' operations (runs, sessions, messages, ...) are mixed in by `Store`."""

    _lock: anyio.Lock  # one operation at a time on the one connection
    _changed: anyio.Event  # set (and replaced) when a write here commits

    def __init__(self, db: Db, path: Path, *, without_loop: bool = False) -> None:
        self._db = db
        self.path = path  # SQLite's file (its checkpointer opens it too)
        self.location = str(path)  # the storage interface's: what sessions are told
        self.clock: Callable[[], float] = time.time
        self.busy_timeout = BUSY_TIMEOUT_MS / 1000  # how long a write waits for the lock
        self._without_loop = without_loop  # opened with open_blocking: operations run inline
        self._writes = 0  # write transactions committed through this store
        if not without_loop:  # (anyio's lock and event load machinery a hand command skips)
            self._lock = anyio.Lock()
            self._changed = anyio.Event()

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path, *, create: bool = True) -> AsyncIterator[Self]:
        """The store at `path`; `create=False` (for a command that only reads) raises
        NoDatabase when there is none, creating neither the file nor its folder."""
        db = await anyio.to_thread.run_sync(functools.partial(connect, path, create=create))
        store = cls(db, path)
        try:
            yield store
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(store._db.close)

    @classmethod
    @contextmanager
    def open_blocking(cls, path: Path, *, create: bool = True) -> Iterator[Self]:
        """The store for this thread alone, with no event loop: each operation runs in the
        calling thread and its coroutine ends without suspending (drive it, and whatever
        awaits only such operations, with `without_loop`). `create` as for `open`."""
        store = cls(connect(path, create=create), path, without_loop=True)
        try:
            yield store
        finally:
            store._db.close()

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
        handoff = Handoff()

        def work() -> T:
            if not handoff.begin():
                raise Stopped  # abandoned before it began: nothing to do, no one waits
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
                raise Stopped
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
                        raise Stopped from None
        finally:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.OperationalError as err:
            if "no transaction is active" not in str(err):
                raise

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

    @transaction(write=False)
    def schema(self, db: Db) -> list[tuple[str, str]]:
        """(name, sql) of every table and index: what a migration test compares."""
        rows = fetch(db, "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        return [(r["name"], r["sql"]) for r in rows]

    @transaction(write=False)
    def pragma(self, db: Db, name: str) -> Any:
        rows = fetch(db, f"PRAGMA {name}")
        return rows[0][0] if rows else None
