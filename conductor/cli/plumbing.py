"""What the commands share that needs neither typer nor an event loop: who a command acts
as, how a database this process may not write is told, and how results and failures are
printed. The typer commands (common.py) and the hand door (hand.py) both use it, so a hand
command answers exactly as the full command does.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from conductor.errors import ConductorError, StoreError
from conductor.models import HUMAN_SESSION, Record, Session
from conductor.plain_table import draw, pipe_width
from conductor.store import Store
from conductor.text import escape_controls
from conductor.workspace import SUPERVISED_ENV

if TYPE_CHECKING:
    from rich.console import Console

DISTRIBUTION = "conductor-swarm"  # the name on PyPI; the command and package are `conductor`
SESSION_ENV = "CONDUCTOR_SESSION"
BUS_TOOLS = "mcp__bus__"  # tools.TOOL_PREFIX, spelled out: importing tools loads the SDK
# sqlite's primary result codes for "this process may not write that file"
SQLITE_READONLY = 8
SQLITE_CANTOPEN = 14
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


@dataclass
class Globals:
    db: str | None = None
    run: str | None = None


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


def check_acting_as(g: Globals, command_path: str, name: str | None) -> None:
    """The one door of every command that writes the bus as a session: `name` is who it acts
    as (`--session`/`--from`, or the session `update` changes), None for a command that acts
    for every session at once (init, lock release --force).

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
        return
    me = inside.session
    if me is None or me == HUMAN_SESSION:
        fail(
            f"inside supervised run {inside.run} with no session in {SESSION_ENV}"
            f" you act as no one: use your {BUS_TOOLS} tools"
        )
    if name is None:
        fail(
            f"inside supervised session {me} you may not run '{command_path}',"
            f" it acts for every session: use your {BUS_TOOLS} tools"
        )
    if name != me:
        fail(
            f"inside supervised session {me} you act only as {me} (not {name}):"
            f" use your {BUS_TOOLS} tools"
        )
    # A session's name means that session only in its own run: `--run` may not point the
    # command at another run, and without one it is this run, not merely the newest.
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


def as_read_only(path: Path, err: BaseException) -> ReadOnlyDatabase | None:
    """The ReadOnlyDatabase an error opening or writing the store at `path` means, if any."""
    if isinstance(err, ReadOnlyDatabase) or not unwritable(err):
        return None
    return ReadOnlyDatabase(read_only_message(path, err))


@contextmanager
def open_store_blocking(path: Path, *, create: bool = True) -> Iterator[Store]:
    """Store.open_blocking for a hand command, its errors told as `open_store` tells them."""
    try:
        with Store.open_blocking(path, create=create) as store:
            yield store
    except (sqlite3.OperationalError, StoreError) as e:
        if (read_only := as_read_only(path, e)) is None:
            raise
        raise read_only from None


def failure_line(err: BaseException) -> str | None:
    """The one line a command ends with for `err`, or None when it is not ours to tell (a
    bug, which keeps its traceback)."""
    if isinstance(err, ConductorError):
        return read_only_message(None, err) if unwritable(err) else str(err)
    if isinstance(err, sqlite3.OperationalError) and unwritable(err):  # outside open_store
        return read_only_message(None, err)
    return None


# ------------------------------------------------------------------------------ output

_consoles: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    """The rich console for stdout or stderr, made on first use: a command that prints
    only plain lines never loads rich."""
    if stderr not in _consoles:
        from conductor.dashboard import console as make

        _consoles[stderr] = make(stderr=stderr)
    return _consoles[stderr]


def _line(text: str, stderr: bool) -> None:
    # Control characters are written out first (what someone else wrote is shown, never acted
    # on by the terminal). A plain printable line is then what the console would print;
    # anything else (tabs, newlines, wide characters) goes through it.
    text = escape_controls(text)
    if text.isascii() and text.isprintable():
        stream: TextIO = sys.stderr if stderr else sys.stdout
        stream.write(text + "\n")
    else:
        console(stderr).print(text, soft_wrap=True)


def interrupted() -> NoReturn:
    """How a command ends on Ctrl-C: one word on stderr, exit 130 (as a shell reports it)."""
    _line("interrupted", stderr=True)
    raise SystemExit(EXIT_INTERRUPTED)


def fail(message: str) -> NoReturn:
    """One line on stderr, exit 2: how every bad input ends."""
    _line(f"error: {message}", stderr=True)
    raise SystemExit(EXIT_BAD_INPUT)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def say(text: str) -> None:
    _line(text, stderr=False)


def print_sessions(sessions: list[Session], unread: dict[str, int] | None = None) -> None:
    """The sessions table: drawn here when it goes to a pipe as plain text (sessions read it
    from Bash), else by rich (colours for a person at a terminal, or text rich must fold)."""
    from conductor.text import SESSION_COLUMNS, session_rows

    width = pipe_width()
    drawn = None
    if width is not None:
        drawn = draw("Sessions", SESSION_COLUMNS, session_rows(sessions, unread), width)
    if drawn is not None:
        sys.stdout.write(drawn)
        return
    from conductor.dashboard import sessions_table

    console().print(sessions_table(sessions, unread))


def emit(json_: bool, record: Record, line: str) -> None:
    """A command's result: the record as JSON, or one line for a person."""
    if json_:
        print_json(record.to_json())
    else:
        say(line)
