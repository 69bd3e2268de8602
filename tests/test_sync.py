"""Sync: unread messages + new shared context + heartbeat, delivered exactly once.

Also the shared context itself (add, show, filter), which sessions receive through sync.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import pytest
from _workers import go, location, workers

from conductor.bus import Bus
from conductor.errors import InvalidInput
from conductor.models import ContextCategory, SessionStatus

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------- shared context


@pytest.mark.parametrize("category", list(ContextCategory))
async def test_context_can_be_added_in_every_category(bus: Bus, category: ContextCategory) -> None:
    entry = await bus.add_context("A", category.value, "the body")
    assert (entry.author, entry.category, entry.body) == ("A", category, "the body")
    assert [(c.id, c.author, c.category, c.body) for c in await bus.context()] == [
        (entry.id, "A", category, "the body")
    ]


async def test_the_context_entry_returned_by_add_is_the_one_stored(bus: Bus) -> None:
    ticks = iter(range(1000, 2000))
    bus.store.clock = lambda: float(next(ticks))
    entry = await bus.add_context("A", "decision", "x")
    assert await bus.context() == [entry]


async def test_a_category_is_matched_case_insensitively(bus: Bus) -> None:
    assert (await bus.add_context("A", " Warning ", "x")).category is ContextCategory.WARNING


@pytest.mark.parametrize("category", ["note", "decisions", ""])
async def test_an_unknown_context_category_is_invalid(bus: Bus, category: str) -> None:
    with pytest.raises(InvalidInput, match="unknown category"):
        await bus.add_context("A", category, "x")
    with pytest.raises(InvalidInput, match="unknown category"):
        await bus.context(category)
    assert await bus.context() == []


async def test_empty_context_is_invalid(bus: Bus) -> None:
    with pytest.raises(InvalidInput, match="empty context"):
        await bus.add_context("A", "decision", "  ")
    assert await bus.context() == []


async def test_all_context_is_shown_oldest_first_and_can_be_filtered_by_category(
    bus: Bus,
) -> None:
    await bus.add_context("A", "decision", "REST, not GraphQL")
    await bus.add_context("B", "interface", "GET /users")
    await bus.add_context(None, "decision", "ship Friday")
    everything = await bus.context()
    assert [(c.author, c.category.value, c.body) for c in everything] == [
        ("A", "decision", "REST, not GraphQL"),
        ("B", "interface", "GET /users"),
        (None, "decision", "ship Friday"),
    ]
    assert [c.id for c in everything] == sorted(c.id for c in everything)
    assert [c.body for c in await bus.context("decision")] == ["REST, not GraphQL", "ship Friday"]
    assert [c.body for c in await bus.context(ContextCategory.INTERFACE)] == ["GET /users"]
    assert await bus.context("warning") == []


async def test_context_text_that_looks_like_markup_is_kept_literally(bus: Bus) -> None:
    await bus.add_context("A", "convention", "[bold]x[/bold] lives in [/tmp]")
    assert [c.body for c in (await bus.sync("B")).context] == ["[bold]x[/bold] lives in [/tmp]"]


# --------------------------------------------------------------------------- sync


async def test_a_sync_returns_unread_messages_and_new_context_of_others(bus: Bus) -> None:
    message = await bus.send("A", "B", "API is up")
    broadcast = await bus.send("C", "all", "CI is green")
    entry = await bus.add_context("A", "interface", "GET /health")
    result = await bus.sync("B")
    assert result.session == "B"
    assert [m.id for m in result.messages] == [message.id, broadcast.id]
    assert all(m.read_at is not None for m in result.messages)
    assert [c.id for c in result.context] == [entry.id]
    assert not result.empty


async def test_a_second_sync_returns_nothing_new(bus: Bus) -> None:
    await bus.send("A", "B", "once")
    await bus.add_context("A", "decision", "once")
    assert not (await bus.sync("B")).empty
    again = await bus.sync("B")
    assert (again.messages, again.context, again.empty) == ([], [], True)


async def test_a_sync_delivers_only_what_arrived_since_the_last_one(bus: Bus) -> None:
    await bus.send("A", "B", "old")
    await bus.add_context("A", "decision", "old")
    await bus.sync("B")
    new_message = await bus.send("C", "B", "new")
    new_entry = await bus.add_context("C", "warning", "new")
    result = await bus.sync("B")
    assert [m.id for m in result.messages] == [new_message.id]
    assert [c.id for c in result.context] == [new_entry.id]


async def test_a_sync_marks_the_messages_it_delivers_read(bus: Bus) -> None:
    sent = await bus.send("A", "B", "read by sync")
    await bus.sync("B")
    assert await bus.inbox("B") == []
    [seen] = await bus.inbox("B", include_read=True)
    assert (seen.id, seen.read_at is not None) == (sent.id, True)
    assert await bus.unread_counts() == {"A": 0, "B": 0, "C": 0}


async def test_a_sync_leaves_out_the_sessions_own_context_but_moves_past_it(bus: Bus) -> None:
    own = await bus.add_context("B", "decision", "mine")
    assert (await bus.sync("B")).context == []
    assert (await bus.session("B")).context_cursor == own.id
    theirs = await bus.add_context("A", "decision", "theirs")
    assert [c.id for c in (await bus.sync("B")).context] == [theirs.id]


async def test_context_from_the_conductor_reaches_every_session(bus: Bus) -> None:
    entry = await bus.add_context(None, "warning", "main is frozen")
    for name in ("A", "B", "C"):
        assert [c.id for c in (await bus.sync(name)).context] == [entry.id]


async def test_the_context_cursor_is_the_last_delivered_row_id(bus: Bus) -> None:
    assert (await bus.session("B")).context_cursor == 0
    await bus.add_context("A", "decision", "one")
    last = await bus.add_context("C", "decision", "two")
    await bus.sync("B")
    assert (await bus.session("B")).context_cursor == last.id
    assert (await bus.session("A")).context_cursor == 0


async def test_context_cursors_are_per_session(bus: Bus) -> None:
    entry = await bus.add_context("A", "decision", "for everyone")
    assert [c.id for c in (await bus.sync("B")).context] == [entry.id]
    assert [c.id for c in (await bus.sync("C")).context] == [entry.id]


async def test_a_sync_is_a_heartbeat(bus: Bus) -> None:
    assert (await bus.session("B")).last_seen_at is None
    clock = iter([1000.0, 1001.0, 1002.0, 1003.0, 1004.0, 1005.0])
    bus.store.clock = lambda: next(clock)
    await bus.sync("B")
    first = (await bus.session("B")).last_seen_at
    await bus.sync("B")
    second = (await bus.session("B")).last_seen_at
    assert first is not None and second is not None and 1000.0 <= first < second


async def test_the_first_sync_of_a_pending_session_marks_it_working(bus: Bus) -> None:
    await bus.sync("B")
    assert (await bus.session("B")).status is SessionStatus.WORKING
    await bus.update("B", status="blocked")
    await bus.sync("B")
    assert (await bus.session("B")).status is SessionStatus.BLOCKED


async def test_a_heartbeat_alone_records_the_time_but_no_event(bus: Bus) -> None:
    events = await bus.events()
    await bus.heartbeat("C")
    assert (await bus.session("C")).last_seen_at is not None
    assert await bus.events() == events


async def test_take_unread_and_sync_never_deliver_one_message_twice(bus: Bus) -> None:
    first = await bus.send("A", "B", "first")
    assert [m.id for m in await bus.take_unread("B", via="tool")] == [first.id]
    assert (await bus.sync("B")).messages == []
    second = await bus.send("A", "B", "second")
    assert [m.id for m in (await bus.sync("B")).messages] == [second.id]
    assert await bus.take_unread("B", via="tool") == []


async def test_take_unread_leaves_the_context_for_the_next_sync(bus: Bus) -> None:
    entry = await bus.add_context("A", "decision", "later")
    await bus.send("A", "B", "now")
    await bus.take_unread("B", via="tool")
    result = await bus.sync("B")
    assert (result.messages, [c.id for c in result.context]) == ([], [entry.id])


async def test_a_delivered_message_carries_the_read_time_that_was_stored(bus: Bus) -> None:
    ticks = iter(range(1000, 2000))
    bus.store.clock = lambda: float(next(ticks))
    await bus.send("A", "B", "x")
    [delivered] = (await bus.sync("B")).messages
    [stored] = await bus.inbox("B", include_read=True)
    assert delivered.read_at == stored.read_at


async def test_a_delivery_records_how_it_was_made(bus: Bus) -> None:
    await bus.send("A", "B", "x")
    await bus.take_unread("B", via="tool")
    [event] = [e for e in await bus.events() if e.kind == "message.read"]
    assert (event.session, event.summary) == ("B", "1 via tool")


# --------------------------------------------------------------------------- concurrency


def _assert_exactly_once(delivered: list[int], sent: list[int]) -> None:
    duplicates = [i for i, n in Counter(delivered).items() if n > 1]
    assert duplicates == []
    assert sorted(delivered) == sorted(sent)


async def test_many_tasks_sharing_one_store_deliver_each_message_exactly_once(bus: Bus) -> None:
    sent: list[int] = []
    context: list[int] = []
    delivered: list[int] = []
    delivered_context: list[int] = []
    writers_done = anyio.Event()

    async def writer(sender: str, count: int) -> None:
        for i in range(count):
            sent.append((await bus.send(sender, "A", f"{sender} {i}")).id)
            context.append((await bus.add_context(sender, "discovery", f"{sender} {i}")).id)

    async def syncer(use_take_unread: bool) -> None:
        while True:
            done = writers_done.is_set()
            if use_take_unread:
                delivered.extend(m.id for m in await bus.take_unread("A", via="tool"))
            result = await bus.sync("A")
            delivered.extend(m.id for m in result.messages)
            delivered_context.extend(c.id for c in result.context)
            if done and result.empty:
                return

    async with anyio.create_task_group() as syncers:
        for use_take_unread in (False, False, True):
            syncers.start_soon(syncer, use_take_unread)
        async with anyio.create_task_group() as writers:
            for sender in ("B", "C", None) * 2:
                writers.start_soon(writer, sender, 15)
        writers_done.set()

    assert len(sent) == len(context) == 90
    _assert_exactly_once(delivered, sent)
    _assert_exactly_once(delivered_context, context)


async def test_concurrent_writer_and_syncer_processes_deliver_everything_exactly_once(
    bus: Bus, tmp_path: Path
) -> None:
    writers_names = ["W1", "W2", "W3", "W4"]
    await bus.register([(name, "writer") for name in writers_names])
    done_flag = tmp_path / "writers-done"
    common = {"db": location(bus.store), "run": bus.run_id}
    jobs = [
        ("write", {**common, "sender": name, "to": "all" if name == "W4" else "A", "count": 50})
        for name in writers_names
    ]
    jobs += [
        ("sync", {**common, "name": "A", "done_flag": str(done_flag), "mode": mode})
        for mode in ("sync", "sync", "mixed")
    ]
    async with workers(*jobs) as started:
        await go(started)
        written = [await w.read() for w in started[:4]]
        done_flag.touch()
        synced = [await w.read() for w in started[4:]]

    sent = [i for w in written for i in w["messages"]]
    added = [i for w in written for i in w["context"]]
    assert len(sent) == len(added) == 200
    _assert_exactly_once([i for s in synced for i in s["messages"]], sent)
    _assert_exactly_once([i for s in synced for i in s["context"]], added)
    assert await bus.inbox("A") == []
    assert (await bus.session("A")).context_cursor == max(added)
