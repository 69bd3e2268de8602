"""Plain text: one line for event summaries, transcript lines and table cells; the lines
of a sync, as claude-swarm printed them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conductor.models import Session, SyncResult

SESSION_COLUMNS = ("ID", "Workstream", "Status", "Branch", "Unread", "Last seen", "Note")


# C0 controls but tab and newline, DEL, C1 controls: what a terminal acts on instead of showing
# (an ANSI escape in a message body would recolour, move or retitle the reader's terminal).
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)] if c not in (9, 10)}
# What reorders or hides text as it is shown: bidi embeddings, overrides and isolates, the
# direction marks, zero-width spaces, invisible operators, the soft hyphen, Hangul fillers
# (blank letters: an "invisible" identifier), tag characters, the BOM; not the joiners,
# which emoji and many scripts need. A diff or a note holding them can read otherwise than it
# is ("Trojan Source", CVE-2021-42574): they are written out (`\u202e`).
_INVISIBLE = {
    c: f"\\u{c:04x}" if c <= 0xFFFF else f"\\U{c:08x}"
    for c in [
        *(0x00AD, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0),
        *(0x200B, 0x200E, 0x200F),
        *range(0x202A, 0x202F),
        *range(0x2060, 0x2065),
        *range(0x2066, 0x2070),
        *range(0xFFF9, 0xFFFC),
        *range(0xE0000, 0xE0080),
    ]
}
_CONTROLS.update(_INVISIBLE)


def escape_controls(text: str) -> str:
    """`text` with the characters a terminal would act on written out (`\\x1b`), so what
    someone else wrote (a message, a note, a diff) is shown, never executed by the terminal;
    and those that reorder or hide text (`escape_invisible`)."""
    return text.translate(_CONTROLS)


def escape_invisible(text: str) -> str:
    """`text` with what reorders or hides characters as shown written out (`\\u202e`): for
    a browser, which acts on no terminal control but does on these."""
    return text.translate(_INVISIBLE)


def one_line(text: str, limit: int = 80) -> str:
    """Whitespace collapsed, cut at `limit` characters with an ellipsis."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def sync_lines(result: SyncResult) -> list[str]:
    """claude-swarm's sync format: nothing at all when nothing is new. What sessions wrote is
    shown with its control characters escaped (`escape_controls`): an ANSI escape in a message
    body prints as `\\x1b[31m`, it does not recolour the reader's terminal."""
    if result.empty:
        return []
    lines = [f"[SYNC] {len(result.messages)} new message(s), {len(result.context)} new context"]
    for m in result.messages:
        lines.append(f'MSG #{m.id} from={m.sender or "conductor"}: "{m.body}"')
    for c in result.context:
        lines.append(f'CTX [{c.category.value}] by={c.author or "conductor"}: "{c.body}"')
    return [escape_controls(line) for line in lines]


def clock(ts: float) -> str:
    """A stored time as the local time of day, `HH:MM:SS`."""
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def ago(then: float | None, now: float | None = None) -> str:
    if then is None:
        return "never"
    seconds = max(0.0, (now or time.time()) - then)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def session_rows(
    sessions: Sequence[Session], unread: dict[str, int] | None = None
) -> list[tuple[str, ...]]:
    """The cells of the sessions table (`SESSION_COLUMNS`), for rich and for a pipe alike."""
    return [
        (
            s.name,
            s.workstream,
            s.status.value,
            s.branch or "",
            str((unread or {}).get(s.name, 0) or ""),
            ago(s.last_seen_at),
            s.note,
        )
        for s in sessions
    ]
