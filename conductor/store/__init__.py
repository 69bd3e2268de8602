"""The database: schema, migrations and every query. The only package with SQL in it.

`Store` is the SQLite backend of the storage interface (`interface.Storage`): the connection
and its transactions (`connection`), the schema (`schema`), row mapping (`rows`) and, one
module each, the aggregates' queries (runs, sessions, messages, context, claims, reviews, the
lock, the event log), mixed into one class. Every public operation is one transaction, and
every state change appends to `events` in the same transaction.

`Store.open(location)` is the one door every command opens the store by: a SQLite file's
path opens a `Store`, a `postgresql://` URL the PostgreSQL backend (`postgres.PostgresStore`,
a `Store` whose connection and transactions are PostgreSQL's), so whatever takes a Store
takes either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Self, cast

from conductor.errors import StoreError
from conductor.store.claims import Claims
from conductor.store.connection import (
    AUTOCHECKPOINT_PAGES,
    BUSY_TIMEOUT_MS,
    CHECKPOINT_SECONDS,
    LOCK_SLICE_MS,
    NoDatabase,
)
from conductor.store.context import Context
from conductor.store.event_log import EventLog
from conductor.store.handoff import without_loop
from conductor.store.interface import Storage, is_url, shown
from conductor.store.lock import Locks
from conductor.store.reviews import Reviews
from conductor.store.runs import Runs
from conductor.store.schema import MIGRATIONS, SCHEMA_VERSION, migration
from conductor.store.sessions import Sessions
from conductor.store.work import Work

if TYPE_CHECKING:
    from conductor.store.postgres import PostgresStore

__all__ = [
    "AUTOCHECKPOINT_PAGES",
    "BUSY_TIMEOUT_MS",
    "CHECKPOINT_SECONDS",
    "LOCK_SLICE_MS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "NoDatabase",
    "Storage",
    "Store",
    "is_url",
    "migration",
    "shown",
    "without_loop",
]


class Store(Runs, Sessions, Context, Reviews, Claims, Locks, EventLog, Work):
    """One connection to the conductor database. Open with `async with Store.open(location)`
    (or `with Store.open_blocking(location)` where there is no event loop): a SQLite file's
    path, or a PostgreSQL URL, which opens a `PostgresStore` instead."""

    @classmethod
    @asynccontextmanager
    async def open(cls, location: Path | str, *, create: bool = True) -> AsyncIterator[Self]:
        """The store at `location`; `create=False` (for a command that only reads) refuses
        a database with no run in it, creating nothing."""
        if is_url(str(location)):
            async with postgres_store().open(str(location), create=create) as store:
                yield cast(Self, store)
        else:
            async with super().open(Path(location), create=create) as store:
                yield store

    @classmethod
    @contextmanager
    def open_blocking(cls, location: Path | str, *, create: bool = True) -> Iterator[Self]:
        """`open` for this thread alone, with no event loop (see `SqliteBase.open_blocking`)."""
        if is_url(str(location)):
            with postgres_store().open_blocking(str(location), create=create) as store:
                yield cast(Self, store)
        else:
            with super().open_blocking(Path(location), create=create) as store:
                yield store


POSTGRES_EXTRA = "pip install 'conductor-swarm[postgres]'"


def postgres_store() -> type[PostgresStore]:
    """The PostgreSQL backend, imported only when a URL asks for it: psycopg is an extra,
    and without it the answer is one line saying how to install it."""
    try:
        from conductor.store.postgres import PostgresStore
    except ImportError as err:
        if err.name is None or not err.name.startswith("psycopg"):
            raise
        raise StoreError(
            f"a PostgreSQL database needs the postgres extra ({err.name} is not installed):"
            f" {POSTGRES_EXTRA}"
        ) from None
    return PostgresStore
