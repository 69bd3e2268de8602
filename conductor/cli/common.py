"""What every `conductor` command shares: the app, its groups, the consoles, the options,
and the plumbing that runs one coroutine over the bus and turns domain errors into one line
on stderr with exit code 2; and what belongs to the command itself: its help, `--version`,
`completion SHELL`, one line for a command line it cannot read, `--run RUN` after any
command that reads a run, and `-` for a text read from stdin.
"""

from __future__ import annotations

import enum
import itertools
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, overload

import anyio
import typer

# typer's own completion: its scripts, and the classes that answer them (typer.completion
# imports both for its --install-completion, without re-exporting them)
from typer.completion import (  # type: ignore[attr-defined]
    completion_init,
    get_completion_script,
)
from typer.core import TyperGroup

from conductor.bus import RUN_ENV, Bus, open_run
from conductor.cli.hand import out_of_reach
from conductor.cli.plumbing import (
    DISTRIBUTION,
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
from conductor.store import Store, is_url
from conductor.store.interface import Unreachable
from conductor.workspace import Workspace, locate

__all__ = [
    "DISTRIBUTION",
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

# click's UsageError, as the click typer parses with raises it (typer carries its own copy of
# click since 0.2x): every command line typer cannot read ends in one of these.
UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)

# `conductor --help` lists the commands in sections, by their rich_help_panel, in this order:
# running a run, the demo and the stand-in, watching a run — what someone new looks for —
# then the hand commands. A panel not named here comes after these, in registration order.
HELP_PANELS = ("Runs", "Offline", "Watch", "Coordination", "Git", "Setup")


def _panel(command: Any) -> str:
    return getattr(command, "rich_help_panel", None) or "Commands"


class Commands(TyperGroup):
    """The `conductor` command itself: its help lists the commands by section (HELP_PANELS),
    and a command line it cannot read ends as every other error does, in one line on stderr
    with exit 2, not click's usage block."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        panels = [*HELP_PANELS]
        panels += dict.fromkeys(p for n in names if (p := _panel(self.commands[n])) not in panels)
        return sorted(names, key=lambda name: panels.index(_panel(self.commands[name])))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        shown = [
            (name, command)
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        ]
        if not shown:
            return
        width = max(len(name) for name, _ in shown)  # one column for every section
        limit = formatter.width - 6 - width
        for panel, commands in itertools.groupby(shown, key=lambda shown: _panel(shown[1])):
            with formatter.section(panel):
                formatter.write_dl(
                    [
                        (name.ljust(width), command.get_short_help_str(limit))
                        for name, command in commands
                    ]
                )

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageError as e:
            _unusable(e)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as e:
            _unusable(e)


def _unusable(error: Any) -> NoReturn:
    if type(error).__name__ == "NoArgsIsHelpError":  # a command run bare: as a bare group
        typer.echo(error.ctx.get_help())
        raise typer.Exit(0)
    fail(usage_line(error))


def usage_line(error: Any) -> str:
    """A usage error in one line, with the command that shows what the command takes (as
    it works when pasted: `hints.command`)."""
    from conductor.cli import hints

    message = " ".join(error.format_message().split()).removesuffix(".")
    if message[1:2].islower():  # "Missing argument 'TEXT'", not "TEXT is ..."
        message = message[0].lower() + message[1:]
    if error.ctx is None:
        return message
    words: list[str] = []
    ctx = error.ctx
    while ctx.parent is not None:  # the command's names below `conductor`
        words.insert(0, ctx.info_name)
        ctx = ctx.parent
    return f"{message}; usage: {hints.command(*words, '--help')}"


def _help_when_bare(ctx: typer.Context) -> None:
    """A command group run without a command shows its help, and that is no error."""
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


app = typer.Typer(
    name="conductor",
    cls=Commands,
    help="Run a team of Claude Code sessions hands-off, or coordinate them by hand.",
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=False,  # `conductor completion SHELL` instead: see completion below
)
context_app = typer.Typer(help="Shared context: decisions, interfaces, warnings, ...")
review_app = typer.Typer(help="Peer review: request, list, show, approve, reject.")
lock_app = typer.Typer(help="The git lock that serialises pushes.")
model_app = typer.Typer(help="The scripted stand-in for the Messages API, for offline runs.")
for group in (context_app, review_app, lock_app, model_app):
    group.callback(invoke_without_command=True)(_help_when_bare)
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


def _run_after_the_command(ctx: typer.Context, run: str | None) -> None:
    if run is not None and isinstance(ctx.obj, Globals):  # no Globals while completing
        ctx.obj.run = run


# `--run RUN` after the command name: the same choice as `conductor --run RUN COMMAND`, and it
# wins over it (the nearer the command, the more it says). Its value goes to the Globals, where
# every command reads the run from, before the command runs: the parameter itself is unused.
RunOpt = Annotated[
    str | None,
    typer.Option(
        "--run",
        help="The run (default: the newest run).",
        callback=_run_after_the_command,
        expose_value=False,
        show_default=False,
    ),
]


def version() -> str:
    """The installed distribution's version (the source tree's, when run uninstalled)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        import conductor

        return conductor.__version__


def _print_version(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        say(f"conductor {version()}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _globals(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="The database: a SQLite file or a postgresql:// URL (default: conductor.toml's"
            " db, else .conductor/conductor.db in the repo).",
            show_default=False,
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            envvar=RUN_ENV,
            help="Run id (default: the newest run); also after the command name.",
        ),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print conductor's version and exit.",
            callback=_print_version,
            is_eager=True,
            expose_value=False,
        ),
    ] = False,
) -> None:
    ctx.obj = Globals(db=db, run=run)
    _help_when_bare(ctx)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        interrupted()


# ------------------------------------------------------------------------------ text in


STDIN = "-"


def text_from(value: str) -> str:
    """A text a command takes (a message, a note, a comment), as given on the command line,
    or, when it is `-`, read from stdin to its end: UTF-8, its trailing newlines dropped (as
    `$(cat FILE)` drops them). So long text never meets the argument-length limit, and a text
    that really is "-" is sent through stdin too: `printf %s - | conductor message B -`."""
    if value != STDIN:
        return value
    return decode_stdin(read_stdin()).rstrip("\r\n")


def read_stdin() -> bytes:
    return sys.stdin.buffer.read()


def decode_stdin(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        fail(f"stdin is not UTF-8 text (byte {e.start} is {data[e.start]:#04x})")


# ------------------------------------------------------------------------------ completion


class Shell(enum.StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"


COMPLETE_VAR = "_CONDUCTOR_COMPLETE"  # what typer's scripts set; click reads it for `conductor`
completion_init()  # typer's completion classes answer the scripts typer writes


@app.command(rich_help_panel="Setup")
def completion(
    shell: Annotated[Shell, typer.Argument(help="bash, zsh, fish or powershell.")],
) -> None:
    """Print the shell completion script: eval "$(conductor completion bash)" in ~/.bashrc."""
    script = get_completion_script(
        prog_name="conductor", complete_var=COMPLETE_VAR, shell=shell.value
    )
    sys.stdout.write(script.strip("\n") + "\n")


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
        async with open_store(ws.location, create=False) as store:  # a run is there, or none
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
async def open_store(location: str | Path, *, create: bool = True) -> AsyncIterator[Store]:
    """Store.open for the commands, at a SQLite file or a PostgreSQL URL (`Workspace.location`):
    a SQLite file this process may not write, found on opening it or on the first write,
    becomes a ReadOnlyDatabase, one line rather than a traceback. (A server that cannot be
    reached, or a missing postgres extra, is a StoreError of one line already.)"""
    try:
        async with Store.open(location, create=create) as store:
            yield store
    except Unreachable as e:
        raise out_of_reach(e) from None
    except (sqlite3.OperationalError, StoreError) as e:
        if is_url(str(location)) or (read_only := as_read_only(Path(location), e)) is None:
            raise
        raise read_only from None
