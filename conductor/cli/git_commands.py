"""Git commands for sessions: commit with the session prefix, push under the lock, pull,
and pass-through status/diff/log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from conductor import actions, gitops
from conductor.bus import Bus
from conductor.cli.common import (
    SessionOpt,
    acting_as,
    app,
    run_async,
    say,
    with_bus,
)
from conductor.workspace import Workspace

# ------------------------------------------------------------------------------ git


@app.command(rich_help_panel="Git")
def commit(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Commit message (prefixed with [Session X]).")],
    session: SessionOpt,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Stage every change first.")] = False,
) -> None:
    """Commit what is staged as `[Session X] message`."""
    acting_as(ctx, session)

    async def go(bus: Bus, ws: Workspace) -> str:
        return await actions.commit(bus, session, text, ws.cwd, stage_all=all_)

    sha = with_bus(ctx, go)
    say(f"[Session {session}] {text} ({sha[:12]})")


@app.command(rich_help_panel="Git")
def push(
    ctx: typer.Context,
    session: SessionOpt,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the lock.")] = 60.0,
) -> None:
    """Take the git lock, fetch, rebase, push, release."""
    acting_as(ctx, session)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await actions.push(bus, session, ws.cwd, wait_seconds=wait)

    result = with_bus(ctx, go)
    how = "rebased and pushed" if result.rebased else "pushed"
    say(f"{how} {result.branch} to {result.remote} at {result.commit[:12]}")


@app.command(rich_help_panel="Git")
def pull(ctx: typer.Context, session: SessionOpt) -> None:
    """Fetch and rebase onto the upstream (aborted cleanly on conflict)."""
    acting_as(ctx, session)

    async def go(bus: Bus, ws: Workspace) -> str:
        return await actions.pull(bus, session, ws.cwd)

    say(f"up to date at {with_bus(ctx, go)[:12]}")


def _git_passthrough(args: list[str]) -> None:
    async def go() -> Any:
        return await gitops.git(args, Path.cwd(), check=False)

    result = run_async(go)
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.write(result.stderr)
    raise typer.Exit(result.returncode)


@app.command("git-status", rich_help_panel="Git")
def git_status() -> None:
    """git status, short form."""
    _git_passthrough(["status", "--short", "--branch"])


@app.command(
    "git-diff",
    rich_help_panel="Git",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def git_diff(ctx: typer.Context) -> None:
    """git diff, with any of its arguments (e.g. --staged)."""
    _git_passthrough(["diff", *ctx.args])


@app.command("git-log", rich_help_panel="Git")
def git_log(count: Annotated[int, typer.Option("-n", help="How many commits.")] = 20) -> None:
    """git log, one line per commit."""
    _git_passthrough(["log", "--oneline", "--decorate", f"-n{count}"])
