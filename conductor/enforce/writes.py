"""Where a session may write: the file-writing tools, the path a call really writes, and the
paths no session may write (git's data, Claude Code's own settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from conductor import paths
from conductor.errors import InvalidInput, PathOutsideRepository

WRITE_TOOLS = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}

# The built-in tools a worker session is offered: those whose effects the gates judge (file
# writes and Bash, checked by the write hook) and ones that only read or keep its task list.
# An allowlist, so a tool a newer CLI adds is not offered until it is judged: this CLI's
# `Monitor` runs a command with network domains of the model's choosing, `Workflow` runs a
# script in the CLI's own process, `CronCreate`/`ScheduleWakeup` prompt it later,
# `EnterWorktree` makes worktrees, `Agent` starts subagents with tools of their own.
WORKER_TOOLS = (
    *WRITE_TOOLS,
    "Bash",
    "Read",
    "Glob",
    "Grep",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskUpdate",
    "TaskStop",
)


def written_path(tool_name: str, tool_input: Mapping[str, Any]) -> str | None:
    """The path a file-writing tool call writes, or None for other tools."""
    key = WRITE_TOOLS.get(tool_name)
    if key is None:
        return None
    value = tool_input.get(key)
    return str(value) if value else None


# ----------------------------------------------------------------------------- writes

# Files that configure Claude Code itself (settings, hooks, MCP servers), at any depth.
_CLAUDE_SETTINGS = frozenset({"settings.json", "settings.local.json"})


def write_target(path: str, worktree: Path) -> str:
    """The repository-relative real path of a write, or raise with a reason the model reads.

    The path is resolved through symlinks first (`d/x` with `d -> .` is `x`; `out/x` with
    `out -> /elsewhere` is outside), because the claim check that follows must see the file
    that is really written. Relative paths are taken from the worktree; the worktree itself
    may sit behind a symlink (`/tmp`), so both sides are compared resolved.
    """
    _check_spelling(path)
    joined = os.path.join(os.path.abspath(worktree), os.path.expanduser(path))
    # Not normpath first: `link/..` is the link target's parent, as the kernel resolves it.
    real = Path(os.path.realpath(joined))
    lexical = Path(os.path.normpath(joined))
    try:
        rel = paths.normalize(str(real), Path(os.path.realpath(worktree)))
    except PathOutsideRepository:
        landing = "" if real == lexical else f" (it resolves to {real})"
        raise PathOutsideRepository(
            f"{path} is outside your worktree {worktree}{landing}: write only inside it"
        ) from None
    reason = protected_reason(rel)
    if reason is not None:
        raise InvalidInput(reason)
    return rel


def protected_reason(rel_path: str) -> str | None:
    """Why a repository-relative path may not be written by a session, or None if it may.

    Git's own data (any `.git` component, a submodule's too) changes history behind the merge
    gate's back; Claude Code's settings and `.mcp.json` would let a session rewrite its own
    hooks and tools. Compared case-insensitively: on macOS `.GIT` is the same directory.
    """
    parts = [part.casefold() for part in PurePosixPath(rel_path).parts]
    if ".git" in parts:
        return f"{rel_path} is git's own data: commit with git instead of writing it"
    name = parts[-1] if parts else ""
    if name == ".mcp.json" or (name in _CLAUDE_SETTINGS and parts[-2:-1] == [".claude"]):
        return (
            f"{rel_path} configures Claude Code itself: a session may not change its own "
            "settings, hooks or tools"
        )
    return None


def _check_spelling(path: str) -> None:
    """Reject what no filesystem call could take, before resolving it."""
    if not path or not path.strip():
        raise InvalidInput(f"bad path {path!r}: empty path")
    if "\0" in path:
        raise InvalidInput(f"bad path {path!r}: a path cannot contain a NUL byte")
