"""Sessions use the credentials the user already has: a variable, or their Claude Code login,
which a session's own config dir would otherwise hide. Real runs check that the login's token
is what reaches the model (the stand-in) from the planner and every session, jailed or not."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from support import clean_env
from test_sandbox_mode import Standin, prepare

from conductor.credentials import find_login, login_for_session, token_env
from conductor.errors import InvalidInput
from conductor.jail import session_jail, unavailable_reason

pytestmark = pytest.mark.anyio

TOKEN = "sk-ant-oat01-fake-login-token"
GOAL_SCRIPT = """
roles:
  planner:
    - - tool: StructuredOutput
        input: {workstreams: [{id: A, name: core, task: core, owns: [core.py]}]}
      - text: "Planned."
  A:
    - - tool: Bash
        input: {command: "echo 'X = 1' > core.py && git add -A && git commit -qm core"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "Done."
"""


def log_in(config_dir: Path, *, expires_in: float = 3600.0) -> Path:
    """A Claude Code login as `claude` leaves it in the user's config dir."""
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / ".credentials.json"
    oauth = {
        "accessToken": TOKEN,
        "refreshToken": "sk-ant-ort01-fake",
        "expiresAt": int((time.time() + expires_in) * 1000),
        "scopes": ["user:inference", "user:profile"],
        "subscriptionType": "max",
    }
    path.write_text(json.dumps({"claudeAiOauth": oauth}))
    return path


def test_a_login_is_found_in_the_users_config_dir(tmp_path: Path) -> None:
    path = log_in(tmp_path / "home" / ".claude")
    login = find_login({"HOME": str(tmp_path / "home")})
    assert login is not None and (login.path, login.access_token) == (path, TOKEN)
    assert find_login({"HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": str(path.parent)}) == login


def test_a_credentials_file_without_a_token_is_no_login(tmp_path: Path) -> None:
    (tmp_path / ".credentials.json").write_text('{"claudeAiOauth": {}}')
    assert find_login({"CLAUDE_CONFIG_DIR": str(tmp_path)}) is None
    (tmp_path / ".credentials.json").write_text("{not json")
    assert find_login({"CLAUDE_CONFIG_DIR": str(tmp_path)}) is None


def test_a_variable_wins_over_the_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_in(tmp_path)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert login_for_session({}) is not None
    assert login_for_session({"ANTHROPIC_API_KEY": "sk-ant-key"}) is None


def test_an_expired_login_is_refused_in_one_line_outside_a_jail(tmp_path: Path) -> None:
    log_in(tmp_path, expires_in=-60)
    login = find_login({"CLAUDE_CONFIG_DIR": str(tmp_path)})
    with pytest.raises(InvalidInput, match="has expired: run `claude` once"):
        token_env(login)


def login_env(offline_env: dict[str, str], home: Path) -> dict[str, str]:
    """The user's environment: logged in to Claude Code, no key or token variable."""
    env = {**clean_env(), **offline_env, "HOME": str(home)}
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        env.pop(name, None)
    env.pop("CLAUDE_CONFIG_DIR")
    return env


async def run_goal(repo: Path, env: dict[str, str]) -> tuple[int, str]:
    done = await anyio.run_process(
        [sys.executable, "-m", "conductor", "run", "core", "--no-live"],
        cwd=repo,
        env=env,
        check=False,
    )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


def credentials_sent(requests_log: Path) -> set[str]:
    sent = set()
    for line in requests_log.read_text().splitlines():
        headers = json.loads(line)["headers"]
        sent.add(headers.get("authorization") or "x-api-key: " + headers.get("x-api-key", ""))
    return sent


@pytest.mark.parametrize("toml", ["", "sandbox = false\n"], ids=["jailed", "unjailed"])
async def test_a_users_login_is_what_every_session_sends(
    standin: Standin, tmp_path: Path, toml: str
) -> None:
    async with standin(GOAL_SCRIPT) as offline:
        prepare(offline.repo, toml)
        home = tmp_path / "home"
        log_in(home / ".claude")
        code, output = await run_goal(offline.repo, login_env(offline.env, home))
        assert code == 0, output
        assert credentials_sent(offline.repo.parent / "requests.jsonl") == {f"Bearer {TOKEN}"}
        labels = {r.answer.split(" ")[0] for r in offline.server.requests}
        assert {"planner", "A"} <= labels  # the planner (no jail) and a jailed session


@pytest.mark.skipif(unavailable_reason() is not None, reason="needs conductor's jail (bwrap)")
def test_a_jailed_session_reads_the_users_login_and_cannot_change_it(tmp_path: Path) -> None:
    login = log_in(tmp_path / "home" / ".claude")
    tree, config_dir, tmp = (tmp_path / n for n in ("tree", "claude", "tmp"))
    for d in (tree, config_dir, tmp):
        d.mkdir()
    (config_dir / ".credentials.json").symlink_to(tmp_path / "elsewhere")  # left by a session
    jail = session_jail(tree, config_dir, tmp, writes_tree=False, login=login)
    inside = config_dir / ".credentials.json"
    script = f"cat {inside}; echo '{{}}' > {inside} || echo refused"
    done = subprocess.run(jail.argv(["sh", "-c", script]), capture_output=True, text=True)
    assert TOKEN in done.stdout and "refused" in done.stdout
    assert find_login({"CLAUDE_CONFIG_DIR": str(login.parent)}) is not None  # unchanged
    assert not (tmp_path / "elsewhere").exists()
