"""`conductor report RUN`: a run as one self-contained HTML file.

The summary, a timeline picture (SVG: a lane per session with its working, waiting, review and
merge phases, messages as arrows, merges, rejections and red checks as marks), cost per
session and role, review rounds with their verdicts, and the output of failed checks. It opens
offline: its stylesheet is inline and it refers to nothing outside itself.

Parts: `timeline` (the fold: events in, lanes/phases/arrows/marks out, as `parts`), `recent`
(the last messages, which are all a long run's report shows of them), `coarse` (phases too
short to see, merged), `gate` (the merge gate's outcomes and failed checks' output), `read`
(the run read through the bus, its events in pages), `svg` (the picture), `template` and
`page` (the document), `format` (times, money, escaping). A run of fifty thousand messages
makes a report of a few hundred kilobytes, folded in time linear in its events and in memory
that does not grow with them (bench/report_scale.py). `render_report` is what `conductor
serve` shows; `write_report` what the CLI and the end of `conductor run` write.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from conductor.bus import Bus
from conductor.report.page import render_page
from conductor.report.read import RunReport, read_report
from conductor.workspace import STATE_DIR

__all__ = [
    "REPORTS_DIR",
    "RunReport",
    "read_report",
    "render_page",
    "render_report",
    "report_path",
    "write_file",
    "write_report",
]

REPORTS_DIR = "reports"  # under the repository's .conductor/


async def render_report(bus: Bus, *, now: float | None = None) -> str:
    """The run of `bus` as one self-contained HTML document. `now`: where the timeline of a
    run still going on ends (default: its last event)."""
    return render_page(await read_report(bus, now=now))


def report_path(repo_root: Path, run_id: str) -> Path:
    """Where a run's report is written unless asked otherwise: `.conductor/reports/RUN.html`."""
    return repo_root / STATE_DIR / REPORTS_DIR / f"{run_id}.html"


async def write_report(bus: Bus, path: Path) -> Path:
    """Render the run's report and write it to `path` (`write_file`)."""
    return write_file(await render_report(bus), path)


def write_file(html: str, path: Path) -> Path:
    """`html` written to `path` (its folder made if missing), whole or not at all: a reader
    never finds half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
