"""The messages a report shows: the last ones sent, a bounded number of them, each with when
it was read. A run of fifty thousand messages makes a report of the last few hundred and a
count of the rest (`conductor logs RUN` has every one): the fold holds no more than it shows,
and neither the file nor the browser that opens it grows with the run.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from conductor.report.parts import Arrow

MESSAGES_SHOWN = 500  # messages between sessions drawn and listed, the last ones sent
REVIEWS_SHOWN = 200  # review requests and verdicts carried as messages, drawn apart


@dataclass
class _Sent:
    sender: str
    sent_at: float
    text: str
    review: bool
    read_at: float | None = None


class RecentMessages:
    """The last `limit` messages sent (one per recipient), in the order they were sent; an
    older one is let go, counted in `not_shown`, when a newer one comes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: OrderedDict[tuple[int, str], _Sent] = OrderedDict()
        self.not_shown = 0

    def sent(self, message_id: int, recipient: str, sent: _Sent) -> None:
        key = (message_id, recipient)
        if key in self.kept:
            return
        self.kept[key] = sent
        if len(self.kept) > self.limit:
            self.kept.popitem(last=False)
            self.not_shown += 1

    def read(self, message_id: int, recipient: str, at: float) -> None:
        """The recipient was handed it: the first time counts (one let go: nothing to do)."""
        sent = self.kept.get((message_id, recipient))
        if sent is not None and sent.read_at is None:
            sent.read_at = at

    def arrows(self) -> list[Arrow]:
        return [
            Arrow(mid, s.sender, recipient, s.sent_at, s.read_at, s.text, s.review)
            for (mid, recipient), s in self.kept.items()
        ]


class Messages:
    """Messages between sessions and review messages, each kind kept to its own bound (a flood
    of one never pushes the other out of the picture)."""

    def __init__(self, shown: int = MESSAGES_SHOWN, reviews: int = REVIEWS_SHOWN) -> None:
        self.plain = RecentMessages(shown)
        self.reviews = RecentMessages(reviews)

    def sent(
        self, message_id: int, sender: str, recipient: str, at: float, text: str, review: bool
    ) -> None:
        kept = self.reviews if review else self.plain
        kept.sent(message_id, recipient, _Sent(sender, at, text, review))

    def read(self, message_id: int, recipient: str, at: float) -> None:
        self.plain.read(message_id, recipient, at)
        self.reviews.read(message_id, recipient, at)

    def arrows(self) -> list[Arrow]:
        """Those kept, in the order they were sent."""
        arrows = self.plain.arrows() + self.reviews.arrows()
        arrows.sort(key=lambda a: (a.sent_at, a.message_id))
        return arrows
