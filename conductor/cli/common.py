"""What every `conductor` command shares: the app, its groups, the consoles, the options,
and the plumbing that runs one coroutine over the bus and turns domain errors into one line
on stderr with exit code 2.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, overload

import anyio
import typer

from conductor import dashboard
from conductor.bus import Bus, open_run
from conductor.errors import ConductorError, StoreError
from conductor.gates import HUMAN_REVIEWER
from conductor.leftovers import SUPERVISED_ENV
from conductor.models import Record
from conductor.store import Store
from conductor.workspace import Workspace, locate

T = TypeVar("T")
SESSION_ENV = "CONDUCTOR_SESSION"
BUS_TOOLS = "mcp__bus__"  # tools.TOOL_PREFIX, spelled out: importing tools loads the SDK
# sqlite's primary result codes for "this process may not write that file"
SQLITE_READONLY = 8
SQLITE_CANTOPEN = 14

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


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(fn)
    except ConductorError as e:
        fail(read_only_message(None, e) if unwritable(e) else str(e))
    except sqlite3.OperationalError as e:  # a store opened without `open_store`
        if not unwritable(e):
            raise
        fail(read_only_message(None, e))


def with_bus(ctx: typer.Context, fn: Callable[[Bus, Workspace], Awaitable[T]]) -> T:
    g: Globals = ctx.obj

    async def go() -> T:
        ws = await locate(Path.cwd(), g.db)
        async with open_store(ws.db_path) as store:
            return await fn(await open_run(store, g.run), ws)

    return run_async(go)


# ------------------------------------------------------------------------------ who acts


class ReadOnlyDatabase(StoreError):
    """The database is there but this process may not write it: a read-only file system
    (the OS boundary around a supervised session) or file permissions."""


@dataclass(frozen=True)
class Supervised:
    """The supervised session this process runs inside, from the environment the supervisor
    gives every session (and every command a session runs)."""

    run: str
    session: str | None


def supervised() -> Supervised | None:
    """Inside a session started by `conductor run`, else None (a person at a terminal)."""
    run = os.environ.get(SUPERVISED_ENV)
    if not run:
        return None
    return Supervised(run, os.environ.get(SESSION_ENV) or None)


@overload
def acting_as(ctx: typer.Context, name: str) -> str: ...


@overload
def acting_as(ctx: typer.Context, name: None) -> None: ...


def acting_as(ctx: typer.Context, name: str | None) -> str | None:
    """The one door of every command that writes the bus as a session: `name` is who it acts
    as (`--session`/`--from`, or the session `update` changes), None for a command that acts
    for every session at once (init, lock release --force). Returns `name`, unchanged.

    A person may act as anyone, `human` included: that is claude-swarm's model, and how a
    person answers a review. A supervised session may act only as itself and only in its own
    run: `--from` must not let it approve its own work as `human`, speak for another session
    or end someone's lease. `CONDUCTOR_SESSION` also fills `--from` when it is not given, so
    the check compares with the environment, and an explicit `--from C` cannot win. Refusals
    are one line, exit 2. This is the courtesy layer: the OS boundary, which makes the
    database read-only to sessions, is what holds when a session ignores it.
    """
    inside = supervised()
    if inside is None:
        return name
    me = inside.session
    if me is None or me == HUMAN_REVIEWER:
        fail(
            f"inside supervised run {inside.run} with no session in {SESSION_ENV}"
            f" you act as no one: use your {BUS_TOOLS} tools"
        )
    if name is None:
        fail(
            f"inside supervised session {me} you may not run '{ctx.command_path}',"
            f" it acts for every session: use your {BUS_TOOLS} tools"
        )
    if name != me:
        fail(
            f"inside supervised session {me} you act only as {me} (not {name}):"
            f" use your {BUS_TOOLS} tools"
        )
    _pin_run(ctx, inside)
    return name


def _pin_run(ctx: typer.Context, inside: Supervised) -> None:
    """A session's name means that session only in its own run: `--run` may not point the
    command at another run, and without one it is this run, not merely the newest."""
    g: Globals = ctx.obj
    if g.run is None:
        g.run = inside.run
    elif g.run != inside.run:
        fail(
            f"inside supervised session {inside.session} you act only in run {inside.run}"
            f" (not {g.run}): use your {BUS_TOOLS} tools"
        )


# ------------------------------------------------------------------------------ read-only store


def unwritable(err: BaseException) -> bool:
    """Whether sqlite refused because this process may not write the database file (or
    create its journal beside it), as opposed to a corrupt file or a bug. Store.open wraps
    such errors in a StoreError; a write later on raises sqlite's own error."""
    cause = err if isinstance(err, sqlite3.Error) else err.__cause__
    code = getattr(cause, "sqlite_errorcode", None)
    if not isinstance(cause, sqlite3.OperationalError) or code is None:
        return False
    return code & 0xFF in (SQLITE_READONLY, SQLITE_CANTOPEN)


def read_only_message(path: Path | None, err: BaseException) -> str:
    """The one line for a database this process cannot write; inside a supervised session,
    where that is the OS boundary doing its work, it says where the bus is writable."""
    where = f"the database {path}" if path is not None else "the database"
    inside = supervised()
    if inside is not None:
        me = f"session {inside.session}" if inside.session else f"run {inside.run}"
        return f"{where} is read-only inside supervised {me}: use your {BUS_TOOLS} tools"
    cause = err if isinstance(err, sqlite3.Error) else err.__cause__
    return f"{where} is read-only here ({cause})"


@asynccontextmanager
async def open_store(path: Path) -> AsyncIterator[Store]:
    """Store.open for the commands: a database this process may not write, found on opening
    it or on the first write, becomes a ReadOnlyDatabase, one line rather than a traceback."""
    try:
        async with Store.open(path) as store:
            yield store
    except (sqlite3.OperationalError, StoreError) as e:
        if isinstance(e, ReadOnlyDatabase) or not unwritable(e):
            raise
        raise ReadOnlyDatabase(read_only_message(path, e)) from None


# ------------------------------------------------------------------------------ output


def fail(message: str) -> NoReturn:
    """One line on stderr, exit 2: how every bad input ends."""
    err.print(f"error: {message}", soft_wrap=True)
    raise typer.Exit(2)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def say(text: str) -> None:
    out.print(text, soft_wrap=True)


def emit(json_: bool, record: Record, line: str) -> None:
    """A command's result: the record as JSON, or one line for a person."""
    if json_:
        print_json(record.to_json())
    else:
        say(line)
