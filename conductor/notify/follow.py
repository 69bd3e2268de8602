"""The notifications of one run: followed from its events while it goes on, delivered beside
it, each once.

Started as a task in the process that supervises the run (`Notifier.run`). The follower
reads the run's events with a cursor, through the bus, waking on every write
(`wait_for_change`); it makes notifications of those that need a person (what.py) and only
queues them, one queue per receiver. Each receiver delivers from its own queue in its own
task, one at a time and in order, each delivery bounded by its timeout (deliver.py): a
receiver that hangs or fails holds up neither the run, nor the follower, nor the other
receiver. When the run ends, `ended` is set: the follower reads once more (the run's end is
among it), and the queues get `grace` seconds to empty; what is left then is said, not
waited for.

Once only. Every delivery is recorded as an event, `notify.sent` (or `notify.failed`, given
up on: not tried again), naming the event the notification was made of and the receiver.
A supervisor that starts (a new run, or `conductor resume` after a stop, a crash or a
SIGKILL) reads the run's events from the first, and sends only what no such event says was
handled and no later event answered (a review decided, a session no longer blocked: see
`what.answers`); the run's own earlier end is never sent again (it is being resumed). So
whenever the process dies, nothing still waiting for a person is lost, and nothing recorded
goes twice. What can go twice is a delivery in flight (or done and not yet recorded) at the
instant of death: at most one per receiver. That is why a notification carries its
`event_id`. What can be lost is the end of a run whose process died before delivering it
(a SIGKILLed supervisor records no end at all); the next supervisor's end is sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from conductor.bus import Bus, open_run
from conductor.events import EventKind
from conductor.events.payloads import NotifyDelivered
from conductor.models import Event
from conductor.notify.deliver import DeliveryFailed, Receiver
from conductor.notify.what import Notification, RunFacts, Wording, answers, notification_of
from conductor.readmodel.words import printable
from conductor.store import Store

PAGE = 500  # events per read
WAIT = 1.0  # the longest wait for a write before reading anyway (another process's)
SPACING = 0.2  # the shortest time between two reads: a busy run is read in batches
GRACE = 5.0  # seconds the run's end waits at most for what is still to be delivered
DELIVERED = frozenset({EventKind.NOTIFY_SENT, EventKind.NOTIFY_FAILED})
# The kinds that can make or answer a notification: every other event only moves the cursor.
READ_KINDS = frozenset(
    {
        EventKind.REVIEW_REQUESTED,
        EventKind.REVIEW_APPROVED,
        EventKind.REVIEW_REJECTED,
        EventKind.SESSION_UPDATED,
        EventKind.RUN_STATE,
        *DELIVERED,
    }
)

Say = Callable[[str], None]  # a line for the person watching the run


@dataclass
class _Queue:
    receiver: Receiver
    send: MemoryObjectSendStream[Notification]
    receive: MemoryObjectReceiveStream[Notification]
    busy: bool = False


@dataclass
class Follower:
    """The fold of a run's events into what is still to be sent: pure, no I/O."""

    run: RunFacts
    wording: Wording
    kinds: frozenset[str]  # the notifications asked for ([notify] `on`)
    history_end: int = 0  # the last event before this process began supervising
    cursor: int = 0
    handled: set[tuple[int, str]] = field(default_factory=set)  # (event id, receiver)
    pending: list[Notification] = field(default_factory=list)  # made, not yet queued

    def fold(self, event: Event) -> None:
        self.cursor = max(self.cursor, event.id)
        if event.kind not in READ_KINDS:
            return
        if event.kind in DELIVERED:
            done = NotifyDelivered.from_json(event.payload or {})
            self.handled.add((done.event_id, done.receiver))
            return
        if self.pending:
            self.pending = [n for n in self.pending if not answers(event, n)]
        made = notification_of(event, self.run, self.wording)
        if made is None or made.kind not in self.kinds:
            return
        if made.kind.startswith("run.") and event.id <= self.history_end:
            return  # an earlier end of the run this process now supervises again
        self.pending.append(made)

    def take(self, receiver: str) -> list[Notification]:
        """What `receiver` is still to get of the pending notifications."""
        return [n for n in self.pending if (n.event_id, receiver) not in self.handled]


class Notifier:
    """The follower and a delivery task per receiver, for one run (see the module)."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        receivers: Sequence[Receiver],
        *,
        wording: Wording,
        kinds: Sequence[str],
        history_end: int = 0,
        say: Say = lambda line: None,
        grace: float = GRACE,
    ) -> None:
        """`history_end`: the last event of the run before this process took it (0 for a
        new run): an end of the run up to it is an earlier supervisor's."""
        self.store = store
        self.history_end = history_end
        self.run_id = run_id
        self.wording = wording
        self.kinds = frozenset(kinds)
        self.say = say
        self.grace = grace
        self.queues: list[_Queue] = []
        for receiver in receivers:
            send, receive = anyio.create_memory_object_stream[Notification](math.inf)
            self.queues.append(_Queue(receiver, send, receive))
        self.bus: Bus | None = None
        self.follower: Follower | None = None
        self.unread_reported = False

    async def run(self, ended: anyio.Event) -> None:
        """Follow and deliver until `ended` is set; then read once more and give what is left
        `grace` seconds. Returns by then; raises nothing into the run."""
        try:
            async with anyio.create_task_group() as tg:
                for queue in self.queues:
                    tg.start_soon(self._deliveries, queue)
                async with anyio.create_task_group() as following:
                    following.start_soon(self._follow)
                    await ended.wait()
                    following.cancel_scope.cancel()
                tg.cancel_scope.deadline = anyio.current_time() + self.grace
                await self._read_or_say()  # the run's end, and whatever came with it
                for queue in self.queues:
                    queue.send.close()  # each delivery task ends once its queue is empty
            left = sum(q.busy + q.receive.statistics().current_buffer_used for q in self.queues)
            if left:
                self.say(f"notifications: {left} not delivered within {self.grace:g}s of the end")
        except Exception as e:  # whatever it was, it must not end the run
            self.say(f"notifications stopped ({type(e).__name__}: {e}); the run goes on")
        finally:  # (cancelled too: a Ctrl-C during the grace)
            for queue in self.queues:
                queue.send.close()
                queue.receive.close()

    async def _follow(self) -> None:
        while True:
            await self._read_or_say()
            if self.bus is None:  # not even opened: try again in a while
                await anyio.sleep(WAIT)
                continue
            await self.bus.wait_for_change(WAIT)
            await anyio.sleep(SPACING)  # what else comes with it, in the same read

    async def _read_or_say(self) -> None:
        """`_read`; a store that fails for a moment is said once, and read again later."""
        try:
            await self._read()
        except Exception as e:
            if not self.unread_reported:
                self.unread_reported = True
                self.say(f"notifications: cannot read the run's events ({e}); trying again")

    async def _read(self) -> None:
        """Fold what is new, then queue what each receiver is still to get."""
        bus, follower = await self._opened()
        while True:
            events = await bus.events(after=follower.cursor, limit=PAGE)
            for event in events:
                follower.fold(event)
            if len(events) < PAGE:
                break
        for queue in self.queues:
            for notification in follower.take(queue.receiver.name):
                queue.send.send_nowait(notification)
        follower.pending.clear()

    async def _opened(self) -> tuple[Bus, Follower]:
        if self.bus is None or self.follower is None:
            bus = await open_run(self.store, self.run_id)
            follower = Follower(RunFacts.of(bus.run), self.wording, self.kinds, self.history_end)
            self.follower = follower
            self.bus = bus
        return self.bus, self.follower

    async def _deliveries(self, queue: _Queue) -> None:
        async for notification in queue.receive:
            queue.busy = True
            await self._deliver(queue.receiver, notification)
            queue.busy = False

    async def _deliver(self, receiver: Receiver, notification: Notification) -> None:
        """One delivery, recorded either way; a failure is said, never raised."""
        error: str | None = None
        try:
            await receiver.deliver(notification)
        except DeliveryFailed as e:
            error = str(e)
        except Exception as e:  # a receiver's own bug must not stop the others
            error = printable(f"{type(e).__name__}: {e}")
        what = f"{notification.kind} (event {notification.event_id}) to the {receiver.name}"
        if error is not None:
            self.say(f"notification {what} failed: {error}")
        kind = EventKind.NOTIFY_SENT if error is None else EventKind.NOTIFY_FAILED
        done = NotifyDelivered(notification.event_id, receiver.name, notification.kind, error)
        summary = what + (f" failed: {error}" if error else "")
        try:
            assert self.bus is not None
            await self.bus.record(None, kind, summary, done)
        except Exception as e:
            self.say(f"notifications: cannot record {what} ({e}): it may go again on resume")
