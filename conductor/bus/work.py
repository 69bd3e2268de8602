"""Work handed to workers on other hosts, as the bus words it: a run's workstreams queued for
workers and taken under leases, the workers' heartbeats, and the merge requests a worker
leaves for the supervisor's gate (which alone writes the integration branch).

A lease is how a dead worker is noticed: its worker renews it every third of its length;
when the worker stops (SIGKILL, a lost host, a cut network) nobody renews it, and the next
worker that asks for work takes the workstream over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from conductor.bus.core import Bus
from conductor.models import Assignment, MergeRequest, WorkerInfo
from conductor.store.interface import Storage

LEASE_SECONDS = 20.0  # a workstream's lease: how long a silent worker keeps it
RENEW_EVERY = LEASE_SECONDS / 3
HEARTBEAT_SECONDS = 5.0  # how often a worker says it is alive (`conductor workers`)


# ---------------------------------------------------------------------------- the supervisor


async def queue(bus: Bus, name: str) -> Assignment:
    """Hand the workstream to the workers (left as it is when one holds it already)."""
    return await bus.store.queue_assignment(bus.run_id, name)


async def supervisor_alive(bus: Bus) -> None:
    """Said every HEARTBEAT_SECONDS by a run's supervisor: workers take its work only while
    it is heard from (a killed supervisor's run waits for `conductor resume`)."""
    await bus.store.supervisor_alive(bus.run_id)


async def assignment(bus: Bus, name: str) -> Assignment | None:
    return await bus.store.assignment(bus.run_id, name)


async def assignments(bus: Bus) -> list[Assignment]:
    return await bus.store.assignments(bus.run_id)


async def pending_merges(bus: Bus) -> list[MergeRequest]:
    return await bus.store.pending_merge_requests(bus.run_id)


async def answer_merge(bus: Bus, request_id: int, result: dict[str, Any]) -> None:
    await bus.store.answer_merge_request(request_id, json.dumps(result))


# ---------------------------------------------------------------------------- a worker


async def alive(store: Storage, worker: str, *, host: str, pid: int, slots: int) -> None:
    await store.worker_alive(worker, host=host, pid=pid, slots=slots)


async def stopped(store: Storage, worker: str) -> None:
    await store.worker_stopped(worker)


async def workers(store: Storage) -> list[WorkerInfo]:
    return await store.workers()


async def every_assignment(store: Storage) -> list[Assignment]:
    """Every run's assignments: what each worker runs, for `conductor workers`."""
    return await store.assignments(None)


async def take(
    store: Storage,
    worker: str,
    *,
    host: str,
    lease_seconds: float = LEASE_SECONDS,
    skip_runs: Sequence[str] = (),
) -> Assignment | None:
    """The next workstream waiting for a worker (or whose worker went silent), now `worker`'s;
    none of `skip_runs` (runs it cannot work on). Looked for first without taking the write
    lock: idle workers ask often, and a write would wake every waiter (NOTIFY)."""
    if not await store.takeable_assignment(skip_runs=tuple(skip_runs)):
        return None
    return await store.take_assignment(
        worker, host=host, lease_seconds=lease_seconds, skip_runs=tuple(skip_runs)
    )


async def renew(bus: Bus, taken: Assignment, lease_seconds: float = LEASE_SECONDS) -> bool:
    """False: the lease is no longer this taking's (it ran out and was taken over)."""
    assert taken.worker is not None
    return await bus.store.renew_assignment(
        bus.run_id, taken.session, taken.worker, attempt=taken.attempt, lease_seconds=lease_seconds
    )


async def let_go(bus: Bus, taken: Assignment) -> bool:
    """A worker that stops with the workstream unfinished (asked to, or its run stopped):
    its lease ends now, so the next worker takes it over without waiting it out."""
    return await renew(bus, taken, 0.0)


async def end(bus: Bus, taken: Assignment, *, state: str, outcome: dict[str, Any]) -> bool:
    assert taken.worker is not None
    return await bus.store.end_assignment(
        bus.run_id,
        taken.session,
        taken.worker,
        attempt=taken.attempt,
        state=state,
        outcome=json.dumps(outcome),
    )


async def request_merge(
    bus: Bus, name: str, *, branch: str, commit: str, owners: dict[str, str], worker: str
) -> int:
    return await bus.store.request_merge(
        bus.run_id, name, branch=branch, commit=commit, owners=json.dumps(owners), worker=worker
    )


async def merge_answer(bus: Bus, request_id: int) -> dict[str, Any] | None:
    """The gate's answer to a merge request, or None while it waits."""
    found = await bus.store.merge_request(request_id)
    if found is None or found.result is None:
        return None
    answer: dict[str, Any] = json.loads(found.result)
    return answer


async def wait(store: Storage, timeout: float) -> None:
    """Until a write commits (any process's, on PostgreSQL; this one's, on SQLite), or
    `timeout` passes: how an idle worker waits for work."""
    await store.wait_for_change(timeout)


def now(store: Storage) -> float:
    """The store's clock, which leases and heartbeats are read by."""
    return store.clock()
