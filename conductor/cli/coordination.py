"""The coordination commands of claude-swarm, by hand: sessions, messages, context, claims,
reviews, the lock and the one-shot dashboard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from conductor import actions, dashboard, gitops
from conductor.bus import Bus, create_run, parse_session_specs, seen_state
from conductor.cli.common import (
    STDIN,
    FromOpt,
    Globals,
    JsonOpt,
    RunOpt,
    SessionOpt,
    acting_as,
    app,
    context_app,
    emit,
    fail,
    lock_app,
    open_store,
    out,
    print_json,
    read_stdin,
    review_app,
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

# ------------------------------------------------------------------------------ sessions


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
        async with open_store(ws.db_path) as store:
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


# ------------------------------------------------------------------------------ messages


@app.command(rich_help_panel="Coordination")
def message(
    ctx: typer.Context,
    to: Annotated[str, typer.Argument(help="Session id, or 'all'.")],
    text: Annotated[str, typer.Argument(help="The message, or - to read it from stdin.")],
    sender: FromOpt,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Send a message to one session, or to all."""
    acting_as(ctx, sender)
    text = text_from(text)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.send(sender, to, text)

    m = with_bus(ctx, go)
    emit(json_, m, f"message #{m.id} sent to {', '.join(m.recipients) or 'nobody'}")


@app.command(rich_help_panel="Coordination")
def inbox(
    ctx: typer.Context,
    session: SessionOpt,
    all_: Annotated[bool, typer.Option("--all", help="Include messages already read.")] = False,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Messages to a session (unread ones unless --all). Does not mark them read."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.inbox(session, include_read=all_)

    messages = with_bus(ctx, go)
    if json_:
        print_json([m.to_json() for m in messages])
    elif not messages:
        say("no messages" if all_ else "no unread messages")
    else:
        out.print(dashboard.messages_table(messages, title=f"Inbox of {session}"))


@app.command(rich_help_panel="Coordination")
def reply(
    ctx: typer.Context,
    message_id: Annotated[int, typer.Argument(help="The message to answer.")],
    text: Annotated[str, typer.Argument(help="The reply, or - to read it from stdin.")],
    sender: FromOpt,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Answer a message to its sender; marks the original read."""
    acting_as(ctx, sender)
    text = text_from(text)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.reply(sender, message_id, text)

    m = with_bus(ctx, go)
    emit(json_, m, f"reply #{m.id} sent to {', '.join(m.recipients) or 'nobody'}")


@app.command("mark-read", rich_help_panel="Coordination")
def mark_read(
    ctx: typer.Context,
    message_id: Annotated[int, typer.Argument(help="The message.")],
    session: SessionOpt,
    _run: RunOpt = None,
) -> None:
    """Mark a message to you as read."""
    acting_as(ctx, session)

    async def go(bus: Bus, ws: Workspace) -> bool:
        return await bus.mark_read(session, message_id)

    changed = with_bus(ctx, go)
    say(f"message #{message_id} marked read" if changed else f"message #{message_id} was read")


# ------------------------------------------------------------------------------ context


@context_app.command("add")
def context_add(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="The entry, or - to read it from stdin.")],
    session: SessionOpt,
    category: Annotated[
        str,
        typer.Option(
            "--category", "-c", help="decision, interface, warning, convention or discovery"
        ),
    ] = "decision",
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Add an entry every session will see at its next sync."""
    acting_as(ctx, session)
    text = text_from(text)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.add_context(session, category, text)

    entry = with_bus(ctx, go)
    emit(json_, entry, f"context #{entry.id} [{entry.category.value}] added")


@context_app.command("show")
def context_show(
    ctx: typer.Context,
    category: Annotated[str | None, typer.Option("--category", "-c", help="Only this one.")] = None,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Every shared-context entry of the run."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.context(category)

    entries = with_bus(ctx, go)
    if json_:
        print_json([e.to_json() for e in entries])
    elif not entries:
        say("no shared context yet")
    else:
        out.print(dashboard.context_table(entries))


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


# ------------------------------------------------------------------------------ reviews


def _read_diff(diff: str | None, diff_file: str | None) -> bytes | None:
    """The diff given, byte for byte: `--diff TEXT`, `--diff -` or `--diff-file -` (stdin),
    `--diff-file FILE`; None to compute it."""
    if diff is not None and diff_file is not None:
        fail("give --diff or --diff-file, not both")
    if STDIN in (diff, diff_file):
        return read_stdin()
    if diff_file is not None:
        try:
            return Path(diff_file).read_bytes()
        except OSError as e:
            fail(f"cannot read {diff_file}: {e.strerror}")
    return diff.encode() if diff is not None else None


@review_app.command("request")
def review_request(
    ctx: typer.Context,
    sender: FromOpt,
    to: Annotated[str | None, typer.Option("--to", help="The reviewer (default: anyone).")] = None,
    diff: Annotated[
        str | None, typer.Option("--diff", help="The diff as text, or - to read it from stdin.")
    ] = None,
    diff_file: Annotated[
        str | None, typer.Option("--diff-file", help="Read the diff from a file, or - for stdin.")
    ] = None,
    base: Annotated[str | None, typer.Option("--base", help="Diff against this ref.")] = None,
    commit: Annotated[str | None, typer.Option("--commit", help="The commit reviewed.")] = None,
    note: Annotated[
        str, typer.Option("--note", help="A word to the reviewer (- reads it from stdin).")
    ] = "",
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Ask for review of your branch (its diff is computed unless given)."""
    acting_as(ctx, sender)
    if [diff, diff_file, note].count(STDIN) > 1:
        fail("only one of --diff, --diff-file and --note can read stdin")
    data = _read_diff(diff, diff_file)
    note = text_from(note)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await actions.request_review(
            bus, sender, ws.cwd, reviewer=to, diff=data, base=base, commit=commit, note=note
        )

    r = with_bus(ctx, go)
    emit(json_, r, f"review #{r.id} requested for {r.commit[:12]} ({r.diff_size} bytes of diff)")


@review_app.command("list")
def review_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="Only reviews in this state.")
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Only this session's.")
    ] = None,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Reviews of the run."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.reviews(status=status, session=session)

    found = with_bus(ctx, go)
    if json_:
        print_json([r.to_json() for r in found])
    elif not found:
        say("no reviews")
    else:
        out.print(dashboard.reviews_table(found))


@review_app.command("show")
def review_show(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(help="The review.")],
    diff_only: Annotated[bool, typer.Option("--diff-only", help="Only the diff, raw.")] = False,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """A review, with its diff byte for byte."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.review(review_id)

    r = with_bus(ctx, go)
    if json_:
        print_json({**r.to_json(), "diff": r.diff.decode("utf-8", "replace")})
        return
    if not diff_only:
        say(f"review #{r.id}: {r.status.value}")
        say(f"from {r.requester} to {r.reviewer or 'anyone'}, commit {r.commit}")
        if r.base:
            say(f"base {r.base}")
        if r.note:
            say(f"note: {r.note}")
        if r.decided_by:
            say(f"decided by {r.decided_by}: {r.comment}")
        if r.superseded_by:
            say(f"superseded by #{r.superseded_by}")
        say("")
        sys.stdout.flush()
    sys.stdout.buffer.write(r.diff)
    sys.stdout.buffer.flush()


def _decide(
    ctx: typer.Context, review_id: int, sender: str, approve: bool, comment: str, json_: bool
) -> None:
    acting_as(ctx, sender)
    comment = text_from(comment)

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await bus.decide(review_id, sender, approve=approve, comment=comment)

    r = with_bus(ctx, go)
    emit(json_, r, f"review #{r.id} {r.status.value} by {r.decided_by}")


@review_app.command("approve")
def review_approve(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(help="The review.")],
    sender: FromOpt,
    comment: Annotated[
        str, typer.Option("--comment", "-m", help="Why (- reads it from stdin).")
    ] = "",
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Approve a review (not your own)."""
    _decide(ctx, review_id, sender, True, comment, json_)


@review_app.command("reject")
def review_reject(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(help="The review.")],
    sender: FromOpt,
    comment: Annotated[
        str, typer.Option("--comment", "-m", help="What to fix (- reads it from stdin).")
    ] = "",
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Reject a review with what to fix; the author is told."""
    _decide(ctx, review_id, sender, False, comment, json_)


@app.command("merge-ok", rich_help_panel="Coordination")
def merge_ok(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Exit 0 when the session's latest review approved its current head, else 1."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return await actions.merge_ok(bus, session, ws.cwd)

    verdict = with_bus(ctx, go)
    if json_:
        print_json(
            {
                "ok": verdict.ok,
                "reason": verdict.reason,
                "review": verdict.review.to_json() if verdict.review else None,
            }
        )
    else:
        say(("merge-ok: " if verdict.ok else "blocked: ") + verdict.reason)
    raise typer.Exit(0 if verdict.ok else 1)


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


# ------------------------------------------------------------------------------ dashboard


@app.command("dashboard", rich_help_panel="Watch")
def show_dashboard(
    ctx: typer.Context,
    events: Annotated[int, typer.Option("--events", min=0, help="How many recent events.")] = 10,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """One look at everything: sessions, claims, reviews, the lock, recent events."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return (
            bus.run,
            await seen_state(bus.store, bus.run),
            await bus.sessions(),
            await bus.unread_counts(),
            await bus.claims(),
            await bus.reviews(status="pending"),
            await bus.lock(),
            await bus.store.list_events(bus.run_id, limit=events, newest=True),
        )

    run, state, sessions, unread, found_claims, reviews, lease, recent = with_bus(ctx, go)
    if json_:
        print_json(
            {
                "run": {**run.to_json(), "state": state},
                "sessions": [{**s.to_json(), "unread": unread.get(s.name, 0)} for s in sessions],
                "claims": [c.to_json() for c in found_claims],
                "pending_reviews": [r.to_json() for r in reviews],
                "lock": lease.to_json() if lease else None,
                "events": [e.to_json() for e in recent],
            }
        )
        return
    out.print(
        dashboard.dashboard(run, sessions, unread, found_claims, reviews, lease, recent, state)
    )
