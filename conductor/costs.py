"""What sessions cost, each turn counted once.

Claude Code's `ResultMessage.total_cost_usd` is not what a turn cost: it is the conversation's
running total in that CLI process (a session woken three times reports 1, 1+2, 1+2+3), and a
CLI resumed into a conversation starts from the total the previous process wrote into the
transcript when it exited cleanly (a `cost-state` line; a killed process writes none, so the
next one starts from the last clean exit's). Adding the totals up counted early turns again
and again. So each session's meter records a turn's cost as the rise over what its CLI had
reported (or restored) before, in the result event's payload under `cost_usd`; the store adds
each turn's figures to its session's columns as the result is recorded, and every view reads
them from one function here (`spend_of`), the same way.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conductor.events import COST_KEY, SdkResult
from conductor.models import Session

# The planner runs before its run exists, so what it spent is kept in the run's spec (stored
# with the run, in one transaction) and shown as a session of this name; no workstream may
# take the name (plan.RESERVED_IDS).
PLANNER = "planner"
COST_STATE = '"cost-state"'


def restored_total(transcript: Path | None) -> float:
    """The running total a CLI resumed from `transcript` starts from: its last `cost-state`."""
    if transcript is None:
        return 0.0
    total = 0.0
    try:
        # Only a regular file, never through a link: the session can write its config dir
        # (a FIFO there would block this read, a link would point it anywhere).
        if not stat.S_ISREG(os.lstat(transcript).st_mode):
            return 0.0
        with transcript.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if COST_STATE not in line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("type") == "cost-state":
                    total = _number(record.get("totalCostUSD"))
    except OSError:
        return 0.0
    return total


class CostMeter:
    """One CLI process's turns: each one's cost is the rise of its running total."""

    def __init__(self, restored: float = 0.0) -> None:
        self.reported = restored

    def turn(self, total: float | None) -> float:
        total = total or 0.0
        # Below what we took as its start, the CLI did not restore what we thought it did
        # (a transcript we could not read the same way): the total is then all this process's.
        # Never below zero: a transcript the session edited must not pay back its spend.
        rise = total - self.reported if total >= self.reported else total
        self.reported = total
        return max(rise, 0.0)


@dataclass(frozen=True)
class Spend:
    """What one session's turns added up to."""

    turns: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.turns + other.turns, self.cost_usd + other.cost_usd)

    def to_json(self) -> dict[str, Any]:
        return {"num_turns": self.turns, COST_KEY: self.cost_usd}


def planner_spend(spec: Mapping[str, Any] | None) -> Spend | None:
    """What the run's planner spent, from the run's spec (None: no planner, a --plan FILE)."""
    recorded = (spec or {}).get(PLANNER)
    if not isinstance(recorded, Mapping):
        return None
    read = SdkResult.from_json(recorded)  # kept with a turn result's keys
    return Spend(read.num_turns, read.cost_usd)


def spend_of(spec: Mapping[str, Any] | None, sessions: Iterable[Session]) -> dict[str, Spend]:
    """Session name -> its spend, over a run: the planner first (from the run's spec), then
    every session that has spent (workers, reviewers), from the turns and cost the store keeps
    on each session. Every view adds these same numbers."""
    spent: dict[str, Spend] = {}
    planner = planner_spend(spec)
    if planner is not None:
        spent[PLANNER] = planner
    for session in sessions:
        if session.turns or session.cost_usd:
            spent[session.name] = Spend(session.turns, session.cost_usd)
    return spent


def _number(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


# ------------------------------------------------------------------------------ list prices

# List prices in dollars per million tokens (input, output), the prices Claude Code works a
# turn's cost out from; the first pattern found in the model's id wins. A cache write costs
# 1.25 times input (twice for the hour-long cache), a cache read a tenth of it.
_PRICES: tuple[tuple[re.Pattern[str], float, float], ...] = (
    (re.compile(r"opus-4-(?:[5-9]|\d\d)(?!\d)"), 5.0, 25.0),
    (re.compile(r"opus"), 15.0, 75.0),
    (re.compile(r"sonnet"), 3.0, 15.0),
    (re.compile(r"haiku-[4-9]"), 1.0, 5.0),
    (re.compile(r"3-5-haiku"), 0.8, 4.0),
    (re.compile(r"haiku"), 0.25, 1.25),
)


def list_price(model: object) -> tuple[float, float] | None:
    """(input, output) dollars per million tokens of `model` (an id or an alias), or None
    when its price is not known."""
    found = next((p for p in _PRICES if p[0].search(str(model or "").lower())), None)
    return (found[1], found[2]) if found is not None else None


def usage_cost(model: object, usage: object) -> float | None:
    """What one API response's `usage` (as an assistant message carries it) costs at the
    list price of `model`; None when there is no usage or the model's price is not known.

    The CLI writes an assistant message as each content block ends, with the usage the API
    had reported by then: the input and cache tokens in full, the output tokens only as far
    as the stream had counted them (often 1). So this is a floor; the turn's result says the
    real cost."""
    if not isinstance(usage, Mapping) or not usage:
        return None
    price = list_price(model)
    if price is None:
        return None
    per_in, per_out = price[0] / 1e6, price[1] / 1e6
    written = _tokens(usage, "cache_creation_input_tokens")
    split = usage.get("cache_creation")
    hour = min(_tokens(split, "ephemeral_1h_input_tokens"), written)
    read = _tokens(usage, "cache_read_input_tokens")
    inputs = _tokens(usage, "input_tokens") + 1.25 * (written - hour) + 2.0 * hour + 0.1 * read
    return per_in * inputs + per_out * _tokens(usage, "output_tokens")


def _tokens(usage: object, key: str) -> int:
    if not isinstance(usage, Mapping):
        return 0
    value = usage.get(key)
    return value if isinstance(value, int) and value > 0 else 0
