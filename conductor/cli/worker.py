"""`conductor worker` (run sessions for the runs of a shared database, on this host) and
`conductor workers` (who is working, and on what)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer
from rich.table import Table

from conductor.bus import work as work_queue
from conductor.cli.common import JsonOpt, app, open_store, out, print_json, run_async
from conductor.cli.plumbing import EXIT_INTERRUPTED
from conductor.models import Assignment, WorkerInfo
from conductor.store import shown
from conductor.workspace import locate

if TYPE_CHECKING:  # the worker brings the SDK (about a second): only `conductor worker` loads it
    from conductor.remote import Worker

SILENT_AFTER = 3 * work_queue.HEARTBEAT_SECONDS  # a worker not heard from for this long


@app.command("worker", rich_help_panel="Runs")
def worker(
    ctx: typer.Context,
    repo: Annotated[
        str,
        typer.Option("--repo", help="The git remote the runs push to (URL or path), to clone."),
    ],
    db: Annotated[
        str | None,
        typer.Option("--db", help="The runs' database (postgresql://...); else CONDUCTOR_DB."),
    ] = None,
    slots: Annotated[int, typer.Option("--slots", min=1, help="Sessions at once.")] = 1,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the clone and the sessions' trees live.")
    ] = Path("conductor-worker"),
    name: Annotated[str | None, typer.Option("--id", help="This worker's name.")] = None,
    lease: Annotated[
        float,
        typer.Option("--lease", min=1.0, help="Seconds a silent worker keeps its workstreams."),
    ] = work_queue.LEASE_SECONDS,
    allow_unsandboxed: Annotated[
        bool,
        typer.Option(
            "--allow-unsandboxed",
            help="Also run runs whose settings say sandbox = false (their sessions then run"
            " on this host as you).",
        ),
    ] = False,
) -> None:
    """Run sessions of the runs in a shared database on this host, `--slots` at a time,
    until Ctrl-C (which lets their workstreams go to another worker at once)."""

    from conductor.remote import Worker

    async def go() -> None:
        ws = await locate(Path.cwd(), db or ctx.obj.db)
        async with open_store(ws.location) as store:
            running = Worker(
                store,
                repo,
                Path(os.path.abspath(directory)),
                slots=slots,
                worker_id=name,
                lease_seconds=lease,
                allow_unsandboxed=allow_unsandboxed,
                say=lambda line: out.print(line, soft_wrap=True, markup=False, highlight=False),
            )
            out.print(
                f"worker {running.id} on {running.host}: {slots} slot(s), database"
                f" {shown(ws.location)}, clone of {repo} in {directory};"
                " waiting for work (Ctrl-C to stop)",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(_on_signals, running)
                await running.run()
                tg.cancel_scope.cancel()

    run_async(go)


async def _on_signals(running: Worker) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if running.stopping and signum == signal.SIGINT:
                os._exit(EXIT_INTERRUPTED)
            out.print("stopping: letting this worker's workstreams go (Ctrl-C again to exit)")
            await running.stop()


@app.command("workers", rich_help_panel="Runs")
def workers(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """The workers of this database: when each was last heard from, its slots, what it runs."""

    async def go() -> tuple[list[WorkerInfo], list[Assignment], float]:
        ws = await locate(Path.cwd(), ctx.obj.db)
        async with open_store(ws.location, create=False) as store:
            return (
                await work_queue.workers(store),
                await work_queue.every_assignment(store),
                work_queue.now(store),
            )

    found, assigned, now = run_async(go)
    running: dict[str, list[str]] = {}
    for a in assigned:
        if a.state == "taken" and a.worker is not None and (a.lease_until or 0) > now:
            running.setdefault(a.worker, []).append(f"{a.session} of {a.run_id}")
    if json_:
        print_json(
            [{**w.to_json(), "state": _state(w, now), "runs": running.get(w.id, [])} for w in found]
        )
        return
    if not found:
        out.print("no workers yet: start one with conductor worker --db URL --repo GIT_URL")
        return
    table = Table("worker", "host", "state", "heard from", "slots", "running", box=None)
    for w in found:
        table.add_row(
            w.id,
            w.host,
            _state(w, now),
            f"{max(0.0, now - w.heartbeat_at):.0f}s ago",
            str(w.slots),
            ", ".join(running.get(w.id, [])) or "-",
        )
    out.print(table)


def _state(w: WorkerInfo, now: float) -> str:
    if w.stopped_at is not None:
        return "stopped"
    return "silent" if now - w.heartbeat_at > SILENT_AFTER else "alive"
