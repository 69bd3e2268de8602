"""What the merge gate made of each reviewed commit, and the output of the checks that failed.

Pure, like the timeline: events in, `GateFold.outcomes` out. A `merge.check_failed` event
names the check that failed; its output is kept in the event when the gate recorded it there
(`output`), and otherwise is in what the session was told next (its next `session.prompt`,
which quotes the output in a fenced block): the fold takes it from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conductor.events import MERGE_OUTCOMES, EventKind, MergeGateOutcome, PromptSent, parse
from conductor.models import Event

OUTPUT_KEY = "output"  # the check's output in a check_failed event's payload, when kept there
FENCE = "```"
_OUTCOME_KINDS = frozenset(MERGE_OUTCOMES)  # the kinds of MergeGateOutcome


@dataclass
class GateOutcome:
    """One merge gate outcome of a session's reviewed commit."""

    session: str
    at: float
    outcome: str  # merged, already_merged, conflict, check_failed, foreign_paths, ...
    commit: str
    summary: str
    conflicts: list[str] = field(default_factory=list)
    foreign: dict[str, str] = field(default_factory=dict)  # path -> the workstream owning it
    check: str = ""
    output: str = ""  # a failed check's output

    @property
    def check_failed(self) -> bool:
        return self.outcome == "check_failed"


class GateFold:
    """Merge gate outcomes in order; a failed check's output found where it was kept."""

    def __init__(self) -> None:
        self.outcomes: list[GateOutcome] = []
        self.awaiting_output: dict[str, GateOutcome] = {}  # session -> its failed check

    def apply(self, event: Event) -> None:
        name = event.session
        if name is None:
            return
        if event.kind not in _OUTCOME_KINDS and not (
            event.kind == EventKind.SESSION_PROMPT and name in self.awaiting_output
        ):
            return  # nothing of the gate's: not parsed at all (most events of a long run)
        parsed = parse(event)
        if parsed is None:
            return
        payload = parsed.payload
        if isinstance(payload, MergeGateOutcome):
            stored = (event.payload or {}).get(OUTPUT_KEY)
            outcome = GateOutcome(
                name,
                event.created_at,
                parsed.kind.removeprefix("merge."),
                payload.commit,
                event.summary,
                list(payload.conflicts),
                dict(payload.foreign),
                payload.check or "",
                stored if isinstance(stored, str) else "",
            )
            self.outcomes.append(outcome)
            self.awaiting_output.pop(name, None)
            if parsed.kind == EventKind.MERGE_CHECK_FAILED and not outcome.output:
                self.awaiting_output[name] = outcome
        elif isinstance(payload, PromptSent) and name in self.awaiting_output:
            failed = self.awaiting_output.pop(name)
            failed.output = quoted_output(payload.prompt, failed.check)

    def failed_checks(self) -> list[GateOutcome]:
        return [o for o in self.outcomes if o.check_failed]


def quoted_output(prompt: str, check: str) -> str:
    """A check's output as a prompt quotes it: the fenced block after the check's name (the
    last fence closes it, so output with fences of its own stays whole); without one, the
    whole prompt, which is what the session was told of it."""
    after = prompt.find(check) if check else -1
    opening = prompt.find(FENCE + "\n", max(after, 0))
    closing = prompt.rfind("\n" + FENCE)
    if opening < 0 or closing < opening:
        return prompt.strip()
    return prompt[opening + len(FENCE) + 1 : closing]
