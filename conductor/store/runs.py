"""Runs: what was asked for, with what, and the state it is in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from conductor.errors import InvalidInput, UnknownRun
from conductor.events import EventKind, RunStateChanged
from conductor.models import Run, RunState
from conductor.store import rows
from conductor.store.connection import SqliteBase, transaction
from conductor.store.rows import INTEGRITY_ERRORS, Db, fetch
from conductor.store.shared import insert_event
from conductor.text import one_line


class Runs(SqliteBase):
    @transaction(write=True)
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
        except INTEGRITY_ERRORS:
            raise InvalidInput(f"run {run_id} already exists") from None
        insert_event(db, now, run_id, None, EventKind.RUN_CREATED, one_line(goal or "run created"))
        return rows.run(fetch(db, "SELECT * FROM runs WHERE id = ?", (run_id,))[0])

    @transaction(write=False)
    def get_run(self, db: Db, run_id: str) -> Run:
        found = fetch(db, "SELECT * FROM runs WHERE id = ?", (run_id,))
        if not found:
            raise UnknownRun(f"unknown run {run_id!r}")
        return rows.run(found[0])

    @transaction(write=False)
    def latest_run(self, db: Db) -> Run | None:
        found = fetch(db, "SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1")
        return rows.run(found[0]) if found else None

    @transaction(write=False)
    def list_runs(self, db: Db) -> list[Run]:
        return [rows.run(r) for r in fetch(db, "SELECT * FROM runs ORDER BY created_at, rowid")]

    @transaction(write=True)
    def set_run_state(self, db: Db, run_id: str, state: RunState, note: str = "") -> Run:
        now = self.clock()
        found = fetch(
            db,
            "UPDATE runs SET state = ?, updated_at = ? WHERE id = ? RETURNING *",
            (state.value, now, run_id),
        )
        if not found:
            raise UnknownRun(f"unknown run {run_id!r}")
        insert_event(
            db,
            now,
            run_id,
            None,
            EventKind.RUN_STATE,
            note or state.value,
            RunStateChanged(state.value),
        )
        return rows.run(found[0])
