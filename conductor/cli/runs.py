"""Runs: planning (`run`), worktrees, clean-up, transcripts."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer

from conductor import dashboard, gitops, worktrees
from conductor.bus import Bus, new_run_id
from conductor.cli.common import (
    Globals,
    JsonOpt,
    app,
    fail,
    out,
    print_json,
    run_async,
    say,
    with_bus,
)
from conductor.errors import InvalidInput
from conductor.models import Event
from conductor.plan import Plan
from conductor.workspace import Workspace, ensure_state_dir, locate

# ------------------------------------------------------------------------------ runs

API_KEY_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
)


@app.command("run", rich_help_panel="Runs")
def run_goal(
    ctx: typer.Context,
    goal: Annotated[str, typer.Argument(help='What to build, e.g. "A REST API with auth".')],
    plan_only: Annotated[
        bool, typer.Option("--plan-only", help="Plan, print and save the plan, and stop.")
    ] = False,
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="Use this plan (JSON) instead of planning.")
    ] = None,
    save_to: Annotated[
        Path | None, typer.Option("--out", help="Where --plan-only saves the plan.")
    ] = None,
    max_sessions: Annotated[
        int, typer.Option("--max-sessions", min=1, help="At most this many workstreams.")
    ] = 4,
    model: Annotated[str | None, typer.Option("--model", help="Model for the sessions.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Plan GOAL into workstreams (the supervisor that runs them is not built yet)."""
    from conductor.plan import load_plan, save_plan
    from conductor.planner import make_plan
    from conductor.session import SessionConfig

    if not plan_only:
        fail(
            "running the workstreams needs conductor's supervisor, which is not built yet:"
            " use --plan-only (with or without --plan FILE)"
        )
    g: Globals = ctx.obj

    async def go() -> tuple[Plan, Path]:
        ws = await locate(Path.cwd(), g.db)
        if ws.repo_root is None:
            raise InvalidInput("conductor run works inside a git repository")
        state = ensure_state_dir(ws.repo_root)
        if plan_file is not None:
            plan = load_plan(plan_file, ws.repo_root, max_sessions=max_sessions)
        else:
            if not any(os.environ.get(v) for v in API_KEY_VARIABLES):
                raise InvalidInput(
                    "no API key: set ANTHROPIC_API_KEY (or try it offline: make demo)"
                )
            config = SessionConfig(env={}, config_dir=state / "claude", model=model)
            plan = await make_plan(goal, ws.repo_root, config, max_sessions=max_sessions)
        target = save_to or state / "plans" / f"{new_run_id()}.json"
        save_plan(plan, target)
        return plan, target

    plan, saved = run_async(go)
    if json_:
        print_json({**plan.to_json(), "saved_to": str(saved)})
        return
    out.print(dashboard.plan_table(plan))
    say(f"plan saved to {saved}; run it later with --plan {saved}")


@app.command(rich_help_panel="Runs")
def clean(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="The run (default: the newest).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Also unmerged branches and dirty worktrees.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Remove a run's worktrees and its merged branches, and say what went."""
    if run is not None:
        ctx.obj.run = run

    async def go(bus: Bus, ws: Workspace) -> worktrees.CleanReport:
        if ws.repo_root is None:
            raise InvalidInput("clean works inside the run's git repository")
        integration = f"conductor/{bus.run_id}"
        into = (
            integration
            if await gitops.branch_exists(ws.repo_root, integration)
            else (bus.run.base_ref or "HEAD")
        )
        return await worktrees.clean(ws.repo_root, bus.run_id, into=into, force=force)

    report = with_bus(ctx, go)
    if json_:
        print_json(dataclasses.asdict(report))
        return
    for path in report.removed_worktrees:
        say(f"removed worktree {path}")
    for path, why in report.kept_worktrees:
        say(f"kept worktree {path}: {why}")
    for branch in report.deleted_branches:
        say(f"deleted branch {branch}")
    for branch, why in report.kept_branches:
        say(f"kept branch {branch}: {why}")
    if not (
        report.removed_worktrees
        or report.kept_worktrees
        or report.deleted_branches
        or report.kept_branches
    ):
        say("nothing to clean")


@app.command("worktrees", rich_help_panel="Runs")
def list_worktrees(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="The run (default: the newest).")] = None,
    json_: JsonOpt = False,
) -> None:
    """A run's worktrees: path, branch, head."""
    if run is not None:
        ctx.obj.run = run

    async def go(bus: Bus, ws: Workspace) -> list[gitops.Worktree]:
        if ws.repo_root is None:
            raise InvalidInput("worktrees live inside the run's git repository")
        return await worktrees.run_worktrees(ws.repo_root, bus.run_id)

    found = with_bus(ctx, go)
    if json_:
        print_json([{**dataclasses.asdict(t), "path": str(t.path)} for t in found])
        return
    for tree in found:
        say(f"{tree.path}  {tree.branch or '(detached)'}  {(tree.head or '')[:12]}")
    if not found:
        say("no worktrees")


@app.command(rich_help_panel="Watch")
def transcript(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
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
