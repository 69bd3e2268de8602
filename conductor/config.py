"""`conductor.toml` at the repository root: how a run behaves. Flags override it.

Unknown keys, wrong types and numbers out of range are errors that name the key (and the
nearest known one, or the range), so a typo never silently falls back to a default (a budget
is no place for silent defaults).

Two keys are not a run's settings:
- `db`, where the database is (a SQLite file, or a PostgreSQL URL for a team across hosts).
  Every command needs it, before any run is chosen, so `workspace.locate` reads it; it is
  checked here only so that the file stays strict, and it is never stored with a run (it may
  hold a password).
- `[notify]`, where notifications of what needs a person go (`Notify`). The supervising
  process reads it from the file each time it starts (`load_notify`: a run and its resume
  alike), so it is never stored with a run either: a webhook's URL often is its secret, and
  the store is readable by the run's sessions.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conductor.errors import InvalidInput
from conductor.models import ReviewPolicy
from conductor.validation import READ, Field, Reader, declared, readers, shape

CONFIG_NAME = "conductor.toml"
# The ranges settings are checked against (see SETTINGS below).
MAX_SESSIONS = 100
MAX_TURNS = 10_000
MAX_RETRIES = 20
MAX_BACKOFF = 600.0  # the pause's own ceiling: it doubles up to 10 minutes
DAY = 86_400.0
# What a run does when its cost reaches max_cost: wait to be resumed with a higher ceiling,
# or end there.
ON_MAX_COST = ("pause", "stop")
WEEK = 7 * DAY
USAGE_WAIT = 5 * 3600.0  # a usage window's reset is waited for up to this long by default

DEFAULT_TOML = """\
# conductor.toml — how `conductor run` behaves in this repository. Flags override these.

# Model for every session (an alias such as "sonnet", or a full model id). Empty: the CLI's.
model = ""

# A model per role; empty: the same as `model`. The planner; the agent reviewers; and the
# turn that resolves a merge conflict (the author's own session, switched to this model for
# that turn, then back). A workstream may also name its own model in the plan ("model").
planner_model = ""
reviewer_model = ""
resolver_model = ""

# A reviewer on another model than its author: the reviewer model must then differ from
# `model` (refused at the start otherwise), and a workstream whose own model is the
# reviewer model is reviewed on `model` instead.
cross_review = false

# At most this many sessions work at once, and at most this many workstreams in a plan
# (each 1 to 100).
max_parallel = 3
max_sessions = 4

# Commands the merge gate runs on the merged result before the integration branch moves.
# Each is split like a shell would split it, but run without a shell.
checks = ["pytest -q"]

# Who reviews a finished workstream: "agent" (a reviewer session), "peer" (another
# workstream's session), "human" (you, with conductor review approve/reject), or "auto".
review = "agent"

# Budgets: a session stops at max_turns (1 to 10000) or max_usd_per_session; the run stops
# spawning and asks everyone to wrap up at max_usd_per_run (dollars, more than 0).
max_turns = 200
max_usd_per_session = 5.0
max_usd_per_run = 20.0

# A hard ceiling on the whole run's cost (planner, sessions, reviewers), in dollars; 0: none.
# A warning at 80 %; at 100 % every session pauses at its next tool call and nothing new
# starts. on_max_cost: "pause" (the run waits for conductor resume RUN --max-cost HIGHER) or
# "stop" (the run ends there). Unlike max_usd_per_run, which lets sessions wrap up, nothing
# more is spent past it but the API call each live session had in flight.
max_cost = 0
on_max_cost = "pause"

# A session with no event for this long (1 to 86400 seconds) is stalled; a dead one is
# resumed up to `retries` times (0 to 20).
stall_seconds = 600
retries = 2

# An overloaded or rate-limited API (HTTP 529, 429) pauses the session this long (more than
# 0, at most 600 seconds), doubling each time (at most 10 minutes, 8 times in a row), instead
# of failing it.
backoff_seconds = 15.0

# A 429 that says when the usage limit resets pauses the session until then (every session
# that hits the same limit waits for the same time), at most this long (0 to 604800
# seconds) per wait; past it, the wait is this long and the session tries again. 0: such a
# 429 is waited out like any other (backoff_seconds, doubling).
max_usage_wait = 18000

# Files git ignores that each new worktree needs, copied from this checkout (e.g. ".env"),
# and a command run in each new worktree before its session starts (e.g. "npm ci").
copy_files = []
setup = ""

# The OS boundary around every session (see the README's enforcement model): its processes
# write only its own worktree, and reach no network beyond allowed_domains (the CLI itself
# still reaches the model API). Needs bubblewrap and socat on Linux. Turn it off only where
# no sandbox can run; the hooks and the merge gate's checks then stand alone.
sandbox = true
allowed_domains = []

# When everything merged, push the integration branch to the repository's remote and open a
# pull request into the branch the run started from, with GitHub's CLI (`gh pr create`):
# the goal is its title, the run's summary its body. Without gh or a remote, one line says
# so and the branch stays. The same as `conductor run --pr`.
pr = false

# The database, when not .conductor/conductor.db: a SQLite file, or PostgreSQL for a team
# across hosts (needs the postgres extra). Keep the password out of this file: libpq reads
# PGPASSWORD or ~/.pgpass. --db and CONDUCTOR_DB win over it.
# db = "postgresql://conductor@db.example.com/conductor"

# Notifications when a person is needed (a human review waiting, a blocked session, a failed
# workstream, the run's end), each as JSON: on the stdin of `command` (an argument list, or a
# command line split as a shell would) and/or POSTed to `webhook`. `on`: which to send (all
# by default); `timeout`: seconds a delivery may take (a command is killed after it).
# [notify]
# command = ["sh", "-c", "notify-send conductor \"$(jq -r .text)\""]
# webhook = "https://example.com/hooks/conductor"
# on = ["review.waiting", "session.blocked", "workstream.failed", "run.finished"]
# timeout = 10

# Extra environment for every session (shared resources: give each its own port, say).
[env]
"""


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DOMAIN = re.compile(r"^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")


def _command(field: Field, value: Any) -> str:
    """A command line conductor splits as a shell would (and runs without a shell)."""
    text = field.string(value, "a command line")
    try:
        shlex.split(text)
    except ValueError as e:
        field.fail(f"cannot be split as a shell would split it: {e} in {text!r}")
    return text


def _commands(field: Field, value: Any) -> tuple[str, ...]:
    items = field.items(value, "a list of command lines")
    return tuple(
        _command(field.index(n), field.index(n).string(v, "a command line", non_empty=True))
        for n, v in enumerate(items)
    )


def _domains(field: Field, value: Any) -> tuple[str, ...]:
    found = field.strings(value, "a list of domain names")
    for n, domain in enumerate(found):
        if not DOMAIN.match(domain):
            field.index(n).expected("a domain name such as pypi.org or *.github.com", domain)
    return found


def _env(field: Field, value: Any) -> dict[str, str]:
    table = field.mapping(value, "a table of NAME = value")
    env = {}
    for name, given in table.items():
        if not ENV_NAME.match(name):
            field.key(name).fail("an environment variable's name is letters, digits and '_'")
        if isinstance(given, bool) or not isinstance(given, str | int | float):
            field.key(name).expected("a string (or a number)", given)
        env[name] = str(given)
    return env


def _number(what: str, **bounds: float) -> Callable[[Field, Any], float]:
    return lambda field, value: field.number(value, what, **bounds)


def _whole(what: str, **bounds: int) -> Callable[[Field, Any], int]:
    return lambda field, value: field.integer(value, what, **bounds)


# Every setting is checked, and a value out of range is refused with the range, rather than
# a run that misbehaves (a stall_seconds of -5 would call every session stalled at once).
@shape
class Config:
    """How a run behaves: conductor.toml's settings (flags over them), each declared once
    with its default and how a given value is read and checked."""

    model: str = declared(
        default="", read=lambda f, v: f.string(v, 'a model name such as "sonnet"')
    )
    max_parallel: int = declared(
        default=3, read=_whole("a whole number of sessions", minimum=1, maximum=MAX_SESSIONS)
    )
    max_sessions: int = declared(
        default=4, read=_whole("a whole number of workstreams", minimum=1, maximum=MAX_SESSIONS)
    )
    checks: tuple[str, ...] = declared(default=(), read=_commands)
    review: str = declared(
        default=ReviewPolicy.AGENT.value, read=lambda f, v: f.one_of(v, ReviewPolicy)
    )
    max_turns: int = declared(
        default=200, read=_whole("a whole number of turns", minimum=1, maximum=MAX_TURNS)
    )
    max_usd_per_session: float = declared(
        default=5.0, read=_number("an amount in US dollars", above=0)
    )
    max_usd_per_run: float = declared(
        default=20.0, read=_number("an amount in US dollars", above=0)
    )
    max_cost: float = declared(
        default=0.0, read=_number("an amount in US dollars (0: no ceiling)", minimum=0)
    )
    on_max_cost: str = declared(default=ON_MAX_COST[0], read=lambda f, v: f.one_of(v, ON_MAX_COST))
    stall_seconds: float = declared(
        default=600.0, read=_number("a number of seconds", minimum=1, maximum=DAY)
    )
    retries: int = declared(
        default=2, read=_whole("a whole number of restarts", minimum=0, maximum=MAX_RETRIES)
    )
    backoff_seconds: float = declared(
        default=15.0, read=_number("a number of seconds", above=0, maximum=MAX_BACKOFF)
    )
    planner_model: str = declared(
        default="", read=lambda f, v: f.string(v, 'a model name such as "opus"')
    )
    reviewer_model: str = declared(
        default="", read=lambda f, v: f.string(v, 'a model name such as "opus"')
    )
    resolver_model: str = declared(
        default="", read=lambda f, v: f.string(v, 'a model name such as "opus"')
    )
    cross_review: bool = declared(default=False, read=lambda f, v: f.boolean(v))
    max_usage_wait: float = declared(
        default=USAGE_WAIT, read=_number("a number of seconds", minimum=0, maximum=WEEK)
    )
    copy_files: tuple[str, ...] = declared(
        default=(), read=lambda f, v: f.strings(v, "a list of paths")
    )
    setup: str = declared(default="", read=_command)
    sandbox: bool = declared(default=True, read=lambda f, v: f.boolean(v))
    allowed_domains: tuple[str, ...] = declared(default=(), read=_domains)
    pr: bool = declared(default=False, read=lambda f, v: f.boolean(v))
    env: dict[str, str] = field(default_factory=dict, metadata={READ: _env})

    @property
    def setup_argv(self) -> list[str]:
        return shlex.split(self.setup)

    def override(self, **flags: Any) -> Config:
        """The config with every flag that was given (not None) in place."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})


# How each setting is read and checked, by name.
SETTINGS: dict[str, Reader] = readers(Config)


# ------------------------------------------------------------------------------ [notify]

# What a notification can be about, by its stable name (the `kind` of its JSON, and what
# [notify]'s `on` chooses from): conductor.notify.what makes each from the run's events.
NOTIFICATIONS = (
    "review.waiting",  # a review assigned to `human` waits for a person's verdict
    "session.blocked",  # a session said it is blocked, and why
    "workstream.failed",  # a workstream's session ended failed
    "run.finished",  # the run ended: everything merged
    "run.failed",  # the run ended: not everything merged
    "run.interrupted",  # the run stopped (Ctrl-C, `conductor stop`, a machine fault): resumable
)
NOTIFY_TIMEOUT = 10.0
MAX_NOTIFY_TIMEOUT = 300.0


def _argv(field: Field, value: Any) -> tuple[str, ...]:
    """A program and its arguments: a list, or a command line split as a shell would (run
    without a shell either way)."""
    if isinstance(value, str):
        argv = tuple(shlex.split(_command(field, value)))
    else:
        what = 'an argument list such as ["notify-send", "conductor"], or a command line'
        argv = field.strings(value, what)
    if not argv:
        field.expected("a program and its arguments", value)
    return argv


def _webhook(field: Field, value: Any) -> str:
    url = field.string(value, "an http:// or https:// URL", non_empty=True)
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is no number, a bracketed host that is no address
        ok = False
    if not ok:
        field.expected("an http:// or https:// URL with a host", url)
    return url


def _notifications(field: Field, value: Any) -> tuple[str, ...]:
    items = field.items(value, "a list of notification names", non_empty=True)
    return tuple(field.index(n).one_of(v, NOTIFICATIONS) for n, v in enumerate(items))


@shape
class Notify:
    """`[notify]`: where notifications of what needs a person go (conductor.notify sends
    them). Neither `command` nor `webhook`: none are sent (no [notify] at all)."""

    command: tuple[str, ...] = declared(default=(), read=_argv)  # gets the JSON on stdin
    webhook: str = declared(default="", read=_webhook)  # gets it POSTed
    on: tuple[str, ...] = declared(default=NOTIFICATIONS, read=_notifications)
    timeout: float = declared(
        default=NOTIFY_TIMEOUT,
        read=_number("a number of seconds", above=0, maximum=MAX_NOTIFY_TIMEOUT),
    )

    @property
    def enabled(self) -> bool:
        return bool(self.command or self.webhook)


NOTIFY_SETTINGS: dict[str, Reader] = readers(Notify)


def _notify(field: Field, value: Any) -> Notify:
    table = field.mapping(value, "a table: [notify] with command and/or webhook")
    field.known_keys(table, NOTIFY_SETTINGS, "key of [notify]")
    notify = Notify(**{k: NOTIFY_SETTINGS[k](field.key(k), v) for k, v in table.items()})
    if not notify.enabled:
        field.fail("names no command and no webhook: give one of them, or leave [notify] out")
    return notify


# Keys conductor.toml may hold that are not a run's settings (see the module's docstring):
# checked, then left out of the Config. (The key's name is workspace.DB_KEY.)
NOT_SETTINGS: dict[str, Reader] = {
    "db": lambda f, v: f.string(v, "a SQLite file's path or a postgresql:// URL", non_empty=True),
    "notify": _notify,
}


def _read_toml(repo: Path) -> tuple[str, dict[str, Any]] | None:
    """(where, what) of the repository's conductor.toml, or None without one."""
    path = repo / CONFIG_NAME
    if not path.exists():
        return None
    try:
        return str(path), tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InvalidInput(f"{path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not valid TOML: it is not UTF-8 text") from None
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}") from None


def load_config(repo: Path) -> Config:
    found = _read_toml(repo)
    if found is None:
        return Config()
    source, data = found
    return parse_config(data, source=source)


def load_notify(repo: Path) -> Notify:
    """conductor.toml's [notify] as it is now (a resumed run reads it again); no [notify]:
    `Notify()`, which sends nothing."""
    found = _read_toml(repo)
    if found is None or "notify" not in found[1]:
        return Notify()
    source, data = found
    return _notify(Field(source).key("notify"), data["notify"])


def parse_config(data: Mapping[str, Any], *, source: str = CONFIG_NAME) -> Config:
    """The settings of a conductor.toml (or a run's stored config), each checked: unknown
    names get the nearest known one, numbers their range, every mistake one line naming
    the setting."""
    top = Field(source)
    top.known_keys(data, [*SETTINGS, *NOT_SETTINGS], "setting")
    for key in NOT_SETTINGS.keys() & data.keys():
        NOT_SETTINGS[key](top.key(key), data[key])
    return Config(
        **{
            key: SETTINGS[key](top.key(key), value)
            for key, value in data.items()
            if key in SETTINGS
        }
    )


def write_default(repo: Path) -> Path:
    path = repo / CONFIG_NAME
    if path.exists():
        raise InvalidInput(f"{path} exists already: edit it, or remove it first")
    path.write_text(DEFAULT_TOML)
    return path
