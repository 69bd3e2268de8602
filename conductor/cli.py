"""The `conductor` command: typer commands only, parsing and printing, nothing else.

Every command runs one coroutine over the bus; errors from the domain become one line on
stderr and exit code 2 (`merge-ok` keeps 0/1 for its verdict).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import anyio
import typer

from conductor import actions, dashboard, gitops, worktrees
from conductor.bus import Bus, create_run, new_run_id, open_run, parse_session_specs
from conductor.errors import ConductorError, InvalidInput
from conductor.models import Event, Record, Session
from conductor.plan import Plan
from conductor.store import Store
from conductor.workspace import Workspace, ensure_state_dir, locate

T = TypeVar("T")
SESSION_ENV = "CONDUCTOR_SESSION"

app = typer.Typer(
    name="conductor",
    help="Run a team of Claude Code sessions hands-off, or coordinate them by hand.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=False,
)
context_app = typer.Typer(
    help="Shared context: decisions, interfaces, warnings, ...", no_args_is_help=True
)
review_app = typer.Typer(
    help="Peer review: request, list, show, approve, reject.", no_args_is_help=True
)
lock_app = typer.Typer(help="The git lock that serialises pushes.", no_args_is_help=True)
model_app = typer.Typer(
    help="The scripted stand-in for the Messages API, for offline runs.", no_args_is_help=True
)
app.add_typer(context_app, name="context", rich_help_panel="Coordination")
app.add_typer(review_app, name="review", rich_help_panel="Coordination")
app.add_typer(lock_app, name="lock", rich_help_panel="Git")
app.add_typer(model_app, name="model", rich_help_panel="Offline")

out = dashboard.console()
err = dashboard.console(stderr=True)

SessionOpt = Annotated[
    str, typer.Option("--session", "-s", envvar=SESSION_ENV, help="Your session id.")
]
FromOpt = Annotated[str, typer.Option("--from", "-f", envvar=SESSION_ENV, help="Your session id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts and agents.")]


@dataclass
class Globals:
    db: str | None = None
    run: str | None = None


@app.callback()
def _globals(
    ctx: typer.Context,
    db: Annotated[
        str | None, typer.Option("--db", help="Database file (default: .conductor/ in the repo).")
    ] = None,
    run: Annotated[
        str | None,
        typer.Option("--run", envvar="CONDUCTOR_RUN", help="Run id (default: the newest run)."),
    ] = None,
) -> None:
    ctx.obj = Globals(db=db, run=run)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted", soft_wrap=True)
        sys.exit(130)


# ------------------------------------------------------------------------------ plumbing


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(fn)
    except ConductorError as e:
        _fail(str(e))


def _with_bus(ctx: typer.Context, fn: Callable[[Bus, Workspace], Awaitable[T]]) -> T:
    g: Globals = ctx.obj

    async def go() -> T:
        ws = await locate(Path.cwd(), g.db)
        async with Store.open(ws.db_path) as store:
            return await fn(await open_run(store, g.run), ws)

    return _run(go)


def _fail(message: str) -> NoReturn:
    """One line on stderr, exit 2: how every bad input ends."""
    err.print(f"error: {message}", soft_wrap=True)
    raise typer.Exit(2)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _say(text: str) -> None:
    out.print(text, soft_wrap=True)


def _emit(json_: bool, record: Record, line: str) -> None:
    """A command's result: the record as JSON, or one line for a person."""
    if json_:
        _print_json(record.to_json())
    else:
        _say(line)


# ------------------------------------------------------------------------------ sessions


@app.command(rich_help_panel="Coordination")
def init(
    ctx: typer.Context,
    sessions: Annotated[
        str | None,
        typer.Option("--sessions", help='Sessions to register, e.g. "A:frontend B:api".'),
    ] = None,
    goal: Annotated[str, typer.Option("--goal", help="What the run is for.")] = "",
    json_: JsonOpt = False,
) -> None:
    """Write a commented conductor.toml; with --sessions, start a run by hand instead."""
    g: Globals = ctx.obj
    if sessions is None:
        _say(f"wrote {_run(_write_config)}: edit it to set checks, budgets and review policy")
        return

    async def go() -> tuple[Bus, list[Session]]:
        assert sessions is not None
        specs = parse_session_specs(sessions)
        ws = await locate(Path.cwd(), g.db)
        base_ref = base_commit = None
        if ws.tree_root is not None:
            base_ref = await gitops.current_branch(ws.tree_root)
            base_commit = await gitops.try_rev_parse("HEAD", ws.tree_root)
        async with Store.open(ws.db_path) as store:
            bus = await create_run(
                store,
                goal=goal,
                repo_root=ws.repo_root,
                base_ref=base_ref,
                base_commit=base_commit,
                sessions=specs,
            )
            return bus, await bus.sessions()

    bus, made = _run(go)
    if json_:
        _print_json({"run": bus.run.to_json(), "sessions": [s.to_json() for s in made]})
        return
    _say(f"run {bus.run.id}: {len(made)} sessions registered")
    out.print(dashboard.sessions_table(made))


async def _write_config() -> Path:
    from conductor.config import write_default

    ws = await locate(Path.cwd())
    if ws.repo_root is None:
        raise InvalidInput("conductor init works inside a git repository")
    return write_default(ws.repo_root)


@app.command(rich_help_panel="Coordination")
def status(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """The run's sessions: status, branch, unread messages, note."""

    async def go(bus: Bus, ws: Workspace) -> tuple[list[Session], dict[str, int]]:
        return await bus.sessions(), await bus.unread_counts()

    sessions, unread = _with_bus(ctx, go)
    if json_:
        _print_json([{**s.to_json(), "unread": unread.get(s.name, 0)} for s in sessions])
        return
    out.print(dashboard.sessions_table(sessions, unread))


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
        str | None, typer.Option("--note", help="What it is doing or waiting on.")
    ] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="The branch it works on.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Change a session's status, note or branch."""
    if status is None and note is None and branch is None:
        _fail("nothing to update: give --status, --note or --branch")

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.update(session, status=status, note=note, branch=branch)

    s = _with_bus(ctx, go)
    _emit(json_, s, f"{s.name}: {s.status.value}" + (f" — {s.note}" if s.note else ""))


@app.command(rich_help_panel="Coordination")
def sync(ctx: typer.Context, session: SessionOpt, json_: JsonOpt = False) -> None:
    """New messages + new shared context + a heartbeat, in one call. Silent when nothing is new."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.sync(session)

    result = _with_bus(ctx, go)
    if json_:
        _print_json(result.to_json())
        return
    for line in dashboard.sync_lines(result):
        _say(line)


# ------------------------------------------------------------------------------ messages


@app.command(rich_help_panel="Coordination")
def message(
    ctx: typer.Context,
    to: Annotated[str, typer.Argument(help="Session id, or 'all'.")],
    text: Annotated[str, typer.Argument(help="The message.")],
    sender: FromOpt,
    json_: JsonOpt = False,
) -> None:
    """Send a message to one session, or to all."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.send(sender, to, text)

    m = _with_bus(ctx, go)
    _emit(json_, m, f"message #{m.id} sent to {', '.join(m.recipients) or 'nobody'}")


@app.command(rich_help_panel="Coordination")
def inbox(
    ctx: typer.Context,
    session: SessionOpt,
    all_: Annotated[bool, typer.Option("--all", help="Include messages already read.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Messages to a session (unread ones unless --all). Does not mark them read."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.inbox(session, include_read=all_)

    messages = _with_bus(ctx, go)
    if json_:
        _print_json([m.to_json() for m in messages])
    elif not messages:
        _say("no messages" if all_ else "no unread messages")
    else:
        out.print(dashboard.messages_table(messages, title=f"Inbox of {session}"))


@app.command(rich_help_panel="Coordination")
def reply(
    ctx: typer.Context,
    message_id: Annotated[int, typer.Argument(help="The message to answer.")],
    text: Annotated[str, typer.Argument(help="The reply.")],
    sender: FromOpt,
    json_: JsonOpt = False,
) -> None:
    """Answer a message to its sender; marks the original read."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.reply(sender, message_id, text)

    m = _with_bus(ctx, go)
    _emit(json_, m, f"reply #{m.id} sent to {', '.join(m.recipients) or 'nobody'}")


@app.command("mark-read", rich_help_panel="Coordination")
def mark_read(
    ctx: typer.Context,
    message_id: Annotated[int, typer.Argument(help="The message.")],
    session: SessionOpt,
) -> None:
    """Mark a message to you as read."""

    async def go(bus: Bus, ws: Workspace) -> bool:
        return await bus.mark_read(session, message_id)

    changed = _with_bus(ctx, go)
    _say(f"message #{message_id} marked read" if changed else f"message #{message_id} was read")


# ------------------------------------------------------------------------------ context


@context_app.command("add")
def context_add(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="The entry.")],
    session: SessionOpt,
    category: Annotated[
        str,
        typer.Option(
            "--category", "-c", help="decision, interface, warning, convention or discovery"
        ),
    ] = "decision",
    json_: JsonOpt = False,
) -> None:
    """Add an entry every session will see at its next sync."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.add_context(session, category, text)

    entry = _with_bus(ctx, go)
    _emit(json_, entry, f"context #{entry.id} [{entry.category.value}] added")


@context_app.command("show")
def context_show(
    ctx: typer.Context,
    category: Annotated[str | None, typer.Option("--category", "-c", help="Only this one.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Every shared-context entry of the run."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.context(category)

    entries = _with_bus(ctx, go)
    if json_:
        _print_json([e.to_json() for e in entries])
    elif not entries:
        _say("no shared context yet")
    else:
        out.print(dashboard.context_table(entries))


# ------------------------------------------------------------------------------ claims


@app.command(rich_help_panel="Coordination")
def claim(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A file or directory in the repository.")],
    session: SessionOpt,
    json_: JsonOpt = False,
) -> None:
    """Claim a path for your session alone; a directory claim covers everything under it."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.claim(session, path, root=ws.path_root, cwd=ws.cwd)

    c = _with_bus(ctx, go)
    _emit(json_, c, f"{c.path} claimed by {c.session}")


@app.command(rich_help_panel="Coordination")
def unclaim(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A path you claimed.")],
    session: SessionOpt,
) -> None:
    """Release your claim on a path."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.release(session, path, root=ws.path_root, cwd=ws.cwd)

    c = _with_bus(ctx, go)
    _say(f"{c.path} released by {c.session}")


@app.command(rich_help_panel="Coordination")
def claims(
    ctx: typer.Context,
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Only this session's.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Every claim of the run."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.claims(session)

    found = _with_bus(ctx, go)
    if json_:
        _print_json([c.to_json() for c in found])
    elif not found:
        _say("no claims")
    else:
        out.print(dashboard.claims_table(found))


# ------------------------------------------------------------------------------ reviews


def _read_diff(diff: str | None, diff_file: str | None) -> bytes | None:
    if diff is not None and diff_file is not None:
        raise InvalidInput("give --diff or --diff-file, not both")
    if diff_file == "-":
        return sys.stdin.buffer.read()
    if diff_file is not None:
        try:
            return Path(diff_file).read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read {diff_file}: {e.strerror}") from None
    return diff.encode() if diff is not None else None


@review_app.command("request")
def review_request(
    ctx: typer.Context,
    sender: FromOpt,
    to: Annotated[str | None, typer.Option("--to", help="The reviewer (default: anyone).")] = None,
    diff: Annotated[str | None, typer.Option("--diff", help="The diff as text.")] = None,
    diff_file: Annotated[
        str | None, typer.Option("--diff-file", help="Read the diff from a file, or - for stdin.")
    ] = None,
    base: Annotated[str | None, typer.Option("--base", help="Diff against this ref.")] = None,
    commit: Annotated[str | None, typer.Option("--commit", help="The commit reviewed.")] = None,
    note: Annotated[str, typer.Option("--note", help="A word to the reviewer.")] = "",
    json_: JsonOpt = False,
) -> None:
    """Ask for review of your branch (its diff is computed unless given)."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        data = _read_diff(diff, diff_file)
        return await actions.request_review(
            bus, sender, ws.cwd, reviewer=to, diff=data, base=base, commit=commit, note=note
        )

    r = _with_bus(ctx, go)
    _emit(json_, r, f"review #{r.id} requested for {r.commit[:12]} ({r.diff_size} bytes of diff)")


@review_app.command("list")
def review_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="Only reviews in this state.")
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Only this session's.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Reviews of the run."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.reviews(status=status, session=session)

    found = _with_bus(ctx, go)
    if json_:
        _print_json([r.to_json() for r in found])
    elif not found:
        _say("no reviews")
    else:
        out.print(dashboard.reviews_table(found))


@review_app.command("show")
def review_show(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(help="The review.")],
    diff_only: Annotated[bool, typer.Option("--diff-only", help="Only the diff, raw.")] = False,
    json_: JsonOpt = False,
) -> None:
    """A review, with its diff byte for byte."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.review(review_id)

    r = _with_bus(ctx, go)
    if json_:
        _print_json({**r.to_json(), "diff": r.diff.decode("utf-8", "replace")})
        return
    if not diff_only:
        _say(f"review #{r.id}: {r.status.value}")
        _say(f"from {r.requester} to {r.reviewer or 'anyone'}, commit {r.commit}")
        if r.base:
            _say(f"base {r.base}")
        if r.note:
            _say(f"note: {r.note}")
        if r.decided_by:
            _say(f"decided by {r.decided_by}: {r.comment}")
        if r.superseded_by:
            _say(f"superseded by #{r.superseded_by}")
        _say("")
        sys.stdout.flush()
    sys.stdout.buffer.write(r.diff)
    sys.stdout.buffer.flush()


def _decide(
    ctx: typer.Context, review_id: int, sender: str, approve: bool, comment: str, json_: bool
) -> None:
    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.decide(review_id, sender, approve=approve, comment=comment)

    r = _with_bus(ctx, go)
    _emit(json_, r, f"review #{r.id} {r.status.value} by {r.decided_by}")


@review_app.command("approve")
def review_approve(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(help="The review.")],
    sender: FromOpt,
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why.")] = "",
    json_: JsonOpt = False,
) -> None:
    """Approve a review (not your own)."""
    _decide(ctx, review_id, sender, True, comment, json_)


@review_app.command("reject")
def review_reject(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(help="The review.")],
    sender: FromOpt,
    comment: Annotated[str, typer.Option("--comment", "-m", help="What to fix.")] = "",
    json_: JsonOpt = False,
) -> None:
    """Reject a review with what to fix; the author is told."""
    _decide(ctx, review_id, sender, False, comment, json_)


@app.command("merge-ok", rich_help_panel="Coordination")
def merge_ok(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    json_: JsonOpt = False,
) -> None:
    """Exit 0 when the session's latest review approved its current head, else 1."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await actions.merge_ok(bus, session, ws.cwd)

    verdict = _with_bus(ctx, go)
    if json_:
        _print_json(
            {
                "ok": verdict.ok,
                "reason": verdict.reason,
                "review": verdict.review.to_json() if verdict.review else None,
            }
        )
    else:
        _say(("merge-ok: " if verdict.ok else "blocked: ") + verdict.reason)
    raise typer.Exit(0 if verdict.ok else 1)


# ------------------------------------------------------------------------------ git


@app.command(rich_help_panel="Git")
def commit(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Commit message (prefixed with [Session X]).")],
    session: SessionOpt,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Stage every change first.")] = False,
) -> None:
    """Commit what is staged as `[Session X] message`."""

    async def go(bus: Bus, ws: Workspace) -> str:
        return await actions.commit(bus, session, text, ws.cwd, stage_all=all_)

    sha = _with_bus(ctx, go)
    _say(f"[Session {session}] {text} ({sha[:12]})")


@app.command(rich_help_panel="Git")
def push(
    ctx: typer.Context,
    session: SessionOpt,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the lock.")] = 60.0,
) -> None:
    """Take the git lock, fetch, rebase, push, release."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await actions.push(bus, session, ws.cwd, wait_seconds=wait)

    result = _with_bus(ctx, go)
    how = "rebased and pushed" if result.rebased else "pushed"
    _say(f"{how} {result.branch} to {result.remote} at {result.commit[:12]}")


@app.command(rich_help_panel="Git")
def pull(ctx: typer.Context, session: SessionOpt) -> None:
    """Fetch and rebase onto the upstream (aborted cleanly on conflict)."""

    async def go(bus: Bus, ws: Workspace) -> str:
        return await actions.pull(bus, session, ws.cwd)

    _say(f"up to date at {_with_bus(ctx, go)[:12]}")


def _git_passthrough(args: list[str]) -> None:
    async def go() -> Any:
        return await gitops.git(args, Path.cwd(), check=False)

    result = _run(go)
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


# ------------------------------------------------------------------------------ lock


@lock_app.command("show")
def lock_show(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Who holds the git lock, and until when."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.lock()

    lease = _with_bus(ctx, go)
    if json_:
        _print_json(lease.to_json() if lease else None)
    else:
        out.print(dashboard.lock_text(lease))


@lock_app.command("release")
def lock_release(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Required: it ends someone's lease.")
    ] = False,
) -> None:
    """Force-release the git lock (for a holder that is stuck, not dead: dead ones expire)."""
    if not force:
        _fail("releasing someone else's lock needs --force")

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.force_release_lock()

    lease = _with_bus(ctx, go)
    _say(f"released the lock held by {lease.holder}" if lease else "the lock was free")


# ------------------------------------------------------------------------------ dashboard


@app.command("dashboard", rich_help_panel="Watch")
def show_dashboard(
    ctx: typer.Context,
    events: Annotated[int, typer.Option("--events", help="How many recent events.")] = 10,
    json_: JsonOpt = False,
) -> None:
    """One look at everything: sessions, claims, reviews, the lock, recent events."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return (
            bus.run,
            await bus.sessions(),
            await bus.unread_counts(),
            await bus.claims(),
            await bus.reviews(status="pending"),
            await bus.lock(),
            await bus.store.list_events(bus.run_id, limit=events, newest=True),
        )

    run, sessions, unread, found_claims, reviews, lease, recent = _with_bus(ctx, go)
    if json_:
        _print_json(
            {
                "run": run.to_json(),
                "sessions": [{**s.to_json(), "unread": unread.get(s.name, 0)} for s in sessions],
                "claims": [c.to_json() for c in found_claims],
                "pending_reviews": [r.to_json() for r in reviews],
                "lock": lease.to_json() if lease else None,
                "events": [e.to_json() for e in recent],
            }
        )
        return
    out.print(dashboard.dashboard(run, sessions, unread, found_claims, reviews, lease, recent))


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
        _fail(
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

    plan, saved = _run(go)
    if json_:
        _print_json({**plan.to_json(), "saved_to": str(saved)})
        return
    out.print(dashboard.plan_table(plan))
    _say(f"plan saved to {saved}; run it later with --plan {saved}")


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

    report = _with_bus(ctx, go)
    if json_:
        _print_json(dataclasses.asdict(report))
        return
    for path in report.removed_worktrees:
        _say(f"removed worktree {path}")
    for path, why in report.kept_worktrees:
        _say(f"kept worktree {path}: {why}")
    for branch in report.deleted_branches:
        _say(f"deleted branch {branch}")
    for branch, why in report.kept_branches:
        _say(f"kept branch {branch}: {why}")
    if not (
        report.removed_worktrees
        or report.kept_worktrees
        or report.deleted_branches
        or report.kept_branches
    ):
        _say("nothing to clean")


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

    found = _with_bus(ctx, go)
    if json_:
        _print_json([{**dataclasses.asdict(t), "path": str(t.path)} for t in found])
        return
    for tree in found:
        _say(f"{tree.path}  {tree.branch or '(detached)'}  {(tree.head or '')[:12]}")
    if not found:
        _say("no worktrees")


@app.command(rich_help_panel="Watch")
def transcript(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    json_: JsonOpt = False,
) -> None:
    """A session's conversation, rebuilt from the stored events."""

    async def go(bus: Bus, ws: Workspace) -> list[Event]:
        return await bus.events(session=session)

    events = _with_bus(ctx, go)
    if json_:
        _print_json([e.to_json() for e in events])
        return
    for line in dashboard.transcript_lines(events):
        _say(line)


# ------------------------------------------------------------------------------ the stand-in


@model_app.command("serve")
def model_serve(
    script: Annotated[Path, typer.Argument(help="The script (YAML or JSON).")],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (default: any free).")] = 0,
    log: Annotated[
        Path | None, typer.Option("--log", help="Append every request, with its body, here.")
    ] = None,
) -> None:
    """Serve a script as the Messages API on loopback until interrupted."""
    from conductor.standin.script import load_script
    from conductor.standin.server import StandIn

    async def go() -> None:
        server = StandIn(load_script(script), port=port, log_path=log)
        try:
            async with server.running():
                print(server.base_url, flush=True)
                err.print(
                    f"serving {script} on {server.base_url}; point a session at it with\n"
                    f"  ANTHROPIC_BASE_URL={server.base_url} ANTHROPIC_API_KEY=stand-in"
                    " CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n"
                    "and 'conductor-role: NAME' in its first prompt. Ctrl-C stops it.",
                    soft_wrap=True,
                )
                await anyio.sleep_forever()
        except OSError as e:
            raise InvalidInput(f"cannot listen on 127.0.0.1:{port}: {e.strerror}") from None

    _run(go)
