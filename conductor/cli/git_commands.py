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
    RunOpt,
    SessionOpt,
    acting_as,
    app,
    fail,
    run_async,
    say,
    text_from,
    with_bus,
)
from conductor.workspace import Workspace

# ------------------------------------------------------------------------------ git


@app.command(rich_help_panel="Git")
def commit(
    ctx: typer.Context,
    text: Annotated[
        str,
        typer.Argument(help="Commit message (prefixed with [Session X]); - reads it from stdin."),
    ],
    session: SessionOpt,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Stage every change first.")] = False,
    _run: RunOpt = None,
) -> None:
    """Commit what is staged as `[Session X] message`."""
    acting_as(ctx, session)
    text = text_from(text)

    async def go(bus: Bus, ws: Workspace) -> str:
        return await actions.commit(bus, session, text, ws.cwd, stage_all=all_)

    sha = with_bus(ctx, go)
    subject = text.strip().splitlines()[0]  # as git itself says it
    say(f"[Session {session}] {subject} ({sha[:12]})")


@app.command(rich_help_panel="Git")
def push(
    ctx: typer.Context,
    session: SessionOpt,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for the lock.")
    ] = 60.0,
    _run: RunOpt = None,
) -> None:
    """Take the git lock, fetch, rebase, push, release."""
    acting_as(ctx, session)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await actions.push(bus, session, ws.cwd, wait_seconds=wait)

    result = with_bus(ctx, go)
    how = "rebased and pushed" if result.rebased else "pushed"
    say(f"{how} {result.branch} to {result.remote} at {result.commit[:12]}")


@app.command(rich_help_panel="Git")
def pull(ctx: typer.Context, session: SessionOpt, _run: RunOpt = None) -> None:
    """Fetch and rebase onto the upstream (aborted cleanly on conflict)."""
    acting_as(ctx, session)

    async def go(bus: Bus, ws: Workspace) -> str:
        return await actions.pull(bus, session, ws.cwd)

    say(f"up to date at {with_bus(ctx, go)[:12]}")


# git's exit codes that are answers, not failures: 1 is `git diff --exit-code` (or --quiet,
# or --no-index) saying the trees differ.
GIT_ANSWERS = (0, 1)


def _git_passthrough(args: list[str]) -> None:
    """git's output as git prints it, and its answer as the exit code; git failing (outside a
    repository, a bad option: 128, 129, ...) is one line and exit 2, as every error here."""

    async def go() -> Any:
        return await gitops.git(args, Path.cwd(), check=False)

    result = run_async(go)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.buffer.flush()
    if result.returncode not in GIT_ANSWERS:
        fail(f"git {args[0]}: {_git_complaint(result.stderr, result.returncode)}")
    sys.stderr.write(result.stderr)
    raise typer.Exit(result.returncode)


def _git_complaint(stderr: str, code: int) -> str:
    """The line of git's stderr that says what went wrong (git says `fatal:` or `error:`
    first, then a usage or a hint), without its prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for prefix in ("fatal:", "error:", "warning:"):
        for line in lines:
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
    return lines[0] if lines else f"exited {code}"


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
def git_log(
    count: Annotated[int, typer.Option("-n", min=1, help="How many commits.")] = 20,
) -> None:
    """git log, one line per commit."""
    _git_passthrough(["log", "--oneline", "--decorate", f"-n{count}"])
