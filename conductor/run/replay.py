"""What a resumed run reads back from its events: pure functions, no I/O.

A supervisor that was stopped or killed left its state in the events: which turn a session
was in the middle of, which messages were handed to it since its last finished turn, which
reviews were decided and what the merge gate said last, and which commit each workstream
landed. Everything here takes the events (oldest first, as the store lists them) and reads
their payloads through the catalogue's parser, so a renamed key fails the type check, not a
resume.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from conductor.events import (
    EventKind,
    MergeGateOutcome,
    MessagesRead,
    PromptSent,
    ReviewDecided,
    SdkResult,
    parse_all,
)
from conductor.events.kinds import MERGE_OUTCOMES, REVIEW_VERDICTS
from conductor.models import Event

VERDICT_VIA = "verdict"  # how a verdict message is marked read when the supervisor relays it
WAKE_VIA = "wake"  # how messages are marked read when they wake a session with a new prompt


def last_finished_turn(events: Iterable[Event]) -> int:
    """The id of the last turn's end that was not an error (0: none). A turn cut short
    (Ctrl-C, an overloaded API the supervisor died waiting out) ends in an error result and
    still has its prompt to finish."""
    return max(
        (
            p.event.id
            for p in parse_all(events)
            if isinstance(p.payload, SdkResult) and not p.payload.is_error
        ),
        default=0,
    )


def interrupted_prompt(events: Sequence[Event]) -> Event | None:
    """The prompt of the turn the session was in the middle of, if it was in one."""
    after = last_finished_turn(events)
    prompts = [e for e in events if e.kind == EventKind.SESSION_PROMPT and e.id > after]
    return prompts[-1] if prompts else None


def owed_messages(events: Sequence[Event]) -> list[int]:
    """The messages handed to the session since its last finished turn, which it may not have
    seen: not those that woke it with the interrupted prompt (that prompt is sent again, and
    carries them), and not review verdicts (the gates act on those and tell the session)."""
    after = last_finished_turn(events)
    interrupted = interrupted_prompt(events)
    owed: list[int] = []
    for parsed in parse_all(events):
        read = parsed.payload
        if not isinstance(read, MessagesRead) or parsed.event.id <= after:
            continue
        carried = interrupted is not None and parsed.event.id < interrupted.id
        if read.via == WAKE_VIA and carried:
            continue
        if read.via == VERDICT_VIA:
            continue
        owed.extend(read.message_ids)
    return owed


def prompt_text(prompt: Event) -> str:
    """What a `session.prompt` event sent (its summary, for one recorded without the text)."""
    parsed = next(parse_all([prompt]), None)
    sent = parsed.payload if parsed is not None else None
    return (sent.prompt if isinstance(sent, PromptSent) else "") or prompt.summary


def interrupted_turn(prompt: Event) -> str:
    """What a re-attached session is told of the turn it was in the middle of."""
    return (
        "It stopped in the middle of your turn on the prompt below: your last steps may"
        " not have finished. Check `git status` and `git log` on your branch, then carry"
        " on.\n\n--- the prompt ---\n" + prompt_text(prompt)
    )


@dataclass
class Owed:
    """What a re-attached session is owed: the turn it was in, and messages it may not have
    seen. Nothing owed: it was between turns, and the gates carry on where they were."""

    interrupted: Event | None = None
    message_ids: list[int] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return self.interrupted is None and not self.message_ids


def owed_to(events: Sequence[Event]) -> Owed:
    """What a session's own events (`events`) say it is owed after its supervisor died."""
    return Owed(interrupted_prompt(events), owed_messages(events))


def landed_commits(events: Iterable[Event]) -> dict[str, str]:
    """The commit each workstream's last merge (or already-merged) outcome says landed."""
    landed: dict[str, str] = {}
    for parsed in parse_all(events):
        session = parsed.event.session
        if parsed.kind in (EventKind.MERGE_MERGED, EventKind.MERGE_ALREADY_MERGED) and session:
            assert isinstance(parsed.payload, MergeGateOutcome)
            landed[session] = parsed.payload.commit
    return landed


def review_rounds(events: Iterable[Event]) -> dict[str, int]:
    """Decided reviews per author."""
    rounds: dict[str, int] = {}
    for parsed in parse_all(events):
        if parsed.kind in REVIEW_VERDICTS and isinstance(parsed.payload, ReviewDecided):
            author = parsed.payload.requester
            rounds[author] = rounds.get(author, 0) + 1
    return rounds


@dataclass(frozen=True)
class LastMerge:
    """What the merge gate said last of a workstream, and the commits its last landing
    delivered (counted when it landed)."""

    status: str = ""  # a MergeStatus value: merged, conflict, ...
    commits: int = 0


def last_merges(events: Iterable[Event]) -> dict[str, LastMerge]:
    """Per session, the merge gate's last outcome (`merge.queued` is not one)."""
    merges: dict[str, LastMerge] = {}
    for parsed in parse_all(events):
        session = parsed.event.session
        if parsed.kind not in MERGE_OUTCOMES or not session:
            continue
        before = merges.get(session, LastMerge())
        commits = before.commits
        if parsed.kind == EventKind.MERGE_MERGED:
            assert isinstance(parsed.payload, MergeGateOutcome)
            commits = parsed.payload.commits
        merges[session] = LastMerge(parsed.kind.removeprefix("merge."), commits)
    return merges
