"""The database file: pragmas, schema, migrations, the event log, and session bookkeeping."""

from __future__ import annotations

import sqlite3
import threading
import time
import types
from collections.abc import Awaitable, Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from _workers import go, workers

from conductor.bus import Bus, create_run, open_run
from conductor.errors import InvalidInput, MachineFault, StoreError, UnknownRun, UnknownSession
from conductor.events import EventKind
from conductor.models import SessionKind, SessionStatus
from conductor.store import BUSY_TIMEOUT_MS, MIGRATIONS, SCHEMA_VERSION, Store, without_loop

pytestmark = pytest.mark.anyio


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the file with a plain sqlite3 connection: an independent view of what is on disk."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


# --------------------------------------------------------------------------- pragmas


async def test_the_database_is_in_wal_mode(store: Store) -> None:
    assert await store.pragma("journal_mode") == "wal"
    assert _query(store.path, "PRAGMA journal_mode") == [("wal",)]


async def test_a_busy_timeout_is_set(store: Store) -> None:
    assert await store.pragma("busy_timeout") == BUSY_TIMEOUT_MS
    assert BUSY_TIMEOUT_MS >= 5_000


def _hold_write_lock(path: Path, locked: anyio.Event, seconds: float) -> None:
    """From a worker thread: take SQLite's write lock on another connection for a while."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        anyio.from_thread.run_sync(locked.set)
        time.sleep(seconds)
        other.execute("COMMIT")


async def test_a_write_waits_for_another_connections_write_lock_instead_of_failing(
    bus: Bus,
) -> None:
    locked = anyio.Event()
    hold_write_lock = partial(_hold_write_lock, bus.store.path, locked)

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, hold_write_lock, 0.3)
        await locked.wait()
        started = time.monotonic()
        sent = await bus.send("A", "B", "waited for the lock")
        waited = time.monotonic() - started
    assert waited >= 0.2
    assert [m.id for m in await bus.inbox("B")] == [sent.id]


async def test_foreign_keys_are_enforced_on_the_connection(store: Store) -> None:
    assert await store.pragma("foreign_keys") == 1


@pytest.mark.parametrize(
    ("table", "references"),
    [
        ("sessions", {"runs"}),
        ("messages", {"runs", "sessions", "messages"}),
        ("deliveries", {"messages", "sessions"}),
        ("context", {"runs", "sessions"}),
        ("claims", {"runs", "sessions"}),
        ("reviews", {"runs", "sessions", "reviews", "messages"}),
        ("events", {"runs", "sessions"}),
    ],
)
async def test_foreign_keys_are_declared_on_every_table_that_refers_to_another(
    store: Store, table: str, references: set[str]
) -> None:
    rows = _query(store.path, f"PRAGMA foreign_key_list({table})")
    assert {row[2] for row in rows} == references


async def test_a_row_pointing_at_a_missing_parent_is_rejected(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store._db.execute(
            "INSERT INTO sessions (run_id, name, created_at, updated_at)"
            " VALUES ('no-such-run', 'A', 0, 0)"
        )


# --------------------------------------------------------------------------- schema and migrations


async def test_the_schema_version_is_the_number_of_migrations(store: Store) -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 1
    assert await store.pragma("user_version") == len(MIGRATIONS)


async def test_migrating_a_blank_database_creates_the_expected_tables_and_indexes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "blank.db"
    async with Store.open(path):
        pass
    rows = _query(path, "SELECT type, name, tbl_name FROM sqlite_master WHERE sql IS NOT NULL")
    tables = {name for kind, name, _ in rows if kind == "table"}
    indexes = {name: table for kind, name, table in rows if kind == "index"}
    assert tables == {
        "runs",
        "sessions",
        "messages",
        "deliveries",
        "context",
        "claims",
        "reviews",
        "locks",
        "events",
        "workers",
        "assignments",
        "merge_requests",
        "sqlite_sequence",
    }
    assert indexes.items() >= {
        ("deliveries_unread", "deliveries"),
        ("context_after_cursor", "context"),
        ("events_by_run", "events"),
        ("events_by_session", "events"),
        ("claims_by_session", "claims"),
        ("reviews_by_requester", "reviews"),
    }


async def test_a_version_1_database_is_upgraded_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:  # what conductor 0.1 left: the first migration only
        db.executescript(MIGRATIONS[0]())
        db.execute(
            "INSERT INTO runs (id, goal, state, repo_root, created_at, updated_at)"
            " VALUES ('old-run', 'from before', 'finished', '/r', 1, 1)"
        )
        db.execute("PRAGMA user_version = 1")
    async with Store.open(path) as store:
        old = await store.get_run("old-run")
        assert (old.goal, old.spec) == ("from before", None)
        new = await store.create_run(
            "new-run", goal="g", repo_root="/r", base_ref=None, base_commit=None, spec={"x": [1]}
        )
        assert new.spec == {"x": [1]}
    assert _query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def _version_2_database(path: Path) -> None:
    """What conductor left before migration 3: turns and cost only in `sdk.result` payloads,
    a verdict's message only in its review event's payload."""
    with closing(sqlite3.connect(path)) as db, db:
        for migrate in MIGRATIONS[:2]:
            db.executescript(migrate())
        db.executescript("""
            INSERT INTO runs (id, goal, state, repo_root, created_at, updated_at)
                VALUES ('old-run', 'from before', 'finished', '/r', 1, 1);
            INSERT INTO sessions (id, run_id, name, created_at, updated_at) VALUES
                (1, 'old-run', 'A', 1, 1), (2, 'old-run', 'B', 1, 1), (3, 'old-run', 'C', 1, 1);
            INSERT INTO events (run_id, session_id, kind, summary, payload, created_at) VALUES
                ('old-run', 1, 'sdk.result', 'ok', '{"num_turns": 3, "cost_usd": 0.25,
                    "total_cost_usd": 9.0}', 2),
                ('old-run', 1, 'sdk.result', 'ok', '{"num_turns": 2, "total_cost_usd": 0.5}', 3),
                ('old-run', 1, 'sdk.assistant', 'hi', '{"num_turns": 40}', 3),
                ('old-run', 2, 'sdk.result', 'odd', '{"num_turns": "x", "cost_usd": null}', 4),
                ('old-run', 2, 'sdk.result', 'odd', 'not json', 4);
            INSERT INTO reviews (id, run_id, requester_id, reviewer_id, status, commit_sha,
                    diff, decided_by, created_at, decided_at)
                VALUES (1, 'old-run', 1, 2, 'approved', 'abc', x'', 2, 5, 6),
                       (2, 'old-run', 1, 2, 'pending', 'def', x'', NULL, 7, NULL);
            INSERT INTO messages (id, run_id, sender_id, body, created_at)
                VALUES (1, 'old-run', 2, 'review #1 approved by B', 6);
            INSERT INTO deliveries (message_id, recipient_id) VALUES (1, 1);
            INSERT INTO events (run_id, session_id, kind, summary, payload, created_at) VALUES
                ('old-run', 2, 'review.approved', '#1 of A',
                    '{"review_id": 1, "requester": "A", "comment": "", "message_id": 1}', 6);
            PRAGMA user_version = 2;
        """)


async def test_a_version_2_database_keeps_turns_cost_and_verdicts_in_columns_from_its_payloads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.db"
    _version_2_database(path)
    async with Store.open(path) as store:
        bus = await open_run(store, "old-run")
        spent = {s.name: (s.turns, s.cost_usd) for s in await bus.sessions()}
        # A: 3 + 2 turns; the turn cost where it was stored, else the running total
        assert spent == {"A": (5, 0.75), "B": (0, 0.0), "C": (0, 0.0)}
        assert _query(path, "SELECT id, verdict_message_id FROM reviews ORDER BY id") == [
            (1, 1),
            (2, None),
        ]
        assert await bus.take_verdict(2, via="prompt") == []  # undecided
        assert await bus.take_verdict(1, via="prompt") == [1]
        assert await bus.inbox("A") == []
        # and what it records from now on adds to what was there
        await bus.record("A", "sdk.result", "ok", {"num_turns": 1, "cost_usd": 0.25})
        a = await bus.session("A")
        assert (a.turns, a.cost_usd) == (6, 1.0)
    assert _query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_the_unread_index_covers_only_unread_deliveries(store: Store) -> None:
    [(sql,)] = _query(store.path, "SELECT sql FROM sqlite_master WHERE name = 'deliveries_unread'")
    assert "WHERE read_at IS NULL" in sql


async def test_opening_a_database_again_leaves_its_schema_unchanged(store: Store) -> None:
    before = await store.schema()
    async with Store.open(store.path) as again:
        assert await again.schema() == before
        assert await again.pragma("user_version") == SCHEMA_VERSION
    async with Store.open(store.path) as third:
        assert await third.schema() == before
    assert await store.schema() == before


async def test_reopening_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    async with Store.open(path) as store:
        bus = await create_run(
            store,
            goal="keep",
            repo_root=tmp_path,
            base_ref=None,
            base_commit=None,
            sessions=[("A", "x")],
        )
        await bus.send(None, "A", "still here")
    async with Store.open(path) as store:
        [message] = await store.inbox(bus.run_id, "A")
    assert message.body == "still here"


async def test_a_database_of_a_newer_schema_is_refused_with_a_clear_message(
    tmp_path: Path,
) -> None:
    path = tmp_path / "future.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError) as caught:
        async with Store.open(path):
            pass
    message = str(caught.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert "newer" in message
    assert "upgrade conductor" in message
    assert _query(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


async def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot use the database"):
        async with Store.open(path):
            pass


async def test_two_stores_on_one_file_see_each_others_writes(store: Store, tmp_path: Path) -> None:
    async with Store.open(store.path) as other:
        bus = await create_run(
            store,
            goal="shared",
            repo_root=tmp_path,
            base_ref=None,
            base_commit=None,
            sessions=[("A", ""), ("B", "")],
        )
        sent = await bus.send("A", "B", "across connections")
        assert [m.id for m in await other.inbox(bus.run_id, "B")] == [sent.id]
        await other.mark_read(bus.run_id, "B", sent.id)
        assert await store.inbox(bus.run_id, "B") == []


async def test_processes_opening_a_new_database_at_once_migrate_it_exactly_once(
    tmp_path: Path,
) -> None:
    # A second migration of one file would fail on CREATE TABLE: no error means exactly once.
    rounds = [tmp_path / f"fresh-{i}.db" for i in range(20)]
    arg = {"paths": [str(p) for p in rounds]}
    async with workers(("open", arg), ("open", arg), ("open", arg)) as racers:
        for path in rounds:
            await go(racers, delay=0.02)
            answers = [await racer.read() for racer in racers]
            assert [a.get("error") for a in answers] == [None, None, None], path
            assert {a["version"] for a in answers} == {SCHEMA_VERSION}
            assert answers[0]["schema"] == answers[1]["schema"] == answers[2]["schema"]
            assert _query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
            assert _query(path, "PRAGMA journal_mode") == [("wal",)]


async def test_opening_a_new_database_waits_for_a_connection_already_writing_to_it(
    tmp_path: Path,
) -> None:
    # The losing side of the race above, made deterministic: the file is still in rollback
    # journal mode and another connection holds its write lock, as a racing opener does
    # while it switches the file to WAL.
    path = tmp_path / "new.db"
    opened: list[int] = []

    async def open_store() -> None:
        async with Store.open(path) as store:
            opened.append(await store.pragma("user_version"))

    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("CREATE TABLE scratch (x)")
        async with anyio.create_task_group() as tg:
            tg.start_soon(open_store)
            await anyio.sleep(0.3)  # hold the write lock a while, well within busy_timeout
            assert opened == []
            writer.execute("COMMIT")
    assert opened == [SCHEMA_VERSION]


# --------------------------------------------------------------------------- events


async def test_every_state_change_is_an_event_in_order(bus: Bus, tmp_path: Path) -> None:
    start = await bus.events()
    assert [e.kind for e in start] == ["run.created"] + ["session.registered"] * 3
    after = start[-1].id

    await bus.update("A", status="working")
    await bus.send("A", "B", "hello")
    await bus.add_context("A", "decision", "use sqlite")
    await bus.sync("B")
    await bus.claim("A", "src", root=tmp_path)
    await bus.release("A", "src", root=tmp_path)
    review = await bus.request_review("A", commit="c0ffee", diff=b"d", reviewer="B")
    await bus.decide(review.id, "B", approve=True)
    lease = await bus.acquire_lock("A")
    await bus.release_lock(lease)
    await bus.claim("A", "docs", root=tmp_path)
    await bus.update("A", status="done")

    events = await bus.events(after=after)
    assert [(e.kind, e.session) for e in events] == [
        ("session.updated", "A"),
        ("message.sent", "A"),
        ("context.added", "A"),
        ("message.read", "B"),
        ("session.updated", "B"),  # first sync: pending -> working
        ("context.delivered", "B"),
        ("claim.added", "A"),
        ("claim.released", "A"),
        ("review.requested", "A"),
        ("message.sent", "A"),  # the reviewer is told
        ("message.sent", "B"),  # the requester is told, and then
        ("review.approved", "B"),  # the verdict, naming that message
        ("lock.acquired", None),
        ("lock.released", None),
        ("claim.added", "A"),
        ("session.updated", "A"),
        ("claim.released", "A"),  # ending a session releases its claims
    ]
    ids = [e.id for e in start + events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {e.run_id for e in events} == {bus.run_id}


async def test_events_can_be_read_after_an_id_and_filtered_by_session(bus: Bus) -> None:
    first = (await bus.events())[-1].id
    await bus.send("A", "B", "one")
    await bus.send("C", "B", "two")
    assert [e.summary for e in await bus.events(after=first)] == ["one", "two"]
    assert [e.summary for e in await bus.events(after=first, session="C")] == ["two"]
    assert [e.summary for e in await bus.events(after=first, limit=1)] == ["one"]


async def test_an_external_happening_is_recorded_as_an_event(bus: Bus) -> None:
    event_id = await bus.record("A", "git.commit", "abc123 fix", {"sha": "abc123"})
    [event] = await bus.events(after=event_id - 1)
    assert (event.id, event.kind, event.session, event.payload) == (
        event_id,
        "git.commit",
        "A",
        {"sha": "abc123"},
    )


# --------------------------------------------------------------------------- runs


async def test_an_unknown_run_is_an_error(store: Store) -> None:
    with pytest.raises(UnknownRun):
        await store.get_run("no-such-run")


async def test_a_run_id_cannot_be_reused(bus: Bus) -> None:
    with pytest.raises(InvalidInput, match="already exists"):
        await create_run(
            bus.store,
            goal="again",
            repo_root=None,
            base_ref=None,
            base_commit=None,
            run_id=bus.run_id,
        )


async def test_open_run_opens_the_named_run_else_conductor_run_else_the_newest(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    newer = await create_run(
        bus.store,
        goal="newer",
        repo_root=None,
        base_ref=None,
        base_commit=None,
        run_id="zz-newer-run",
    )
    assert (await open_run(bus.store)).run_id == newer.run_id
    assert (await open_run(bus.store, bus.run_id)).run_id == bus.run_id
    monkeypatch.setenv("CONDUCTOR_RUN", bus.run_id)
    assert (await open_run(bus.store)).run_id == bus.run_id
    assert (await open_run(bus.store, newer.run_id)).run_id == newer.run_id


async def test_open_run_without_any_run_is_an_error(store: Store) -> None:
    with pytest.raises(UnknownRun, match="no run yet"):
        await open_run(store)


async def test_open_run_of_an_unknown_run_is_an_error(bus: Bus) -> None:
    with pytest.raises(UnknownRun, match="no-such-run"):
        await open_run(bus.store, "no-such-run")


# --------------------------------------------------------------------------- transactions


async def test_a_failed_operation_rolls_back_everything_it_did(bus: Bus) -> None:
    # send_message looks up recipients one by one: B exists, Z does not.
    before = await bus.events()
    with pytest.raises(UnknownSession):
        await bus.send("A", ["B", "Z"], "half sent?")
    assert await bus.events() == before
    assert await bus.inbox("B") == []


async def test_many_tasks_sharing_one_store_each_get_a_whole_transaction(bus: Bus) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(bus.send, "A", "all", f"broadcast {i}")
    assert len(await bus.inbox("B")) == len(await bus.inbox("C")) == 30
    sent = [e for e in await bus.events() if e.kind == "message.sent"]
    assert sorted(e.summary for e in sent) == sorted(f"broadcast {i}" for i in range(30))


async def test_a_call_cancelled_while_waiting_for_the_write_lock_leaves_the_store_usable(
    bus: Bus,
) -> None:
    locked = anyio.Event()
    hold_write_lock = partial(_hold_write_lock, bus.store.path, locked)

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, hold_write_lock, 0.5)
        await locked.wait()
        with anyio.move_on_after(0.1) as waiting:
            await bus.send("A", "B", "never sent")
        assert waiting.cancelled_caught

    sent = await bus.send("A", "B", "after the cancellation")
    assert [m.id for m in await bus.inbox("B")] == [sent.id]
    with closing(sqlite3.connect(bus.store.path, isolation_level=None, timeout=2)) as other:
        other.execute("BEGIN IMMEDIATE")  # the store does not keep the write lock
        other.execute("ROLLBACK")


async def test_a_call_cancelled_while_its_transaction_runs_is_rolled_back(bus: Bus) -> None:
    def slow_clock() -> float:  # the body reads the clock: here it takes a while
        time.sleep(0.3)
        return time.time()

    bus.store.clock = slow_clock
    with anyio.move_on_after(0.1) as waiting:
        await bus.send("A", "B", "never sent")
    assert waiting.cancelled_caught
    bus.store.clock = time.time
    assert await bus.inbox("B") == []
    assert [e for e in await bus.events() if e.kind == "message.sent"] == []


async def test_a_call_cancelled_before_a_worker_thread_takes_it_never_runs_and_never_hangs(
    bus: Bus,
) -> None:
    limiter = anyio.to_thread.current_default_thread_limiter()
    busy, release = anyio.Event(), threading.Event()

    def occupy() -> None:  # the only worker thread this loop may use, taken
        anyio.from_thread.run_sync(busy.set)
        release.wait()

    tokens = limiter.total_tokens
    limiter.total_tokens = 1
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, occupy)
            await busy.wait()
            with anyio.fail_after(5):  # not the shielded wait for a worker that never comes
                with anyio.move_on_after(0.1) as waiting:
                    await bus.send("A", "B", "never sent")
            assert waiting.cancelled_caught
            release.set()
    finally:
        limiter.total_tokens = tokens
    assert await bus.inbox("B") == []
    sent = await bus.send("A", "B", "after the cancellation")
    assert [m.id for m in await bus.inbox("B")] == [sent.id]


async def test_a_transaction_that_committed_as_its_caller_was_cancelled_hands_over_its_result(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = await bus.send("A", "B", "read once")
    committed = Store._in_transaction

    def then_slow(self: Store, *args: Any, **kwargs: Any) -> Any:
        result = committed(self, *args, **kwargs)
        time.sleep(0.3)  # the caller is cancelled here, after COMMIT
        return result

    monkeypatch.setattr(Store, "_in_transaction", then_slow)
    got: list[Any] = []
    with anyio.move_on_after(0.1):
        got = await bus.take_unread("B", via="hook")
    monkeypatch.undo()
    assert [m.id for m in got] == [sent.id]  # marked read, and so handed over
    assert await bus.inbox("B") == []


# --------------------------------------------------------------------------- sessions


async def test_registered_sessions_start_pending_with_their_workstreams(bus: Bus) -> None:
    sessions = await bus.sessions()
    assert [(s.name, s.workstream, s.status) for s in sessions] == [
        ("A", "frontend", SessionStatus.PENDING),
        ("B", "backend", SessionStatus.PENDING),
        ("C", "infra", SessionStatus.PENDING),
    ]
    assert {s.kind for s in sessions} == {SessionKind.WORKER}


async def test_a_session_registered_later_joins_the_run(bus: Bus) -> None:
    [d] = await bus.register([("D", "docs")], kind=SessionKind.REVIEWER)
    assert (d.name, d.kind, d.workstream) == ("D", SessionKind.REVIEWER, "docs")
    assert [s.name for s in await bus.sessions()] == ["A", "B", "C", "D"]


async def test_registering_a_session_name_twice_is_refused_and_registers_none(bus: Bus) -> None:
    with pytest.raises(InvalidInput, match="already exists"):
        await bus.register([("D", ""), ("A", "again")])
    assert [s.name for s in await bus.sessions()] == ["A", "B", "C"]


@pytest.mark.parametrize("name", ["all", "ALL", "1st", "a b", "x/y", "", "n" * 33])
async def test_a_malformed_session_name_is_invalid(bus: Bus, name: str) -> None:
    with pytest.raises(InvalidInput):
        await bus.register([(name, "")])


@pytest.mark.parametrize("status", list(SessionStatus))
async def test_every_status_of_the_closed_set_can_be_set(bus: Bus, status: SessionStatus) -> None:
    assert (await bus.update("A", status=status.value)).status is status
    assert (await bus.session("A")).status is status


@pytest.mark.parametrize("text", ["running", "Running", " RUNNING "])
async def test_running_is_accepted_as_an_alias_of_working(bus: Bus, text: str) -> None:
    assert (await bus.update("A", status=text)).status is SessionStatus.WORKING


@pytest.mark.parametrize("text", ["finished", "busy", "", "working!"])
async def test_an_unknown_status_is_invalid_input_and_changes_nothing(bus: Bus, text: str) -> None:
    with pytest.raises(InvalidInput, match="unknown status"):
        await bus.update("A", status=text)
    assert (await bus.session("A")).status is SessionStatus.PENDING


async def test_a_note_is_recorded_without_changing_the_status(bus: Bus) -> None:
    await bus.update("A", status="blocked")
    updated = await bus.update("A", note="waiting for B's API")
    assert (updated.note, updated.status) == ("waiting for B's API", SessionStatus.BLOCKED)
    [event] = (await bus.events())[-1:]
    assert (event.kind, event.payload) == ("session.updated", {"note": "waiting for B's API"})


async def test_an_update_that_changes_nothing_records_no_event(bus: Bus) -> None:
    before = await bus.events()
    assert (await bus.update("A")).name == "A"
    assert await bus.events() == before


async def test_branch_worktree_and_sdk_session_id_are_recorded(bus: Bus) -> None:
    updated = await bus.update(
        "A", branch="conductor/A", worktree="/tmp/wt/A", sdk_session_id="sdk-123"
    )
    assert (updated.branch, updated.worktree, updated.sdk_session_id) == (
        "conductor/A",
        "/tmp/wt/A",
        "sdk-123",
    )
    assert await bus.session("A") == updated


# --------------------------------------------------------------------------- unknown sessions


@dataclass
class Fixtures:
    bus: Bus
    root: Path
    message_id: int
    review_id: int


Operation = Callable[[Fixtures], Awaitable[Any]]

UNKNOWN_SESSION_OPERATIONS: dict[str, Operation] = {
    "session": lambda f: f.bus.session("Z"),
    "update": lambda f: f.bus.update("Z", status="working"),
    "note": lambda f: f.bus.update("Z", note="hi"),
    "heartbeat": lambda f: f.bus.heartbeat("Z"),
    "send from": lambda f: f.bus.send("Z", "A", "hi"),
    "send to": lambda f: f.bus.send("A", "Z", "hi"),
    "send to one of several": lambda f: f.bus.send("A", ["B", "Z"], "hi"),
    "broadcast from": lambda f: f.bus.send("Z", "all", "hi"),
    "inbox": lambda f: f.bus.inbox("Z"),
    "reply": lambda f: f.bus.reply("Z", f.message_id, "hi"),
    "mark read": lambda f: f.bus.mark_read("Z", f.message_id),
    "take unread": lambda f: f.bus.take_unread("Z", via="tool"),
    "sync": lambda f: f.bus.sync("Z"),
    "context author": lambda f: f.bus.add_context("Z", "decision", "x"),
    "claim": lambda f: f.bus.claim("Z", "src", root=f.root),
    "release": lambda f: f.bus.release("Z", "src", root=f.root),
    "claims filter": lambda f: f.bus.claims("Z"),
    "claim blocking": lambda f: f.bus.claim_blocking("Z", "src"),
    "request review as requester": lambda f: f.bus.request_review("Z", commit="c", diff=b""),
    "request review of reviewer": lambda f: f.bus.request_review(
        "A", commit="c", diff=b"", reviewer="Z"
    ),
    "decide review": lambda f: f.bus.decide(f.review_id, "Z", approve=True),
    "reviews filter": lambda f: f.bus.reviews(session="Z"),
    "merge ok": lambda f: f.bus.merge_ok("Z", "c"),
    "record event": lambda f: f.bus.record("Z", EventKind.RUN_FAULT, "x"),
    "events filter": lambda f: f.bus.events(session="Z"),
}


@pytest.mark.parametrize(
    "operation",
    [pytest.param(op, id=name) for name, op in UNKNOWN_SESSION_OPERATIONS.items()],
)
async def test_an_unknown_session_is_an_error_for_every_operation_and_changes_nothing(
    bus: Bus, tmp_path: Path, operation: Operation
) -> None:
    message = await bus.send("A", "B", "hello")
    review = await bus.request_review("B", commit="c", diff=b"")
    await bus.claim("B", "src", root=tmp_path)
    before = await bus.events()
    with pytest.raises(UnknownSession, match="'Z'"):
        await operation(Fixtures(bus, tmp_path, message.id, review.id))
    assert await bus.events() == before


async def test_a_lock_held_past_the_busy_timeout_is_a_clear_store_error(bus: Bus) -> None:
    locked = anyio.Event()
    bus.store.busy_timeout = 0.1
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            anyio.to_thread.run_sync, partial(_hold_write_lock, bus.store.path, locked), 0.6
        )
        await locked.wait()
        with pytest.raises(StoreError, match="stayed locked by another process"):
            await bus.send("A", "B", "blocked for too long")
    assert [m.body for m in await bus.inbox("B")] == []
    await bus.send("A", "B", "fine afterwards")


async def test_a_full_store_is_a_machine_fault_and_keeps_what_it_had(store: Store) -> None:
    bus = await create_run(store, goal="x", repo_root=None, base_ref=None, base_commit=None)
    pages = await store.pragma("page_count")
    await store.pragma(f"max_page_count = {pages}")  # the disk is full for this database
    with pytest.raises(MachineFault, match="database or disk is full"):
        await bus.record(None, EventKind.RUN_FAULT, "x", {"blob": "x" * 200_000})
    assert [e.kind for e in await bus.events()] == ["run.created"]  # nothing half written


async def test_a_write_in_this_process_wakes_a_waiter_before_its_poll(bus: Bus) -> None:
    woke: list[bool] = []

    async def wait() -> None:
        await bus.store.wait_for_change(3600)  # a poll that would never come in this test
        woke.append(True)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert not woke  # a read changes nothing
            await bus.unread_counts()
            await anyio.wait_all_tasks_blocked()
            assert not woke
            await bus.send("A", "B", "wake up")
    assert woke == [True]


# --------------------------------------------------------------------------- without an event loop


def test_the_bus_over_a_blocking_store_needs_no_event_loop(tmp_path: Path) -> None:
    """What a short hand command uses: the same bus and operations, in the calling thread."""
    with Store.open_blocking(tmp_path / "c.db") as store:
        bus = without_loop(
            create_run(
                store,
                goal="x",
                repo_root=tmp_path,
                base_ref=None,
                base_commit=None,
                sessions=[("A", ""), ("B", "")],
            )
        )
        sent = without_loop(bus.send("A", "B", "hello"))
        first = without_loop(bus.sync("B"))
        again = without_loop(bus.sync("B"))
    assert [m.id for m in first.messages] == [sent.id]
    assert again.messages == []


def test_a_failed_operation_on_a_blocking_store_changes_nothing(tmp_path: Path) -> None:
    with Store.open_blocking(tmp_path / "c.db") as store:
        bus = without_loop(
            create_run(
                store,
                goal="x",
                repo_root=tmp_path,
                base_ref=None,
                base_commit=None,
                sessions=[("A", "")],
            )
        )
        before = without_loop(bus.events())
        with pytest.raises(UnknownSession):
            without_loop(bus.send("A", ["A", "Z"], "to nobody"))
        assert without_loop(bus.events()) == before
    assert _query(tmp_path / "c.db", "SELECT count(*) FROM messages") == [(0,)]


def test_waiting_for_anything_but_the_store_without_an_event_loop_is_an_error(
    tmp_path: Path,
) -> None:
    @types.coroutine
    def suspends() -> Generator[None, None, None]:
        yield  # what awaiting a timer or a process does: hand control to the event loop

    async def waits() -> None:
        await suspends()

    with pytest.raises(RuntimeError, match="needs an event loop"):
        without_loop(waits())


# --------------------------------------------------------------------------- checkpoints


async def test_kept_checkpointed_no_commit_of_this_store_copies_the_wal_and_the_keeper_does(
    bus: Bus,
) -> None:
    db = bus.store.path
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.store.keep_checkpointed, 0.05)
        with anyio.fail_after(5):  # the keeper has begun: this store's commits copy nothing
            while await bus.store.pragma("wal_autocheckpoint") != 0:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        size = db.stat().st_size
        for i in range(40):
            await bus.send("A", "all", f"note {i} " + "x" * 2000)
        assert db.stat().st_size == size  # everything is still in the WAL
        with anyio.fail_after(5):
            while db.stat().st_size == size:  # noqa: ASYNC110 -- the keeper copies it over
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    assert await bus.store.pragma("wal_autocheckpoint") == 1000  # as it was
    assert len(await bus.inbox("B")) == 40


async def test_a_keeper_that_cannot_open_its_connection_leaves_the_run_alone(
    bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus.store, "path", tmp_path / "no-such-folder" / "c.db")
    with anyio.fail_after(5):
        await bus.store.keep_checkpointed(0.01)  # returns: nothing raised into the run
    monkeypatch.undo()
    assert await bus.store.pragma("wal_autocheckpoint") == 1000
    await bus.send("A", "B", "still writable")
