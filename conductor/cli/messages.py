"""Messages and shared context by hand: send, read, answer, mark read; add and show the
entries every session sees at its next sync."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from conductor import dashboard
from conductor.bus import Bus
from conductor.cli.common import (
    FromOpt,
    JsonOpt,
    RunOpt,
    SessionOpt,
    acting_as,
    app,
    context_app,
    emit,
    out,
    print_json,
    say,
    text_from,
    with_bus,
)
from conductor.workspace import Workspace

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
