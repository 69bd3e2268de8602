"""Runs: planning (`run`), worktrees, clean-up, transcripts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conductor import dashboard, gitops, worktrees
from conductor.bus import Bus
from conductor.cli import hints, pull_request
from conductor.cli.common import (
    Globals,
    JsonOpt,
    RunOpt,
    app,
    err,
    out,
    print_json,
    run_async,
    say,
    with_bus,
)
from conductor.cli.plumbing import EXIT_INTERRUPTED
from conductor.errors import InvalidInput
from conductor.workspace import Workspace, database_location

if TYPE_CHECKING:
    from conductor.config import Config
    from conductor.planner import Planned, Planning
    from conductor.run.delivery import Delivery
    from conductor.supervisor import RunSummary, Supervisor

NoLiveOpt = Annotated[
    bool,
    typer.Option("--no-live", help="One plain line per notable event instead of the live view."),
]

# ------------------------------------------------------------------------------ runs


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
    save_to: Annotated[Path | None, typer.Option("--out", help="Where to save the plan.")] = None,
    max_sessions: Annotated[
        int | None, typer.Option("--max-sessions", min=1, help="At most this many workstreams.")
    ] = None,
    max_parallel: Annotated[
        int | None, typer.Option("--max-parallel", min=1, help="At most this many at once.")
    ] = None,
    review: Annotated[
        str | None, typer.Option("--review", help="agent, peer, human or auto.")
    ] = None,
    into: Annotated[
        str | None, typer.Option("--into", help="Merge into this branch (default conductor/RUN).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model for the sessions.")] = None,
    planner_model: Annotated[
        str | None, typer.Option("--planner-model", help="Model for the planner (default --model).")
    ] = None,
    reviewer_model: Annotated[
        str | None,
        typer.Option("--reviewer-model", help="Model for the agent reviewers (default --model)."),
    ] = None,
    resolver_model: Annotated[
        str | None,
        typer.Option(
            "--resolver-model",
            help="Model for the turn that resolves a merge conflict (default the session's).",
        ),
    ] = None,
    cross_review: Annotated[
        bool | None,
        typer.Option(
            "--cross-review/--no-cross-review",
            help="Review each workstream on a model other than its author's.",
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            min=0,
            help="A hard ceiling on the run's cost in USD (planner, sessions, reviewers): at it,"
            " sessions pause at their next tool call (0: none).",
        ),
    ] = None,
    confirm: Annotated[
        bool,
        typer.Option(
            "--confirm", help="Show the plan and its estimate, then ask: run, edit or quit."
        ),
    ] = False,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers",
            help="Run the sessions on conductor workers (other hosts sharing the database"
            " and the origin remote) instead of here.",
        ),
    ] = False,
    pr: pull_request.PrOpt = None,
    no_live: NoLiveOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Plan GOAL into workstreams and run them, hands-off, to merged and checked code."""
    from conductor.cli.approval import approver, refuse_without_tty
    from conductor.cli.estimate import print_estimate
    from conductor.cli.planning import plan_shown
    from conductor.run.launch import RunAsked, start_run

    g: Globals = ctx.obj
    if confirm:
        refuse_without_tty()  # before anything is planned or spent
    asked = RunAsked(
        goal,
        plan_only=plan_only,
        plan_file=plan_file,
        save_to=save_to,
        into=into,
        max_sessions=max_sessions,
        max_parallel=max_parallel,
        review=review,
        model=model,
        planner_model=planner_model,
        reviewer_model=reviewer_model,
        resolver_model=resolver_model,
        cross_review=cross_review,
        workers=workers,
        pr=pr,
        max_cost=max_cost,
    )
    console = err if json_ else out

    async def show_planning(planning: Planning, config: Config) -> Planned:
        return await plan_shown(
            planning,
            console=console,
            live=console.is_terminal and not (no_live or json_),
            max_sessions=config.max_sessions,
            model=config.planner_model or config.model,
        )

    async def drive(supervisor: Supervisor, after: int) -> RunSummary:
        return await _supervise(supervisor, no_live=no_live, json_=json_, after=after)

    launched = run_async(
        lambda: start_run(
            asked,
            cwd=Path.cwd(),
            db=g.db,
            show_planning=show_planning,
            drive=drive,
            approve=approver(console) if confirm else None,
        )
    )
    plan, saved, summary = launched.plan, launched.saved_to, launched.summary
    if summary is None:
        # The same run as asked for, from this plan: every option it was given that a run
        # with --plan still reads.
        given = {
            "--max-sessions": max_sessions,
            "--max-parallel": max_parallel,
            "--review": review,
            "--into": into,
            "--model": model,
            "--reviewer-model": reviewer_model,
            "--resolver-model": resolver_model,
            "--max-cost": max_cost,
        }
        options = [str(word) for flag, v in given.items() if v is not None for word in (flag, v)]
        options += ["--workers"] if workers else []
        options += [] if pr is None else ["--pr" if pr else "--no-pr"]
        if cross_review is not None:
            options.append("--cross-review" if cross_review else "--no-cross-review")
        again = hints.command("run", goal, "--plan", saved.absolute(), *options, db=_db_option(g))
        if launched.quit:  # --confirm, answered quit: the plan is kept for later
            say(f"nothing started; the plan is kept in {saved}; run it with: {again}")
            return
        if json_:
            print_json({**plan.to_json(), "saved_to": str(saved)})  # a plan file, as it is
            print_estimate(err, launched)
            return
        out.print(dashboard.plan_table(plan))
        print_estimate(out, launched)
        say(f"plan saved to {saved}; run it with: {again}")
        return
    _report(summary, json_, g, pull_request.deliver(summary, pr, g.db))


@app.command("resume", rich_help_panel="Runs")
def resume(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="The run (default: the newest).")] = None,
    _run: RunOpt = None,
    pr: pull_request.PrOpt = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            min=0,
            help="A new cost ceiling in USD for the run (one that paused at its ceiling):"
            " more than it has spent.",
        ),
    ] = None,
    no_live: NoLiveOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Continue a run whose supervisor was interrupted or killed, from what the store kept:
    sessions re-attach to their own conversations, reviews and merges carry on."""
    from conductor.run.launch import NothingToResume, resume_run

    g: Globals = ctx.obj

    async def drive(supervisor: Supervisor, after: int) -> RunSummary:
        return await _supervise(supervisor, no_live=no_live, json_=json_, after=after)

    async def go() -> RunSummary | str:
        try:
            return await resume_run(
                run or g.run, cwd=Path.cwd(), db=g.db, drive=drive, max_cost=max_cost
            )
        except NothingToResume as done:  # `run || resume` reads as success
            return str(done)

    summary = run_async(go)
    if isinstance(summary, str):
        pull_request.finished(summary, pr=pr, db=g.db, run=run or g.run, json_=json_)
        raise typer.Exit(0)
    _report(summary, json_, g, pull_request.deliver(summary, pr, g.db))


def _db_option(g: Globals) -> str | None:
    """The database `--db` named, for a hint to name it too (CONDUCTOR_DB, being in the
    environment, is still there when the hint is pasted)."""
    return database_location(g.db) if g.db else None


async def _supervise(
    supervisor: Supervisor,
    *,
    no_live: bool,
    json_: bool,
    after: int = 0,
    resumable: bool = True,
) -> RunSummary:
    """Live on a terminal; otherwise (or with --no-live) one line per notable event, on
    stderr when stdout carries --json."""
    from conductor.cli.supervising import supervise

    console = err if json_ else out
    return await supervise(
        supervisor,
        console=console,
        live=console.is_terminal and not (no_live or json_),
        after=after,
        resumable=resumable,
    )


def _report(summary: RunSummary, json_: bool, g: Globals, pr: Delivery | None = None) -> None:
    from conductor.cli.report import run_report

    resume = hints.command("resume", summary.run_id, db=_db_option(g))
    if summary.ceiling:  # stopped at its cost ceiling: only a higher one lets it go on
        higher = f"{max(2 * summary.ceiling, summary.cost_usd + summary.ceiling):.2f}"
        resume = (
            hints.command("resume", summary.run_id, "--max-cost", higher, db=_db_option(g))
            + f"  (a ceiling above the ${summary.cost_usd:.2f} spent)"
        )
    report, why_not = run_report(summary.run_id, g.db)  # `conductor report`'s file
    report_line = f"report: {report}" if report else f"report: not written: {why_not}"
    if json_:
        shown = {"report": str(report) if report else None, **pull_request.as_json(pr)}
        print_json({**dataclasses.asdict(summary), "ok": summary.ok, **shown})
        if report is None:
            err.print(report_line, soft_wrap=True, markup=False)
        if summary.interrupted and not (summary.fault or summary.tampered):  # as below
            err.print(f"interrupted: continue with: {resume}", soft_wrap=True, markup=False)
    else:
        out.print(dashboard.summary_table(summary))
        say(
            f"integration branch {summary.integration_branch} at "
            f"{summary.integration_head[:12]}; total ${summary.cost_usd:.4f}"
        )
        if summary.tampered:
            say(f"NOT TRUSTED: {summary.tampered}; nothing more was merged")
        elif summary.fault:
            pass  # said below, on stderr
        elif summary.interrupted:
            say(f"interrupted: continue with: {resume}")
        elif summary.ceiling:  # on_max_cost = "stop": it ended there, and may go on later
            say(f"stopped at its cost ceiling; to go on with a higher one: {resume}")
        else:
            say("everything merged" if summary.ok else "not everything merged: see the table above")
        say(report_line)
    pull_request.tell(pr, json_)  # delivery's line: it never changes the exit status
    if summary.fault:  # the machine's, not the work's: one line, and how to go on
        err.print(
            f"interrupted: {summary.fault}; once that is fixed: {resume}",
            soft_wrap=True,
            markup=False,
        )
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(0 if summary.ok else 1)


@app.command(rich_help_panel="Runs")
def clean(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="The run (default: the newest).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Also unmerged branches and dirty worktrees.")
    ] = False,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Remove a run's worktrees and its merged branches, and say what went."""
    if run is not None:
        ctx.obj.run = run

    from conductor.run.launch import clean_run

    async def go(bus: Bus, ws: Workspace) -> worktrees.CleanReport:
        if ws.repo_root is None:
            raise InvalidInput("clean works inside the run's git repository")
        return await clean_run(bus, ws.repo_root, force=force)

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
    _run: RunOpt = None,
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
