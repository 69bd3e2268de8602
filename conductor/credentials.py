"""Whose model account sessions use: the credentials a user of Claude Code already has.

Either the environment names them (an API key, `ANTHROPIC_AUTH_TOKEN`, a long-lived
`CLAUDE_CODE_OAUTH_TOKEN` from `claude setup-token`, or Bedrock/Vertex), or the user is logged
in to Claude Code: a `.credentials.json` in their config dir (`$CLAUDE_CONFIG_DIR`, else
`~/.claude`). Sessions each keep a config dir of their own (their transcripts and settings
must not mix), where the CLI would find no login; so a session's CLI is given the user's:

- in conductor's jail, the user's credentials file bound read-only at the place the CLI reads
  it. Read-only because a session must not be able to change whose account the user's own
  Claude Code uses afterwards (swapping in another account's token would send the user's
  later work there). The CLI watches that file, so a refresh the user's own `claude` makes is
  seen; one the session's CLI makes is kept in its memory.
- outside a jail (the planner, `sandbox = false`), its access token as
  `CLAUDE_CODE_OAUTH_TOKEN`, read when that CLI starts. A link would not do: the CLI refuses
  a credentials file that is a symbolic link.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conductor.errors import InvalidInput

CREDENTIALS_FILE = ".credentials.json"
OAUTH_TOKEN_ENV = "CLAUDE_CODE_OAUTH_TOKEN"
# Any of these set (non-empty) means the environment says how to reach the model.
ENVIRONMENT_CREDENTIALS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    OAUTH_TOKEN_ENV,
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)
NO_CREDENTIALS = (
    "no credentials for the model: set ANTHROPIC_API_KEY, log in with `claude` (conductor uses"
    " that login), set CLAUDE_CODE_OAUTH_TOKEN (from `claude setup-token`) or"
    " CLAUDE_CODE_USE_BEDROCK/VERTEX (or try it offline: conductor demo)"
)


@dataclass(frozen=True)
class Login:
    """A Claude Code login: the file it is kept in, and its access token now."""

    path: Path
    access_token: str
    expires_at: float | None  # seconds since the epoch; None: not said


def from_environment(env: Mapping[str, str]) -> bool:
    return any(env.get(name) for name in ENVIRONMENT_CREDENTIALS)


def user_config_dir(env: Mapping[str, str]) -> Path:
    """Where the user's own Claude Code keeps its config (and login)."""
    named = env.get("CLAUDE_CONFIG_DIR")
    if named:
        return Path(named).expanduser()
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".claude"


def find_login(env: Mapping[str, str]) -> Login | None:
    """The user's Claude Code login, if they have one that holds an access token."""
    path = user_config_dir(env) / CREDENTIALS_FILE
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    oauth = data.get("claudeAiOauth") if isinstance(data, dict) else None
    token = oauth.get("accessToken") if isinstance(oauth, dict) else None
    if not isinstance(token, str) or not token:
        return None
    expires = oauth.get("expiresAt") if isinstance(oauth, dict) else None
    expires_at = expires / 1000 if isinstance(expires, int | float) else None
    return Login(path, token, expires_at)


def require_credentials(env: Mapping[str, str]) -> None:
    """Refuse, in one line, a run that no session could authenticate for."""
    if not from_environment(env) and find_login(env) is None:
        raise InvalidInput(NO_CREDENTIALS)


def login_for_session(session_env: Mapping[str, str]) -> Login | None:
    """The login a session's CLI needs handed to it: None when the session's environment (the
    user's, under conductor.toml's `env`) names credentials itself."""
    merged = {**os.environ, **session_env}
    if from_environment(merged):
        return None
    return find_login(merged)


def token_env(login: Login | None, now: float | None = None) -> dict[str, str]:
    """The environment that gives a CLI outside a jail the login's token. An expired token
    is refused in one line: such a CLI cannot refresh it."""
    if login is None:
        return {}
    now = time.time() if now is None else now
    if login.expires_at is not None and login.expires_at <= now:
        raise InvalidInput(
            f"the Claude Code login in {login.path} has expired: run `claude` once to refresh"
            f" it, or set {OAUTH_TOKEN_ENV} (from `claude setup-token`)"
        )
    return {OAUTH_TOKEN_ENV: login.access_token}
