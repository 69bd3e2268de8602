"""What the run's sessions spent, held against the run's budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conductor.costs import PLANNER, Spend, planner_spend
from conductor.session import TurnResult


class Ledger:
    """Session -> cost so far (the planner, workers, reviewers): the run's budget is the sum.
    Kept as turns end; rebuilt from the events on resume, so budgets hold across resumes."""

    def __init__(self, limit_usd: float, spent: Mapping[str, float] | None = None) -> None:
        self.limit_usd = limit_usd
        self.spent: dict[str, float] = dict(spent or {})

    @classmethod
    def for_new_run(cls, limit_usd: float, spec: Mapping[str, Any] | None) -> Ledger:
        """A run that starts now has spent what its plan cost."""
        planner = planner_spend(spec)
        return cls(limit_usd, {PLANNER: planner.cost_usd} if planner is not None else {})

    def restore(self, spent: Mapping[str, Spend]) -> None:
        """A resumed run has spent what the store says each session spent."""
        self.spent = {n: s.cost_usd for n, s in spent.items()}

    def account(self, name: str, result: TurnResult) -> None:
        self.spent[name] = self.spent.get(name, 0.0) + result.cost_usd

    def over_budget(self) -> bool:
        """The whole run's spend: planner, workers, reviewers."""
        return sum(self.spent.values()) >= self.limit_usd

    def as_spends(self) -> dict[str, Spend]:
        """What this ledger knows, for a summary the store cannot give (a failing machine)."""
        return {n: Spend(0, c) for n, c in self.spent.items()}
