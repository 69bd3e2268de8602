"""The planner: a headless, read-only session that turns a goal into a validated plan.

It answers through structured output (the CLI's `StructuredOutput` tool, fed `PLAN_SCHEMA`).
A plan that fails validation is sent back once, in the same conversation, with every error;
a second failure stops the run with those errors.

Until the API has answered once, the planner is watched: the CLI on its own retries a refused
connection or an error status (401 included) ten times over about three minutes, silently. An
API that refuses it (a 4xx retrying cannot mend) stops planning at once; one that has not
answered within PATIENCE seconds, or whose next retry would come later than that, stops it
then, with the reason in one line. Once it has answered, its retries are the CLI's affair.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    ToolUseBlock,
)

from conductor.costs import Spend
from conductor.credentials import login_for_session, token_env
from conductor.errors import ConductorError
from conductor.plan import PLAN_SCHEMA, Plan, PlanInvalid, parse_plan
from conductor.prompts import Prompts
from conductor.session import SessionConfig
from conductor.session.options import database_env

READ_ONLY_TOOLS = ["Read", "Glob", "Grep"]
PLANNER_MAX_TURNS = 40
PATIENCE = 20.0  # seconds an API that has not answered yet is waited for
PROBE_SECONDS = 2.0  # to tell why there was no connection
DEFAULT_API = "https://api.anthropic.com"
PROXIES = ("https_proxy", "http_proxy", "all_proxy")
PROVIDERS = ("Bedrock", "Vertex", "Foundry")  # CLAUDE_CODE_USE_BEDROCK, ...: no base URL then
# The statuses the CLI retries although retrying cannot change them.
FINAL_STATUSES = frozenset(range(400, 500)) - {408, 409, 429}

Steps = Callable[[str], None]  # told, in a few words, what the planner is doing


class PlannerFailed(ConductorError):
    pass


@dataclass(frozen=True)
class Planned:
    """A plan, and what making it cost (kept with the run, so every view counts it)."""

    plan: Plan
    spend: Spend


Planning = Callable[[Steps], Awaitable[Planned]]  # make_plan, its arguments but on_step given


def planner_options(repo: Path, config: SessionConfig) -> ClaudeAgentOptions:
    env = {k: v for k, v in config.env.items() if k != "CLAUDECODE"}
    env["CLAUDE_CONFIG_DIR"] = str(config.config_dir)  # not the user's: its login is handed on
    env.update(token_env(login_for_session(config.env)))
    env.update(database_env(config.env))  # no database credentials: it has no use for them
    return ClaudeAgentOptions(
        cwd=str(repo),
        env=env,
        model=config.model,
        permission_mode="bypassPermissions",
        tools=READ_ONLY_TOOLS,
        max_turns=config.max_turns or PLANNER_MAX_TURNS,
        output_format={"type": "json_schema", "schema": PLAN_SCHEMA},
        # Stream events: the API's first bytes show it answers, before a whole block is out.
        include_partial_messages=True,
    )


async def make_plan(
    goal: str,
    repo: Path,
    config: SessionConfig,
    *,
    max_sessions: int,
    prompts: Prompts | None = None,
    on_step: Steps | None = None,
) -> Planned:
    prompts = prompts or Prompts(repo)
    config.config_dir.mkdir(parents=True, exist_ok=True)
    prompt = prompts.render("planner.md.j2", goal=goal, max_sessions=max_sessions)
    options = planner_options(repo, config)
    api = _Api({**os.environ, **options.env}, on_step or (lambda step: None))
    turns = 0
    async with ClaudeSDKClient(options) as client:
        for attempt in (1, 2):
            await client.query(prompt)
            try:
                result = await api.result(client.receive_response(), repo)
            except PlannerFailed:
                # Its turn ended first, the CLI ends at once when let go (not after the
                # SDK's five seconds' grace for a CLI in the middle of a turn).
                with anyio.move_on_after(PROBE_SECONDS):
                    await client.interrupt()
                raise
            if result is not None:
                turns += result.num_turns
            if result is None or result.is_error:
                why = (result.result if result else None) or (
                    f"API error {result.api_error_status}"
                    if result and result.api_error_status
                    else "no result"
                )
                raise PlannerFailed(f"the planner failed: {' '.join(why.split())}")
            try:
                if result.structured_output is None:
                    raise PlanInvalid(["the planner ended without calling StructuredOutput"])
                plan = parse_plan(result.structured_output, repo, max_sessions=max_sessions)
                # One fresh CLI process: its running total is what both attempts cost.
                return Planned(plan, Spend(turns, result.total_cost_usd or 0.0))
            except PlanInvalid as invalid:
                if attempt == 2:
                    raise PlanInvalid(invalid.errors) from None
                api.on_step("the plan has mistakes: told so, planning again")
                prompt = prompts.render("planner-retry.md.j2", errors=invalid.errors)
    raise AssertionError("unreachable")  # the loop returns or raises


class _Api:
    """The planner's conversation as it streams, and whether the API behind it answers."""

    def __init__(self, env: Mapping[str, str], on_step: Steps) -> None:
        self.env = env
        self.on_step = on_step
        self.answered = False
        self.tries = 0
        self.trouble: str | None = None  # what the last failed try met

    async def result(self, messages: Any, repo: Path) -> ResultMessage | None:
        result: ResultMessage | None = None
        started = anyio.current_time()
        with anyio.CancelScope() as waiting:
            if not self.answered:
                waiting.deadline = started + PATIENCE
            async for message in messages:
                if not self.answered and _answers(message):
                    self.answered = True
                    waiting.deadline = float("inf")
                if isinstance(message, SystemMessage) and message.subtype == "api_retry":
                    await self._retrying(message.data, started)
                elif isinstance(message, AssistantMessage):
                    for block in message.content:
                        if isinstance(block, ToolUseBlock):
                            self.on_step(_describe(block, repo))
                elif isinstance(message, ResultMessage):
                    result = message
        if waiting.cancelled_caught:
            raise PlannerFailed(await self._silent())
        return result

    async def _retrying(self, data: Mapping[str, Any], started: float) -> None:
        """A try failed and the CLI will try again after a delay: stop now when that is
        hopeless (a refusal, or the next try would come past PATIENCE)."""
        self.tries = int(data.get("attempt") or self.tries + 1)
        status = data.get("error_status")
        kind = str(data.get("error") or "")
        if self.answered:
            self.on_step(f"{_trouble(status, kind)}: trying again")
            return
        if status is None:  # no HTTP answer at all: why, found out once, not per try
            self.trouble = self.trouble or await self._no_connection()
        else:
            self.trouble = _trouble(status, kind)
        waited = anyio.current_time() - started
        if status in FINAL_STATUSES:
            raise PlannerFailed(f"{self._where()} refused the planner: {self.trouble}")
        delay = float(data.get("retry_delay_ms") or 0) / 1000
        if waited + delay > PATIENCE:
            raise PlannerFailed(self._gave_up(waited))
        self.on_step(f"{self.trouble}: trying again in {delay:.0f} s")

    def _gave_up(self, waited: float) -> str:
        tries = f"{self.tries} {'try' if self.tries == 1 else 'tries'} in {waited:.0f} s"
        return f"the planner got no answer from {self._where()}: {self.trouble} ({tries})"

    async def _silent(self) -> str:
        if self.tries:
            return self._gave_up(PATIENCE)
        why = await self._probe() or "it accepts connections, but sends nothing back"
        return f"the planner got no answer from {self._where()} in {PATIENCE:.0f} s: {why}"

    async def _no_connection(self) -> str:
        return await self._probe() or "no HTTP answer, though it accepts connections (TLS?)"

    def _provider(self) -> str | None:
        return next(
            (p for p in PROVIDERS if _truthy(self.env.get(f"CLAUDE_CODE_USE_{p.upper()}"))),
            None,
        )

    def _where(self) -> str:
        provider = self._provider()
        return f"the API ({provider})" if provider else f"the API at {self._url()}"

    def _url(self) -> str:
        return self.env.get("ANTHROPIC_BASE_URL") or DEFAULT_API

    async def _probe(self) -> str | None:
        """Why a connection of our own to the API fails (None: it connects)."""
        if self._provider():
            return "no connection"
        proxy = next((v for k, v in self.env.items() if k.lower() in PROXIES and v), None)
        if proxy is not None:  # the CLI's connection goes there, not where ours would
            return f"no connection (through the proxy {proxy})"
        url = urlsplit(self._url())
        host = url.hostname or "localhost"
        port = url.port or (80 if url.scheme == "http" else 443)
        try:
            await anyio.to_thread.run_sync(_connect, host, port)
        except TimeoutError:
            return f"no connection within {PROBE_SECONDS:.0f} s"
        except OSError as e:
            return (e.strerror or str(e)).lower()
        return None


def _connect(host: str, port: int) -> None:
    socket.create_connection((host, port), timeout=PROBE_SECONDS).close()


def _answers(message: object) -> bool:
    """Whether a message shows the API answering (the CLI's own error text does not)."""
    if isinstance(message, StreamEvent):
        return True
    return isinstance(message, AssistantMessage) and message.model != "<synthetic>"


def _trouble(status: object, kind: str) -> str:
    if status is None:
        return "no connection"
    return f"HTTP {status}" + (f" ({kind})" if kind and kind != "unknown" else "")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no")


def _describe(block: ToolUseBlock, repo: Path) -> str:
    """A tool call in a few words: `Read textstats/words.py`, `Glob **/*.py`."""
    if block.name == "StructuredOutput":
        return "writing the plan"
    arg = block.input.get("file_path") or block.input.get("pattern") or block.input.get("path")
    if not isinstance(arg, str):
        return block.name
    if os.path.isabs(arg):
        arg = os.path.relpath(arg, repo) if arg.startswith(f"{repo}{os.sep}") else arg
    return f"{block.name} {arg}"
