"""Rows become the typed records of `conductor.models` here, and nowhere else; the column
lists and joins each aggregate's queries select them with."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from conductor.models import (
    Claim,
    ContextCategory,
    ContextEntry,
    Event,
    Lease,
    Review,
    ReviewStatus,
    Run,
    RunState,
    Session,
    SessionKind,
    SessionStatus,
)

Db = sqlite3.Connection
Row = Any  # a sqlite3.Row: columns by name


class IntegrityViolation(Exception):
    """A constraint refused a write (a duplicate key), as another backend than SQLite reports
    it: its connection raises this where sqlite3 raises IntegrityError."""


# What a write that breaks a constraint raises, whichever the backend: what the aggregates
# catch to say, say, that a run of that id already exists.
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, IntegrityViolation)


def fetch(db: Db, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
    return db.execute(sql, params).fetchall()


MESSAGE_COLUMNS = """
    m.id, m.run_id, sender.name AS sender, m.broadcast, m.body, m.reply_to, m.created_at
"""
SESSION_COLUMNS = """
    id, run_id, name, workstream, kind, status, note, branch, worktree, sdk_session_id,
    context_cursor, last_seen_at, created_at, updated_at, turns, cost_usd
"""
REVIEW_COLUMNS = """
    r.id, r.run_id, req.name AS requester, rev.name AS reviewer, r.status, r.commit_sha,
    r.base, r.note, r.comment, dec.name AS decided_by, r.superseded_by, r.created_at,
    r.decided_at, length(r.diff) AS diff_size
"""
REVIEW_JOINS = """
    FROM reviews r
    JOIN sessions req ON req.id = r.requester_id
    LEFT JOIN sessions rev ON rev.id = r.reviewer_id
    LEFT JOIN sessions dec ON dec.id = r.decided_by
"""
CLAIM_SELECT = """
    SELECT c.id, c.run_id, s.name AS session, c.path, c.created_at
    FROM claims c JOIN sessions s ON s.id = c.session_id
"""
CONTEXT_SELECT = """
    SELECT c.id, c.run_id, a.name AS author, c.category, c.body, c.created_at
    FROM context c LEFT JOIN sessions a ON a.id = c.author_id
"""


def run(row: Row) -> Run:
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


def session(row: Row) -> Session:
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
        turns=row["turns"],
        cost_usd=row["cost_usd"],
    )


def context(row: Row) -> ContextEntry:
    return ContextEntry(
        id=row["id"],
        run_id=row["run_id"],
        author=row["author"],
        category=ContextCategory(row["category"]),
        body=row["body"],
        created_at=row["created_at"],
    )


def claim(row: Row) -> Claim:
    return Claim(
        id=row["id"],
        run_id=row["run_id"],
        session=row["session"],
        path=row["path"],
        created_at=row["created_at"],
    )


def review(row: Row, diff: bytes = b"") -> Review:
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


def lease(row: Row) -> Lease:
    return Lease(
        name=row["name"],
        holder=row["holder"],
        token=row["token"],
        pid=row["pid"],
        host=row["host"],
        acquired_at=row["acquired_at"],
        expires_at=row["expires_at"],
    )


def event(row: Row) -> Event:
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
