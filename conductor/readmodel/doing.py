"""What a session is doing, in words, from what its assistant messages say: its tool calls
(`Write words.py`, `Bash: pytest -q`, `message to B: ...`), else its words, else `thinking`.
Never JSON: a tool not known here shows its name and first short argument."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conductor.events import SdkAssistant
from conductor.readmodel.words import DOING_LIMIT, printable
from conductor.workspace import STATE_DIR


def assistant_doing(message: SdkAssistant) -> str:
    """What an assistant message says its session is doing: its tool calls, else its words."""
    if message.error:
        return printable(f"API error: {message.error}")
    blocks = message.content
    tools = [b for b in blocks if "name" in b]
    if tools:
        return printable("; ".join(tool_doing(b) for b in tools), DOING_LIMIT)
    text = " ".join(str(b["text"]) for b in blocks if isinstance(b.get("text"), str))
    if text.strip():
        return printable(f"“{' '.join(text.split())}”", DOING_LIMIT)
    if any("thinking" in b for b in blocks):
        return "thinking"
    return ""


_FILE_TOOLS = frozenset({"Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "NotebookRead"})
_SEARCH_TOOLS = frozenset({"Grep", "Glob", "LS"})


def tool_doing(block: Mapping[str, Any]) -> str:
    """A tool call in words: `Write textstats/words.py`, `Bash: pytest -q`, `message to B:
    …`. Never its JSON: a tool not known here shows its name and first short argument."""
    name = str(block.get("name") or "a tool")
    given = block.get("input")
    args: Mapping[str, Any] = given if isinstance(given, Mapping) else {}

    def arg(*keys: str) -> str:
        for key in keys:
            value = args.get(key)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                return printable(value, DOING_LIMIT)
        return ""

    if name.startswith("mcp__"):
        server, _, tool = name.removeprefix("mcp__").partition("__")
        if server == "bus":
            return _bus_doing(tool, arg)
        return printable(f"{tool or server} ({server})")
    if name == "Bash":
        return f"Bash: {arg('command')}".rstrip(": ")
    if name in _FILE_TOOLS:
        return f"{name} {_in_worktree(arg('file_path', 'notebook_path', 'path'))}".rstrip()
    if name in _SEARCH_TOOLS:
        where = _in_worktree(arg("path"))
        return f"{name} {arg('pattern')}".rstrip() + (f" in {where}" if where else "")
    if name == "WebFetch":
        return f"WebFetch {arg('url')}".rstrip()
    if name == "WebSearch":
        return f"WebSearch {arg('query')}".rstrip()
    if name in ("Task", "Agent"):
        return f"{name}: {arg('description', 'subagent_type')}".rstrip(": ")
    if name == "TodoWrite":
        return "updating its to-do list"
    first = next((k for k, v in args.items() if isinstance(v, str) and v.strip()), None)
    return printable(name) + (f" {arg(first)}" if first else "")


def _bus_doing(tool: str, arg: Any) -> str:
    """A call of a conductor tool (mcp__bus__*) in words."""
    text = arg("text")
    if tool == "send":
        return f"message to {arg('to') or '?'}" + (f": {text}" if text else "")
    if tool == "reply":
        return f"reply to #{arg('message_id') or '?'}" + (f": {text}" if text else "")
    if tool == "sync":
        return "reading its messages"
    if tool == "context_add":
        return f"sharing {arg('category') or 'context'}" + (f": {text}" if text else "")
    if tool == "context_show":
        return "reading the shared context"
    if tool == "claim":
        return f"claiming {arg('path')}".rstrip()
    if tool == "release":
        return f"releasing {arg('path')}".rstrip()
    if tool == "set_status":
        reason = arg("reason")
        return f"says it is {arg('status') or '?'}" + (f": {reason}" if reason else "")
    if tool == "request_review":
        note = arg("note")
        return "asking for review" + (f": {note}" if note else "")
    if tool == "done":
        summary = arg("summary")
        return "saying it is done" + (f": {summary}" if summary else "")
    if tool == "review_show":
        given = arg("review_id")
        return "reading the diff" + (f" of #{given}" if given else "")
    if tool == "review_verdict":
        verdict = arg("verdict").lower()
        word = {"approve": "approving", "reject": "rejecting"}.get(verdict, f"deciding ({verdict})")
        given, comments = arg("review_id"), arg("comments")
        return word + (f" #{given}" if given else "") + (f": {comments}" if comments else "")
    return printable(f"bus {tool}")


def _in_worktree(path: str) -> str:
    """A path inside a session's worktree as the session sees it, relative to its tree:
    `words.py`, not `/home/…/.conductor/worktrees/<run>/A/words.py`."""
    _, marker, rest = path.partition(f"/{STATE_DIR}/worktrees/")
    if not marker:
        return path
    parts = rest.split("/", 2)  # <run>/<session>/<path in the tree>
    return parts[2] if len(parts) == 3 and parts[2] else path
