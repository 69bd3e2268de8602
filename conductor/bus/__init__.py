"""Coordination semantics: sessions, messages, shared context, claims, reviews, the lock.

The bus is the only door to the store: a `Bus` is bound to one run (`core`, with its reviews
and lock parts), and the functions of `runs` handle runs as a whole. It works through the
storage interface (`conductor.store.interface.Storage`), never SQL.
"""

from __future__ import annotations

from conductor.bus.core import Bus
from conductor.bus.lock import GIT_LOCK, SUPERVISOR_GONE, pid_alive, seen_state, supervisor_lock
from conductor.bus.reviews import MergeVerdict
from conductor.bus.runs import (
    RUN_ENV,
    create_run,
    database_location,
    keep_checkpointed,
    latest_run,
    list_runs,
    new_run_id,
    open_run,
    parse_session_specs,
)

__all__ = [
    "GIT_LOCK",
    "RUN_ENV",
    "SUPERVISOR_GONE",
    "Bus",
    "MergeVerdict",
    "create_run",
    "database_location",
    "keep_checkpointed",
    "latest_run",
    "list_runs",
    "new_run_id",
    "open_run",
    "parse_session_specs",
    "pid_alive",
    "seen_state",
    "supervisor_lock",
]
