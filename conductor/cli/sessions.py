"""Sessions by hand: start a run with named sessions (or write a conductor.toml), their
status, a status change, and a sync."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from conductor import gitops
from conductor.bus import Bus, create_run, parse_session_specs
from conductor.cli.common import (
    Globals,
    JsonOpt,
    RunOpt,
    SessionOpt,
    acting_as,
    app,
    emit,
    fail,
    open_store,
    print_json,
    run_async,
    say,
    text_from,
    with_bus,
)
from conductor.cli.plumbing import print_sessions
from conductor.errors import InvalidInput
from conductor.models import Session
from conductor.text import sync_lines
from conductor.workspace import Workspace, locate


@app.command(rich_help_panel="Coordination")
def init(
    ctx: typer.Context,
    sessions: Annotated[
        str | None,
        typer.Option("--sessions", help='Sessions to register, e.g. "A:frontend B:api".'),
    ] = None,
    goal: Annotated[
        str, typer.Option("--goal", help="What the run is for (- reads it from stdin).")
    ] = "",
    json_: JsonOpt = False,
) -> None:
    """Write a commented conductor.toml; with --sessions, start a run by hand instead."""
    acting_as(ctx, None)
    g: Globals = ctx.obj
    if sessions is None:
        say(f"wrote {run_async(_write_config)}: edit it to set checks, budgets and review policy")
        return
    goal = text_from(goal)

    async def go() -> tuple[Bus, list[Session]]:
        assert sessions is not None
        specs = parse_session_specs(sessions)
        ws = await locate(Path.cwd(), g.db, create=True)
        base_ref = base_commit = None
        if ws.tree_root is not None:
            base_ref = await gitops.current_branch(ws.tree_root)
            base_commit = await gitops.try_rev_parse("HEAD", ws.tree_root)
        async with open_store(ws.location) as store:
            bus = await create_run(
                store,
                goal=goal,
                repo_root=ws.repo_root,
                base_ref=base_ref,
                base_commit=base_commit,
                sessions=specs,
            )
            return bus, await bus.sessions()

    bus, made = run_async(go)
    if json_:
        print_json({"run": bus.run.to_json(), "sessions": [s.to_json() for s in made]})
        return
    say(f"run {bus.run.id}: {len(made)} sessions registered")
    print_sessions(made)


async def _write_config() -> Path:
    from conductor.config import write_default

    ws = await locate(Path.cwd())
    if ws.repo_root is None:
        raise InvalidInput("conductor init works inside a git repository")
    return write_default(ws.repo_root)


@app.command(rich_help_panel="Coordination")
def status(ctx: typer.Context, _run: RunOpt = None, json_: JsonOpt = False) -> None:
    """The run's sessions: status, branch, unread messages, note."""

    async def go(bus: Bus, ws: Workspace) -> tuple[list[Session], dict[str, int]]:
        return await bus.sessions(), await bus.unread_counts()

    sessions, unread = with_bus(ctx, go)
    if json_:
        print_json([{**s.to_json(), "unread": unread.get(s.name, 0)} for s in sessions])
        return
    print_sessions(sessions, unread)


@app.command(rich_help_panel="Coordination")
def update(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="pending, working, idle, blocked, review, done, failed, stopped"
        ),
    ] = None,
    note: Annotated[
        str | None,
        typer.Option("--note", help="What it is doing or waiting on (- reads it from stdin)."),
    ] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="The branch it works on.")] = None,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Change a session's status, note or branch."""
    acting_as(ctx, session)
    if status is None and note is None and branch is None:
        fail("nothing to update: give --status, --note or --branch")
    if note is not None:
        note = text_from(note)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.update(session, status=status, note=note, branch=branch)

    s = with_bus(ctx, go)
    emit(json_, s, f"{s.name}: {s.status.value}" + (f" — {s.note}" if s.note else ""))


@app.command(rich_help_panel="Coordination")
def sync(
    ctx: typer.Context, session: SessionOpt, _run: RunOpt = None, json_: JsonOpt = False
) -> None:
    """New messages + new shared context + a heartbeat, in one call. Silent when nothing is new."""
    acting_as(ctx, session)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.sync(session)

    result = with_bus(ctx, go)
    if json_:
        print_json(result.to_json())
        return
    for line in sync_lines(result):
        say(line)
