"""What a session may not do, decided before the tool runs (the `PreToolUse` hooks' policy).

Pure decisions over a tool call; `session.py` wires them to the SDK's hooks and the bus.
Under `bypassPermissions` the SDK's `can_use_tool` is never called, so hooks are the gate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conductor import paths
from conductor.errors import InvalidInput, PathOutsideRepository

WRITE_TOOLS = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}

# `git push` in any spelling: a path to git, options before the verb (`-C dir`, `-c k=v`,
# `--git-dir=x`), inside `sh -c '...'`, after `&&` or `;`, quoted or not.
_GIT_PUSH = re.compile(
    r"""(?:^|[\s;&|(`'"$/\\])git(?:\.exe)?"""
    r"""(?:\s+(?:-[Cc]\s*(?:'[^']*'|"[^"]*"|\S+)|--?[\w-]+(?:=(?:'[^']*'|"[^"]*"|\S+))?))*"""
    r"""\s+['"]?push(?=$|[\s'";&|)`])"""
)

PUSH_DENIAL = (
    "git push is not allowed in a conductor session: commit on your branch, then call "
    "mcp__bus__request_review (or done); conductor merges approved work through its merge gate."
)


def written_path(tool_name: str, tool_input: Mapping[str, Any]) -> str | None:
    """The path a file-writing tool call writes, or None for other tools."""
    key = WRITE_TOOLS.get(tool_name)
    if key is None:
        return None
    value = tool_input.get(key)
    return str(value) if value else None


def write_target(path: str, worktree: Path) -> str:
    """The repository-relative path of a write, or raise if it leaves the worktree."""
    try:
        return paths.normalize(path, worktree)
    except PathOutsideRepository:
        raise PathOutsideRepository(
            f"{path} is outside your worktree {worktree}: write only inside it"
        ) from None
    except InvalidInput as e:
        raise InvalidInput(f"bad path {path!r}: {e}") from None


def pushes(command: str) -> bool:
    return bool(_GIT_PUSH.search(command))
