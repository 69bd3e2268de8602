"""Messages between sessions: direct, broadcast, inbox, reply and read marks."""

from __future__ import annotations

import pytest

from conductor.bus import Bus, create_run
from conductor.errors import InvalidInput, NotAddressee, UnknownMessage

pytestmark = pytest.mark.anyio


async def test_a_message_to_one_session_reaches_only_that_session(bus: Bus) -> None:
    sent = await bus.send("A", "B", "schema is ready")
    assert (sent.sender, sent.recipients, sent.broadcast, sent.body) == (
        "A",
        ("B",),
        False,
        "schema is ready",
    )
    assert [m.id for m in await bus.inbox("B")] == [sent.id]
    assert await bus.inbox("C") == []
    assert await bus.inbox("A") == []


async def test_a_message_can_name_several_recipients(bus: Bus) -> None:
    sent = await bus.send("A", ["C", "B"], "both of you")
    assert (sent.recipients, sent.broadcast) == (("B", "C"), False)
    assert [m.id for m in await bus.inbox("B")] == [m.id for m in await bus.inbox("C")] == [sent.id]


@pytest.mark.parametrize("to", ["all", "ALL", " All "])
async def test_a_broadcast_reaches_every_session_but_the_sender(bus: Bus, to: str) -> None:
    sent = await bus.send("A", to, "heads up")
    assert (sent.broadcast, sent.recipients) == (True, ("B", "C"))
    assert [m.id for m in await bus.inbox("B")] == [sent.id]
    assert [m.id for m in await bus.inbox("C")] == [sent.id]
    assert await bus.inbox("A") == []


async def test_a_broadcast_from_the_conductor_reaches_every_session(bus: Bus) -> None:
    sent = await bus.send(None, "all", "plan changed")
    assert (sent.sender, sent.recipients) == (None, ("A", "B", "C"))


async def test_a_broadcast_records_the_recipients_of_its_time(bus: Bus) -> None:
    sent = await bus.send("A", "all", "early news")
    await bus.register([("D", "late")])
    assert await bus.inbox("D") == []
    assert (await bus.store.get_message(bus.run_id, sent.id)).recipients == ("B", "C")


async def test_the_inbox_shows_unread_messages_oldest_first(bus: Bus) -> None:
    first = await bus.send("A", "C", "one")
    second = await bus.send("B", "C", "two")
    inbox = await bus.inbox("C")
    assert [(m.id, m.body, m.read_at) for m in inbox] == [
        (first.id, "one", None),
        (second.id, "two", None),
    ]


async def test_a_read_message_leaves_the_inbox_but_include_read_shows_it(bus: Bus) -> None:
    read = await bus.send("A", "B", "read me")
    unread = await bus.send("A", "B", "later")
    assert await bus.mark_read("B", read.id) is True
    assert [m.id for m in await bus.inbox("B")] == [unread.id]
    everything = await bus.inbox("B", include_read=True)
    assert [m.id for m in everything] == [read.id, unread.id]
    assert everything[0].read_at is not None
    assert everything[1].read_at is None


async def test_marking_a_message_read_twice_reports_no_change(bus: Bus) -> None:
    sent = await bus.send("A", "B", "once")
    assert await bus.mark_read("B", sent.id) is True
    events = await bus.events()
    assert await bus.mark_read("B", sent.id) is False
    assert await bus.events() == events


async def test_a_read_mark_is_per_recipient(bus: Bus) -> None:
    sent = await bus.send("A", "all", "for both")
    await bus.mark_read("B", sent.id)
    assert await bus.inbox("B") == []
    assert [m.id for m in await bus.inbox("C")] == [sent.id]


async def test_unread_counts_are_per_session(bus: Bus) -> None:
    await bus.send("A", "B", "1")
    await bus.send("A", "all", "2")
    read = await bus.send("C", "B", "3")
    await bus.mark_read("B", read.id)
    assert await bus.unread_counts() == {"A": 0, "B": 2, "C": 1}


async def test_a_reply_goes_to_the_original_sender_and_marks_the_original_read(
    bus: Bus,
) -> None:
    original = await bus.send("A", "B", "which port?")
    answer = await bus.reply("B", original.id, "8080")
    assert (answer.sender, answer.recipients, answer.reply_to, answer.body) == (
        "B",
        ("A",),
        original.id,
        "8080",
    )
    assert await bus.inbox("B") == []
    assert [m.id for m in await bus.inbox("A")] == [answer.id]
    assert await bus.inbox("C") == []


async def test_a_reply_to_a_broadcast_goes_to_its_sender_only(bus: Bus) -> None:
    original = await bus.send("A", "all", "who owns the CI?")
    answer = await bus.reply("C", original.id, "me")
    assert answer.recipients == ("A",)
    assert await bus.inbox("B") == [await bus.store.get_message(bus.run_id, original.id)]
    assert await bus.inbox("C") == []


async def test_a_reply_marks_the_original_read_for_the_replier_only(bus: Bus) -> None:
    original = await bus.send("A", "all", "vote")
    await bus.reply("B", original.id, "yes")
    assert [m.id for m in await bus.inbox("C")] == [original.id]


async def test_replying_to_an_already_read_message_still_sends_the_reply(bus: Bus) -> None:
    original = await bus.send("A", "B", "ping")
    await bus.mark_read("B", original.id)
    answer = await bus.reply("B", original.id, "pong")
    assert [m.id for m in await bus.inbox("A")] == [answer.id]


async def test_only_an_addressee_can_reply(bus: Bus) -> None:
    original = await bus.send("A", "B", "private")
    with pytest.raises(NotAddressee, match="not addressed to C"):
        await bus.reply("C", original.id, "butting in")
    with pytest.raises(NotAddressee, match="not addressed to A"):
        await bus.reply("A", original.id, "talking to myself")
    assert await bus.inbox("A") == []
    assert [m.id for m in await bus.inbox("B")] == [original.id]


async def test_only_an_addressee_can_mark_a_message_read(bus: Bus) -> None:
    original = await bus.send("A", "B", "private")
    with pytest.raises(NotAddressee):
        await bus.mark_read("C", original.id)
    with pytest.raises(NotAddressee):
        await bus.mark_read("A", original.id)
    assert [m.id for m in await bus.inbox("B")] == [original.id]


async def test_an_unknown_message_id_is_an_error(bus: Bus) -> None:
    with pytest.raises(UnknownMessage, match="#999"):
        await bus.reply("B", 999, "to nothing")
    with pytest.raises(UnknownMessage, match="#999"):
        await bus.mark_read("B", 999)
    with pytest.raises(UnknownMessage, match="#999"):
        await bus.store.get_message(bus.run_id, 999)


async def test_a_message_of_another_run_is_unknown_here(bus: Bus) -> None:
    other = await create_run(
        bus.store,
        goal="other",
        repo_root=None,
        base_ref=None,
        base_commit=None,
        sessions=[("A", ""), ("B", "")],
        run_id="other-run",
    )
    foreign = await other.send("A", "B", "elsewhere")
    with pytest.raises(UnknownMessage):
        await bus.reply("B", foreign.id, "hi")
    with pytest.raises(UnknownMessage):
        await bus.store.get_message(bus.run_id, foreign.id)
    assert await bus.inbox("B") == []


@pytest.mark.parametrize("body", ["", "   ", "\n\t"])
async def test_an_empty_message_is_invalid_and_nothing_is_sent(bus: Bus, body: str) -> None:
    original = await bus.send("A", "B", "question")
    events = await bus.events()
    with pytest.raises(InvalidInput, match="empty message"):
        await bus.send("A", "B", body)
    with pytest.raises(InvalidInput, match="empty reply"):
        await bus.reply("B", original.id, body)
    assert await bus.events() == events
    assert [m.id for m in await bus.inbox("B")] == [original.id]


@pytest.mark.parametrize(
    "body",
    [
        "[/tmp]",
        "[bold]x[/bold]",
        "see [red]src/[/red] and [link=http://x]y[/link]",
        "<b>html</b> & {{ jinja }} %s {0}",
        "line one\nline two\n\n  indented\t tab",
        "unicode: café → ✓ 🎉",
    ],
)
async def test_text_that_looks_like_markup_is_stored_and_returned_literally(
    bus: Bus, body: str
) -> None:
    sent = await bus.send("A", "B", body)
    assert sent.body == body
    assert [m.body for m in await bus.inbox("B")] == [body]
    answer = await bus.reply("B", sent.id, body)
    assert [m.body for m in await bus.take_unread("A", via="tool")] == [answer.body] == [body]


async def test_a_message_needs_at_least_one_recipient(bus: Bus) -> None:
    before = await bus.events()
    with pytest.raises(InvalidInput, match="at least one recipient"):
        await bus.send("A", [], "to nobody")
    assert await bus.events() == before


async def test_a_message_from_conductor_itself_cannot_be_replied_to(bus: Bus) -> None:
    note = await bus.send(None, "B", "your review was rejected")
    assert note.sender is None
    with pytest.raises(InvalidInput, match="came from conductor"):
        await bus.reply("B", note.id, "ok")
    assert [m.id for m in await bus.inbox("B")] == [note.id]  # still unread: nothing changed
