"""What is PostgreSQL's own about its store, beside the conformance suite both backends pass:
wake-ups by NOTIFY from another connection, the schema (SQLite's tables and columns), its
migrations, and the store without an event loop. Against a real server (tests/postgres.py).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, closing
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from conductor.errors import InvalidInput, StoreError, StoreFault
from conductor.models import SessionKind
from conductor.store import Store, without_loop
from conductor.store.connection import transaction
from conductor.store.postgres import PostgresStore, adapter
from conductor.store.postgres import store as postgres_store
from conductor.store.postgres.adapter import Connection
from conductor.store.postgres.schema import PG_SCHEMA_VERSION, WRITE_LOCK
from conductor.store.rows import Db, IntegrityViolation

pytestmark = pytest.mark.anyio
RUN = "pg-run"


def _columns_pg(url: str) -> dict[str, set[str]]:
    with psycopg.connect(url) as db:
        found = db.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        ).fetchall()
    tables: dict[str, set[str]] = {}
    for table, column in found:
        tables.setdefault(table, set()).add(column)
    return tables


def _columns_sqlite(path: Path) -> dict[str, set[str]]:
    with closing(sqlite3.connect(path)) as db:
        names = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: {r[1] for r in db.execute(f"PRAGMA table_info({n})")} for n in names}


async def test_the_tables_and_columns_are_sqlites(postgres_url: str, tmp_path: Path) -> None:
    async with PostgresStore.open(postgres_url), Store.open(tmp_path / "c.db"):
        pass
    pg = _columns_pg(postgres_url)
    assert pg.pop("schema_version") == {"version"}  # (SQLite keeps it in user_version)
    pg["runs"].remove("rowid")  # SQLite's implicit rowid, spelt out
    assert pg == _columns_sqlite(tmp_path / "c.db")


async def test_a_write_on_another_connection_wakes_a_waiter_at_once(postgres_url: str) -> None:
    async with PostgresStore.open(postgres_url) as here, PostgresStore.open(postgres_url) as there:
        await there.create_run(RUN, goal="", repo_root="/r", base_ref=None, base_commit=None)
        await anyio.sleep(0.2)  # the NOTIFY of that write has come and gone
        with anyio.fail_after(5):  # no poll: the wait is 60 s and the write ends it
            async with anyio.create_task_group() as tg:
                tg.start_soon(here.wait_for_change, 60)
                await anyio.wait_all_tasks_blocked()
                await there.add_sessions(RUN, [("A", "", SessionKind.WORKER, None)])


async def test_opening_again_migrates_nothing_and_two_opens_at_once_migrate_once(
    postgres_url: str,
) -> None:
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(_open_and_close, postgres_url)
    async with PostgresStore.open(postgres_url) as store:
        await store.create_run(RUN, goal="", repo_root="/r", base_ref=None, base_commit=None)
    async with PostgresStore.open(postgres_url) as store:
        assert [r.id for r in await store.list_runs()] == [RUN]
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(PG_SCHEMA_VERSION,)]


async def _open_and_close(url: str) -> None:
    async with PostgresStore.open(url):
        pass


async def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    async with PostgresStore.open(postgres_url):
        pass
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("UPDATE schema_version SET version = version + 1")
    with pytest.raises(StoreError, match="newer than this conductor"):
        async with PostgresStore.open(postgres_url):
            pass


def test_reading_a_database_without_conductors_tables_makes_none(postgres_url: str) -> None:
    with (
        pytest.raises(StoreError, match="no run yet"),
        PostgresStore.open_blocking(postgres_url, create=False),
    ):
        pass
    assert _columns_pg(postgres_url) == {}


def test_the_store_runs_without_an_event_loop(postgres_url: str) -> None:
    with PostgresStore.open_blocking(postgres_url) as store:
        without_loop(
            store.create_run(RUN, goal="g", repo_root="/r", base_ref=None, base_commit=None)
        )
        without_loop(store.add_sessions(RUN, [("A", "", SessionKind.WORKER, None)]))
        without_loop(store.add_sessions(RUN, [("B", "", SessionKind.WORKER, None)]))
        without_loop(store.send_message(RUN, "A", ["B"], "hi"))
    with PostgresStore.open_blocking(postgres_url, create=False) as store:
        [message] = without_loop(store.take_unread(RUN, "B", via="tool"))
        assert message.body == "hi"


async def test_a_duplicate_is_refused_as_on_sqlite(postgres_url: str) -> None:
    async with PostgresStore.open(postgres_url) as store:
        await store.create_run(RUN, goal="", repo_root="/r", base_ref=None, base_commit=None)
        with pytest.raises(InvalidInput, match="already exists"):
            await store.create_run(RUN, goal="", repo_root="/r", base_ref=None, base_commit=None)
        await store.add_sessions(RUN, [("A", "", SessionKind.WORKER, None)])
        with pytest.raises(InvalidInput, match="already exists"):
            await store.add_sessions(RUN, [("A", "", SessionKind.WORKER, None)])
        assert [s.name for s in await store.list_sessions(RUN)] == ["A"]  # all or none


# --------------------------------------------------------------------------- cancellation


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore.open(postgres_url) as store:
        await store.create_run(RUN, goal="", repo_root="/r", base_ref=None, base_commit=None)
        await store.add_sessions(RUN, [(n, "", SessionKind.WORKER, None) for n in "AB"])
        yield store


def _hold_write_lock(url: str, locked: anyio.Event, seconds: float) -> None:
    """Another writer (in effect) holds the write lock for a while."""
    with psycopg.connect(url, autocommit=True) as other:
        other.execute(f"SELECT pg_advisory_lock({WRITE_LOCK})")
        anyio.from_thread.run_sync(locked.set)
        time.sleep(seconds)
        other.execute(f"SELECT pg_advisory_unlock({WRITE_LOCK})")


async def test_a_call_cancelled_while_waiting_for_the_write_lock_is_heard_at_once(
    pg: PostgresStore, postgres_url: str
) -> None:
    locked = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, _hold_write_lock, postgres_url, locked, 1.0)
        await locked.wait()
        started = time.monotonic()
        with anyio.move_on_after(0.1) as waiting:
            await pg.send_message(RUN, "A", ["B"], "never sent")
        assert waiting.cancelled_caught
        assert time.monotonic() - started < 0.5  # not when the other writer let go
    sent = await pg.send_message(RUN, "A", ["B"], "after the cancellation")
    assert [m.id for m in await pg.inbox(RUN, "B")] == [sent.id]


async def test_a_write_waits_for_the_lock_no_longer_than_busy_timeout(
    pg: PostgresStore, postgres_url: str
) -> None:
    locked = anyio.Event()
    pg.busy_timeout = 0.2
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, _hold_write_lock, postgres_url, locked, 1.0)
        await locked.wait()
        with pytest.raises(StoreFault, match="stayed locked"):
            await pg.send_message(RUN, "A", ["B"], "never sent")
    assert await pg.inbox(RUN, "B") == []


async def test_a_call_cancelled_while_its_transaction_runs_is_rolled_back(
    pg: PostgresStore,
) -> None:
    def slow_clock() -> float:
        time.sleep(0.3)
        return time.time()

    pg.clock = slow_clock
    with anyio.move_on_after(0.1) as waiting:
        await pg.send_message(RUN, "A", ["B"], "never sent")
    assert waiting.cancelled_caught
    pg.clock = time.time
    assert await pg.inbox(RUN, "B") == []
    assert [e for e in await pg.list_events(RUN) if e.kind == "message.sent"] == []


# --------------------------------------------------------------------------- a dropped connection


def _admin(url: str) -> psycopg.Connection[Any]:
    """A connection to the server's `postgres` database, beside the test's own."""
    return psycopg.connect(url, dbname="postgres", autocommit=True)


def _name(url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])


def _backends(url: str) -> dict[int, str]:
    """The server's processes on the database: pid and last query."""
    with _admin(url) as admin:
        found = admin.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = %s", (_name(url),)
        ).fetchall()
    return dict(found)


def _terminate(url: str, *pids: int) -> None:
    """The server drops these connections (all on the database, when none are named), as
    a restart or a failover drops every connection."""
    with _admin(url) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND (%s OR pid = ANY(%s))",
            (_name(url), not pids, list(pids)),
        )


def _let_in(url: str, allowed: bool) -> None:
    """Whether the database takes new connections (refused: as if its server were down)."""
    with _admin(url) as admin:
        admin.execute(f'ALTER DATABASE "{_name(url)}" ALLOW_CONNECTIONS {str(allowed).lower()}')


async def test_a_connection_dropped_between_two_calls_is_opened_again(
    pg: PostgresStore, postgres_url: str
) -> None:
    before = pg._pg.raw.info.backend_pid
    _terminate(postgres_url)
    assert [r.id for r in await pg.list_runs()] == [RUN]
    await pg.send_message(RUN, "A", ["B"], "after the drop")
    assert pg._pg.raw.info.backend_pid != before
    assert [m.body for m in await pg.inbox(RUN, "B")] == ["after the drop"]


async def test_a_transaction_whose_connection_is_lost_midway_runs_again_once(
    pg: PostgresStore, postgres_url: str
) -> None:
    runs = []

    @transaction(write=True)
    def insert_then_lose_the_connection(self: PostgresStore, db: Db) -> None:
        runs.append(1)
        db.execute("INSERT INTO t (k) VALUES (?)", (len(runs),))
        if len(runs) == 1:  # (the server rolls back the insert as the connection ends)
            db.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    await insert_then_lose_the_connection(pg)
    assert len(runs) == 2
    with psycopg.connect(postgres_url) as admin:
        assert admin.execute("SELECT k FROM t").fetchall() == [(2,)]


async def test_a_transaction_that_loses_each_new_connection_gives_up_at_the_bound(
    pg: PostgresStore,
) -> None:
    @transaction(write=False)
    def lose_the_connection(self: PostgresStore, db: Db) -> None:
        db.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    pg.reconnect_timeout = 0.5
    started = time.monotonic()
    with pytest.raises(StoreFault, match="each new connection was lost as well"):
        await lose_the_connection(pg)
    assert time.monotonic() - started < 5
    assert [r.id for r in await pg.list_runs()] == [RUN]


async def test_a_write_whose_connection_is_lost_in_its_commit_is_not_run_again(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It may have committed: a StoreFault, not a second run of it."""
    plain_commit = Connection.commit

    def dying_commit(self: Connection, sql: str) -> None:
        plain_commit(self, f"SELECT pg_terminate_backend(pg_backend_pid()); {sql}")

    monkeypatch.setattr(Connection, "commit", dying_commit)
    with pytest.raises(StoreFault, match="during a COMMIT, which may or may not"):
        await pg.add_event(RUN, None, "git.commit", "sent once")
    monkeypatch.setattr(Connection, "commit", plain_commit)
    assert "sent once" not in [e.summary for e in await pg.list_events(RUN)]


async def test_a_server_back_within_the_bound_is_waited_for(
    pg: PostgresStore, postgres_url: str
) -> None:
    _let_in(postgres_url, False)
    _terminate(postgres_url)
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pg.send_message, RUN, "A", ["B"], "waited for")
        await anyio.sleep(0.5)
        _let_in(postgres_url, True)
    assert time.monotonic() - started >= 0.5
    assert [m.body for m in await pg.inbox(RUN, "B")] == ["waited for"]


async def test_a_server_away_longer_than_the_bound_is_a_store_fault_in_one_line(
    pg: PostgresStore, postgres_url: str
) -> None:
    pg.reconnect_timeout = 0.5
    _let_in(postgres_url, False)
    _terminate(postgres_url)
    started = time.monotonic()
    with pytest.raises(StoreFault, match=r"could not be used again for 0\.5 s") as fault:
        await pg.list_runs()
    assert 0.4 <= time.monotonic() - started < 5
    assert "\n" not in str(fault.value)
    _let_in(postgres_url, True)  # back: the next call finds it
    assert [r.id for r in await pg.list_runs()] == [RUN]


async def test_a_call_cancelled_while_the_server_is_away_is_heard_at_once(
    pg: PostgresStore, postgres_url: str
) -> None:
    _let_in(postgres_url, False)
    _terminate(postgres_url)
    started = time.monotonic()
    with anyio.move_on_after(0.2) as waiting:
        await pg.list_runs()  # (it would wait reconnect_timeout, 30 s)
    assert waiting.cancelled_caught
    assert time.monotonic() - started < 2
    _let_in(postgres_url, True)
    assert [r.id for r in await pg.list_runs()] == [RUN]


def test_a_store_without_an_event_loop_opens_its_connection_again(postgres_url: str) -> None:
    with PostgresStore.open_blocking(postgres_url) as store:
        without_loop(
            store.create_run(RUN, goal="", repo_root="/r", base_ref=None, base_commit=None)
        )
        _terminate(postgres_url)
        assert [r.id for r in without_loop(store.list_runs())] == [RUN]


async def test_a_listener_whose_connection_is_dropped_listens_again(postgres_url: str) -> None:
    async with PostgresStore.open(postgres_url) as here:
        [listener] = _listening(postgres_url)
        _terminate(postgres_url, listener)
        with anyio.fail_after(10):
            while not _listening(postgres_url):  # noqa: ASYNC110 (the server's, no event)
                await anyio.sleep(0.05)
        with anyio.fail_after(5):  # no poll: the wait is 60 s and the other's write ends it
            async with anyio.create_task_group() as tg:
                tg.start_soon(here.wait_for_change, 60)
                await anyio.wait_all_tasks_blocked()
                await anyio.to_thread.run_sync(_create_run_elsewhere, postgres_url)


def _listening(url: str) -> list[int]:
    return [pid for pid, query in _backends(url).items() if query.startswith("LISTEN")]


def _create_run_elsewhere(url: str) -> None:
    """A write from another connection (with no listener of its own)."""
    with PostgresStore.open_blocking(url) as there:
        without_loop(
            there.create_run(RUN, goal="", repo_root="/r", base_ref=None, base_commit=None)
        )


# --------------------------------------------------------------------------- the server's clock


def _server_time(url: str) -> float:
    with psycopg.connect(url) as db:
        [(now,)] = db.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchall()
    return float(now)


def _skewed(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """This host's clock, as stores opened from now on read it, `seconds` off."""
    monkeypatch.setattr(postgres_store, "host_clock", lambda: time.time() + seconds)


async def test_a_store_on_a_host_whose_clock_is_off_reads_the_servers_time(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for skew in (20.0, -20.0):
        _skewed(monkeypatch, skew)
        async with PostgresStore.open(postgres_url) as store:
            assert abs(store.clock() - _server_time(postgres_url)) < 0.5
        with PostgresStore.open_blocking(postgres_url) as store:
            assert abs(store.clock() - _server_time(postgres_url)) < 0.5


async def test_hosts_whose_clocks_differ_agree_whether_a_lease_has_run_out(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with AsyncExitStack() as stack:
        _skewed(monkeypatch, -20.0)
        behind = await stack.enter_async_context(PostgresStore.open(postgres_url))
        _skewed(monkeypatch, 20.0)
        ahead = await stack.enter_async_context(PostgresStore.open(postgres_url))
        lease = dict(pid=None, host=None, lease_seconds=1.0)
        assert await behind.acquire_lock("git", holder="behind", token="b", **lease)
        assert await ahead.acquire_lock("git", holder="ahead", token="a", **lease) is None
        await anyio.sleep(1.2)
        assert await ahead.acquire_lock("git", holder="ahead", token="a", **lease)
        assert await behind.acquire_lock("git", holder="behind", token="b", **lease) is None


async def test_a_connection_opened_again_measures_the_servers_clock_again(
    pg: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(After a failover the server may be another machine, with a clock of its own.)"""
    measured: list[float] = []
    plain_offset = adapter.clock_offset

    def counted(*args: Any) -> float:
        measured.append(offset := plain_offset(*args))
        return offset

    monkeypatch.setattr(adapter, "clock_offset", counted)
    _terminate(postgres_url)
    await pg.list_runs()
    assert len(measured) == 1


async def test_a_step_of_this_hosts_clock_is_heard_at_the_next_call(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(NTP setting the clock, a machine waking from sleep: no reconnection says so.)"""
    step = [0.0]
    monkeypatch.setattr(postgres_store, "host_clock", lambda: time.time() + step[0])
    async with PostgresStore.open(postgres_url) as store:
        step[0] = -30.0
        await store.list_runs()
        assert abs(store.clock() - _server_time(postgres_url)) < 0.5


# --------------------------------------------------------------------------- the event log


async def test_a_reader_never_skips_an_event_whose_commit_came_late(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence values are not commit order: were writers not serialized, a transaction that
    took id 7 and is slow to commit would let a reader see 8 first and move its cursor past 7.
    Here every commit is slow, on four connections at once."""
    plain_run = Connection.run
    randomness = random.Random(16)

    def slow_commit(self: Connection, sql: str) -> None:
        if sql.endswith("COMMIT") and sql.startswith("NOTIFY"):
            time.sleep(randomness.uniform(0, 0.004))
        plain_run(self, sql)

    monkeypatch.setattr(Connection, "run", slow_commit)
    read: list[int] = []
    writers_done = anyio.Event()
    async with AsyncExitStack() as stack:
        stores = [
            await stack.enter_async_context(PostgresStore.open(postgres_url)) for _ in "12345"
        ]
        reader_store, writers = stores[0], stores[1:]
        await writers[0].create_run(RUN, goal="", repo_root="/r", base_ref=None, base_commit=None)

        async def reader() -> None:
            cursor = 0
            while True:
                done = writers_done.is_set()
                found = await reader_store.list_events(RUN, after=cursor)
                read.extend(e.id for e in found)
                cursor = found[-1].id if found else cursor
                if done and not found:
                    return

        async def writer(through: PostgresStore, n: int) -> None:
            for i in range(20):
                await through.add_event(RUN, None, "git.commit", f"{n} {i}")

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            async with anyio.create_task_group() as writing:
                for n, through in enumerate(writers):
                    writing.start_soon(writer, through, n)
            writers_done.set()
        every = [e.id for e in await reader_store.list_events(RUN)]
    assert read == every


# --------------------------------------------------------------------------- round trips


def _count_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each round trip to the server sends, from now on (the store's queries are
    client-bound: one `execute` of its cursor, one round trip)."""
    sent: list[str] = []
    plain_execute = psycopg.ClientCursor.execute

    def counted(self: psycopg.ClientCursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return plain_execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.ClientCursor, "execute", counted)
    return sent


async def test_begin_and_the_write_lock_go_with_a_writes_first_statement(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _count_round_trips(monkeypatch)
    await pg.add_event(RUN, "A", "git.commit", "two statements")
    assert len(sent) == 3  # BEGIN, the lock and A's id; the INSERT; NOTIFY and COMMIT
    assert sent[0].startswith("BEGIN") and f"pg_advisory_xact_lock({WRITE_LOCK})" in sent[0]
    assert sent[0].index("pg_advisory_xact_lock") < sent[0].index("FROM sessions")
    assert sent[1].startswith("INSERT INTO events")
    assert sent[2] == "NOTIFY conductor; COMMIT"


async def test_begin_goes_with_a_reads_first_statement(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _count_round_trips(monkeypatch)
    assert [r.id for r in await pg.list_runs()] == [RUN]
    assert len(sent) == 2  # BEGIN and the SELECT; then COMMIT
    assert sent[0].startswith("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;")


async def test_a_write_that_fails_before_any_statement_sends_nothing(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    @transaction(write=True)
    def refused(self: PostgresStore, db: Db) -> None:
        raise InvalidInput("refused before the database was asked anything")

    sent = _count_round_trips(monkeypatch)
    with pytest.raises(InvalidInput):
        await refused(pg)
    assert sent == []
    assert pg._pg.raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    await pg.add_event(RUN, None, "git.commit", "the next write")
    assert [e.summary for e in await pg.list_events(RUN)][-1] == "the next write"


async def test_a_time_read_in_a_write_is_read_once_the_write_lock_is_held(
    pg: PostgresStore, postgres_url: str
) -> None:
    """As under SQLite's BEGIN IMMEDIATE: acquire_lock reads the clock before its first
    statement, and a lease must not be judged expired as of before an earlier writer
    committed. (BEGIN and the lock go with the first statement: reading the clock sends
    them first.)"""
    locked = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, _hold_write_lock, postgres_url, locked, 0.5)
        await locked.wait()
        waiting_from = time.time()
        lease = await pg.acquire_lock(
            "git", holder="A", token="t", pid=None, host=None, lease_seconds=60
        )
    assert lease is not None
    assert lease.acquired_at >= waiting_from + 0.4  # not when the write began waiting


def _adapter(url: str) -> Connection:
    """The adapter on a connection of its own, made as the store makes its own."""
    return Connection(psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor))


def test_executemany_binds_each_row_and_refuses_a_duplicate(postgres_url: str) -> None:
    with closing(_adapter(postgres_url)) as db:
        db.run("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        awkward = ["it's", "100% ?", "back\\slash", ":name", "%(k)s", "two; statements"]
        db.executemany("INSERT INTO t (k, v) VALUES (?, ?)", list(enumerate(awkward)))
        assert [r["v"] for r in db.execute("SELECT v FROM t ORDER BY k").fetchall()] == awkward
        db.executemany("INSERT INTO t (k, v) VALUES (:k, :v)", [{"k": 10, "v": "named"}])
        assert db.execute("SELECT v FROM t WHERE k = 10").fetchall()[0][0] == "named"
        with pytest.raises(IntegrityViolation):
            db.executemany("INSERT INTO t (k, v) VALUES (?, ?)", [(20, "new"), (0, "again")])
        assert db.execute("SELECT count(*) AS n FROM t").fetchall()[0]["n"] == len(awkward) + 1


async def test_a_sends_deliveries_go_with_its_next_statement(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _count_round_trips(monkeypatch)
    await pg.send_message(RUN, "A", ["B"], "hi")
    [deliveries] = [q for q in sent if "INSERT INTO deliveries" in q]
    assert deliveries.index("INSERT INTO deliveries") < deliveries.index("INSERT INTO events")
    assert [m.body for m in await pg.inbox(RUN, "B")] == ["hi"]


def test_a_duplicate_among_deferred_rows_is_raised_where_they_are_sent(postgres_url: str) -> None:
    with closing(_adapter(postgres_url)) as db:
        db.run("CREATE TABLE t (k INTEGER PRIMARY KEY)")
        for then in ("commit", "next statement"):
            db.begin("BEGIN")
            db.executemany("INSERT INTO t (k) VALUES (?)", [(1,), (1,)])  # (nothing sent yet)
            with pytest.raises(IntegrityViolation):
                db.commit("COMMIT") if then == "commit" else db.execute("SELECT 1")
            db.rollback()
        db.begin("BEGIN")
        db.executemany("INSERT INTO t (k) VALUES (?)", [(1,), (2,)])
        db.commit("COMMIT")
        assert [r["k"] for r in db.execute("SELECT k FROM t ORDER BY k").fetchall()] == [1, 2]


async def test_rows_deferred_behind_a_refused_write_lock_are_sent_once_it_is_held(
    pg: PostgresStore, postgres_url: str
) -> None:
    @transaction(write=True)
    def insert_only(self: PostgresStore, db: Db) -> None:
        db.executemany("INSERT INTO t (k) VALUES (?)", [(1,), (2,)])

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    locked = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, _hold_write_lock, postgres_url, locked, 0.2)
        await locked.wait()
        await insert_only(pg)  # refused at first: BEGIN, the lock, the rows and COMMIT at once
    with psycopg.connect(postgres_url) as admin:
        assert admin.execute("SELECT k FROM t ORDER BY k").fetchall() == [(1,), (2,)]


async def test_an_update_whose_result_nobody_reads_goes_with_the_commit(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (await pg.get_session(RUN, "A")).last_seen_at
    sent = _count_round_trips(monkeypatch)
    await pg.heartbeat(RUN, "A")
    assert len(sent) == 2  # BEGIN, the lock and A's id; the UPDATE, NOTIFY and COMMIT
    assert sent[1].startswith("UPDATE sessions") and sent[1].endswith("COMMIT")
    assert (await pg.get_session(RUN, "A")).last_seen_at != before


def test_a_deferred_update_that_fails_is_raised_where_it_is_sent(postgres_url: str) -> None:
    with closing(_adapter(postgres_url)) as db:
        db.run("CREATE TABLE t (k INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        db.begin("BEGIN")
        assert db.execute("UPDATE t SET k = 1 WHERE k = ?", (2,)).fetchall() == []
        with pytest.raises(IntegrityViolation):
            db.commit("COMMIT")
        db.rollback()
        db.begin("BEGIN")
        db.execute("DELETE FROM t WHERE k = ?", (2,))
        assert [r["k"] for r in db.execute("SELECT k FROM t").fetchall()] == [1]  # in order
        db.commit("COMMIT")
        db.execute("UPDATE t SET k = 5 WHERE k = 1")  # (outside a transaction: at once)
        assert db.execute("SELECT k FROM t").fetchall()[0]["k"] == 5


def test_a_percent_sign_in_a_deferred_statement_is_not_a_placeholder(postgres_url: str) -> None:
    with closing(_adapter(postgres_url)) as db:
        db.run("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, '')")
        db.begin("BEGIN")
        db.execute("UPDATE t SET v = ? WHERE k = ?", ("100% done, %s %(k)s", 1))
        found = db.execute("SELECT v FROM t WHERE k = ?", (1,)).fetchall()  # (with params)
        db.commit("COMMIT")
        assert found[0]["v"] == "100% done, %s %(k)s"
