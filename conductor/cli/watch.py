"""Looking at runs from the store: `runs`, `show`, `logs [-f]`, a session's `transcript`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer

from conductor import dashboard
from conductor.bus import Bus, open_run
from conductor.cli.common import (
    Globals,
    JsonOpt,
    RunOpt,
    app,
    print_json,
    run_async,
    say,
    with_bus,
)
from conductor.costs import PLANNER, Spend, spend_of
from conductor.errors import InvalidInput
from conductor.models import Event, Run, RunState
from conductor.readmodel.runs import run_lines
from conductor.store import Store
from conductor.text import ago, one_line
from conductor.workspace import Workspace, locate

FOLLOW_POLL = 0.3


@app.command("runs", rich_help_panel="Watch")
def list_runs(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Every run: id, goal, state, sessions, cost, started."""
    g: Globals = ctx.obj

    async def go() -> list[dict[str, Any]]:
        ws = await locate(Path.cwd(), g.db)
        async with Store.open(ws.location, create=False) as store:
            rows = []
            for line in await run_lines(store):
                rows.append(
                    {
                        **line.run.to_json(),
                        "state": line.state,
                        "sessions": line.sessions,
                        "cost_usd": line.cost_usd,
                        "max_cost": await max_cost_of(Bus(store, line.run)),
                    }
                )
            return rows

    rows = run_async(go)
    if json_:
        print_json(rows)
        return
    if not rows:
        say("no runs yet")
    for r in rows:
        say(
            f"{r['id']}  {r['state']:<11} {r['sessions']:>2} sessions "
            f" {_spent(r['cost_usd'], r['max_cost'])}  "
            f"{ago(r['created_at'])}  {one_line(r['goal'], 60)}"
        )


@app.command("show", rich_help_panel="Watch")
def show_run(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="The run (default: the newest).")] = None,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """A run's summary: its state, and each session's status, turns and cost."""
    g: Globals = ctx.obj

    async def go() -> tuple[Run, str, list[dict[str, Any]], float | None]:
        ws = await locate(Path.cwd(), g.db)
        async with Store.open(ws.location, create=False) as store:
            bus = await open_run(store, run or g.run)
            state = await bus.seen_state()
            sessions = await bus.sessions()
            spent = spend_of(bus.run.spec, sessions)
            rows = []
            planner = spent.get(PLANNER)
            if planner is not None:  # it ran before the run existed: no session row
                rows.append(_row(PLANNER, "plans the run", "done", planner, None, ""))
            for s in sessions:
                mine = spent.get(s.name, Spend())
                rows.append(_row(s.name, s.workstream, s.status.value, mine, s.branch, s.note))
            return bus.run, state, rows, await max_cost_of(bus)

    found, state, rows, ceiling = run_async(go)
    total = sum(r["cost_usd"] for r in rows)
    if json_:
        print_json(
            {
                "run": {**found.to_json(), "state": state, "cost_usd": total, "max_cost": ceiling},
                "sessions": rows,
            }
        )
        return
    say(f"run {found.id} · {state} · {_spent(total, ceiling)} · {one_line(found.goal, 80)}")
    for r in rows:
        say(
            f"  {r['session']:<10} {r['status']:<8} {r['turns']:>3} turns  "
            f"${r['cost_usd']:.4f}  {r['branch'] or ''}  {one_line(r['note'], 50)}"
        )


async def max_cost_of(bus: Bus) -> float | None:
    """The run's hard cost ceiling (its own, or the last `resume --max-cost`); None: none."""
    from conductor.config import parse_config
    from conductor.run.ceiling import ceiling_of

    config = (bus.run.spec or {}).get("config")
    if not isinstance(config, dict):  # a run made by hand: no settings, no ceiling
        return None
    try:
        settings = parse_config(config, source=f"run {bus.run_id}")
    except InvalidInput:  # settings a newer conductor stored: no ceiling this one knows
        return None
    return await ceiling_of(bus, settings) or None


def _spent(cost: float, ceiling: float | None) -> str:
    """`$1.2300`, or `$1.2300 of $5.00` against the run's cost ceiling."""
    return f"${cost:.4f}" + (f" of ${ceiling:.2f}" if ceiling else "")


def _row(
    name: str, workstream: str, status: str, spend: Spend, branch: str | None, note: str
) -> dict[str, Any]:
    return {
        "session": name,
        "workstream": workstream,
        "status": status,
        "turns": spend.turns,
        "cost_usd": spend.cost_usd,
        "branch": branch,
        "note": note,
    }


def _line(e: Event) -> str:
    at = dashboard.clock(e.created_at)
    return f"{at} #{e.id:<5} {e.session or '-':<10} {e.kind:<20} {e.summary}"


@app.command("logs", rich_help_panel="Watch")
def logs(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="The run (default: the newest).")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Only this session.")
    ] = None,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """A run's events from the store, oldest first; with -f, follow until the run ends."""
    g: Globals = ctx.obj

    def emit(e: Event) -> None:
        if json_:
            print(json.dumps(e.to_json(), ensure_ascii=False, default=str))
        else:
            say(_line(e))  # what sessions wrote, its control characters escaped
        if follow:
            sys.stdout.flush()

    async def go() -> None:
        ws = await locate(Path.cwd(), g.db)
        async with Store.open(ws.location, create=False) as store:
            bus: Bus = await open_run(store, run or g.run)
            after = 0
            while True:
                for e in await bus.events(after=after, session=session):
                    emit(e)
                    after = e.id
                if not follow:
                    return
                current = await bus.refresh()
                if current.state is not RunState.ACTIVE:
                    for e in await bus.events(after=after, session=session):
                        emit(e)
                    return
                state = await bus.seen_state()
                if state != current.state.value:  # its supervisor is gone: nothing more comes
                    for e in await bus.events(after=after, session=session):
                        emit(e)
                    say(f"run {current.id} {state}")
                    return
                await anyio.sleep(FOLLOW_POLL)

    run_async(go)


@app.command(rich_help_panel="Watch")
def transcript(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """A session's conversation, rebuilt from the stored events."""

    async def go(bus: Bus, ws: Workspace) -> list[Event]:
        return await bus.events(session=session)

    events = with_bus(ctx, go)
    if json_:
        print_json([e.to_json() for e in events])
        return
    for line in dashboard.transcript_lines(events):
        say(line)
