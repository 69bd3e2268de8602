"""Shared fixtures: a fresh database per test and a run with three sessions on it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from conductor import bus as bus_module
from conductor.bus import Bus
from conductor.standin.harness import Offline, offline
from conductor.store import Store

# Fixtures for tests that drive real git and the real command: repo, cli, team; and a real
# PostgreSQL server, started for the session when a test asks for one: postgres_url.
pytest_plugins = ["support", "postgres", "browser"]


@pytest.fixture
def anyio_backend() -> str:
    # the tests are written for asyncio (trio is not installed).
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_ambient_conductor_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may pick up a real database or run from the environment."""
    monkeypatch.delenv("CONDUCTOR_DB", raising=False)
    monkeypatch.delenv("CONDUCTOR_RUN", raising=False)


@pytest.fixture
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """SQLite's store; with CONDUCTOR_TEST_STORE=postgresql, PostgreSQL's on a fresh database
    of a real server (make test-postgres runs the bus suites so)."""
    if os.environ.get("CONDUCTOR_TEST_STORE") == "postgresql":
        from conductor.store.postgres import PostgresStore

        async with PostgresStore.open(request.getfixturevalue("postgres_url")) as pg:
            yield pg
        return
    async with Store.open(tmp_path / "c.db") as opened:
        yield opened


@pytest.fixture
async def bus(store: Store, tmp_path: Path) -> Bus:
    return await bus_module.create_run(
        store,
        goal="test",
        repo_root=tmp_path,
        base_ref="main",
        base_commit=None,
        sessions=[("A", "frontend"), ("B", "backend"), ("C", "infra")],
    )


@pytest.fixture
def standin(tmp_path: Path) -> Callable[..., AbstractAsyncContextManager[Offline]]:
    """`async with standin(SCRIPT) as offline:` a repository, a running stand-in serving the
    script, and `offline.options()` for a real Claude Code session against it."""

    def start(script: Any) -> AbstractAsyncContextManager[Offline]:
        return offline(script, tmp_path / "offline")

    return start
