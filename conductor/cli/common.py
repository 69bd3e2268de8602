"""What every `conductor` command shares: the app, its groups, the consoles, the options,
and the plumbing that runs one coroutine over the bus and turns domain errors into one line
on stderr with exit code 2.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, TypeVar, overload

import anyio
import typer

from conductor.bus import Bus, open_run
from conductor.cli.plumbing import (
    SESSION_ENV,
    Globals,
    ReadOnlyDatabase,
    as_read_only,
    check_acting_as,
    console,
    emit,
    fail,
    failure_line,
    interrupted,
    print_json,
    read_only_message,
    say,
    supervised,
    unwritable,
)
from conductor.errors import ConductorError, StoreError
from conductor.store import Store
from conductor.workspace import Workspace, locate

__all__ = [
    "Globals",
    "ReadOnlyDatabase",
    "emit",
    "fail",
    "print_json",
    "read_only_message",
    "say",
    "supervised",
    "unwritable",
]

T = TypeVar("T")

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

out = console()
err = console(stderr=True)

SessionOpt = Annotated[
    str, typer.Option("--session", "-s", envvar=SESSION_ENV, help="Your session id.")
]
FromOpt = Annotated[str, typer.Option("--from", "-f", envvar=SESSION_ENV, help="Your session id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts and agents.")]


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
        interrupted()


# ------------------------------------------------------------------------------ plumbing


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(fn)
    except (ConductorError, sqlite3.OperationalError) as e:
        if (line := failure_line(e)) is None:
            raise
        fail(line)


def with_bus(ctx: typer.Context, fn: Callable[[Bus, Workspace], Awaitable[T]]) -> T:
    g: Globals = ctx.obj

    async def go() -> T:
        ws = await locate(Path.cwd(), g.db)
        async with open_store(ws.db_path, create=False) as store:  # a run is there, or none
            return await fn(await open_run(store, g.run), ws)

    return run_async(go)


@overload
def acting_as(ctx: typer.Context, name: str) -> str: ...


@overload
def acting_as(ctx: typer.Context, name: None) -> None: ...


def acting_as(ctx: typer.Context, name: str | None) -> str | None:
    """`check_acting_as` for a typer command; returns `name`, unchanged."""
    check_acting_as(ctx.obj, ctx.command_path, name)
    return name


@asynccontextmanager
async def open_store(path: Path, *, create: bool = True) -> AsyncIterator[Store]:
    """Store.open for the commands: a database this process may not write, found on opening
    it or on the first write, becomes a ReadOnlyDatabase, one line rather than a traceback."""
    try:
        async with Store.open(path, create=create) as store:
            yield store
    except (sqlite3.OperationalError, StoreError) as e:
        if (read_only := as_read_only(path, e)) is None:
            raise
        raise read_only from None
