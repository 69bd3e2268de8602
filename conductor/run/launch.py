"""Starting, resuming and cleaning up a run: the application flow behind `conductor run`,
`conductor resume` and `conductor clean`.

The commands parse their options, call one function here and print what it returns; what is
checked first (an empty goal, a tree with uncommitted changes, a missing sandbox, no
credentials), the plan made or read and saved, the remote found and the supervisor started
are decided here, once, whoever starts a run. How planning and the run are shown is the
caller's: it passes them in (`ShowPlanning`, `Drive`), so nothing here prints.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conductor import gitops, worktrees
from conductor.bus import Bus, new_run_id, open_run
from conductor.config import Config, load_config
from conductor.costs import Spend
from conductor.credentials import require_credentials
from conductor.errors import InvalidInput
from conductor.gates import integration_branch
from conductor.jail import refuse_root_planner, refuse_root_unsandboxed, require_sandbox
from conductor.models import ReviewPolicy, Run
from conductor.plan import Plan, load_plan, save_plan
from conductor.planner import Planned, Planning, make_plan
from conductor.run.ceiling import resumed_config
from conductor.run.estimate import Estimate, estimate
from conductor.session import refuse_same_review_model, role_model, worker_config
from conductor.store import Store
from conductor.supervisor import NothingToResume, RunSummary, Supervisor, refuse_checked_out
from conductor.workspace import ensure_state_dir, locate, refuse_uncommitted

# How planning is shown while it runs: the planning itself, and the settings it runs under.
ShowPlanning = Callable[[Planning, Config], Awaitable[Planned]]
# How a run is driven and watched to its end; `after`: the last event already seen.
Drive = Callable[[Supervisor, int], Awaitable[RunSummary]]


@dataclass(frozen=True)
class RunAsked:
    """What `conductor run` was asked: the goal, and the options that shape the run (None:
    not given, conductor.toml's setting holds)."""

    goal: str
    plan_only: bool = False
    plan_file: Path | None = None
    save_to: Path | None = None
    into: str | None = None
    max_sessions: int | None = None
    max_parallel: int | None = None
    review: str | None = None
    model: str | None = None
    planner_model: str | None = None
    reviewer_model: str | None = None
    resolver_model: str | None = None
    cross_review: bool | None = None
    workers: bool = False  # the sessions run on `conductor worker`s (conductor.run.remote)
    pr: bool | None = None  # deliver it as a pull request once everything merged
    max_cost: float | None = None  # the run's hard cost ceiling in USD (0: none)


@dataclass(frozen=True)
class Proposal:
    """A plan put to a person before it runs (`--confirm`): where it is saved, what it may
    cost, and how the file is read again once they edited it."""

    plan: Plan
    path: Path
    config: Config
    planner: Spend | None
    reread: Callable[[], Plan]  # the file's plan, checked (InvalidInput says why not)

    def estimate(self, plan: Plan) -> Estimate:
        return estimate(plan, self.config, self.planner)


# Asks a person about a proposal: the plan to run (as edited), or None to start nothing.
Approve = Callable[[Proposal], Awaitable[Plan | None]]


@dataclass(frozen=True)
class Launched:
    """A run's plan and where it was saved; `summary`: how the run ended (None: plan only,
    or `quit`: --confirm was answered quit)."""

    plan: Plan
    saved_to: Path
    summary: RunSummary | None
    config: Config | None = None
    planner: Spend | None = None
    quit: bool = False

    @property
    def estimate(self) -> Estimate | None:
        """What the plan may cost (None: no settings to say it by)."""
        if self.config is None:
            return None
        return estimate(self.plan, self.config, self.planner)

    def estimate_json(self) -> dict[str, Any]:
        found = self.estimate
        return {"estimate": found.to_json()} if found is not None else {}


async def start_run(
    asked: RunAsked,
    *,
    cwd: Path,
    db: str | None,
    show_planning: ShowPlanning,
    drive: Drive,
    approve: Approve | None = None,
) -> Launched:
    """Check what can be checked before anything is spent, plan (or read the plan file),
    save the plan, and, unless only the plan was asked for, run it to its end. `approve`
    (--confirm): the plan is put to a person first, who may edit it or start nothing."""
    if not asked.goal.strip():
        raise InvalidInput('the goal is empty: say what to build (conductor run "A CLI for X")')
    ws = await locate(cwd, db)
    if ws.repo_root is None:
        raise InvalidInput("conductor run works inside a git repository")
    repo = ws.repo_root
    if asked.review is not None and asked.review not in tuple(ReviewPolicy):
        raise InvalidInput(f"--review is one of {', '.join(ReviewPolicy)}")
    config = load_config(repo).override(
        max_sessions=asked.max_sessions,
        max_parallel=asked.max_parallel,
        review=asked.review,
        model=asked.model,
        planner_model=asked.planner_model,
        reviewer_model=asked.reviewer_model,
        resolver_model=asked.resolver_model,
        cross_review=asked.cross_review,
        pr=asked.pr,
        max_cost=asked.max_cost,
    )
    refuse_same_review_model(config)  # before planning spends anything
    if not asked.plan_only:
        require_sandbox(config.sandbox)
        refuse_root_unsandboxed(config.sandbox, config.env)
        if asked.into is not None:
            await refuse_checked_out(repo, asked.into)  # before planning spends anything
        await refuse_uncommitted(repo, besides=asked.plan_file)
        if asked.workers and "origin" not in await gitops.remotes(repo):
            raise InvalidInput(
                "--workers needs a git remote the workers can reach (the repository's"
                " origin): add one with git remote add origin URL"
            )
    if not (asked.plan_only and asked.plan_file is not None):
        need_credentials(config.env)
    if asked.plan_file is None:
        refuse_root_planner(config.env)
    state = ensure_state_dir(repo)
    planner: Spend | None = None
    if asked.plan_file is not None:
        plan = load_plan(asked.plan_file, repo, max_sessions=config.max_sessions)
    else:
        session = replace(worker_config(config, state, {}), model=role_model(config, "planner"))
        planned = await show_planning(
            lambda on_step: make_plan(
                asked.goal, repo, session, max_sessions=config.max_sessions, on_step=on_step
            ),
            config,
        )
        plan, planner = planned.plan, planned.spend
    target = asked.save_to or state / "plans" / f"{new_run_id()}.json"
    save_plan(plan, target)
    if asked.plan_only:
        return Launched(plan, target, None, config, planner)
    if config.max_cost and planner is not None and planner.cost_usd >= config.max_cost:
        raise InvalidInput(
            f"planning spent ${planner.cost_usd:.2f}, the whole of --max-cost"
            f" ${config.max_cost:.2f}: nothing started; the plan is in {target}"
        )
    if approve is not None:
        approved = await approve(
            Proposal(
                plan,
                target,
                config,
                planner,
                lambda: load_plan(target, repo, max_sessions=config.max_sessions),
            )
        )
        if approved is None:
            return Launched(plan, target, None, config, planner, quit=True)
        plan = approved
    remote = "origin" if "origin" in await gitops.remotes(repo) else None
    async with Store.open(ws.location) as store:
        supervisor = Supervisor(
            repo,
            store,
            plan,
            goal=asked.goal,
            config=config,
            env={},
            into=asked.into,
            remote=remote,
            planner=planner,
            workers=asked.workers,
        )
        return Launched(plan, target, await drive(supervisor, 0))


async def resume_run(
    run_id: str | None,
    *,
    cwd: Path,
    db: str | None,
    drive: Drive,
    max_cost: float | None = None,
) -> RunSummary:
    """Continue a run from what the store kept; NothingToResume when it had finished.
    `max_cost`: a new cost ceiling (higher than what the run spent; 0: none)."""
    ws = await locate(cwd, db)
    if ws.repo_root is None:
        raise InvalidInput("conductor resume works inside the run's git repository")
    async with Store.open(ws.location, create=False) as store:
        supervisor = await Supervisor.for_run(ws.repo_root, store, run_id, env={})
        need_credentials(supervisor.config.env)
        assert supervisor.run_id is not None
        bus = await open_run(store, supervisor.run_id)
        supervisor.config = await resumed_config(bus, supervisor.config, max_cost)
        last = await bus.last_event()
        return await drive(supervisor, last.id if last is not None else 0)


def need_credentials(config_env: Mapping[str, str]) -> None:
    """Refuse, in one line with what to do, when no session could reach the model API."""
    require_credentials({**os.environ, **config_env})


def merge_target(run: Run) -> str:
    """The branch a run merges into: its `--into`, or its own integration branch."""
    into = (run.spec or {}).get("into")
    return into if isinstance(into, str) and into else integration_branch(run.id)


async def clean_run(bus: Bus, repo: Path, *, force: bool) -> worktrees.CleanReport:
    """Remove a run's worktrees and the branches merged into what it merges into (its
    `--into`, or its integration branch; before either exists, the branch it started from)."""
    target = merge_target(bus.run)
    into = target if await gitops.branch_exists(repo, target) else (bus.run.base_ref or "HEAD")
    return await worktrees.clean(repo, bus.run_id, into=into, force=force)


__all__ = [
    "Approve",
    "Drive",
    "Launched",
    "NothingToResume",
    "Proposal",
    "RunAsked",
    "ShowPlanning",
    "clean_run",
    "merge_target",
    "need_credentials",
    "resume_run",
    "start_run",
]
