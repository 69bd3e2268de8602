"""What every storage backend must do, as the bus relies on it: the conformance suite.

Each test takes `storage` (and `other`, a second connection to the same database, as another
process would hold) for every backend in BACKENDS. SQLite is the one today; a second backend
(PostgreSQL) is one more entry there and must pass the same tests unchanged: exactly-once
delivery, atomic claims, the leased lock with its expiry read from the storage's clock, reviews
bound to commits with their verdict message, and an event log whose ids a reader with a cursor
never skips.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from conductor.errors import ClaimConflict, ReviewRefused
from conductor.models import (
    ContextCategory,
    ReviewStatus,
    SessionKind,
    SessionStatus,
)
from conductor.store import Storage, Store

pytestmark = pytest.mark.anyio

BACKENDS = ["sqlite", "postgresql"]
RUN = "conformance-run"


@dataclass(frozen=True)
class Backend:
    name: str
    connect: Callable[[], AbstractAsyncContextManager[Storage]]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", lambda: Store.open(tmp_path / "conformance.db"))
    if request.param == "postgresql":
        from conductor.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")  # a real server (tests/postgres.py)
        return Backend("postgresql", lambda: PostgresStore.open(url))
    raise AssertionError(f"no backend {request.param!r}")


@pytest.fixture
async def storage(backend: Backend) -> AsyncIterator[Storage]:
    """A run with sessions A, B and C on a fresh database."""
    async with backend.connect() as opened:
        await opened.create_run(RUN, goal="g", repo_root="/r", base_ref=None, base_commit=None)
        specs = [(n, n.lower(), SessionKind.WORKER, None) for n in ("A", "B", "C")]
        await opened.add_sessions(RUN, specs)
        yield opened


@pytest.fixture
async def other(backend: Backend, storage: Storage) -> AsyncIterator[Storage]:
    """A second connection to the same database (another process's, in effect)."""
    async with backend.connect() as opened:
        yield opened


def _exactly_once(delivered: list[int], sent: list[int]) -> None:
    assert [i for i, n in Counter(delivered).items() if n > 1] == []
    assert sorted(delivered) == sorted(sent)


# --------------------------------------------------------------------------- messages and sync


async def test_a_message_is_taken_once_and_then_is_no_longer_unread(storage: Storage) -> None:
    sent = await storage.send_message(RUN, "B", ["A"], "hello")
    assert await storage.has_unread(RUN, "A")
    [taken] = await storage.take_unread(RUN, "A", via="tool")
    assert (taken.id, taken.body, taken.read_at is not None) == (sent.id, "hello", True)
    assert await storage.take_unread(RUN, "A", via="tool") == []
    assert (await storage.sync(RUN, "A")).messages == []
    assert not await storage.has_unread(RUN, "A")


async def test_sync_hands_over_unread_messages_and_others_new_context_once(
    storage: Storage,
) -> None:
    sent = await storage.send_message(RUN, None, None, "to everyone")
    mine = await storage.add_context(RUN, "A", ContextCategory.DECISION, "A's own")
    theirs = await storage.add_context(RUN, "B", ContextCategory.INTERFACE, "B's")
    first = await storage.sync(RUN, "A")
    assert [m.id for m in first.messages] == [sent.id]
    assert [c.id for c in first.context] == [theirs.id]  # its own entry is not handed back
    assert (await storage.sync(RUN, "A")).empty
    session = await storage.get_session(RUN, "A")
    assert session.context_cursor == max(mine.id, theirs.id)
    assert session.status is SessionStatus.WORKING  # the first sign of life


async def test_syncs_and_takes_on_two_connections_deliver_each_message_exactly_once(
    storage: Storage, other: Storage
) -> None:
    sent: list[int] = []
    delivered: list[int] = []
    writers_done = anyio.Event()

    async def taker(through: Storage, take: bool) -> None:
        while True:
            done = writers_done.is_set()
            if take:
                got = await through.take_unread(RUN, "A", via="tool")
            else:
                got = (await through.sync(RUN, "A")).messages
            delivered.extend(m.id for m in got)
            if done and not got:
                return
            await anyio.sleep(0.001)  # pacing: a busy wait need not be fair to writers

    async with anyio.create_task_group() as tg:
        for through, take in [(storage, False), (other, False), (storage, True), (other, True)]:
            tg.start_soon(taker, through, take)
        for i in range(40):
            through = (storage, other)[i % 2]
            sent.append((await through.send_message(RUN, "B", ["A"], f"m{i}")).id)
        writers_done.set()

    _exactly_once(delivered, sent)


# --------------------------------------------------------------------------- claims


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("src/a.py", "src/a.py"),
        ("src", "src/a.py"),  # inside a claimed directory
        ("src/a.py", "src"),  # a directory around a claimed file
        (".", "docs/x.md"),  # the whole repository covers everything
        ("docs", "."),
    ],
)
async def test_a_second_claimer_of_a_covering_path_is_refused(
    storage: Storage, first: str, second: str
) -> None:
    await storage.claim(RUN, "A", first, "token-a")
    with pytest.raises(ClaimConflict):
        await storage.claim(RUN, "B", second, "token-b")
    assert [(c.session, c.path) for c in await storage.list_claims(RUN)] == [("A", first)]
    covering = await storage.claim_covering(RUN, first, other_than="B")
    assert covering is not None and covering.session == "A"


async def test_a_neighbour_sharing_a_prefix_is_not_covered(storage: Storage) -> None:
    await storage.claim(RUN, "A", "src", "t")
    assert (await storage.claim(RUN, "B", "src2/x.py", "u")).session == "B"
    assert await storage.claim_covering(RUN, "src2/x.py", other_than="A") is not None
    assert await storage.claim_covering(RUN, "src2/x.py", other_than="B") is None


async def test_claimers_racing_on_two_connections_have_exactly_one_winner(
    storage: Storage, other: Storage
) -> None:
    results: dict[str, str] = {}

    async def claim(through: Storage, name: str, path: str) -> None:
        try:
            await through.claim(RUN, name, path, f"token-{name}")
            results[name] = "won"
        except ClaimConflict as err:
            results[name] = f"conflict with {err.owner}"

    async with anyio.create_task_group() as tg:
        for through, name, path in [
            (storage, "A", "src"),
            (other, "B", "src/x"),
            (other, "C", "."),
        ]:
            tg.start_soon(claim, through, name, path)

    winners = [name for name, result in results.items() if result == "won"]
    assert len(winners) == 1
    assert sorted(results.values()) == sorted(["won"] + [f"conflict with {winners[0]}"] * 2)
    assert [c.session for c in await storage.list_claims(RUN)] == winners


async def test_claims_go_with_a_session_update_only_when_the_caller_says_so(
    storage: Storage,
) -> None:
    await storage.claim(RUN, "A", "src", "t")
    await storage.update_session(RUN, "A", note="still here")
    assert len(await storage.list_claims(RUN, "A")) == 1
    await storage.update_session(RUN, "A", note="again", release_claims=lambda s: False)
    assert len(await storage.list_claims(RUN, "A")) == 1
    ended = lambda s: s.status.ended  # noqa: E731
    await storage.update_session(RUN, "A", status=SessionStatus.DONE, release_claims=ended)
    assert await storage.list_claims(RUN, "A") == []
    assert (await storage.claim(RUN, "B", "src", "u")).session == "B"


# --------------------------------------------------------------------------- the leased lock


class Clock:
    """The storage's clock, moved by hand: a lease expires without anyone waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _acquire(storage: Storage, holder: str, lease_seconds: float = 10.0) -> object:
    return await storage.acquire_lock(
        "git", holder=holder, token=f"token-{holder}", pid=None, host=None,
        lease_seconds=lease_seconds,
    )  # fmt: skip


async def test_the_lock_is_refused_while_held_and_taken_once_its_lease_expires(
    storage: Storage, other: Storage
) -> None:
    clock = Clock()
    storage.clock = other.clock = clock
    lease = await storage.acquire_lock(
        "git", holder="A", token="ta", pid=None, host=None, lease_seconds=10
    )
    assert lease is not None and lease.expires_at == clock.now + 10
    clock.now += 9.9
    assert await _acquire(other, "B") is None  # held: refused, on any connection
    assert (await storage.get_lock("git")) == lease
    clock.now += 0.1  # the lease has run out
    taken = await other.acquire_lock(
        "git", holder="B", token="tb", pid=None, host=None, lease_seconds=10
    )
    assert taken is not None and taken.holder == "B"
    assert await storage.release_lock("git", token="ta") is None  # A's lease had ended
    assert await storage.get_lock("git") == taken


async def test_the_lock_is_released_by_its_token_and_then_free(storage: Storage) -> None:
    lease = await storage.acquire_lock(
        "git", holder="A", token="ta", pid=1, host="h", lease_seconds=60
    )
    assert lease is not None
    assert await storage.release_lock("git", token="not-a") is None
    assert await storage.release_lock("git", token="ta") == lease
    assert await storage.get_lock("git") is None
    assert await _acquire(storage, "B") is not None
    forced = await storage.release_lock("git", token=None, reason="forced")
    assert forced is not None and forced.holder == "B"


async def test_racers_for_a_free_lock_on_two_connections_have_exactly_one_winner(
    storage: Storage, other: Storage
) -> None:
    won: list[str] = []

    async def race(through: Storage, holder: str) -> None:
        if await _acquire(through, holder) is not None:
            won.append(holder)

    async with anyio.create_task_group() as tg:
        for i, holder in enumerate("ABCDEF"):
            tg.start_soon(race, (storage, other)[i % 2], holder)
    assert len(won) == 1
    lease = await storage.get_lock("git")
    assert lease is not None and lease.holder == won[0]


# --------------------------------------------------------------------------- reviews


async def test_a_review_is_bound_to_its_commit_and_tells_its_reviewer(storage: Storage) -> None:
    review = await storage.request_review(
        RUN,
        "A",
        reviewer="B",
        commit="c0ffee" * 6 + "abcd",
        base="base",
        diff=b"diff --git",
        note="please",
        notice=lambda review_id: f"look at #{review_id}",
    )
    assert (review.commit, review.status, review.reviewer) == (
        "c0ffee" * 6 + "abcd",
        ReviewStatus.PENDING,
        "B",
    )
    assert (await storage.get_review(RUN, review.id)).diff == b"diff --git"
    [notice] = await storage.take_unread(RUN, "B", via="tool")
    assert (notice.sender, notice.body) == ("A", f"look at #{review.id}")
    assert await storage.latest_review(RUN, "A") == review


async def test_a_verdict_is_decided_once_and_its_message_taken_once(storage: Storage) -> None:
    review = await storage.request_review(
        RUN, "A", reviewer="B", commit="1" * 40, base=None, diff=b"", note=""
    )
    assert await storage.take_verdict(RUN, review.id, via="prompt") == []  # undecided
    with pytest.raises(ReviewRefused):
        await storage.decide_review(RUN, review.id, "C", approve=True, comment="", verdict="x")
    decided = await storage.decide_review(
        RUN, review.id, "B", approve=False, comment="no", verdict="rejected: no"
    )
    assert (decided.status, decided.decided_by, decided.comment) == (
        ReviewStatus.REJECTED,
        "B",
        "no",
    )
    with pytest.raises(ReviewRefused):
        await storage.decide_review(RUN, review.id, "B", approve=True, comment="", verdict="x")
    [verdict] = await storage.inbox(RUN, "A")
    assert (verdict.sender, verdict.body) == ("B", "rejected: no")
    assert await storage.take_verdict(RUN, review.id, via="prompt") == [verdict.id]
    assert await storage.take_verdict(RUN, review.id, via="prompt") == []
    assert await storage.inbox(RUN, "A") == []


async def test_a_new_request_supersedes_the_requesters_earlier_reviews(storage: Storage) -> None:
    first = await storage.request_review(
        RUN, "A", reviewer=None, commit="1" * 40, base=None, diff=b"", note=""
    )
    second = await storage.request_review(
        RUN, "A", reviewer=None, commit="2" * 40, base=None, diff=b"", note=""
    )
    old = await storage.get_review(RUN, first.id, with_diff=False)
    assert (old.status, old.superseded_by) == (ReviewStatus.SUPERSEDED, second.id)
    assert await storage.latest_review(RUN, "A") == second
    pending = await storage.list_reviews(RUN, status=ReviewStatus.PENDING)
    assert [r.id for r in pending] == [second.id]


async def test_no_session_reviews_its_own_work(storage: Storage) -> None:
    with pytest.raises(ReviewRefused):
        await storage.request_review(
            RUN, "A", reviewer="A", commit="1" * 40, base=None, diff=b"", note=""
        )


# --------------------------------------------------------------------------- sessions' turns


async def test_a_recorded_turn_adds_its_turns_and_cost_to_the_session(storage: Storage) -> None:
    payload = {"num_turns": 3, "cost_usd": 0.25}
    first = await storage.record_turn(RUN, "A", "ok", payload, turns=3, cost_usd=0.25)
    await storage.record_turn(RUN, "A", "ok", None, turns=2, cost_usd=0.5)
    session = await storage.get_session(RUN, "A")
    assert (session.turns, session.cost_usd) == (5, 0.75)
    [event] = [e for e in await storage.list_events(RUN, session="A") if e.id == first]
    assert (event.kind, event.payload) == ("sdk.result", payload)
    assert (await storage.get_session(RUN, "B")).turns == 0


# --------------------------------------------------------------------------- the event log


async def test_events_have_increasing_ids_that_a_reader_with_a_cursor_never_skips(
    storage: Storage, other: Storage
) -> None:
    read: list[int] = []
    writers_done = anyio.Event()

    async def reader() -> None:
        cursor = 0
        while True:
            done = writers_done.is_set()
            found = await storage.list_events(RUN, after=cursor, limit=7)
            read.extend(e.id for e in found)
            cursor = found[-1].id if found else cursor
            if done and not found:
                return
            await anyio.sleep(0.001)

    async def writer(through: Storage, session: str) -> None:
        for i in range(25):
            await through.add_event(RUN, session, "git.commit", f"{session} {i}", {"i": i})

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        async with anyio.create_task_group() as writers:
            for through, session in [(storage, "A"), (other, "B"), (storage, "C")]:
                writers.start_soon(writer, through, session)
        writers_done.set()

    every = [e.id for e in await storage.list_events(RUN)]
    assert every == sorted(every) and len(set(every)) == len(every)
    assert read == every  # in order, each once, none skipped


async def test_the_newest_events_come_oldest_first(storage: Storage) -> None:
    ids = [await storage.add_event(RUN, "A", "git.push", f"p{i}") for i in range(5)]
    newest = await storage.list_events(RUN, limit=2, newest=True)
    assert [e.id for e in newest] == ids[-2:]
    pushes = [e for e in await storage.list_events(RUN, session="A") if e.kind == "git.push"]
    assert [e.summary for e in pushes] == [f"p{i}" for i in range(5)]


async def test_a_write_wakes_whoever_waits_for_a_change(storage: Storage) -> None:
    woke = anyio.Event()

    async def waiter() -> None:
        await storage.wait_for_change(30)  # the write below ends this wait, not the timeout
        woke.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            assert not woke.is_set()
            await storage.send_message(RUN, "A", ["B"], "wake up")
        assert woke.is_set()
