"""What the turn going on has cost so far, at list price: the live view's estimate (`~`)
between a turn's start and its result, which then says the real cost."""

from __future__ import annotations

import re
from collections.abc import Mapping

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


def usage_cost(model: object, usage: object) -> float | None:
    """What one API response's `usage` (as an assistant message carries it) costs at the
    list price of `model`; None when there is no usage or the model's price is not known.

    The CLI writes an assistant message as each content block ends, with the usage the API
    had reported by then: the input and cache tokens in full, the output tokens only as far
    as the stream had counted them (often 1). So this is a floor; the turn's result says the
    real cost."""
    if not isinstance(usage, Mapping) or not usage:
        return None
    found = next((p for p in _PRICES if p[0].search(str(model or "").lower())), None)
    if found is None:
        return None
    per_in, per_out = found[1] / 1e6, found[2] / 1e6
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
