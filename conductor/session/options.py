"""How a session's CLI is started: the SDK options, its jail and its system prompt.

A `ClaudeSDKClient` runs in the session's worktree (`cwd`, never `os.chdir`), hands-off
(`bypassPermissions`), with nothing from the file system configuring it, the coordination
tools in-process, and the two hooks of `hooks.py`. With the sandbox on, the CLI is Claude
Code's Bash sandbox and, on Linux, the whole CLI runs in conductor's jail (see jail.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from claude_agent_sdk import ClaudeAgentOptions, HookMatcher
from claude_agent_sdk.types import McpSdkServerConfig, SystemPromptPreset

from conductor.credentials import Login, token_env
from conductor.jail import (
    bundled_cli,
    cli_sandbox,
    jails_supported,
    session_jail,
    short_tmp,
    write_cli_wrapper,
)
from conductor.private import database_names
from conductor.session.config import SessionConfig
from conductor.session.hooks import JUDGED_TOOLS, ToolHooks
from conductor.store.interface import without_password
from conductor.tools import SERVER_NAME
from conductor.workspace import DB_ENV


def sdk_options(
    config: SessionConfig,
    worktree: Path,
    *,
    resume: str | None,
    login: Login | None,
    cli_path: Path | None,
    server: McpSdkServerConfig,
    hooks: ToolHooks,
) -> ClaudeAgentOptions:
    """The options of one session's CLI. `cli_path`: the jail's launcher (None: no jail,
    and the login is handed over in the environment instead of as a file in the jail)."""
    env = {k: v for k, v in config.env.items() if k != "CLAUDECODE"}
    env["CLAUDE_CONFIG_DIR"] = str(config.config_dir)
    if cli_path is None:  # no jail to show it the login file in
        env.update(token_env(login))
    env.update(database_env(config.env))
    return ClaudeAgentOptions(
        cwd=str(worktree),
        cli_path=cli_path,
        sandbox=cli_sandbox(config.allowed_domains) if config.sandbox else None,
        # Nothing from the file system configures the CLI: a `.claude/settings.json` or
        # `.mcp.json` a session wrote in its tree must not give the next CLI there (its
        # own after a restart, or its reviewer) hooks or servers of the session's choosing.
        setting_sources=[],
        env=env,
        model=config.model,
        permission_mode="bypassPermissions",
        max_turns=config.max_turns,
        max_budget_usd=config.max_budget_usd,
        system_prompt=system_prompt(config),
        resume=resume,
        tools=list(config.tools) if config.tools is not None else None,
        mcp_servers={SERVER_NAME: server},
        hooks={
            # Only the tools it judges (writes and Bash): every other call skips the trip.
            "PreToolUse": [HookMatcher(matcher=JUDGED_TOOLS, hooks=[hooks.pre_tool_use])],
            "PostToolUse": [HookMatcher(matcher=None, hooks=[hooks.post_tool_use])],
        },
    )


def database_env(env: Mapping[str, str]) -> dict[str, str]:
    """What the CLI's environment says of databases, over this process's own (the SDK starts
    the CLI with `{**os.environ, **options.env}`, so a name left out would come through):
    every libpq variable of either empty (the jail takes them out altogether), and
    CONDUCTOR_DB the session's own without any password, else empty. The session's
    environment is its model's to read and to commit; it has no use for a password."""
    cleared = dict.fromkeys(database_names(os.environ, env), "")
    cleared[DB_ENV] = without_password(env.get(DB_ENV, ""))
    return cleared


def jailed_cli(
    config: SessionConfig, worktree: Path, login: Login | None, *, writes_tree: bool
) -> tuple[Path, Path] | None:
    """(the launcher that starts the CLI in the session's jail, the jail's temporary dir),
    or None: no jail, the SDK starts its CLI as is. Written outside the tree, where the
    session cannot reach."""
    if not (config.sandbox and jails_supported()):
        return None
    private = config.private_dir or config.config_dir.parent
    tmp = short_tmp(private)
    config.config_dir.mkdir(parents=True, exist_ok=True)
    jail = session_jail(
        worktree,
        config.config_dir,
        tmp,
        writes_tree=writes_tree,
        login=login.path if login is not None else None,
        env=config.env,
    )
    return write_cli_wrapper(jail, bundled_cli(), private / "cli"), tmp


def system_prompt(config: SessionConfig) -> str | SystemPromptPreset | None:
    if config.system_prompt is not None:
        return config.system_prompt
    if config.append_system_prompt is not None:
        return {"type": "preset", "preset": "claude_code", "append": config.append_system_prompt}
    return None
