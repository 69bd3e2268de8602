"""PostgreSQL as the store, for a team across hosts: the same aggregates and semantics as
SQLite's `Store` (tests/test_storage_conformance.py runs both), through psycopg 3.

psycopg 3 rather than asyncpg: conductor's hand commands run a store with no event loop
(`Store.open_blocking`, `without_loop`), which needs a synchronous driver, and psycopg 3 has
both that and LISTEN/NOTIFY; asyncpg is asyncio-only. Importing this package needs psycopg
(the `postgres` extra); nothing else in conductor imports it.
"""

from __future__ import annotations

from conductor.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
