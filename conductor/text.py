"""Text for one line: event summaries, transcript lines, table cells."""

from __future__ import annotations


def one_line(text: str, limit: int = 80) -> str:
    """Whitespace collapsed, cut at `limit` characters with an ellipsis."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
