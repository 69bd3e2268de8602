"""Reviews by hand: request one, list and show them (the diff byte for byte), approve or
reject, and merge-ok, the exit code a script asks of a session's latest review."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from conductor import actions, dashboard
from conductor.bus import Bus
from conductor.cli.common import (
    STDIN,
    FromOpt,
    JsonOpt,
    RunOpt,
    acting_as,
    app,
    emit,
    fail,
    out,
    print_json,
    read_stdin,
    review_app,
    say,
    text_from,
    with_bus,
)
from conductor.workspace import Workspace


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
