"""`conductor.toml` at the repository root: how a run behaves. Flags override it.

Unknown keys and wrong types are errors that name the key, so a typo never silently falls
back to a default (a budget is no place for silent defaults).
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from conductor.enforce import WORKER_TOOLS
from conductor.errors import InvalidInput
from conductor.session import SessionConfig
from conductor.worktrees import Bootstrap

CONFIG_NAME = "conductor.toml"
REVIEW_POLICIES = ("agent", "peer", "human", "auto")

DEFAULT_TOML = """\
# conductor.toml — how `conductor run` behaves in this repository. Flags override these.

# Model for every session (an alias such as "sonnet", or a full model id). Empty: the CLI's.
model = ""

# At most this many sessions work at once, and at most this many workstreams in a plan.
max_parallel = 3
max_sessions = 4

# Commands the merge gate runs on the merged result before the integration branch moves.
# Each is split like a shell would split it, but run without a shell.
checks = ["pytest -q"]

# Who reviews a finished workstream: "agent" (a reviewer session), "peer" (another
# workstream's session), "human" (you, with conductor review approve/reject), or "auto".
review = "agent"

# Budgets: a session stops at max_turns or max_usd_per_session; the run stops spawning and
# asks everyone to wrap up at max_usd_per_run.
max_turns = 200
max_usd_per_session = 5.0
max_usd_per_run = 20.0

# A session with no event for this long is stalled; a dead one is resumed up to `retries`.
stall_seconds = 600
retries = 2

# An overloaded or rate-limited API (HTTP 529, 429) pauses the session this long, doubling
# each time (at most 10 minutes, 8 times in a row), instead of failing it.
backoff_seconds = 15.0

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

# Extra environment for every session (shared resources: give each its own port, say).
[env]
"""


@dataclass(frozen=True)
class Config:
    model: str = ""
    max_parallel: int = 3
    max_sessions: int = 4
    checks: tuple[str, ...] = ()
    review: str = "agent"
    max_turns: int = 200
    max_usd_per_session: float = 5.0
    max_usd_per_run: float = 20.0
    stall_seconds: float = 600.0
    retries: int = 2
    backoff_seconds: float = 15.0
    copy_files: tuple[str, ...] = ()
    setup: str = ""
    sandbox: bool = True
    allowed_domains: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def setup_argv(self) -> list[str]:
        return shlex.split(self.setup)

    def bootstrap(self) -> Bootstrap:
        """What each new worktree gets: the files to copy and the setup command."""
        return Bootstrap(copy_files=self.copy_files, setup=self.setup_argv)

    def session(self, private_dir: Path, env: Mapping[str, str]) -> SessionConfig:
        """How to start a session: the caller's environment (a real key, or the stand-in's)
        under the `env` table of conductor.toml, a CLAUDE_CONFIG_DIR of the session's own in
        `private_dir` (one session's CLI config never reaches another's), the model, the
        per-session budgets and the sandbox."""
        return SessionConfig(
            env={**env, **self.env},
            config_dir=private_dir / "claude",
            model=self.model or None,
            max_turns=self.max_turns,
            max_budget_usd=self.max_usd_per_session,
            tools=WORKER_TOOLS,
            sandbox=self.sandbox,
            allowed_domains=self.allowed_domains,
            private_dir=private_dir,
        )

    def override(self, **flags: Any) -> Config:
        """The config with every flag that was given (not None) in place."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})


def load_config(repo: Path) -> Config:
    path = repo / CONFIG_NAME
    if not path.exists():
        return Config()
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InvalidInput(f"{path} is not valid TOML: {e}") from None
    return parse_config(data, source=str(path))


def parse_config(data: dict[str, Any], *, source: str = CONFIG_NAME) -> Config:
    known = {f.name: f for f in fields(Config)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InvalidInput(f"{source}: unknown setting {unknown[0]!r}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        default = getattr(Config(), key)
        values[key] = _coerce(key, value, default, source)
    config = Config(**values)
    if config.review not in REVIEW_POLICIES:
        raise InvalidInput(f"{source}: review must be one of {', '.join(REVIEW_POLICIES)}")
    if config.max_parallel < 1 or config.max_sessions < 1:
        raise InvalidInput(f"{source}: max_parallel and max_sessions are at least 1")
    return config


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    wrong = InvalidInput(f"{source}: {key} should be {type(default).__name__}, not {value!r}")
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"{source}: {key} should be a list of strings")
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise wrong
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(default, bool) and isinstance(value, bool):
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        raise wrong
    if isinstance(default, float) and isinstance(value, int | float):
        return float(value)
    if not isinstance(value, type(default)):
        raise wrong
    return value


def write_default(repo: Path) -> Path:
    path = repo / CONFIG_NAME
    if path.exists():
        raise InvalidInput(f"{path} exists already: edit it, or remove it first")
    path.write_text(DEFAULT_TOML)
    return path
