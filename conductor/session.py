"""One headless Claude Code session for one workstream, connected to the bus.

A `ClaudeSDKClient` runs in the session's worktree (`cwd`, never `os.chdir`), hands-off
(`bypassPermissions`), with the coordination tools in-process and two hooks: `PreToolUse`
denies what a session may not do (a write to another session's claim or outside its
worktree, a `git push`), and `PostToolUse` hands the model any message that arrived during
its turn, marking it read exactly once. Every message the CLI streams becomes an event, and
the SDK session id is stored the moment it is known, so a later resume finds it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    HookMatcher,
    ResultMessage,
    SdkMcpTool,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)
from claude_agent_sdk.types import (
    HookContext,
    HookInput,
    SyncHookJSONOutput,
    SystemPromptPreset,
)

from conductor.bus import Bus
from conductor.costs import COST_KEY, CostMeter, restored_total
from conductor.credentials import Login, login_for_session, token_env
from conductor.enforce import PUSH_DENIAL, WRITE_TOOLS, pushes, write_target, written_path
from conductor.errors import ConductorError
from conductor.jail import (
    bundled_cli,
    cli_sandbox,
    jails_supported,
    session_jail,
    short_tmp,
    write_cli_wrapper,
)
from conductor.leftovers import end_leftovers
from conductor.models import Review, SessionStatus
from conductor.text import one_line
from conductor.tools import SERVER_NAME, coordination_server, describe
from conductor.workspace import SUPERVISED_ENV

DISCONNECT_TIMEOUT = 15.0
# What the write gate judges (enforce.py): file-writing tools, and Bash (pushes). A regex of
# tool names, as Claude Code matches hooks.
JUDGED_TOOLS = "|".join([*WRITE_TOOLS, "Bash"])
# What the CLI says when asked to resume a conversation its transcript does not hold.
LOST_CONVERSATION = "No conversation found with session ID"


RequestReview = Callable[[str], Awaitable[Review]]  # (note) -> the review asked for
Owners = Callable[[str], Awaitable[tuple[str, str] | None]]  # path -> (owner, what it owns)


class SessionDied(ConductorError):
    """The CLI process ended (or its connection broke) in the middle of a turn."""


@dataclass(frozen=True)
class TurnResult:
    session_id: str | None
    is_error: bool
    num_turns: int
    cost_usd: float
    result: str | None
    api_error_status: int | None
    subtype: str = "success"  # error_max_turns, error_max_budget_usd, error_during_execution

    @property
    def hit_budget(self) -> bool:
        return self.subtype in ("error_max_turns", "error_max_budget_usd")


@dataclass(frozen=True)
class SessionConfig:
    """How to start a session; the environment is the caller's (a real key, or the stand-in)."""

    env: Mapping[str, str]
    config_dir: Path
    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    system_prompt: str | None = None  # replaces Claude Code's own system prompt entirely
    append_system_prompt: str | None = None  # kept Claude Code's prompt, with this after it
    tools: Sequence[str] | None = None  # the CLI's built-in tools offered; None: all of them
    # The OS boundary (see jail.py): Claude Code's Bash sandbox, and on Linux the whole CLI
    # in conductor's jail. `private_dir` is the session's own: the jail's launcher and temp.
    sandbox: bool = False
    allowed_domains: Sequence[str] = ()
    private_dir: Path | None = None


class HeadlessSession:
    """`async with HeadlessSession(bus, "A", worktree, config) as s: await s.turn(prompt)`."""

    def __init__(
        self,
        bus: Bus,
        name: str,
        worktree: Path,
        config: SessionConfig,
        *,
        resume: str | None = None,
        extra_tools: Sequence[SdkMcpTool[Any]] = (),
        review_base: str | None = None,
        request_review: RequestReview | None = None,
        owners: Owners | None = None,
        writes_tree: bool = True,
        coordinates: bool = True,
        claimable: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        """`request_review`: how the session's review requests reach the review gate (a run's
        supervisor checks and collects the branch); `writes_tree`: False for a reviewer,
        whose jail keeps the author's tree it reads read-only."""
        self.review_base = review_base
        self.request_review = request_review
        self.owners = owners
        self.coordinates = coordinates  # False: a reviewer, with its review tools alone
        self.claimable = claimable  # why a path may not be claimed (None: it may)
        self.writes_tree = writes_tree
        self.extra_tools = list(extra_tools)
        self.bus = bus
        self.name = name
        self.worktree = worktree
        self.config = config
        self.resume = resume
        self.session_id: str | None = resume
        self._client: ClaudeSDKClient | None = None
        self._tmp: Path | None = None
        self._meter = CostMeter()

    def options(self) -> ClaudeAgentOptions:
        env = {k: v for k, v in self.config.env.items() if k != "CLAUDECODE"}
        env["CLAUDE_CONFIG_DIR"] = str(self.config.config_dir)
        login = login_for_session(self.config.env)  # the user's, when no variable names one
        cli_path = self._jailed_cli(login)
        if cli_path is None:  # no jail to show it the login file in
            env.update(token_env(login))
        return ClaudeAgentOptions(
            cwd=str(self.worktree),
            cli_path=cli_path,
            sandbox=cli_sandbox(self.config.allowed_domains) if self.config.sandbox else None,
            # Nothing from the file system configures the CLI: a `.claude/settings.json` or
            # `.mcp.json` a session wrote in its tree must not give the next CLI there (its
            # own after a restart, or its reviewer) hooks or servers of the session's choosing.
            setting_sources=[],
            env=env,
            model=self.config.model,
            permission_mode="bypassPermissions",
            max_turns=self.config.max_turns,
            max_budget_usd=self.config.max_budget_usd,
            system_prompt=self._system_prompt(),
            resume=self.resume,
            tools=list(self.config.tools) if self.config.tools is not None else None,
            mcp_servers={
                SERVER_NAME: coordination_server(
                    self.bus,
                    self.name,
                    self.worktree,
                    review_base=self.review_base,
                    request=self.request_review,
                    extra=self.extra_tools,
                    coordinates=self.coordinates,
                    claimable=self.claimable,
                )
            },
            hooks={
                # Only the tools it judges (writes and Bash): every other call skips the trip.
                "PreToolUse": [HookMatcher(matcher=JUDGED_TOOLS, hooks=[self._pre_tool_use])],
                "PostToolUse": [HookMatcher(matcher=None, hooks=[self._post_tool_use])],
            },
        )

    def _jailed_cli(self, login: Login | None) -> Path | None:
        """The launcher that starts the CLI in the session's jail (None: no jail, the SDK
        starts its CLI as is). Written outside the tree, where the session cannot reach."""
        if not (self.config.sandbox and jails_supported()):
            return None
        private = self.config.private_dir or self.config.config_dir.parent
        tmp = self._tmp = short_tmp(private)
        self.config.config_dir.mkdir(parents=True, exist_ok=True)
        jail = session_jail(
            self.worktree,
            self.config.config_dir,
            tmp,
            writes_tree=self.writes_tree,
            login=login.path if login is not None else None,
        )
        return write_cli_wrapper(jail, bundled_cli(), private / "cli")

    def _system_prompt(self) -> str | SystemPromptPreset | None:
        if self.config.system_prompt is not None:
            return self.config.system_prompt
        if self.config.append_system_prompt is not None:
            return {
                "type": "preset",
                "preset": "claude_code",
                "append": self.config.append_system_prompt,
            }
        return None

    async def __aenter__(self) -> HeadlessSession:
        self.config.config_dir.mkdir(parents=True, exist_ok=True)
        if self.resume is not None and not self._transcript_kept(self.resume):
            # Killed before the CLI wrote its conversation down: there is nothing to resume,
            # and asking for it fails. It starts afresh; `restored` tells the caller.
            self.resume = self.session_id = None
        try:
            await self._connect()
        except SessionDied as died:
            if self.resume is None or LOST_CONVERSATION not in str(died):
                raise
            # Its transcript is there but holds no conversation the CLI can take up (cut
            # short when the disk filled, say): it starts afresh, as if none were kept.
            self.resume = self.session_id = None
            await self._connect()
        return self

    async def _connect(self) -> None:
        transcript = self._transcript(self.resume)  # (it can be megabytes: off the loop)
        self._meter = CostMeter(await anyio.to_thread.run_sync(restored_total, transcript))
        self._client = ClaudeSDKClient(self.options())
        try:
            await self._client.connect()
        except (ClaudeSDKError, OSError) as e:  # dying while starting is dying all the same
            await self.__aexit__(None, None, None)  # its pipes and process, and what it left
            await self.bus.record(self.name, "session.died", one_line(str(e)), {"error": str(e)})
            raise SessionDied(f"session {self.name}: the CLI failed to start: {e}") from e

    @property
    def restored(self) -> bool:
        """Whether the session goes on in the conversation it had (a resume that found it)."""
        return self.resume is not None

    def _transcript_kept(self, session_id: str) -> bool:
        return self._transcript(session_id) is not None

    def _transcript(self, session_id: str | None) -> Path | None:
        if session_id is None:
            return None
        projects = self.config.config_dir / "projects"
        return next(iter(projects.glob(f"*/{session_id}.jsonl")), None)

    async def __aexit__(self, *exc: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            # A process that died already leaves nothing to close: its errors are moot here.
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(DISCONNECT_TIMEOUT),
                contextlib.suppress(ClaudeSDKError, OSError),
            ):
                await client.disconnect()
        await self._clean_up()
        if client is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(ConductorError):
                await self.bus.record(self.name, "session.closed", "its CLI has ended")

    async def _clean_up(self) -> None:
        """What the CLI started and left (killed, it closes nothing: the sandbox's proxies),
        and its temporary dir."""
        run = self.config.env.get(SUPERVISED_ENV)
        if run is not None:
            with anyio.CancelScope(shield=True):
                await end_leftovers(run, self.name)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # ------------------------------------------------------------------------ turns

    async def turn(self, prompt: str) -> TurnResult:
        """Send a prompt (the first one, or a wake-up after a turn ended) and stream the turn."""
        if self._client is None:
            raise RuntimeError("the session is not connected")
        await self.bus.record(self.name, "session.prompt", one_line(prompt), {"prompt": prompt})
        session = await self.bus.session(self.name)
        if not session.status.ended:
            await self.bus.update(self.name, status=SessionStatus.WORKING)
        result: TurnResult | None = None
        try:
            await self._client.query(prompt)
            async for message in self._client.receive_response():
                cost = None
                if isinstance(message, ResultMessage):
                    cost = self._meter.turn(message.total_cost_usd)
                    result = _turn_result(message, cost)
                await self._record(message, cost)
        except ClaudeSDKError as e:
            await self.bus.record(self.name, "session.died", one_line(str(e)), {"error": str(e)})
            raise SessionDied(f"session {self.name}: the CLI failed mid-turn: {e}") from e
        if result is None:
            await self.bus.record(self.name, "session.died", "the turn ended without a result")
            raise SessionDied(f"session {self.name}: the CLI ended the turn without a result")
        session = await self.bus.session(self.name)
        if session.status is SessionStatus.WORKING:
            await self.bus.update(self.name, status=SessionStatus.IDLE)
        return result

    async def interrupt(self) -> None:
        if self._client is not None:
            await self._client.interrupt()
            await self.bus.record(self.name, "session.interrupted", "its turn was cut short")

    # ------------------------------------------------------------------------ events

    async def _record(self, message: Any, cost: float | None = None) -> None:
        """`cost`: what a result's turn cost (its running total is not that)."""
        kind, summary = _describe(message, cost)
        if isinstance(message, SystemMessage) and message.subtype == "init":
            self.session_id = str(message.data.get("session_id") or "") or self.session_id
            if self.session_id:
                await self.bus.update(self.name, sdk_session_id=self.session_id)
        payload = _payload(message)
        if cost is not None:
            payload[COST_KEY] = cost
        await self.bus.record(self.name, kind, summary, payload)

    # ------------------------------------------------------------------------ hooks

    async def _pre_tool_use(
        self, hook_input: HookInput, tool_use_id: str | None, context: HookContext
    ) -> SyncHookJSONOutput:
        data: Mapping[str, Any] = dict(hook_input)
        tool_name = str(data.get("tool_name", ""))
        try:
            reason = await self._denial(tool_name, data.get("tool_input") or {})
        except Exception as e:  # a hook that errs would let the call through: deny it
            reason = f"conductor could not check this call ({e}); try again shortly"
        if reason is None:
            return {}
        with contextlib.suppress(ConductorError):  # a store that fails now: deny all the same
            await self.bus.record(
                self.name,
                "hook.denied",
                f"{tool_name}: {one_line(reason)}",
                {"tool": tool_name, "input": data.get("tool_input"), "reason": reason},
            )
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        }

    async def _denial(self, tool_name: str, tool_input: Mapping[str, Any]) -> str | None:
        path = written_path(tool_name, tool_input)
        if path is not None:
            try:
                target = write_target(path, self.worktree)
            except ConductorError as e:
                return str(e)
            owner = await self._owner_of(target)
            if owner is not None:
                return (
                    f"{target} is claimed by session {owner[0]} (its claim on {owner[1]}):"
                    f" ask {owner[0]} with mcp__bus__send, or work elsewhere"
                )
        if tool_name == "Bash" and pushes(str(tool_input.get("command", ""))):
            return PUSH_DENIAL
        return None

    async def _owner_of(self, path: str) -> tuple[str, str] | None:
        """(session, what it owns) of another session that owns or claims `path`: the run's
        rule when one was given (the plan's ownership outlives a claim), else the claims."""
        if self.owners is not None:
            return await self.owners(path)
        claim = await self.bus.claim_blocking(self.name, path)
        return (claim.session, claim.path) if claim is not None else None

    async def _post_tool_use(
        self, hook_input: HookInput, tool_use_id: str | None, context: HookContext
    ) -> SyncHookJSONOutput:
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


def _turn_result(message: ResultMessage, cost: float) -> TurnResult:
    return TurnResult(
        session_id=message.session_id,
        is_error=message.is_error,
        num_turns=message.num_turns,
        cost_usd=cost,
        result=message.result,
        api_error_status=message.api_error_status,
        subtype=message.subtype,
    )


def _describe(message: Any, cost: float | None = None) -> tuple[str, str]:
    """(event kind, one-line summary) of a streamed SDK message."""
    if isinstance(message, SystemMessage):
        return f"sdk.system.{message.subtype}", message.subtype
    if isinstance(message, AssistantMessage):
        parts = []
        for block in message.content:
            if isinstance(block, TextBlock):
                parts.append(one_line(block.text, 80))
            elif isinstance(block, ToolUseBlock):
                parts.append(f"{block.name} {one_line(json.dumps(block.input), 60)}")
        return "sdk.assistant", " | ".join(parts) or "(no content)"
    if isinstance(message, UserMessage):
        if isinstance(message.content, list):
            for block in message.content:
                if isinstance(block, ToolResultBlock):
                    text = (
                        block.content
                        if isinstance(block.content, str)
                        else json.dumps(block.content)
                    )
                    flag = "error: " if block.is_error else ""
                    return "sdk.tool_result", flag + one_line(text, 80)
        return "sdk.user", one_line(str(message.content), 80)
    if isinstance(message, ResultMessage):
        spent = message.total_cost_usd if cost is None else cost
        state = "error" if message.is_error else "ok"
        return "sdk.result", f"{state}: {message.num_turns} turns, ${spent or 0.0:.4f}"
    return f"sdk.{type(message).__name__}", type(message).__name__


def _payload(message: Any) -> dict[str, Any]:
    is_record = dataclasses.is_dataclass(message) and not isinstance(message, type)
    data = dataclasses.asdict(message) if is_record else {"raw": message}
    payload: dict[str, Any] = json.loads(json.dumps(data, default=str))
    payload["type"] = type(message).__name__
    return payload
