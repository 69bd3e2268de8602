"""`PostgresStore`: the storage interface on PostgreSQL, for a team across hosts. The same
aggregates as SQLite's `Store` (their queries run through `adapter.Connection`), with
PostgreSQL's transactions and wake-ups underneath.

Write transactions are serialized, exactly as SQLite's single writer serializes them: each
begins by taking one transaction-scoped advisory lock (`pg_advisory_xact_lock`), held until it
commits or rolls back, at READ COMMITTED, so every statement after the lock sees every write
committed before it. That keeps the semantics the conformance suite checks:
- exactly-once delivery and atomic claims: a take or a claim reads and writes with no other
  writer in between, as under SQLite's `BEGIN IMMEDIATE`;
- event ids a cursor never skips: a sequence hands out ids in the order transactions ask, not
  the order they commit, so with concurrent writers a reader could see id 8 committed, move its
  cursor past 7, and then 7 commits. With writers serialized, the transaction holding a smaller
  id has committed (and is visible: PostgreSQL makes a commit visible before it releases the
  transaction's locks) before the next writer takes the lock and its ids, so ids become visible
  in increasing order, as in SQLite.
Reads take no lock and never wait for writers: a read transaction is REPEATABLE READ (one
snapshot for all its statements, as SQLite's read transaction) and READ ONLY.

Every write transaction NOTIFYs the channel `conductor` as it commits; each store opened with
`open` LISTENs on a connection of its own, in a thread of its own, and wakes its
`wait_for_change` waiters: a write on another host wakes them at once, with no polling.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Self, TypeVar, cast

import anyio
import anyio.from_thread
import anyio.lowlevel
import psycopg
from anyio.lowlevel import EventLoopToken

from conductor.errors import StoreError, StoreFault
from conductor.store import Store
from conductor.store.connection import LOCK_SLICE_MS, SqliteBase
from conductor.store.handoff import Stopped
from conductor.store.interface import Unreachable, shown
from conductor.store.postgres.adapter import Connection
from conductor.store.postgres.schema import WRITE_LOCK, migrate, schema_version

T = TypeVar("T")

CHANNEL = "conductor"  # what every write transaction NOTIFYs as it commits
LISTEN_SLICE = 5.0  # how often an idle listener looks whether its store is closing anyway


CONNECT_TIMEOUT = 10  # seconds; libpq's own default is to wait for a silent host forever

__all__ = ["PostgresStore", "connect", "open_connection", "shown"]


def open_connection(url: str, **options: Any) -> psycopg.Connection[Any]:
    """psycopg's connection to `url`, autocommit; a failure is one StoreError line naming
    the server. A host that does not answer is given up on after CONNECT_TIMEOUT unless
    the URL or PGCONNECT_TIMEOUT says how long to wait."""
    if "connect_timeout" not in url and "PGCONNECT_TIMEOUT" not in os.environ:
        options.setdefault("connect_timeout", CONNECT_TIMEOUT)
    try:
        return psycopg.connect(url, autocommit=True, **options)
    except psycopg.Error as err:
        raise Unreachable(url, err) from err


def connect(url: str, *, create: bool) -> Connection:
    """A connection to the database at `url`, migrated; `create=False` (a command that only
    reads) refuses a database conductor has not made its tables in, and changes nothing."""
    raw = open_connection(url, cursor_factory=psycopg.ClientCursor)
    db = Connection(raw)
    try:
        if create:
            migrate(db)
        elif schema_version(db) is None:
            raise StoreError(
                f"no run yet: conductor has no tables in {shown(url)} (to start one:"
                " conductor run --help)"
            )
    except psycopg.Error as err:
        db.close()
        raise StoreError(f"cannot use the database {shown(url)}: {err}") from err
    except BaseException:
        db.close()
        raise
    return db


class Listener:
    """LISTEN on a connection of its own, in a thread of its own (a blocking wait for a
    notification must not hold a worker thread of the event loop's): each notification calls
    `wake` in the event loop. Closing sends it a notification of its own to end the wait."""

    def __init__(self, url: str, wake: Callable[[], None], token: EventLoopToken) -> None:
        self._wake = wake
        self._token = token
        self._closing = threading.Event()
        self._stop_channel = f"conductor_closing_{os.getpid()}_{id(self)}"
        self._conn = open_connection(url)
        try:
            self._conn.execute(f"LISTEN {CHANNEL}; LISTEN {self._stop_channel}")
        except BaseException:
            self._conn.close()
            raise
        self._thread = threading.Thread(target=self._listen, name="conductor-listen", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        try:
            while not self._closing.is_set():
                for note in self._conn.notifies(timeout=LISTEN_SLICE):
                    if self._closing.is_set():
                        return
                    if note.channel == CHANNEL:
                        anyio.from_thread.run_sync(self._wake, token=self._token)
        except (psycopg.Error, RuntimeError):
            # The connection is lost, or the event loop is gone: waiters see other hosts'
            # writes at their timeout from now on (as SQLite's see other processes').
            return
        finally:
            self._conn.close()

    def close(self, db: Connection) -> None:
        """Stop listening (blocks until the thread ends: not from the event loop's thread)."""
        self._closing.set()
        with contextlib.suppress(psycopg.Error):  # (then it sees `_closing` within a slice)
            db.run(f"NOTIFY {self._stop_channel}")
        self._thread.join()


# A read: one snapshot for all its statements, and no lock.
READ_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
# A write: the write lock, waited for a slice at a time (`PostgresBase._wait_for_write_lock`).
TAKE_WRITE_LOCK = (
    f"SAVEPOINT write_lock; SELECT pg_advisory_xact_lock({WRITE_LOCK});"
    " RELEASE SAVEPOINT write_lock; SET LOCAL lock_timeout = 0"
)
WRITE_BEGIN = f"BEGIN; SET LOCAL lock_timeout = {LOCK_SLICE_MS}; {TAKE_WRITE_LOCK}"


class PostgresBase(SqliteBase):
    """The connection and its transactions on PostgreSQL, in place of SQLite's (the shared
    `transaction` decorator runs a body through `_in_transaction`)."""

    _listener: Listener | None = None
    _lock_deferred_in: int | None = None  # the thread whose write has not sent its lock yet

    def __init__(self, db: Connection, url: str, *, without_loop: bool = False) -> None:
        # The aggregates' bodies get `db` as they would a sqlite3 connection.
        super().__init__(cast(Any, db), Path(url), without_loop=without_loop)
        self._pg = db
        self.url = url
        self.location = url  # (`path`, SQLite's file, means nothing here and is not used)

    @classmethod
    @asynccontextmanager
    async def open(cls, location: Path | str, *, create: bool = True) -> AsyncIterator[Self]:
        """The store at the database URL `location`; `create=False` (a command that only
        reads) refuses a database without conductor's tables."""
        url = str(location)
        db = await anyio.to_thread.run_sync(functools.partial(connect, url, create=create))
        store = cls(db, url)
        try:
            token = anyio.lowlevel.current_token()
            store._listener = await anyio.to_thread.run_sync(Listener, url, store._wake, token)
            yield store
        finally:
            with anyio.CancelScope(shield=True):
                if store._listener is not None:
                    await anyio.to_thread.run_sync(store._listener.close, db)
                await anyio.to_thread.run_sync(db.close)

    @classmethod
    @contextmanager
    def open_blocking(cls, location: Path | str, *, create: bool = True) -> Iterator[Self]:
        """The store for this thread alone, with no event loop (see `SqliteBase`); it has no
        listener, since nothing here waits for a change."""
        url = str(location)
        store = cls(connect(url, create=create), url, without_loop=True)
        try:
            yield store
        finally:
            store._pg.close()

    def _wake(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    @property
    def clock(self) -> Callable[[], float]:
        """The store's clock (injectable). Read in a write transaction before its first
        statement, it takes the write lock first (sends what `_in_transaction` deferred), so
        a time read in a write is after every earlier writer's commit, as under SQLite's
        BEGIN IMMEDIATE: a lease expiry judged, an event stamped, as of holding the lock."""
        if self._lock_deferred_in == threading.get_ident() and self._pg.begin_pending:
            self._pg.flush()
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def _in_transaction(
        self,
        write: bool,
        body: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        stop: threading.Event | None = None,
    ) -> T:
        """BEGIN, the body, COMMIT; anything raised rolls back, and so does a `stop` that
        came meanwhile. A write first takes the write lock (the advisory lock) and NOTIFYs
        as it commits. BEGIN and the lock are not round trips of their own: they go with the
        body's first statement (`Connection.begin`), before anything it reads or writes (a
        REPEATABLE READ snapshot is taken at the first statement, not at BEGIN, anyway)."""
        db = self._pg
        try:
            if write:
                deadline = time.monotonic() + self.busy_timeout
                db.begin(WRITE_BEGIN, functools.partial(self._wait_for_write_lock, stop, deadline))
                self._lock_deferred_in = threading.get_ident()
            else:
                db.begin(READ_BEGIN)
            result = body(self, db, *args, **kwargs)
            if stop is not None and stop.is_set():
                raise Stopped
            db.commit(f"NOTIFY {CHANNEL}; COMMIT" if write else "COMMIT")
            return result
        except BaseException as err:
            try:
                db.rollback()
            except psycopg.Error as failed:
                raise StoreFault(
                    f"the database {shown(self.url)} failed: {err or type(err).__name__};"
                    f" then its rollback: {failed}"
                ) from err
            if isinstance(err, psycopg.errors.LockNotAvailable):
                raise StoreFault(
                    f"the database {shown(self.url)} stayed locked by another writer for"
                    f" {self.busy_timeout:g} s: try again"
                ) from err
            if isinstance(err, psycopg.OperationalError):
                raise StoreFault(f"the database {shown(self.url)} failed: {err}") from err
            raise
        finally:
            self._lock_deferred_in = None

    def _wait_for_write_lock(
        self,
        stop: threading.Event | None,
        deadline: float,
        refused: psycopg.errors.LockNotAvailable,
    ) -> None:
        """The write lock was not free within a slice (`lock_timeout`): wait for it up to
        `busy_timeout`, slice by slice (each a savepoint the lock is taken in), so that a
        caller who stops waiting is heard within one slice, as with SQLite's
        `_begin_immediate`."""
        db = self._pg
        while True:
            if time.monotonic() >= deadline:
                raise refused  # (the transaction is rolled back whole)
            if stop is not None and stop.is_set():
                raise Stopped from None
            try:  # (back out of the slice that failed and try the next in one round trip)
                db.run(f"ROLLBACK TO SAVEPOINT write_lock; {TAKE_WRITE_LOCK}")
                return
            except psycopg.errors.LockNotAvailable as again:
                refused = again

    async def wait_for_change(self, timeout: float) -> None:
        """Until a write commits, here or (by its NOTIFY) on any other connection to the
        database, or `timeout` passes."""
        changed = self._changed
        with anyio.move_on_after(timeout):
            await changed.wait()

    async def keep_checkpointed(self, every: float = 0.0) -> None:
        """Nothing to do: the server checkpoints its own write-ahead log."""


class PostgresStore(PostgresBase, Store):
    """One connection to a conductor database on PostgreSQL: a `Store` (the same aggregates,
    so whatever takes a Store takes it), its connection and transactions PostgreSQL's. Open
    with `async with Store.open(url)`, which picks it for a URL, or `PostgresStore.open(url)`
    (`open_blocking` where there is no event loop)."""
