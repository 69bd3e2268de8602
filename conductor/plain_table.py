"""A table drawn as rich draws it into a pipe, without loading rich.

Sessions run `conductor status` from Bash, where stdout is a pipe: no colours, nothing to
wrap. Loading rich for that is about a third of the command's time (~20 ms of imports), so
the simple case — plain ASCII cells that fit the width — is drawn here, byte for byte as
rich's `Table` (heavy head box, title on the left) draws it; `draw` answers None for
anything else and the caller hands the table to rich. `tests/test_plain_table.py` pins the
two together.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def pipe_width() -> int | None:
    """The width rich would draw at when stdout is not a terminal, or None when rich would
    treat it as one (colours, styles: rich must draw it). Rich's own rules: `TTY_COMPATIBLE`
    and `FORCE_COLOR` make a terminal of anything; the width is the first of stdin, stdout,
    stderr that is a terminal, overridden by `COLUMNS`, else 80."""
    environ = os.environ
    if environ.get("TTY_COMPATIBLE", "") == "1" or environ.get("FORCE_COLOR"):
        return None
    if sys.stdout.isatty():
        return None
    width = None
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        break
    columns = environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        width = int(columns)
    return width or 80


def _plain(cell: str) -> bool:
    # What rich measures and lays out exactly as its length: printable ASCII, no run of
    # spaces or space at either end (rich's wrapping may fold those).
    return cell.isascii() and cell.isprintable() and cell == cell.strip() and "  " not in cell


def draw(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], width: int
) -> str | None:
    """The table as rich prints it at `width` without colours, or None when rich has to
    decide something (a cell it would measure or fold differently, a table too wide)."""
    cells = [list(columns), *(list(row) for row in rows)]
    if not all(_plain(cell) for row in cells for cell in row) or not _plain(title):
        return None
    if any(len(row) != len(columns) for row in cells):
        return None
    widths = [max(len(row[i]) for row in cells) + 2 for i in range(len(columns))]
    total = sum(widths) + len(widths) + 1
    if total > width or len(title) > total:
        return None

    def rule(left: str, fill: str, cross: str, right: str) -> str:
        return left + cross.join(fill * w for w in widths) + right

    def line(edge: str, row: Sequence[str]) -> str:
        padded = (f" {cell:<{w - 2}} " for cell, w in zip(row, widths, strict=True))
        return edge + edge.join(padded) + edge

    lines = [
        title.ljust(total),
        rule("┏", "━", "┳", "┓"),
        line("┃", columns),
        rule("┡", "━", "╇", "┩"),
        *(line("│", row) for row in rows),
        rule("└", "─", "┴", "┘"),
    ]
    return "\n".join(lines) + "\n"
