"""`conductor stop`: a run stopped from anywhere, not only by Ctrl-C on its supervisor (the
browser view, `conductor serve`, stops runs the same way: see cli/web.py)."""

from __future__ import annotations

import dataclasses
import getpass
import os
import socket
from pathlib import Path
from typing import Annotated

import anyio
import typer

from conductor.bus import Bus, open_run
from conductor.cli import hints
from conductor.cli.common import (
    Globals,
    JsonOpt,
    RunOpt,
    acting_as,
    app,
    err,
    open_store,
    print_json,
    run_async,
    say,
)
from conductor.models import RunState
from conductor.workspace import database_location, locate

# ------------------------------------------------------------------------------ stop

STOP_WAIT = 30.0  # seconds `conductor stop` waits for the run to stop, by default
STOP_POLL = 0.2  # how often it looks (another process's writes wake nothing here)


@dataclasses.dataclass
class Stopped:
    """What `conductor stop` saw: the run, the stop it asked (its event id), who supervised
    the run, and the run's state when it stopped waiting ("" when it did not wait)."""

    run: str
    asked: int
    supervisor: str
    state: str
    stopped: bool  # the run is no longer active (False: not waited for, or not in time)


def _asker() -> str:
    """Who asks, as the run's history will say: the user on this host."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a container)
        user = f"uid {os.getuid()}"
    return f"{user} on {socket.gethostname()} (conductor stop)"


async def _ask_and_wait(bus: Bus, *, by: str, why: str, wait: float) -> Stopped:
    lease = await bus.supervisor()
    asked = await bus.ask_stop(by, why)
    holder = lease.holder if lease is not None else "its supervisor"
    with anyio.move_on_after(wait):
        while True:
            run = await bus.refresh()
            if run.state is not RunState.ACTIVE or await bus.supervisor() is None:
                return Stopped(bus.run_id, asked, holder, await bus.seen_state(), True)
            await anyio.sleep(STOP_POLL)
    return Stopped(bus.run_id, asked, holder, await bus.seen_state(), False)


@app.command("stop", rich_help_panel="Runs")
def stop(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="The run (default: the newest).")] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", help="Seconds to wait for the run to stop.", min=0.0, metavar="SECONDS"
        ),
    ] = STOP_WAIT,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Ask for the stop and return at once.")
    ] = False,
    why: Annotated[
        str, typer.Option("--why", help="Why, for the run's history.", metavar="TEXT")
    ] = "",
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Stop a run whose supervisor runs elsewhere (another terminal, another host): as Ctrl-C
    on it would, its sessions are interrupted and the run is left interrupted, to continue
    with conductor resume. Waits until it has stopped (--wait), unless --no-wait."""
    g: Globals = ctx.obj
    if run is not None:
        g.run = run
    acting_as(ctx, None)  # a supervised session does not stop its own run

    async def go() -> Stopped:
        ws = await locate(Path.cwd(), g.db)
        async with open_store(ws.location, create=False) as store:
            bus = await open_run(store, g.run)
            return await _ask_and_wait(bus, by=_asker(), why=why, wait=0.0 if no_wait else wait)

    stopped = run_async(go)
    resume = hints.command("resume", stopped.run, db=database_location(g.db) if g.db else None)
    if json_:
        print_json({**dataclasses.asdict(stopped), "resume": resume})
    elif no_wait:
        say(
            f"stop asked of run {stopped.run} ({stopped.supervisor}): it stops within a few"
            f" seconds; then continue with: {resume}"
        )
    elif stopped.stopped and stopped.state == RunState.FINISHED.value:
        say(f"run {stopped.run} finished before it could stop: nothing to resume")
    elif stopped.stopped:
        say(f"run {stopped.run} stopped, {stopped.state}: continue with: {resume}")
    else:
        err.print(
            f"run {stopped.run} has not stopped within {wait:g} s ({stopped.supervisor} was"
            f" asked): conductor status shows when it does",
            soft_wrap=True,
            markup=False,
        )
    if not (stopped.stopped or no_wait):
        raise typer.Exit(1)
