"""The hand commands a session runs between tasks — `sync`, `status`, `message` — answered
without loading typer or starting an event loop: each is a process start, one git process,
a transaction or two and an exit, and the full command line parser (typer builds a pydantic
adapter per option) and asyncio cost more than all of that together.

This is a faster door to the same commands, never a different one: the same identity check,
the same bus code (driven by `without_loop` over a store opened for this thread), the same
output and errors. A command line it does not read whole — help, an option it does not
know, `--opt=value`, a missing or odd value, `-` for a text read from stdin — goes to the
full command, which answers it as it always has.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from conductor.bus import RUN_ENV, Bus, open_run
from conductor.cli.plumbing import (
    BUS_TOOLS,
    SESSION_ENV,
    Globals,
    check_acting_as,
    emit,
    fail,
    failure_line,
    open_store_blocking,
    print_json,
    print_sessions,
    say,
    supervised,
)
from conductor.errors import ConductorError, StoreError
from conductor.store import Store, is_url, without_loop
from conductor.store.interface import Unreachable
from conductor.text import sync_lines
from conductor.workspace import locate_blocking

GLOBAL_OPTIONS = {"--db": "db", "--run": "run"}
RUN_OPTION = {"--run": "run"}  # `--run RUN` after the command: the full command's RunOpt


@dataclass(frozen=True)
class Grammar:
    """What one hand command accepts: options with a value (every spelling -> its name),
    flags, how many arguments, and which option the session's environment fills."""

    options: dict[str, str] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)
    arguments: int = 0
    session_option: str | None = None


GRAMMARS = {
    "sync": Grammar(
        options={"--session": "session", "-s": "session", **RUN_OPTION},
        flags={"--json": "json"},
        session_option="session",
    ),
    "status": Grammar(options={**RUN_OPTION}, flags={"--json": "json"}),
    "message": Grammar(
        options={"--from": "sender", "-f": "sender", **RUN_OPTION},
        flags={"--json": "json"},
        arguments=2,
        session_option="sender",
    ),
}


@dataclass
class HandCall:
    command: str
    globals: Globals
    values: dict[str, str]
    flags: set[str]
    arguments: list[str]

    @property
    def json(self) -> bool:
        return "json" in self.flags


def parse(argv: list[str]) -> HandCall | None:
    """The call, when `argv` is a hand command in a form read whole here; else None."""
    globals_: dict[str, str] = {}
    at = 0
    while at < len(argv) and argv[at] in GLOBAL_OPTIONS:
        if at + 1 >= len(argv) or not _plain(argv[at + 1]):
            return None
        globals_[GLOBAL_OPTIONS[argv[at]]] = argv[at + 1]
        at += 2
    if at >= len(argv) or argv[at] not in GRAMMARS:
        return None
    command, grammar, rest = argv[at], GRAMMARS[argv[at]], argv[at + 1 :]
    values: dict[str, str] = {}
    flags: set[str] = set()
    arguments: list[str] = []
    i = 0
    while i < len(rest):
        token = rest[i]
        if token in grammar.options:
            if i + 1 >= len(rest) or not _plain(rest[i + 1]):
                return None
            values[grammar.options[token]] = rest[i + 1]  # the last one wins, as in click
            i += 2
        elif token in grammar.flags:
            flags.add(grammar.flags[token])
            i += 1
        elif _plain(token):
            arguments.append(token)
            i += 1
        else:  # --help, an unknown option, --opt=value, "--", an empty value: not here
            return None
    if len(arguments) != grammar.arguments:
        return None
    if grammar.session_option is not None and grammar.session_option not in values:
        from_env = os.environ.get(SESSION_ENV)
        if not from_env:
            return None  # the full command says what is missing
        values[grammar.session_option] = from_env
    # The run as the full command chooses it: `--run` after the command, else before it, else
    # CONDUCTOR_RUN (the global option's envvar), else the newest.
    run = values.pop("run", None) or globals_.get("run") or os.environ.get(RUN_ENV) or None
    return HandCall(command, Globals(db=globals_.get("db"), run=run), values, flags, arguments)


def _plain(token: str) -> bool:
    return bool(token) and not token.startswith("-")


def run_by_hand(argv: list[str]) -> bool:
    """Run `argv` here when it is a hand command read whole (and return True), else leave
    it to the full command (False). Ends like the full command: one line on stderr and
    exit 2 for bad input or a refused identity."""
    call = parse(argv)
    if call is None:
        return False
    try:
        COMMANDS[call.command](call)
    except (ConductorError, sqlite3.OperationalError) as e:
        line = failure_line(e)
        if line is None:
            raise
        fail(line)
    return True


@contextmanager
def _bus(g: Globals) -> Iterator[Bus]:
    ws = locate_blocking(Path.cwd(), g.db)
    with _opened(ws.location) as store:  # a run is there, or none
        yield without_loop(open_run(store, g.run))


@contextmanager
def _opened(location: str) -> Iterator[Store]:
    """The store at a SQLite file (a read-only one told in one line) or a PostgreSQL URL
    (a server out of reach told in one line), for reading a run."""
    if not is_url(location):
        with open_store_blocking(Path(location), create=False) as store:
            yield store
        return
    try:
        with Store.open_blocking(location, create=False) as store:
            yield store
    except Unreachable as e:
        raise out_of_reach(e) from None


def out_of_reach(err: Unreachable) -> StoreError:
    """A PostgreSQL server a command could not reach; inside a supervised session, where
    the sandbox lets no connection out (as it makes a SQLite file read-only), it says
    where the bus is reachable, as `read_only_message` does."""
    inside = supervised()
    if inside is None:
        return err
    me = f"session {inside.session}" if inside.session else f"run {inside.run}"
    return StoreError(
        f"the database {err.server} is out of reach inside supervised {me} (the sandbox"
        f" lets no connection out): use your {BUS_TOOLS} tools"
    )


def _sync(call: HandCall) -> None:
    session = call.values["session"]
    check_acting_as(call.globals, "conductor sync", session)
    with _bus(call.globals) as bus:
        result = without_loop(bus.sync(session))
    if call.json:
        print_json(result.to_json())
        return
    for line in sync_lines(result):
        say(line)


def _status(call: HandCall) -> None:
    with _bus(call.globals) as bus:
        sessions = without_loop(bus.sessions())
        unread = without_loop(bus.unread_counts())
    if call.json:
        print_json([{**s.to_json(), "unread": unread.get(s.name, 0)} for s in sessions])
        return
    print_sessions(sessions, unread)


def _message(call: HandCall) -> None:
    sender = call.values["sender"]
    to, text = call.arguments
    check_acting_as(call.globals, "conductor message", sender)
    with _bus(call.globals) as bus:
        m = without_loop(bus.send(sender, to, text))
    emit(call.json, m, f"message #{m.id} sent to {', '.join(m.recipients) or 'nobody'}")


COMMANDS: dict[str, Callable[[HandCall], None]] = {
    "sync": _sync,
    "status": _status,
    "message": _message,
}
