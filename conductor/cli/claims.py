"""Who may touch what, by hand: path claims, and the git lock that serialises pushes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from conductor import dashboard
from conductor.bus import Bus
from conductor.cli.common import (
    JsonOpt,
    RunOpt,
    SessionOpt,
    acting_as,
    app,
    emit,
    fail,
    lock_app,
    out,
    print_json,
    say,
    with_bus,
)
from conductor.workspace import Workspace

# ------------------------------------------------------------------------------ claims


@app.command(rich_help_panel="Coordination")
def claim(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A file or directory in the repository.")],
    session: SessionOpt,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Claim a path for your session alone; a directory claim covers everything under it."""
    acting_as(ctx, session)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.claim(session, path, root=ws.path_root, cwd=ws.cwd)

    c = with_bus(ctx, go)
    emit(json_, c, f"{c.path} claimed by {c.session}")


@app.command(rich_help_panel="Coordination")
def unclaim(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A path you claimed.")],
    session: SessionOpt,
    _run: RunOpt = None,
) -> None:
    """Release your claim on a path."""
    acting_as(ctx, session)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.release(session, path, root=ws.path_root, cwd=ws.cwd)

    c = with_bus(ctx, go)
    say(f"{c.path} released by {c.session}")


@app.command(rich_help_panel="Coordination")
def claims(
    ctx: typer.Context,
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Only this session's.")
    ] = None,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Every claim of the run."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.claims(session)

    found = with_bus(ctx, go)
    if json_:
        print_json([c.to_json() for c in found])
    elif not found:
        say("no claims")
    else:
        out.print(dashboard.claims_table(found))


# ------------------------------------------------------------------------------ lock


@lock_app.command("show")
def lock_show(ctx: typer.Context, _run: RunOpt = None, json_: JsonOpt = False) -> None:
    """Who holds the git lock, and until when."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.lock()

    lease = with_bus(ctx, go)
    if json_:
        print_json(lease.to_json() if lease else None)
    else:
        out.print(dashboard.lock_text(lease))


@lock_app.command("release")
def lock_release(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Required: it ends someone's lease.")
    ] = False,
    _run: RunOpt = None,
) -> None:
    """Force-release the git lock (for a holder that is stuck, not dead: dead ones expire)."""
    acting_as(ctx, None)
    if not force:
        fail("releasing someone else's lock needs --force")

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.force_release_lock()

    lease = with_bus(ctx, go)
    say(f"released the lock held by {lease.holder}" if lease else "the lock was free")
