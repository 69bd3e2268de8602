"""Steps inside a transaction that every aggregate takes: appending to the event log (every
state change does, in its own transaction) and finding a session's row by its name."""

from __future__ import annotations

import json
from typing import Any

from conductor.errors import UnknownSession
from conductor.events import Payload
from conductor.store.rows import SESSION_COLUMNS, Db, Row, fetch


def insert_event(
    db: Db,
    at: float,
    run_id: str | None,
    session_id: int | None,
    kind: str,
    summary: str,
    payload: Payload | dict[str, Any] | None = None,
) -> int:
    """Append an event; its id is its place in the log (ids become visible in order). The
    store's own events carry their kind's payload type from the catalogue; an event recorded
    for a caller keeps the payload it was given."""
    if isinstance(payload, Payload):
        payload = payload.to_json()
    cur = db.execute(
        "INSERT INTO events (run_id, session_id, kind, summary, payload, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            run_id,
            session_id,
            kind,
            summary,
            json.dumps(payload) if payload is not None else None,
            at,
        ),
    )
    return int(cur.lastrowid or 0)


def session_row(db: Db, run_id: str, name: str) -> Row:
    rows = fetch(
        db,
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE run_id = ? AND name = ?",
        (run_id, name),
    )
    if not rows:
        raise UnknownSession(f"unknown session {name!r} in run {run_id}")
    return rows[0]


def session_id(db: Db, run_id: str, name: str) -> int:
    return int(session_row(db, run_id, name)["id"])
