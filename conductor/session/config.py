"""What starting a session takes, and what one turn of it gave back: plain data.

`worker_config` reads a workstream session's launch from the run's settings (conductor.toml
and flags): the settings module describes settings only, and the session side turns them
into what it needs (the arrow points from the session to the settings, never back).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from conductor.config import Config
from conductor.enforce import WORKER_TOOLS
from conductor.errors import InvalidInput
from conductor.models import ReviewPolicy

Role = Literal["planner", "reviewer", "resolver"]


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


def worker_config(settings: Config, private_dir: Path, env: Mapping[str, str]) -> SessionConfig:
    """How to start a session of a run: the caller's environment (a real key, or the
    stand-in's) under the `env` table of conductor.toml, a CLAUDE_CONFIG_DIR of the session's
    own in `private_dir` (one session's CLI config never reaches another's), the model, the
    per-session budgets and the sandbox."""
    return SessionConfig(
        env={**env, **settings.env},
        config_dir=private_dir / "claude",
        model=settings.model or None,
        max_turns=settings.max_turns,
        max_budget_usd=settings.max_usd_per_session,
        tools=WORKER_TOOLS,
        sandbox=settings.sandbox,
        allowed_domains=settings.allowed_domains,
        private_dir=private_dir,
    )


def role_model(settings: Config, role: Role) -> str | None:
    """The model a role runs on: its own setting, else `model`, else None (the CLI's own)."""
    own = {
        "planner": settings.planner_model,
        "reviewer": settings.reviewer_model,
        "resolver": settings.resolver_model,
    }[role]
    return own or settings.model or None


def author_model(settings: Config, own: str) -> str | None:
    """The model of a workstream's session: the plan's `own` for it, else `model`."""
    return own or settings.model or None


def reviewer_model(settings: Config, author: str | None) -> str | None:
    """The model of an agent reviewer of a session on `author`. With cross_review, never
    the author's: the reviewer model, or (for an author on that very model, a workstream
    that named it) the sessions' `model`, which `refuse_same_review_model` made differ."""
    model = role_model(settings, "reviewer")
    if settings.cross_review and model == author:
        return settings.model or None
    return model


def refuse_same_review_model(settings: Config) -> None:
    """cross_review with a reviewer model that is the sessions' model: refused at the start,
    in one line, before anything is spent (no silent fallback to a same-model review). Only
    where agent reviewers may run (`agent`, and `peer`, whose gone peer an agent stands in
    for): a person or `auto` reviews on no model."""
    agents = settings.review in (ReviewPolicy.AGENT, ReviewPolicy.PEER)
    if (
        agents
        and settings.cross_review
        and role_model(settings, "reviewer") == (settings.model or None)
    ):
        same = settings.model or "the CLI's default model"
        raise InvalidInput(
            f"cross_review: the reviewers would run on {same}, like the sessions: set"
            " reviewer_model (or --reviewer-model) to another model, or turn cross_review off"
        )


@dataclass(frozen=True)
class TurnResult:
    session_id: str | None
    is_error: bool
    num_turns: int
    cost_usd: float
    result: str | None
    api_error_status: int | None
    subtype: str = "success"  # error_max_turns, error_max_budget_usd, error_during_execution
    # When a usage limit the turn hit resets (epoch seconds), as the CLI reported it in a
    # rate-limit event (a subscription's login); None: it did not say.
    resets_at: float | None = None

    @property
    def hit_budget(self) -> bool:
        return self.subtype in ("error_max_turns", "error_max_budget_usd")
