"""The run: one task group that takes a plan to merged, checked code with nobody watching.

Each workstream is one task: it waits for the workstreams it depends on to merge, takes a
place under `max_parallel`, gets a worktree from the integration branch's tip (so it builds
on what merged before it) and a headless session with the session template, and then loops:
a turn; a wake-up with its inbox if it is blocked and a message came; a nudge if it ended
without asking for review of its head; the review gate; the merge gate. A rejection, a
conflict or a red check goes back to the same session as its next prompt. The loop ends when
the branch merged, the session failed, or a budget ran out.

The parts live in `conductor.run` (the run's start and end, a workstream's task and its
session's driver, what follows a turn, resume replay, back-off, the budget) and the gates in
`conductor.gates`; the supervisor ties them together.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import anyio

from conductor import machine
from conductor.bus import Bus, latest_run, open_run
from conductor.config import Config, parse_config
from conductor.costs import Spend
from conductor.errors import ConductorError, InvalidInput, MachineFault
from conductor.gates import ReviewGate, ReviewPolicy
from conductor.jail import refuse_root_unsandboxed, require_sandbox
from conductor.models import RunState
from conductor.plan import Plan, parse_plan
from conductor.prompts import Prompts
from conductor.run import lifecycle
from conductor.run.accounting import Ledger
from conductor.run.ceiling import CostWatch
from conductor.run.control import Control
from conductor.run.lifecycle import refuse_checked_out
from conductor.run.remote import OnWorkers
from conductor.run.reviewer import AgentReviewer
from conductor.run.started import StartedRun
from conductor.run.stop_watch import StopWatch, since
from conductor.run.summary import NothingToResume, Outcome, RunSummary
from conductor.run.workstream import WorkstreamTask
from conductor.session.hooks import tool_boundary
from conductor.store import Store

__all__ = [
    "NothingToResume",
    "Outcome",
    "RunSummary",
    "Supervisor",
    "refuse_checked_out",
]


class Supervisor:
    """`await Supervisor(repo, store, plan, ...).run()` starts a run;
    `await (await Supervisor.for_run(repo, store, run_id, env=...)).run()` continues one."""

    def __init__(
        self,
        repo: Path,
        store: Store,
        plan: Plan,
        *,
        goal: str,
        config: Config,
        env: Mapping[str, str],
        into: str | None = None,
        remote: str | None = None,
        prompts: Prompts | None = None,
        planner: Spend | None = None,
        workers: bool = False,
    ) -> None:
        """`planner`: what making the plan cost, stored with the run. `workers`: its
        sessions run on `conductor worker`s on other hosts (see `conductor.run.remote`),
        which need the database and `remote` to be theirs too."""
        if workers and remote is None:
            raise InvalidInput(
                "--workers needs a git remote the workers can reach (the repository's origin):"
                " add one with git remote add origin URL"
            )
        self.repo = repo
        self.planner = planner
        self.store = store
        self.plan = plan
        self.goal = goal
        self.config = config
        self.env = env
        self.into = into
        self.remote = remote
        self.workers = workers
        self.prompts = prompts or Prompts(repo)
        self.policy = ReviewPolicy(config.review)
        self.outcomes = {w.id: Outcome(w.id) for w in plan.workstreams}
        self.control = Control()  # before the run starts: Ctrl-C may come during setup
        self.started = anyio.Event()  # set once the run exists and this supervisor holds it
        self.run_id: str | None = None  # the run's, once it exists
        self.running: StartedRun | None = None  # the run once taken, for its parts
        self._resumed: Bus | None = None  # a run to continue (for_run), or None: a new one
        self._stops_after = 0  # a stop asked after this event id is this supervisor's

    @classmethod
    async def for_run(
        cls,
        repo: Path,
        store: Store,
        run_id: str | None,
        *,
        env: Mapping[str, str],
        prompts: Prompts | None = None,
    ) -> Supervisor:
        """The supervisor of an existing run, rebuilt from what the store kept of it."""
        named = run_id or os.environ.get("CONDUCTOR_RUN")
        if named is None and await latest_run(store) is None:  # killed before it was stored
            raise InvalidInput("no run to resume here: to start one, see conductor run --help")
        bus = await open_run(store, run_id)
        run = bus.run
        if run.spec is None:
            raise InvalidInput(
                f"run {run.id} was not started by conductor run (it has no plan): nothing to"
                " resume; its sessions use the hand commands"
            )
        if run.state is RunState.FINISHED:
            raise NothingToResume(f"run {run.id} finished: everything merged, nothing to resume")
        where = f"run {run.id}"
        supervisor = cls(
            repo,
            store,
            parse_plan(run.spec["plan"], repo),
            goal=run.goal,
            config=parse_config(run.spec["config"], source=where),
            env=env,
            into=run.spec.get("into"),
            remote=run.spec.get("remote"),
            prompts=prompts,
            workers=bool(run.spec.get("workers")),
        )
        supervisor._resumed = bus
        supervisor.run_id = bus.run_id
        return supervisor

    async def run(self) -> RunSummary:
        require_sandbox(self.config.sandbox)
        refuse_root_unsandboxed(self.config.sandbox, {**self.env, **self.config.env})
        if self.into is not None:
            await refuse_checked_out(self.repo, self.into)
        bus = self._resumed or await lifecycle.create(
            self.store,
            self.repo,
            self.plan,
            goal=self.goal,
            config=self.config,
            into=self.into,
            remote=self.remote,
            planner=self.planner,
            workers=self.workers,
        )
        self.run_id = bus.run_id
        self._stops_after = await since(bus)  # an earlier supervisor's stop is not ours
        lease = await lifecycle.take(bus)
        self.started.set()
        try:
            running = self.running = await self._taken(bus)
            try:
                return await self._supervise(running)
            except (MachineFault, OSError) as e:  # before its workstreams began, or at the end
                fault = machine.fault_in(e)
                if fault is None:
                    raise
                self.control.fault = self.control.fault or str(fault)
                return await lifecycle.summarise(running)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(ConductorError):
                await bus.release_lock(lease)

    async def stop(self) -> None:
        """Ctrl-C: interrupt every session, end the run's tasks, and leave the run
        `interrupted` with each session's conversation and worktree ready for resume. (A
        stop asked from elsewhere, `Bus.ask_stop`, comes to the same through `StopWatch`.)"""
        await self.control.stop()

    async def summary(self) -> RunSummary:
        """The run's end summarised (and stored) again, from what the store says now."""
        if self.running is None:
            raise InvalidInput("the run has not started: nothing to summarise")
        return await lifecycle.summarise(self.running)

    async def _taken(self, bus: Bus) -> StartedRun:
        """The run's shared parts, once this supervisor holds the run."""
        gate = await lifecycle.merge_gate(
            self.repo, bus, self.config, into=self.into, remote=self.remote
        )
        return StartedRun(
            repo=self.repo,
            plan=self.plan,
            goal=self.goal,
            config=self.config,
            env=self.env,
            prompts=self.prompts,
            bus=bus,
            gate=gate,
            control=self.control,
            ledger=Ledger.for_new_run(self.config.max_usd_per_run, bus.run.spec),
            outcomes=self.outcomes,
            remote=self.remote,
            on_workers=self.workers,
        )

    async def _supervise(self, running: StartedRun) -> RunSummary:
        """Every workstream as a task of one group, inside the run's cancel scope."""
        await lifecycle.prepare(running, resuming=self._resumed is not None)
        reviews = ReviewGate(
            running.bus,
            self.repo,
            running.gate,
            self.policy,
            stall_seconds=self.config.stall_seconds,
            agent=AgentReviewer(running).review,
        )
        cost = CostWatch(running.bus, self.control, self.config)
        await cost.begin()
        boundary = (
            tool_boundary(running.run_id, cost.at_tool_boundary)
            if cost.enabled
            else contextlib.nullcontext()
        )
        with self.control.scope, boundary:
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(StopWatch(running.bus, self.control, after=self._stops_after))
                    tg.start_soon(cost)  # the cost ceiling, between tool boundaries too
                    on_workers = OnWorkers(running) if running.on_workers else None
                    if on_workers is not None:  # their merges come to this gate
                        tg.start_soon(on_workers.serve)
                    async with anyio.create_task_group() as workstreams:
                        for workstream in self.plan.workstreams:
                            task = WorkstreamTask(running, reviews, workstream, on_workers)
                            workstreams.start_soon(task)
                    tg.cancel_scope.cancel()
            except ExceptionGroup as group:  # from anywhere in the run's tasks
                faults, rest = group.split(lambda e: machine.fault_in(e) is not None)
                fault = machine.fault_in(faults) if faults is not None else None
                if fault is not None:
                    await running.machine_failed(fault)
                if rest is not None:
                    raise rest from None
        return await lifecycle.summarise(running)
