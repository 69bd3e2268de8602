"""`conductor report RUN`: a run as one self-contained HTML file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import anyio
import typer

from conductor.bus import Bus, open_run
from conductor.cli.common import RunOpt, app, fail, open_store, say, with_bus
from conductor.cli.plumbing import failure_line
from conductor.workspace import Workspace, ensure_state_dir, locate

TO_STDOUT = "-"


@app.command("report", rich_help_panel="Watch")
def report(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="The run (default: the newest).")] = None,
    out_: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help="Where to write it, or - for stdout (default: .conductor/reports/RUN.html in"
            " the repository; outside one, RUN.html here).",
            show_default=False,
        ),
    ] = None,
    _run: RunOpt = None,
) -> None:
    """Write a run as one HTML file that opens offline (summary, a timeline of its sessions,
    cost, reviews, failed checks), and print where it is."""
    if run is not None:
        ctx.obj.run = run
    from conductor.report import render_report, write_file

    async def go(bus: Bus, ws: Workspace) -> tuple[str, Workspace, str]:
        return await render_report(bus), ws, bus.run_id

    html, ws, run_id = with_bus(ctx, go)
    if out_ == TO_STDOUT:
        sys.stdout.write(html)
        return
    path = Path(out_) if out_ else default_report_path(ws, run_id)
    try:
        write_file(html, path)
    except OSError as e:
        fail(f"cannot write the report to {path}: {e.strerror or e}")
    say(str(path))


def default_report_path(ws: Workspace, run_id: str) -> Path:
    """`.conductor/reports/RUN.html` in the repository (its state folder made, ignored by
    git, if it was not there); outside a repository, `RUN.html` in the current directory."""
    from conductor.report import report_path

    if ws.repo_root is None:
        return ws.cwd / f"{run_id}.html"
    ensure_state_dir(ws.repo_root)
    return report_path(ws.repo_root, run_id)


async def write_run_report(run_id: str, db: str | None) -> Path:
    """The report of a run that has just ended, written where `conductor report` writes it."""
    from conductor.report import write_report

    ws = await locate(Path.cwd(), db)
    async with open_store(ws.location, create=False) as store:
        bus = await open_run(store, run_id)
        return await write_report(bus, default_report_path(ws, run_id))


def run_report(run_id: str, db: str | None) -> tuple[Path | None, str]:
    """(where the run's report is, "") or (None, why it could not be written). For the end of
    `conductor run` and `resume`: a report that cannot be written never fails the run."""
    try:
        return anyio.run(write_run_report, run_id, db), ""
    except Exception as e:  # whatever it is, the run's outcome stands: say it, go on
        why = failure_line(e) or (f"{e.strerror}" if isinstance(e, OSError) else repr(e))
        return None, " ".join(str(why).split())
