"""Plain text: one line for event summaries, transcript lines and table cells; the lines
of a sync, as claude-swarm printed them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conductor.models import SyncResult


def one_line(text: str, limit: int = 80) -> str:
    """Whitespace collapsed, cut at `limit` characters with an ellipsis."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def sync_lines(result: SyncResult) -> list[str]:
    """claude-swarm's sync format: nothing at all when nothing is new."""
    if result.empty:
        return []
    lines = [f"[SYNC] {len(result.messages)} new message(s), {len(result.context)} new context"]
    for m in result.messages:
        lines.append(f'MSG #{m.id} from={m.sender or "conductor"}: "{m.body}"')
    for c in result.context:
        lines.append(f'CTX [{c.category.value}] by={c.author or "conductor"}: "{c.body}"')
    return lines
