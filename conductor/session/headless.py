"""One headless Claude Code session for one workstream, connected to the bus.

The session's life: connect its CLI (resuming its conversation when the transcript holds
one), send a prompt and stream the turn, every message the CLI streams becoming an event, and
the SDK session id stored the moment it is known, so a later resume finds it. How the CLI is
started is `options.py`; what its hooks decide is `hooks.py`; how a message reads as an event
is `stream.py`.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    RateLimitEvent,
    ResultMessage,
    SdkMcpTool,
    SystemMessage,
)

from conductor.bus import Bus
from conductor.costs import CostMeter, restored_total
from conductor.credentials import login_for_session
from conductor.errors import ConductorError
from conductor.events import COST_KEY, EventKind, PromptSent, SessionFailed, SessionModelChanged
from conductor.leftovers import anyones, end_leftovers, owned_by
from conductor.models import Review, SessionStatus
from conductor.session.config import SessionConfig, TurnResult
from conductor.session.hooks import Owners, ToolHooks
from conductor.session.options import jailed_cli, sdk_options
from conductor.session.stream import describe, payload, rejected_until, turn_result
from conductor.text import one_line
from conductor.tools import coordination_server
from conductor.workspace import OWNER_ENV, SUPERVISED_ENV

DISCONNECT_TIMEOUT = 15.0
# What the CLI says when asked to resume a conversation its transcript does not hold.
LOST_CONVERSATION = "No conversation found with session ID"


RequestReview = Callable[[str], Awaitable[Review]]  # (note) -> the review asked for


class SessionDied(ConductorError):
    """The CLI process ended (or its connection broke) in the middle of a turn."""


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
        self.model = config.model  # what its turns run on (`use_model` changes it)
        self._client: ClaudeSDKClient | None = None
        self._tmp: Path | None = None
        self._meter = CostMeter()
        self._hooks = ToolHooks(bus, name, worktree, owners)
        # The hooks as the CLI calls them (a benchmark calls them so too).
        self._pre_tool_use = self._hooks.pre_tool_use
        self._post_tool_use = self._hooks.post_tool_use

    def options(self) -> ClaudeAgentOptions:
        login = login_for_session(self.config.env)  # the user's, when no variable names one
        jailed = jailed_cli(self.config, self.worktree, login, writes_tree=self.writes_tree)
        cli_path, self._tmp = jailed if jailed is not None else (None, None)
        server = coordination_server(
            self.bus,
            self.name,
            self.worktree,
            review_base=self.review_base,
            request=self.request_review,
            extra=self.extra_tools,
            coordinates=self.coordinates,
            claimable=self.claimable,
        )
        return sdk_options(
            self.config,
            self.worktree,
            resume=self.resume,
            login=login,
            cli_path=cli_path,
            server=server,
            hooks=self._hooks,
        )

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
            await self._died(one_line(str(e)), str(e))
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
                await self.bus.record(self.name, EventKind.SESSION_CLOSED, "its CLI has ended")

    async def _clean_up(self) -> None:
        """What the CLI started and left (killed, it closes nothing: the sandbox's proxies),
        and its temporary dir. Only this process's: another conductor process on this host
        (a worker that took this workstream over) may run a session of the same name."""
        run = self.config.env.get(SUPERVISED_ENV)
        if run is not None:
            marker = self.config.env.get(OWNER_ENV)
            whose = anyones if marker is None else owned_by(marker)  # unmarked: as before
            with anyio.CancelScope(shield=True):
                await end_leftovers(run, self.name, whose=whose)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # ------------------------------------------------------------------------ turns

    async def turn(self, prompt: str) -> TurnResult:
        """Send a prompt (the first one, or a wake-up after a turn ended) and stream the turn."""
        if self._client is None:
            raise RuntimeError("the session is not connected")
        prompted = PromptSent(prompt=prompt).to_json()
        await self.bus.record(self.name, EventKind.SESSION_PROMPT, one_line(prompt), prompted)
        session = await self.bus.session(self.name)
        if not session.status.ended:
            await self.bus.update(self.name, status=SessionStatus.WORKING)
        result: TurnResult | None = None
        resets_at: float | None = None  # a usage limit it hit, when the CLI says its reset
        try:
            await self._client.query(prompt)
            async for message in self._client.receive_response():
                cost = None
                if isinstance(message, RateLimitEvent):
                    resets_at = rejected_until(message) or resets_at
                if isinstance(message, ResultMessage):
                    cost = self._meter.turn(message.total_cost_usd)
                    result = turn_result(message, cost, resets_at)
                await self._record(message, cost)
        except ClaudeSDKError as e:
            await self._died(one_line(str(e)), str(e))
            raise SessionDied(f"session {self.name}: the CLI failed mid-turn: {e}") from e
        if result is None:
            await self.bus.record(
                self.name, EventKind.SESSION_DIED, "the turn ended without a result"
            )
            raise SessionDied(f"session {self.name}: the CLI ended the turn without a result")
        session = await self.bus.session(self.name)
        if session.status is SessionStatus.WORKING:
            await self.bus.update(self.name, status=SessionStatus.IDLE)
        return result

    async def use_model(self, model: str | None) -> None:
        """Run its next turns on `model` (None: the CLI's default), in the same conversation:
        the turn that resolves a merge conflict may run on another model than the rest."""
        if self._client is None:
            raise RuntimeError("the session is not connected")
        if model == self.model:
            return
        try:
            await self._client.set_model(model)
        except ClaudeSDKError as e:
            await self._died(one_line(str(e)), str(e))
            raise SessionDied(f"session {self.name}: the CLI failed to change model: {e}") from e
        self.model = model
        await self.bus.record(
            self.name,
            EventKind.SESSION_MODEL,
            f"its next turns run on {model or 'the default model'}",
            SessionModelChanged(model=model).to_json(),
        )

    async def interrupt(self) -> None:
        if self._client is not None:
            await self._client.interrupt()
            await self.bus.record(
                self.name, EventKind.SESSION_INTERRUPTED, "its turn was cut short"
            )

    # ------------------------------------------------------------------------ events

    async def _record(self, message: Any, cost: float | None = None) -> None:
        """`cost`: what a result's turn cost (its running total is not that)."""
        kind, summary = describe(message, cost)
        if isinstance(message, SystemMessage) and message.subtype == "init":
            self.session_id = str(message.data.get("session_id") or "") or self.session_id
            if self.session_id:
                await self.bus.update(self.name, sdk_session_id=self.session_id)
        stored = payload(message)
        if cost is not None:
            stored[COST_KEY] = cost
        await self.bus.record(self.name, kind, summary, stored)

    async def _died(self, summary: str, error: str) -> None:
        failed = SessionFailed(error=error).to_json()
        await self.bus.record(self.name, EventKind.SESSION_DIED, summary, failed)
