"""How a run ended: one outcome per workstream, and the run's summary the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from conductor.costs import Spend
from conductor.errors import ConductorError


@dataclass
class Outcome:
    """How one workstream ended, for the summary."""

    id: str
    state: str = "waiting"  # merged, failed, budget, skipped, interrupted
    detail: str = ""
    turns: int = 0
    cost_usd: float = 0.0
    review_rounds: int = 0
    commits: int = 0
    merge: str = ""
    nudges: int = 0  # prompts that found nothing to review, in a row


@dataclass
class RunSummary:
    run_id: str
    integration_branch: str
    integration_head: str
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False
    # What the sessions that are not workstreams spent: the planner, agent reviewers.
    others: dict[str, Spend] = field(default_factory=dict)

    tampered: str = ""  # why the integration branch cannot be trusted, if it cannot
    fault: str = ""  # what the machine did that stopped the run (disk full, ...), if it did
    ceiling: float = 0.0  # the cost ceiling (max_cost) the run stopped at, if it did

    @property
    def ok(self) -> bool:
        return not self.tampered and all(o.state == "merged" for o in self.outcomes)

    @property
    def cost_usd(self) -> float:
        return sum(o.cost_usd for o in self.outcomes) + sum(
            s.cost_usd for s in self.others.values()
        )


class NothingToResume(ConductorError):
    """`conductor resume` of a run that finished with everything merged: not a failure."""
