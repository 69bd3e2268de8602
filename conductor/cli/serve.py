"""`conductor serve` (the browser view) and `conductor stop` (a run stopped from anywhere)."""

from __future__ import annotations
