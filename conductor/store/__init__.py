"""The database: schema, migrations and every query. The only package with SQL in it.

`Store` is the SQLite backend of the storage interface (`interface.Storage`): the connection
and its transactions (`connection`), the schema (`schema`), row mapping (`rows`) and, one
module each, the aggregates' queries (runs, sessions, messages, context, claims, reviews, the
lock, the event log), mixed into one class. Every public operation is one transaction, and
every state change appends to `events` in the same transaction.
"""

from __future__ import annotations

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
from conductor.store.interface import Storage
from conductor.store.lock import Locks
from conductor.store.reviews import Reviews
from conductor.store.runs import Runs
from conductor.store.schema import MIGRATIONS, SCHEMA_VERSION, migration
from conductor.store.sessions import Sessions

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
    "migration",
    "without_loop",
]


class Store(Runs, Sessions, Context, Reviews, Claims, Locks, EventLog):
    """One connection to the conductor database. Open with `async with Store.open(path)`
    (or `with Store.open_blocking(path)` where there is no event loop)."""
