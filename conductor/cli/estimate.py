"""A plan's estimate as `conductor run --plan-only` and `--confirm` print it: the range, and
what it assumes, one line each."""

from __future__ import annotations

from rich.console import Console

from conductor.run.estimate import Estimate
from conductor.run.launch import Launched


def estimate_lines(found: Estimate) -> list[str]:
    """The range first, then each assumption it rests on."""
    calls = f"{found.calls_low:,} to {found.calls_high:,} API calls"
    lines = [f"estimate: ${found.low:.2f} to ${found.high:.2f} ({calls}), assuming:"]
    lines += [f"  - {assumption}" for assumption in found.assumptions]
    return lines


def print_estimate(console: Console, launched: Launched) -> None:
    found = launched.estimate
    if found is None:
        return
    for line in estimate_lines(found):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
