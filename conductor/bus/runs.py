"""Runs as a whole, not bound to one: starting one, opening one by name (or the newest),
listing them, and the storage's own housekeeping a long-lived process runs."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conductor.bus.base import token
from conductor.bus.core import Bus
from conductor.errors import InvalidInput, UnknownRun
from conductor.models import Run, check_run_id, check_session_name
from conductor.store.interface import Storage

RUN_ENV = "CONDUCTOR_RUN"


def new_run_id(now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(now or time.time(), UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{token(2)}"


def parse_session_specs(text: str) -> list[tuple[str, str]]:
    """`"A:frontend B:backend"` → [("A", "frontend"), ("B", "backend")] (commas work too)."""
    specs = []
    for item in text.replace(",", " ").split():
        name, _, workstream = item.partition(":")
        specs.append((check_session_name(name), workstream))
    if not specs:
        raise InvalidInput('no sessions given: use --sessions "A:frontend B:backend"')
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise InvalidInput(f"a session id appears twice in {text!r}")
    return specs


async def create_run(
    store: Storage,
    *,
    goal: str,
    repo_root: Path | None,
    base_ref: str | None,
    base_commit: str | None,
    sessions: Sequence[tuple[str, str]] = (),
    run_id: str | None = None,
    spec: Mapping[str, Any] | None = None,
) -> Bus:
    run = await store.create_run(
        check_run_id(run_id) if run_id else new_run_id(),
        goal=goal,
        repo_root=str(repo_root or ""),
        base_ref=base_ref,
        base_commit=base_commit,
        spec=spec,
    )
    bus = Bus(store, run)
    if sessions:
        await bus.register(sessions)
    return bus


async def open_run(store: Storage, run_id: str | None = None) -> Bus:
    """The named run, else `$CONDUCTOR_RUN`, else the newest run."""
    run_id = run_id or os.environ.get(RUN_ENV) or None
    if run_id:
        return Bus(store, await store.get_run(run_id))
    run = await store.latest_run()
    if run is None:
        raise UnknownRun('no run yet: start one with conductor init --sessions "A:frontend B:api"')
    return Bus(store, run)


async def latest_run(store: Storage) -> Run | None:
    """The newest run in the store, if any."""
    return await store.latest_run()


async def list_runs(store: Storage) -> list[Run]:
    """Every run in the store, oldest first."""
    return await store.list_runs()


def database_location(store: Storage) -> str:
    """Where the store lives, a SQLite file's path or a PostgreSQL URL (its password too:
    print `conductor.store.shown` of it): what sessions are told as `CONDUCTOR_DB`."""
    return store.location


async def keep_checkpointed(store: Storage) -> None:
    """Run as a task by a long-lived process (the supervisor): the storage's housekeeping."""
    await store.keep_checkpointed()
