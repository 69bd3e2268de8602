"""A session's two hooks: the friendly half of enforcement, and mail during a turn.

`PreToolUse` denies what a session may not do (a write to another session's claim or outside
its worktree, a `git push`) and tells the model why; `PostToolUse` hands the model any message
that arrived during its turn, marking it read exactly once. The OS boundary and the merge
gate hold without them: these are the fast refusal the model can learn from.

Both are also the session's tool boundary, where its run may hold it (the cost ceiling,
`conductor.run.ceiling`): a run in this process puts its `Boundary` here by run id
(`tool_boundary`) for as long as it runs, and each hook awaits it first. PostToolUse follows
every tool, before the next API call: holding there keeps a session from spending more.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from claude_agent_sdk.types import HookContext, HookInput, SyncHookJSONOutput

from conductor.bus import Bus
from conductor.enforce import PUSH_DENIAL, WRITE_TOOLS, pushes, write_target, written_path
from conductor.errors import ConductorError
from conductor.events import EventKind, ToolDenied
from conductor.text import one_line
from conductor.tools import describe

# What the write gate judges (enforce.py): file-writing tools, and Bash (pushes). A regex of
# tool names, as Claude Code matches hooks.
JUDGED_TOOLS = "|".join([*WRITE_TOOLS, "Bash"])

Owners = Callable[[str], Awaitable[tuple[str, str] | None]]  # path -> (owner, what it owns)
# A run's tool boundary: (session) -> None, go on; or why the session must stop here (it is
# awaited first, so it may hold the call as long as it needs).
Boundary = Callable[[str], Awaitable[str | None]]
_BOUNDARIES: dict[str, Boundary] = {}  # run id -> its boundary, while its supervisor runs


@contextlib.contextmanager
def tool_boundary(run_id: str, boundary: Boundary) -> Iterator[None]:
    """Every session of run `run_id` in this process awaits `boundary` at its tool calls
    while in this block."""
    _BOUNDARIES[run_id] = boundary
    try:
        yield
    finally:
        if _BOUNDARIES.get(run_id) is boundary:
            del _BOUNDARIES[run_id]


class ToolHooks:
    """The hooks of session `name` working in `worktree`. `owners`: the run's rule of who owns
    a path (the plan's ownership outlives a claim); without it, the bus's claims."""

    def __init__(self, bus: Bus, name: str, worktree: Path, owners: Owners | None) -> None:
        self.bus = bus
        self.name = name
        self.worktree = worktree
        self.owners = owners

    async def pre_tool_use(
        self, hook_input: HookInput, tool_use_id: str | None, context: HookContext
    ) -> SyncHookJSONOutput:
        data: Mapping[str, Any] = dict(hook_input)
        tool_name = str(data.get("tool_name", ""))
        halt = await self.held()
        if halt is not None:
            return {
                "continue_": False,
                "stopReason": halt,
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "deny",
                    "permissionDecisionReason": halt,
                },
            }
        try:
            reason = await self.denial(tool_name, data.get("tool_input") or {})
        except Exception as e:  # a hook that errs would let the call through: deny it
            reason = f"conductor could not check this call ({e}); try again shortly"
        if reason is None:
            return {}
        with contextlib.suppress(ConductorError):  # a store that fails now: deny all the same
            denied = ToolDenied(tool=tool_name, input=data.get("tool_input"), reason=reason)
            await self.bus.record(
                self.name,
                EventKind.HOOK_DENIED,
                f"{tool_name}: {one_line(reason)}",
                denied.to_json(),
            )
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        }

    async def held(self) -> str | None:
        """The run's tool boundary, awaited: why the session must stop here, or None."""
        boundary = _BOUNDARIES.get(self.bus.run_id)
        if boundary is None:
            return None
        try:
            return await boundary(self.name)
        except ConductorError:  # the store's trouble: the next boundary looks again
            return None

    async def denial(self, tool_name: str, tool_input: Mapping[str, Any]) -> str | None:
        """Why this call may not run, or None: it may."""
        path = written_path(tool_name, tool_input)
        if path is not None:
            try:
                target = write_target(path, self.worktree)
            except ConductorError as e:
                return str(e)
            owner = await self.owner_of(target)
            if owner is not None:
                return (
                    f"{target} is claimed by session {owner[0]} (its claim on {owner[1]}):"
                    f" ask {owner[0]} with mcp__bus__send, or work elsewhere"
                )
        if tool_name == "Bash" and pushes(str(tool_input.get("command", ""))):
            return PUSH_DENIAL
        return None

    async def owner_of(self, path: str) -> tuple[str, str] | None:
        """(session, what it owns) of another session that owns or claims `path`: the run's
        rule when one was given (the plan's ownership outlives a claim), else the claims."""
        if self.owners is not None:
            return await self.owners(path)
        claim = await self.bus.claim_blocking(self.name, path)
        return (claim.session, claim.path) if claim is not None else None

    async def post_tool_use(
        self, hook_input: HookInput, tool_use_id: str | None, context: HookContext
    ) -> SyncHookJSONOutput:
        halt = await self.held()
        if halt is not None:  # before the next API call: the session spends no more
            return {"continue_": False, "stopReason": halt}
        try:  # after every tool call: no write transaction unless there is mail
            if not await self.bus.has_unread(self.name):
                return {}
            messages = await self.bus.take_unread(self.name, via="hook")
        except ConductorError:  # none taken (one transaction): the next hook or turn has them
            return {}
        if not messages:
            return {}
        return {
            "hookSpecificOutput": {
                "hookEventName": "PostToolUse",
                "additionalContext": "New messages for you (delivered once; sync will not "
                "repeat them):\n" + "\n".join(describe(messages)),
            }
        }
