"""What a timeline is made of: lanes of phases, arrows for messages, marks, the run's state
changes; and the `Timeline` itself, with how much of a long run it leaves out (the fold keeps
a bounded number of messages and marks, and merges phases too short to see)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Phase:
    kind: str  # one of PHASES (of a merged phase: the kind it spent the most time in)
    start: float
    end: float
    what: str  # in words, for its tooltip
    # A phase standing for several too short to draw apart: how many, and the time spent in
    # each kind (empty for a phase of its own: all its time is its kind's).
    merged: int = 1
    times: tuple[tuple[str, float], ...] = ()

    def kind_times(self) -> dict[str, float]:
        return dict(self.times) if self.times else {self.kind: self.end - self.start}


@dataclass(frozen=True)
class Arrow:
    """A message from one session to another: sent, and read (None: never read)."""

    message_id: int
    sender: str
    recipient: str
    sent_at: float
    read_at: float | None
    text: str
    review: bool  # a review's request or verdict, carried as a message


@dataclass(frozen=True)
class Mark:
    session: str
    at: float
    kind: str  # merged, rejected, check-failed, conflict, refused, died
    what: str


@dataclass
class Lane:
    session: str
    phases: list[Phase] = field(default_factory=list)


@dataclass(frozen=True)
class RunMoment:
    """The run moved to `state` (interrupted, active again on a resume, finished, ...)."""

    at: float
    state: str
    what: str


@dataclass(frozen=True)
class Timeline:
    start: float
    end: float
    lanes: dict[str, Lane]  # in the order sessions were first seen
    arrows: list[Arrow]  # the last ones sent (`messages_not_shown` more before them)
    marks: list[Mark]  # the last ones (`marks_not_shown` more before them)
    ended_at: float | None  # when the run last moved to a state other than active
    verdicts: dict[int, str]  # review id -> approved or rejected (a row later says superseded)
    moments: list[RunMoment] = field(default_factory=list)  # the run's state changes
    messages_not_shown: int = 0  # messages between sessions older than those kept
    reviews_not_shown: int = 0  # review messages older than those kept
    marks_not_shown: int = 0
    phases_merged: int = 0  # phases drawn inside others, too short to draw apart
