"""Everything a real Claude Code session needs to run offline against the stand-in.

`offline(script, root)` gives a temporary git repository, a running stand-in serving the
script, and the environment a session needs. The test fixture, the benchmarks and the demo
all use it, so they exercise the real CLI bundled with claude-agent-sdk the same way.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions

from conductor import gitops
from conductor.standin.script import Script, load_script, parse_script
from conductor.standin.server import StandIn

# A model the CLI knows, so cost is computed at a real list price and no warning is printed.
STANDIN_MODEL = "claude-sonnet-4-5"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "conductor",
    "GIT_AUTHOR_EMAIL": "conductor@example.invalid",
    "GIT_COMMITTER_NAME": "conductor",
    "GIT_COMMITTER_EMAIL": "conductor@example.invalid",
}


def session_env(base_url: str, config_dir: Path) -> dict[str, str]:
    """The environment a CLI needs to talk to the stand-in and nothing else (see
    shared/notes/claude-code-headless.md for why each is there)."""
    env = {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "stand-in-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CONFIG_DIR": str(config_dir),
        "ENABLE_TOOL_SEARCH": "false",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        **GIT_IDENTITY,
    }
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # as root, bypassPermissions is refused without it
    return env


@dataclass
class Offline:
    repo: Path
    server: StandIn
    env: dict[str, str]

    def options(self, **overrides: Any) -> ClaudeAgentOptions:
        """SDK options for a session in the repository, hands-off, against the stand-in."""
        settings: dict[str, Any] = {
            "cwd": str(self.repo),
            "env": dict(self.env),
            "model": STANDIN_MODEL,
            "permission_mode": "bypassPermissions",
            **overrides,
        }
        return ClaudeAgentOptions(**settings)


def _script(script: Script | str | Path | Mapping[str, Any]) -> Script:
    if isinstance(script, Script):
        return script
    if isinstance(script, Path):
        return load_script(script)
    return parse_script(script)


async def init_repo(path: Path) -> Path:
    """A git repository with one commit on `main`."""
    path.mkdir(parents=True, exist_ok=True)
    await gitops.git(["init", "-q", "-b", "main"], path)
    (path / "README.md").write_text("A repository for an offline session.\n")
    await gitops.git(["add", "README.md"], path, env=GIT_IDENTITY)
    await gitops.git(["commit", "-q", "-m", "initial"], path, env=GIT_IDENTITY)
    return path


@asynccontextmanager
async def offline(
    script: Script | str | Path | Mapping[str, Any], root: Path
) -> AsyncIterator[Offline]:
    """A repository under `root`, a stand-in serving `script`, and a session environment.
    The stand-in logs every request to `root/requests.jsonl`."""
    repo = await init_repo(root / "repo")
    config_dir = root / "claude-config"
    config_dir.mkdir(parents=True, exist_ok=True)
    server = StandIn(_script(script), log_path=root / "requests.jsonl")
    async with server.running():
        yield Offline(repo=repo, server=server, env=session_env(server.base_url, config_dir))
