"""What every `conductor` command shares: the app, its groups, the consoles, the options,
and the plumbing that runs one coroutine over the bus and turns domain errors into one line
on stderr with exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import anyio
import typer

from conductor import dashboard
from conductor.bus import Bus, open_run
from conductor.errors import ConductorError
from conductor.models import Record
from conductor.store import Store
from conductor.workspace import Workspace, locate

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


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(fn)
    except ConductorError as e:
        fail(str(e))


def with_bus(ctx: typer.Context, fn: Callable[[Bus, Workspace], Awaitable[T]]) -> T:
    g: Globals = ctx.obj

    async def go() -> T:
        ws = await locate(Path.cwd(), g.db)
        async with Store.open(ws.db_path) as store:
            return await fn(await open_run(store, g.run), ws)

    return run_async(go)


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
