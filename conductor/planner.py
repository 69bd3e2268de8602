"""The planner: a headless, read-only session that turns a goal into a validated plan.

It answers through structured output (the CLI's `StructuredOutput` tool, fed `PLAN_SCHEMA`).
A plan that fails validation is sent back once, in the same conversation, with every error;
a second failure stops the run with those errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage

from conductor.costs import Spend
from conductor.credentials import login_for_session, token_env
from conductor.errors import ConductorError
from conductor.plan import PLAN_SCHEMA, Plan, PlanInvalid, parse_plan
from conductor.prompts import Prompts
from conductor.session import SessionConfig

READ_ONLY_TOOLS = ["Read", "Glob", "Grep"]
PLANNER_MAX_TURNS = 40


class PlannerFailed(ConductorError):
    pass


@dataclass(frozen=True)
class Planned:
    """A plan, and what making it cost (kept with the run, so every view counts it)."""

    plan: Plan
    spend: Spend


def planner_options(repo: Path, config: SessionConfig) -> ClaudeAgentOptions:
    env = {k: v for k, v in config.env.items() if k != "CLAUDECODE"}
    env["CLAUDE_CONFIG_DIR"] = str(config.config_dir)  # not the user's: its login is handed on
    env.update(token_env(login_for_session(config.env)))
    return ClaudeAgentOptions(
        cwd=str(repo),
        env=env,
        model=config.model,
        permission_mode="bypassPermissions",
        tools=READ_ONLY_TOOLS,
        max_turns=config.max_turns or PLANNER_MAX_TURNS,
        output_format={"type": "json_schema", "schema": PLAN_SCHEMA},
    )


async def make_plan(
    goal: str,
    repo: Path,
    config: SessionConfig,
    *,
    max_sessions: int,
    prompts: Prompts | None = None,
) -> Planned:
    prompts = prompts or Prompts(repo)
    config.config_dir.mkdir(parents=True, exist_ok=True)
    prompt = prompts.render("planner.md.j2", goal=goal, max_sessions=max_sessions)
    turns = 0
    async with ClaudeSDKClient(planner_options(repo, config)) as client:
        for attempt in (1, 2):
            await client.query(prompt)
            result: ResultMessage | None = None
            async for message in client.receive_response():
                if isinstance(message, ResultMessage):
                    result = message
                    turns += message.num_turns
            if result is None or result.is_error:
                why = (result.result if result else None) or (
                    f"API error {result.api_error_status}"
                    if result and result.api_error_status
                    else "no result"
                )
                raise PlannerFailed(f"the planner failed: {why}")
            try:
                if result.structured_output is None:
                    raise PlanInvalid(["the planner ended without calling StructuredOutput"])
                plan = parse_plan(result.structured_output, repo, max_sessions=max_sessions)
                # One fresh CLI process: its running total is what both attempts cost.
                return Planned(plan, Spend(turns, result.total_cost_usd or 0.0))
            except PlanInvalid as invalid:
                if attempt == 2:
                    raise PlanInvalid(invalid.errors) from None
                prompt = prompts.render("planner-retry.md.j2", errors=invalid.errors)
    raise AssertionError("unreachable")  # the loop returns or raises
