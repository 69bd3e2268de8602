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

Hosts share it: every stored time (a lease's end, which other hosts judge) is the server's
clock's (`ServerClock`); a connection the server dropped (a restart, a failover) is opened
again, and the transaction run again when nothing of it can have committed (`_in_transaction`).
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
from conductor.store.postgres.adapter import Connection, ServerClock
from conductor.store.postgres.schema import WRITE_LOCK, migrate, schema_version

T = TypeVar("T")

CHANNEL = "conductor"  # what every write transaction NOTIFYs as it commits
LISTEN_SLICE = 5.0  # how often an idle listener looks whether its store is closing anyway
CONNECT_TIMEOUT = 10  # seconds; libpq's own default is to wait for a silent host forever
RECONNECT_SECONDS = 30.0  # how long a call waits for a server that dropped its connection
RETRY_FIRST, RETRY_MOST = 0.05, 1.0  # the back-off between attempts to connect again (s)

# This host's clock, the server's is measured against (a test skews it: each store keeps its own)
host_clock: Callable[[], float] = time.time

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
    `wake` in the event loop. Closing sends it a notification of its own to end the wait.
    A connection the server drops is opened again, for as long as the store is open (waiters
    meanwhile see other hosts' writes at their timeout), and waiters are woken once then:
    a write may have come while it was away."""

    def __init__(self, url: str, wake: Callable[[], None], token: EventLoopToken) -> None:
        self._url = url
        self._wake = wake
        self._token = token
        self._closing = threading.Event()
        self._stop_channel = f"conductor_closing_{os.getpid()}_{id(self)}"
        self._conn = self._subscribe()
        self._thread = threading.Thread(target=self._listen, name="conductor-listen", daemon=True)
        self._thread.start()

    def _subscribe(self) -> psycopg.Connection[Any]:
        conn = open_connection(self._url)
        try:
            conn.execute(f"LISTEN {CHANNEL}; LISTEN {self._stop_channel}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _listen(self) -> None:
        try:
            while not self._closing.is_set():
                try:
                    for note in self._conn.notifies(timeout=LISTEN_SLICE):
                        if self._closing.is_set():
                            return
                        if note.channel == CHANNEL:
                            anyio.from_thread.run_sync(self._wake, token=self._token)
                except psycopg.Error:
                    if not self._resubscribe():
                        return
                    anyio.from_thread.run_sync(self._wake, token=self._token)
        except RuntimeError:
            return  # the event loop is gone
        finally:
            self._conn.close()

    def _resubscribe(self) -> bool:
        """Connect and LISTEN again, backing off, until it works (True) or closing (False)."""
        self._conn.close()
        delay = RETRY_FIRST
        while not self._closing.wait(delay):
            with contextlib.suppress(StoreError, psycopg.Error):
                self._conn = self._subscribe()
                return True
            delay = min(delay * 2, RETRY_MOST)
        return False

    def close(self, db: Connection) -> None:
        """Stop listening (blocks until the thread ends: not from the event loop's thread)."""
        self._closing.set()
        with contextlib.suppress(psycopg.Error):  # (then it sees `_closing` within a slice)
            db.run(f"NOTIFY {self._stop_channel}")
        self._thread.join()


class _Lost(Exception):
    """The connection was lost in a transaction, and nothing of it can have committed."""


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


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
        self.reconnect_timeout = RECONNECT_SECONDS
        self._server_clock = ServerClock(host_clock)
        self._clock: Callable[[], float] = self._server_clock

    @classmethod
    @asynccontextmanager
    async def open(cls, location: Path | str, *, create: bool = True) -> AsyncIterator[Self]:
        """The store at the database URL `location`; `create=False` (a command that only
        reads) refuses a database without conductor's tables."""
        url = str(location)
        db = await anyio.to_thread.run_sync(functools.partial(connect, url, create=create))
        store = cls(db, url)
        try:
            await anyio.to_thread.run_sync(store._measure_clock)
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
            store._measure_clock()
            yield store
        finally:
            store._pg.close()

    def _wake(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def _measure_clock(self) -> None:
        try:
            self._server_clock.measure(self._pg.raw)
        except psycopg.Error as err:
            raise StoreFault(f"the database {shown(self.url)} failed: {_one_line(err)}") from err

    @property
    def clock(self) -> Callable[[], float]:
        """The store's clock: the server's (`ServerClock`), so that the times hosts write
        and compare (a lease's end) are one clock's; injectable (a test assigns its own).
        Read in a write before its first statement, it takes the write lock first (sends
        what `_in_transaction` deferred), so a time read in a write is after every earlier
        writer's commit, as under SQLite's BEGIN IMMEDIATE: a lease expiry judged, an event
        stamped, as of holding the lock."""
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
        """The transaction (`_attempt`), on a connection opened again when the server has
        dropped it: found dropped before the transaction begins, or lost in the middle of
        it (the server has rolled it back), the transaction runs again on a new connection,
        for up to `reconnect_timeout`. Lost in the middle of a write's COMMIT, it is not run
        again (it may have committed): a StoreFault, as is a server away for longer."""
        deadline: float | None = None
        while True:
            try:
                if self._pg.dropped():
                    raise _Lost("the server closed the connection")
                if self._server_clock.stepped():
                    self._measure_again()
                return self._attempt(write, body, args, kwargs, stop)
            except _Lost as lost:
                if deadline is None:
                    deadline = time.monotonic() + self.reconnect_timeout
                self._reconnect(lost, stop, deadline)

    def _measure_again(self) -> None:
        try:  # (the connection lost: it is measured on the next one)
            self._server_clock.measure(self._pg.raw)
        except psycopg.Error as err:
            raise _Lost(_one_line(err)) from err

    def _reconnect(self, lost: _Lost, stop: threading.Event | None, deadline: float) -> None:
        """A new connection in place of the lost one, and the clock's offset measured again
        (the server may be another machine now: a failover), tried at once and then with a
        growing pause until `deadline`; a caller who stops waiting is heard at each pause.
        (`deadline` is the call's: a transaction that loses each new connection gives up too.)"""
        delay, why = RETRY_FIRST, "each new connection was lost as well"
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self._pg.replace(open_connection(self.url, cursor_factory=psycopg.ClientCursor))
                self._server_clock.measure(self._pg.raw)
                return
            except (StoreError, psycopg.Error) as err:
                why = _one_line(err)
            if stop is None:
                time.sleep(min(delay, remaining))
            elif stop.wait(min(delay, remaining)):
                raise Stopped
            delay = min(delay * 2, RETRY_MOST)
        raise StoreFault(
            f"the database {shown(self.url)} dropped the connection ({lost}) and could not"
            f" be used again for {self.reconnect_timeout:g} s: {why}"
        ) from lost.__cause__

    def _attempt(
        self,
        write: bool,
        body: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        stop: threading.Event | None,
    ) -> T:
        """BEGIN, the body, COMMIT; anything raised rolls back, and so does a `stop` that
        came meanwhile. A write first takes the write lock (the advisory lock) and NOTIFYs
        as it commits. BEGIN and the lock are not round trips of their own: they go with the
        body's first statement (`Connection.begin`), before anything it reads or writes (a
        REPEATABLE READ snapshot is taken at the first statement, not at BEGIN, anyway).
        The connection lost before COMMIT (or in a read's) is `_Lost`: nothing committed."""
        db = self._pg
        committing = False
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
            committing = write
            db.commit(f"NOTIFY {CHANNEL}; COMMIT" if write else "COMMIT")
            return result
        except BaseException as err:
            if db.lost:  # (the server rolled back whatever was open; nothing can be sent)
                db.forget()
                if not isinstance(err, psycopg.Error):
                    raise
                if not committing:
                    raise _Lost(_one_line(err)) from err
                raise StoreFault(
                    f"the database {shown(self.url)} dropped the connection during a COMMIT,"
                    f" which may or may not have been made: {_one_line(err)}"
                ) from err
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
