"""The git lock: one holder at a time, with a lease that ends and a dead holder reclaimed."""

from __future__ import annotations

import os
import socket
import time

import anyio
import pytest
from _workers import go, location, workers

from conductor.bus import GIT_LOCK, Bus
from conductor.errors import LockHeld

pytestmark = pytest.mark.anyio


async def test_acquiring_a_free_lock_returns_a_lease_for_this_process(bus: Bus) -> None:
    before = time.time()
    lease = await bus.acquire_lock("A", lease_seconds=60)
    assert (lease.name, lease.holder, lease.pid, lease.host) == (
        GIT_LOCK,
        "A",
        os.getpid(),
        socket.gethostname(),
    )
    assert before <= lease.acquired_at <= time.time()
    assert lease.expires_at == pytest.approx(lease.acquired_at + 60)
    assert len(lease.token) >= 16


async def test_the_lock_shows_its_holder(bus: Bus) -> None:
    assert await bus.lock() is None
    lease = await bus.acquire_lock("A")
    assert await bus.lock() == lease


async def test_a_second_acquire_is_refused_naming_the_holder(bus: Bus) -> None:
    lease = await bus.acquire_lock("A", lease_seconds=60)
    with pytest.raises(LockHeld) as caught:
        await bus.acquire_lock("B")
    assert (caught.value.name, caught.value.holder) == ("git", "A")
    assert 0 < caught.value.expires_in <= 60
    assert "the git lock is held by A" in str(caught.value)
    assert await bus.lock() == lease


async def test_the_holder_itself_cannot_take_the_lock_twice(bus: Bus) -> None:
    await bus.acquire_lock("A")
    with pytest.raises(LockHeld, match="held by A"):
        await bus.acquire_lock("A")


async def test_an_acquire_that_may_wait_gives_up_with_lock_held_at_its_deadline(bus: Bus) -> None:
    await bus.acquire_lock("A", lease_seconds=60)
    started = time.monotonic()
    with pytest.raises(LockHeld):
        await bus.acquire_lock("B", wait_seconds=0.2)
    assert time.monotonic() - started >= 0.2


async def test_an_acquire_that_may_wait_gets_the_lock_once_it_is_released(bus: Bus) -> None:
    first = await bus.acquire_lock("A", lease_seconds=60)
    got: list[str] = []

    async def waiter() -> None:
        got.append((await bus.acquire_lock("B", wait_seconds=30)).holder)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        assert await bus.release_lock(first) is True
    assert got == ["B"]


async def test_releasing_with_the_lease_frees_the_lock(bus: Bus) -> None:
    lease = await bus.acquire_lock("A")
    assert await bus.release_lock(lease) is True
    assert await bus.lock() is None
    assert (await bus.acquire_lock("B")).holder == "B"


async def test_releasing_a_lease_twice_reports_it_had_ended(bus: Bus) -> None:
    lease = await bus.acquire_lock("A")
    assert await bus.release_lock(lease) is True
    assert await bus.release_lock(lease) is False


class Clock:
    """The store's clock, moved by hand: leases run out without the test waiting for them."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(bus: Bus) -> Clock:
    clock = Clock()
    bus.store.clock = clock
    return clock


async def test_a_lease_expires_and_another_holder_acquires(bus: Bus, clock: Clock) -> None:
    lease = await bus.acquire_lock("A", lease_seconds=30)
    assert (lease.acquired_at, lease.expires_at) == (clock.now, clock.now + 30)
    clock.now += 29.5
    with pytest.raises(LockHeld) as caught:
        await bus.acquire_lock("B")
    assert caught.value.expires_in == pytest.approx(0.5)
    clock.now += 0.5  # the lease has run out (and its holder, this process, is alive)
    assert (await bus.acquire_lock("B", lease_seconds=60)).holder == "B"
    assert (await bus.lock()).holder == "B"


async def test_releasing_an_expired_lease_taken_over_by_another_returns_false(
    bus: Bus, clock: Clock
) -> None:
    stale = await bus.acquire_lock("A", lease_seconds=30)
    clock.now += 30
    current = await bus.acquire_lock("B", lease_seconds=60)
    assert await bus.release_lock(stale) is False
    assert await bus.lock() == current


async def test_force_release_frees_the_lock_whoever_holds_it(bus: Bus) -> None:
    lease = await bus.acquire_lock("A", lease_seconds=600)
    assert await bus.force_release_lock() == lease
    assert await bus.lock() is None
    assert (await bus.acquire_lock("B")).holder == "B"
    assert await bus.release_lock(lease) is False


async def test_force_releasing_a_free_lock_returns_none(bus: Bus) -> None:
    assert await bus.force_release_lock() is None


async def test_locks_of_different_names_are_independent(bus: Bus) -> None:
    git = await bus.acquire_lock("A")
    other = await bus.acquire_lock("B", name="deploy")
    assert (git.name, other.name) == (GIT_LOCK, "deploy")
    assert (await bus.lock("deploy")).holder == "B"


async def test_acquire_release_and_force_release_are_events(bus: Bus) -> None:
    start = (await bus.events())[-1].id
    lease = await bus.acquire_lock("A", lease_seconds=42)
    await bus.release_lock(lease)
    await bus.acquire_lock("B")
    await bus.force_release_lock()
    events = await bus.events(after=start)
    assert [(e.kind, e.summary, e.run_id) for e in events] == [
        ("lock.acquired", "git by A", bus.run_id),
        ("lock.released", "git held by A", bus.run_id),
        ("lock.acquired", "git by B", bus.run_id),
        ("lock.forced", "git held by B", bus.run_id),
    ]
    assert events[0].payload == {
        "name": GIT_LOCK,
        "holder": "A",
        "pid": os.getpid(),
        "lease_seconds": 42,
    }


async def test_a_failed_acquire_is_not_an_event(bus: Bus) -> None:
    await bus.acquire_lock("A")
    before = await bus.events()
    with pytest.raises(LockHeld):
        await bus.acquire_lock("B")
    assert await bus.events() == before


async def test_a_lease_of_a_process_on_another_host_is_not_reclaimed_early(bus: Bus) -> None:
    await bus.store.acquire_lock(
        GIT_LOCK,
        holder="remote",
        token="t",
        pid=2**22 + 12345,
        host="some-other-host",
        lease_seconds=60,
    )
    with pytest.raises(LockHeld, match="held by remote"):
        await bus.acquire_lock("A")


async def test_a_lease_of_a_dead_pid_on_this_host_is_reclaimed_at_once(bus: Bus) -> None:
    dead_pid = 2**22 + 12345  # above Linux's pid_max limit: no such process can exist
    await bus.store.acquire_lock(
        GIT_LOCK,
        holder="ghost",
        token="t",
        pid=dead_pid,
        host=socket.gethostname(),
        lease_seconds=600,
    )
    assert (await bus.acquire_lock("A")).holder == "A"


async def test_a_lease_of_this_pid_that_this_process_does_not_hold_is_reclaimed(
    bus: Bus,
) -> None:
    """An earlier process with this pid (a container's pid 1, restarted) left it."""
    await bus.store.acquire_lock(
        GIT_LOCK,
        holder="earlier life",
        token="not one of ours",
        pid=os.getpid(),
        host=socket.gethostname(),
        lease_seconds=600,
    )
    assert (await bus.acquire_lock("A")).holder == "A"


# --------------------------------------------------------------------------- processes


async def test_processes_racing_for_the_lock_have_exactly_one_winner(bus: Bus) -> None:
    common = {"db": location(bus.store), "run": bus.run_id, "lease": 60}
    holders = ["P1", "P2", "P3", "P4"]
    async with workers(*[("lock", {**common, "holder": h}) for h in holders]) as racers:
        await go(racers)
        answers = [await racer.read() for racer in racers]
        winners = [a for a in answers if a["won"]]
        assert len(winners) == 1, answers
        [winner] = winners
        assert {a["holder"] for a in answers if not a["won"]} == {winner["holder"]}
        lease = await bus.lock()
        assert lease is not None
        assert (lease.holder, lease.pid) == (winner["holder"], winner["pid"])
    acquired = [e for e in await bus.events() if e.kind == "lock.acquired"]
    assert [e.summary for e in acquired] == [f"git by {winner['holder']}"]


async def test_a_lock_held_by_a_killed_process_is_reclaimed_at_once(bus: Bus) -> None:
    arg = {"db": location(bus.store), "run": bus.run_id, "holder": "child", "lease": 600}
    async with workers(("hold_lock", arg)) as [child]:
        await go([child])
        held = await child.read()
        assert held["pid"] == held["own_pid"] == child.pid
        with pytest.raises(LockHeld, match="held by child"):
            await bus.acquire_lock("parent")  # alive: its lease is respected
        child.process.kill()
        await child.process.wait()  # reaped: the pid no longer exists

        lease = await bus.acquire_lock("parent")
    assert (lease.holder, lease.pid) == ("parent", os.getpid())
    kinds = [e.kind for e in await bus.events() if e.kind.startswith("lock.")]
    assert kinds == ["lock.acquired", "lock.reclaimed", "lock.acquired"]
