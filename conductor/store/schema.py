"""The schema, as a list of forward migrations, and bringing a database file up to date."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

from conductor.errors import StoreError
from conductor.models import ContextCategory, ReviewStatus, RunState, SessionKind, SessionStatus

Migration = Callable[[], str]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Append a forward migration (a function returning its SQL); its place is its version."""
    MIGRATIONS.append(fn)
    return fn


ASSIGNMENT_STATES = ("queued", "taken", "ended")


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


# A turn's figures as the event catalogue reads an `sdk.result` payload (events.SdkResult):
# numbers only; a turn cost of `cost_usd`, or, in runs recorded before conductor stored it,
# the CLI's running total they were counted by then.
_TURNS = """CASE WHEN json_valid(e.payload) THEN CASE
    WHEN json_type(e.payload, '$.num_turns') = 'integer' THEN json_extract(e.payload, '$.num_turns')
    WHEN json_type(e.payload, '$.num_turns') = 'real'
        AND json_extract(e.payload, '$.num_turns') = CAST(json_extract(e.payload, '$.num_turns')
        AS INTEGER) THEN CAST(json_extract(e.payload, '$.num_turns') AS INTEGER)
    ELSE 0 END ELSE 0 END"""
_COST = """CASE WHEN json_valid(e.payload) THEN CASE
    WHEN json_type(e.payload, '$.cost_usd') IN ('integer', 'real')
        THEN json_extract(e.payload, '$.cost_usd')
    WHEN json_type(e.payload, '$.cost_usd') IS NULL
        AND json_type(e.payload, '$.total_cost_usd') IN ('integer', 'real')
        THEN json_extract(e.payload, '$.total_cost_usd')
    ELSE 0 END ELSE 0 END"""


def _field(key: str) -> str:
    return f"CASE WHEN json_valid(e.payload) THEN json_extract(e.payload, '$.{key}') END"


@migration
def m003_read_back_columns() -> str:
    """What is read back kept in columns instead of re-derived from event payloads: each
    session's turns and cost (added up in the transaction that records a turn's result) and
    the message that told a review's verdict (set when it is sent). Filled in here from the
    payloads of runs recorded before."""
    return f"""
        ALTER TABLE sessions ADD COLUMN turns INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sessions ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
        ALTER TABLE reviews ADD COLUMN verdict_message_id INTEGER
            REFERENCES messages(id) ON DELETE SET NULL;
        UPDATE sessions SET
            turns = (SELECT coalesce(sum({_TURNS}), 0) FROM events e
                     WHERE e.session_id = sessions.id AND e.kind = 'sdk.result'),
            cost_usd = (SELECT coalesce(sum({_COST}), 0.0) FROM events e
                        WHERE e.session_id = sessions.id AND e.kind = 'sdk.result');
        UPDATE reviews SET verdict_message_id = (
            SELECT m.id FROM events e
            JOIN messages m ON m.id = {_field("message_id")}
            WHERE e.run_id = reviews.run_id
                AND e.kind IN ('review.approved', 'review.rejected')
                AND {_field("review_id")} = reviews.id
            ORDER BY e.id DESC LIMIT 1
        );
    """


@migration
def m004_work_for_workers() -> str:
    """Work handed to workers on other hosts (`conductor worker`): their heartbeats, a run's
    workstreams as leased assignments, and the merge requests left for the supervisor."""
    return f"""
        CREATE TABLE workers (
            id           TEXT PRIMARY KEY,
            host         TEXT NOT NULL,
            pid          INTEGER,
            slots        INTEGER NOT NULL,
            started_at   REAL NOT NULL,
            heartbeat_at REAL NOT NULL,
            stopped_at   REAL
        );
        CREATE TABLE assignments (
            run_id          TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            session         TEXT NOT NULL,
            state           TEXT NOT NULL {_enum_check("state", ASSIGNMENT_STATES)},
            queued_at       REAL NOT NULL,
            worker          TEXT,
            lease_until     REAL,
            attempt         INTEGER NOT NULL DEFAULT 0,
            previous_worker TEXT,
            outcome         TEXT,
            PRIMARY KEY (run_id, session)
        );
        CREATE TABLE merge_requests (
            id         INTEGER PRIMARY KEY,
            run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            session    TEXT NOT NULL,
            branch     TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            owners     TEXT NOT NULL,
            worker     TEXT,
            created_at REAL NOT NULL,
            result     TEXT
        );
        CREATE INDEX merge_requests_pending ON merge_requests (run_id, id) WHERE result IS NULL;
        CREATE INDEX assignments_takeable ON assignments (state, queued_at);
        ALTER TABLE runs ADD COLUMN supervisor_seen_at REAL;
    """


SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection) -> None:
    """Bring the file up to SCHEMA_VERSION; runs on every open and is idempotent.

    The version is re-read under the write lock so two processes opening a new database at
    once migrate it exactly once.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchall()[0][0]
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
