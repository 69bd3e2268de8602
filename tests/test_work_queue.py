"""Work for workers on other hosts, as every storage backend must keep it: a workstream taken
by exactly one worker, held under a lease its worker renews, taken over when the lease runs
out, and ended only by the worker that holds it; merge requests answered once, in order.

Runs over the conformance suite's backends (SQLite, and a real PostgreSQL server)."""

from __future__ import annotations

import json

import anyio
import pytest
import test_storage_conformance as conformance

from conductor.bus import work as work_queue
from conductor.models import RunState
from conductor.store import Storage

pytestmark = pytest.mark.anyio

RUN = conformance.RUN
# The conformance suite's fixtures: every backend, a run with sessions A, B and C, and a
# second connection to the same database.
backend, storage, other = conformance.backend, conformance.storage, conformance.other

LEASE = 30.0


@pytest.fixture(autouse=True)
async def supervised(storage: Storage) -> None:
    """The run's supervisor is alive: its work may be taken."""
    await storage.supervisor_alive(RUN)


async def test_a_queued_workstream_is_taken_by_exactly_one_of_many_workers(
    storage: Storage, other: Storage
) -> None:
    for name in ("A", "B", "C"):
        await storage.queue_assignment(RUN, name)
    taken: list[tuple[str, str]] = []

    async def worker(store: Storage, worker_id: str) -> None:
        while (
            got := await store.take_assignment(worker_id, host="h", lease_seconds=LEASE)
        ) is not None:
            taken.append((got.session, worker_id))

    async with anyio.create_task_group() as tg:
        for i, store in enumerate((storage, other, storage, other)):
            tg.start_soon(worker, store, f"w{i}")
    assert sorted(s for s, _ in taken) == ["A", "B", "C"]


async def test_a_held_lease_is_not_taken_until_it_runs_out(
    storage: Storage, other: Storage
) -> None:
    await storage.queue_assignment(RUN, "A")
    first = await storage.take_assignment("w1", host="h1", lease_seconds=LEASE)
    assert first is not None and first.attempt == 1 and first.previous_worker is None
    assert await other.take_assignment("w2", host="h2", lease_seconds=LEASE) is None
    now = storage.clock()
    other.clock = lambda: now + LEASE + 1  # the lease ran out: w1 stopped renewing it
    await other.supervisor_alive(RUN)  # (heard from since)
    over = await other.take_assignment("w2", host="h2", lease_seconds=LEASE)
    assert over is not None
    assert (over.session, over.worker, over.attempt, over.previous_worker) == ("A", "w2", 2, "w1")


async def test_a_renewed_lease_holds_and_a_lost_one_says_so(
    storage: Storage, other: Storage
) -> None:
    await storage.queue_assignment(RUN, "A")
    await storage.take_assignment("w1", host="h1", lease_seconds=LEASE)
    assert await storage.renew_assignment(RUN, "A", "w1", attempt=1, lease_seconds=LEASE)
    now = storage.clock()
    other.clock = lambda: now + LEASE + 1
    await other.supervisor_alive(RUN)  # (heard from since)
    assert await other.take_assignment("w2", host="h2", lease_seconds=LEASE) is not None
    # w1 comes back from a pause: its lease is gone, and it cannot end what w2 holds
    assert not await storage.renew_assignment(RUN, "A", "w1", attempt=1, lease_seconds=LEASE)
    assert not await storage.end_assignment(RUN, "A", "w1", attempt=1, state="merged", outcome="{}")
    assert await other.end_assignment(
        RUN, "A", "w2", attempt=2, state="merged", outcome='{"state": "merged"}'
    )
    ended = await storage.assignment(RUN, "A")
    assert ended is not None and ended.state == "ended" and ended.outcome == '{"state": "merged"}'


async def test_queueing_again_leaves_a_held_one_and_requeues_an_ended_one(storage: Storage) -> None:
    await storage.queue_assignment(RUN, "A")
    await storage.take_assignment("w1", host="h", lease_seconds=LEASE)
    again = await storage.queue_assignment(RUN, "A")
    assert (again.state, again.worker) == ("taken", "w1")
    await storage.end_assignment(RUN, "A", "w1", attempt=1, state="failed", outcome="{}")
    requeued = await storage.queue_assignment(RUN, "A")
    assert (requeued.state, requeued.worker, requeued.outcome) == ("queued", None, None)


async def test_only_an_active_runs_work_is_taken(storage: Storage) -> None:
    await storage.queue_assignment(RUN, "A")
    await storage.set_run_state(RUN, RunState.INTERRUPTED, "stopped")
    assert await storage.take_assignment("w1", host="h", lease_seconds=LEASE) is None
    await storage.set_run_state(RUN, RunState.ACTIVE, "resumed")
    assert await storage.take_assignment("w1", host="h", lease_seconds=LEASE) is not None


async def test_taking_and_ending_are_events_of_the_workstream(storage: Storage) -> None:
    await storage.queue_assignment(RUN, "A")
    await storage.take_assignment("w1", host="h1", lease_seconds=LEASE)
    await storage.end_assignment(RUN, "A", "w1", attempt=1, state="merged", outcome="{}")
    kinds = [e.kind for e in await storage.list_events(RUN, session="A")]
    assert kinds[-3:] == ["work.queued", "work.taken", "work.ended"]


async def test_merge_requests_wait_in_order_and_are_answered_once(storage: Storage) -> None:
    first = await storage.request_merge(
        RUN, "A", branch="b/A", commit="a" * 40, owners=json.dumps({}), worker="w1"
    )
    second = await storage.request_merge(
        RUN, "B", branch="b/B", commit="b" * 40, owners=json.dumps({"x": "A"}), worker="w2"
    )
    assert [r.id for r in await storage.pending_merge_requests(RUN)] == [first, second]
    await storage.answer_merge_request(first, '{"status": "merged"}')
    await storage.answer_merge_request(first, '{"status": "conflict"}')  # a second answer: no
    answered = await storage.merge_request(first)
    assert answered is not None and answered.result == '{"status": "merged"}'
    assert [r.id for r in await storage.pending_merge_requests(RUN)] == [second]


async def test_a_workers_heartbeat_registers_and_keeps_it(storage: Storage) -> None:
    await storage.worker_alive("w1", host="h1", pid=10, slots=2)
    first = (await storage.workers())[0]
    now = storage.clock()
    storage.clock = lambda: now + 5
    await storage.worker_alive("w1", host="h1", pid=10, slots=3)
    await storage.worker_stopped("w1")
    (again,) = await storage.workers()
    assert (again.started_at, again.slots) == (first.started_at, 3)
    assert again.heartbeat_at == now + 5 and again.stopped_at == now + 5


async def test_a_worker_skips_the_runs_it_cannot_work_on(storage: Storage) -> None:
    await storage.queue_assignment(RUN, "A")
    skipped = await storage.take_assignment("w1", host="h", lease_seconds=LEASE, skip_runs=[RUN])
    assert skipped is None
    taken = await storage.take_assignment("w2", host="h", lease_seconds=LEASE, skip_runs=["x"])
    assert taken is not None and taken.session == "A"


async def test_a_lease_is_this_takings_not_the_workers_name(
    storage: Storage, other: Storage
) -> None:
    """A worker restarted under the same name while the old process is only paused: when the
    old one wakes, its renewals and its end are refused; the new taking holds."""
    await storage.queue_assignment(RUN, "A")
    await storage.take_assignment("w1", host="h", lease_seconds=LEASE)
    now = storage.clock()
    other.clock = lambda: now + LEASE + 1
    await other.supervisor_alive(RUN)  # (heard from since)
    again = await other.take_assignment("w1", host="h", lease_seconds=LEASE)
    assert again is not None and again.attempt == 2
    storage.clock = other.clock
    assert not await storage.renew_assignment(RUN, "A", "w1", attempt=1, lease_seconds=LEASE)
    assert not await storage.end_assignment(RUN, "A", "w1", attempt=1, state="failed", outcome="")
    assert await other.renew_assignment(RUN, "A", "w1", attempt=2, lease_seconds=LEASE)


async def test_idle_workers_asking_for_work_wake_nobody(storage: Storage, other: Storage) -> None:
    """Asking for work when there is none is a read: it wakes no waiter (on PostgreSQL a
    write NOTIFYs every connection, and two idle workers would wake each other forever)."""
    woken_after: list[float] = []

    async def waiter() -> None:
        started = anyio.current_time()
        await other.wait_for_change(1.0)
        woken_after.append(anyio.current_time() - started)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.1)
        for _ in range(20):
            assert await work_queue.take(storage, "w1", host="h") is None
    assert woken_after[0] >= 0.9
    await storage.queue_assignment(RUN, "A")
    assert await work_queue.take(storage, "w1", host="h", skip_runs=[RUN]) is None
    assert await work_queue.take(storage, "w1", host="h") is not None


async def test_a_silent_supervisors_run_is_not_taken_until_it_is_heard_from(
    storage: Storage,
) -> None:
    """A supervisor killed with SIGKILL leaves its run `active`: nobody would merge its
    work, so no worker starts any until one supervises it again (`conductor resume`)."""
    await storage.queue_assignment(RUN, "A")
    now = storage.clock()
    storage.clock = lambda: now + 60
    assert not await storage.takeable_assignment()
    assert await storage.take_assignment("w1", host="h", lease_seconds=LEASE) is None
    await storage.supervisor_alive(RUN)
    assert await storage.take_assignment("w1", host="h", lease_seconds=LEASE) is not None
