"""What the turn going on has cost so far, at list price: the live view's estimate (`~`)
between a turn's start and its result, which then says the real cost. The list prices
themselves are `conductor.costs`' (the run's cost ceiling and estimate read them too)."""

from __future__ import annotations

from conductor.costs import usage_cost

__all__ = ["usage_cost"]
