"""What a plan may cost, before it runs: a range in dollars from the plan, the settings and
the models' list prices (`conductor.costs`).

Nobody knows beforehand how many API calls a workstream takes, so the range rests on
assumptions, stated with it (`Estimate.assumptions`) rather than hidden in it:
- every API call is priced as a typical Claude Code call: TYPICAL_CALL's tokens (fresh
  input written to the cache, the conversation read from it, output);
- the low end is a workstream done in TYPICAL_CALLS calls, reviewed once in
  TYPICAL_REVIEW_CALLS (an agent or a peer; a person or `auto` costs nothing);
- the high end is every session using its `max_turns` calls (capped, per session, by
  `max_usd_per_session`) and REVIEW_ROUNDS rounds of review, each up to `max_turns`;
- the planner's cost is what it spent (nothing when the plan was given).
Both ends are capped by the run's hard ceiling (`max_cost`), which the run holds to however
the work goes (give or take the API call each live session has in flight).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conductor.config import Config
from conductor.costs import Spend, list_price, usage_cost
from conductor.models import ReviewPolicy
from conductor.plan import Plan
from conductor.session import author_model, reviewer_model

# A typical API call of a Claude Code session: what it sends fresh (and writes to the cache),
# what it reads of its conversation from the cache, and what it writes back.
TYPICAL_CALL = {
    "input_tokens": 500,
    "cache_creation_input_tokens": 3_000,
    "cache_read_input_tokens": 25_000,
    "output_tokens": 600,
}
TYPICAL_CALLS = 40  # API calls a workstream's session takes, typically (the low end)
TYPICAL_REVIEW_CALLS = 10  # API calls of one review by an agent or a peer
REVIEW_ROUNDS = 3  # rounds of review at the high end (a rejection, a fix, again)
DEFAULT_MODEL = "sonnet"  # what an empty `model` is priced as (the CLI's default model)


@dataclass(frozen=True)
class Estimate:
    """A plan's cost as a range in dollars, and what it assumes."""

    low: float
    high: float
    calls_low: int  # API calls, in all, at each end
    calls_high: int
    assumptions: list[str] = field(default_factory=list)
    capped_by: str = ""  # the run's limit that caps the high end, if one does

    def to_json(self) -> dict[str, Any]:
        return {
            "low_usd": round(self.low, 4),
            "high_usd": round(self.high, 4),
            "calls_low": self.calls_low,
            "calls_high": self.calls_high,
            "capped_by": self.capped_by or None,
            "assumptions": self.assumptions,
        }


def call_cost(model: str) -> tuple[float, str]:
    """(dollars, the model priced) of a typical API call on `model`; an empty or unknown
    model is priced as DEFAULT_MODEL."""
    priced = model if model and list_price(model) is not None else DEFAULT_MODEL
    cost = usage_cost(priced, TYPICAL_CALL)
    assert cost is not None  # DEFAULT_MODEL has a list price
    return cost, priced


def estimate(plan: Plan, config: Config, planner: Spend | None = None) -> Estimate:
    """The cost of running `plan` under `config`; `planner`: what planning spent (None: the
    plan was given, nothing was planned)."""
    low = high = 0.0
    calls_low = calls_high = 0
    priced: set[str] = set()
    policy = ReviewPolicy(config.review)
    reviewed = policy in (ReviewPolicy.AGENT, ReviewPolicy.PEER)
    for workstream in plan.workstreams:
        model = author_model(config, workstream.model) or ""
        per_call, name = call_cost(model)
        priced.add(name)
        low += TYPICAL_CALLS * per_call
        high += min(config.max_turns * per_call, config.max_usd_per_session)
        calls_low += TYPICAL_CALLS
        calls_high += config.max_turns
        if reviewed:
            # An agent reviewer's model (never the author's with cross_review); a peer's own.
            reviewer = (
                reviewer_model(config, model or None) or ""
                if policy is ReviewPolicy.AGENT
                else model
            )
            per_review, name = call_cost(reviewer)
            priced.add(name)
            low += TYPICAL_REVIEW_CALLS * per_review
            high += REVIEW_ROUNDS * min(config.max_turns * per_review, config.max_usd_per_session)
            calls_low += TYPICAL_REVIEW_CALLS
            calls_high += REVIEW_ROUNDS * config.max_turns
    if planner is not None:
        low += planner.cost_usd
        high += planner.cost_usd
        planning = f"planning: ${planner.cost_usd:.2f}, what the planner spent"
    else:
        planning = "planning: nothing, the plan was given (--plan)"
    # Only the hard ceiling caps it: past max_usd_per_run, sessions still wrap up.
    limit = config.max_cost or float("inf")
    capped_by = f"max_cost ${config.max_cost:.2f}" if config.max_cost else ""
    capped = high > limit
    tokens = TYPICAL_CALL
    assumptions = [
        "an API call: {:,} tokens in ({:,} written to the cache, {:,} read from it),"
        " {:,} out, at list price ({})".format(
            tokens["input_tokens"]
            + tokens["cache_creation_input_tokens"]
            + tokens["cache_read_input_tokens"],
            tokens["cache_creation_input_tokens"],
            tokens["cache_read_input_tokens"],
            tokens["output_tokens"],
            ", ".join(f"{m} ${call_cost(m)[0]:.3f}" for m in sorted(priced)),
        ),
        f"low: {TYPICAL_CALLS} calls per workstream"
        + (f", one review of {TYPICAL_REVIEW_CALLS} calls" if reviewed else ", no agent review"),
        f"high: max_turns ({config.max_turns}) calls per session, at most"
        f" max_usd_per_session (${config.max_usd_per_session:.2f}) each"
        + (f", {REVIEW_ROUNDS} review rounds" if reviewed else ""),
        planning,
    ]
    if capped:
        assumptions.append(f"the high end is the run's limit, {capped_by}")
    return Estimate(
        low=min(low, limit),
        high=min(high, limit),
        calls_low=calls_low,
        calls_high=calls_high,
        assumptions=assumptions,
        capped_by=capped_by if capped else "",
    )
