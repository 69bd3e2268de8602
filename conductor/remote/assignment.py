"""One workstream a worker took: its run rebuilt from the store, its session driven here as a
supervisor on one host drives it, under a lease the worker keeps renewing.

The run's plan, goal and settings come from the run's spec on the bus; the repository is the
worker's clone of the git remote; the merge gate is the supervisor's, reached through the bus
(`RemoteGate`). The workstream's loop is the one-host loop itself (`WorkstreamTask`), so the
hooks, the sandbox, the review gate, restarts and back-off are the same code. What ends here:
the workstream's end is written to its assignment; or, when the lease was lost (taken over
after this worker went silent) or the run stopped, the session is left as it is and the
lease let go, for whoever carries on.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import asdict

import anyio

from conductor import gitops
from conductor.bus import Bus, open_run
from conductor.bus import work as work_queue
from conductor.config import parse_config
from conductor.costs import spend_of
from conductor.errors import ConductorError
from conductor.gates import ReviewGate
from conductor.gates.remote import Fetcher, RemoteGate
from conductor.jail import unavailable_reason
from conductor.models import Assignment, ReviewPolicy
from conductor.plan import parse_plan
from conductor.prompts import Prompts
from conductor.remote.handoff import WorkerHandoff
from conductor.remote.lease import HeldLease
from conductor.run.accounting import Ledger
from conductor.run.ceiling import watch_on_worker
from conductor.run.control import Control
from conductor.run.reviewer import AgentReviewer
from conductor.run.started import StartedRun
from conductor.run.summary import Outcome
from conductor.run.workstream import WorkstreamTask
from conductor.session.hooks import tool_boundary
from conductor.store.interface import Storage
from conductor.worktrees import session_branch

RETRY_AFTER = 30.0  # seconds a worker leaves a run alone after failing to fetch for it


class NotForThisWorker(ConductorError):
    """A run this worker must not run: another repository's (its base commit is not in the
    clone), or one whose sessions run unsandboxed when the worker was not started with
    --allow-unsandboxed, or sandboxed where this host cannot make the sandbox."""


class TakenWorkstream:
    """`await TakenWorkstream(store, fetcher, taken, worker=...).run()`; `stop()` from
    another task lets it go (the worker is shutting down)."""

    def __init__(
        self,
        store: Storage,
        fetcher: Fetcher,
        taken: Assignment,
        *,
        worker: str,
        host: str | None = None,
        lease_seconds: float = work_queue.LEASE_SECONDS,
        allow_unsandboxed: bool = False,
    ) -> None:
        """`allow_unsandboxed`: the person who started the worker allows runs whose settings
        say `sandbox = false` (their sessions and setup commands run on this host as its
        user): a run's settings come from the database, not from them."""
        self.store = store
        self.fetcher = fetcher
        self.taken = taken
        self.name = taken.session
        self.worker = worker
        self.host = host or socket.gethostname()
        self.lease_seconds = lease_seconds
        self.control = Control()
        self.allow_unsandboxed = allow_unsandboxed
        self.lease: HeldLease | None = None
        # Why the workstream was let go before its session began, and for how long this
        # worker should not take that run again (None: never): the worker reads these.
        self.left = ""
        self.skip_for: float | None = None
        self._started: Outcome | None = None  # the workstream's outcome, once it began

    async def run(self) -> Outcome:
        bus = await open_run(self.store, self.taken.run_id)
        outcome = Outcome(self.name)
        try:
            with self.control.scope, contextlib.ExitStack() as held:
                run = await self._rebuild(bus)
                cost = await watch_on_worker(bus, self.control, run.config)
                if cost.enabled:  # the run's cost ceiling holds this worker's sessions too
                    held.enter_context(tool_boundary(bus.run_id, cost.at_tool_boundary))
                outcome = self._started = run.outcomes[self.name]
                workstream = next(w for w in run.plan.workstreams if w.id == self.name)
                reviews = ReviewGate(
                    bus,
                    run.repo,
                    run.gate,
                    ReviewPolicy(run.config.review),
                    stall_seconds=run.config.stall_seconds,
                    agent=AgentReviewer(run).review,
                )
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._lease(bus).keep)
                    await WorkstreamTask(run, reviews, workstream)()
                    tg.cancel_scope.cancel()
        except NotForThisWorker as e:
            self.left, self.skip_for = str(e), None
        except ConductorError as e:
            if outcome is not self._started:  # before its session began: a fetch that failed
                self.left, self.skip_for = f"{e}: let go for another worker", RETRY_AFTER
            else:
                outcome.state, outcome.detail = "failed", str(e)
        finally:
            with anyio.CancelScope(shield=True):
                await self._hand_back(bus, outcome)
        return outcome

    async def stop(self) -> None:
        await self.control.stop()

    @property
    def lost(self) -> bool:
        """The lease is no longer this worker's: another took the workstream over."""
        return self.lease is not None and self.lease.lost

    def _lease(self, bus: Bus) -> HeldLease:
        if self.lease is None:
            self.lease = HeldLease(
                bus, self.taken, seconds=self.lease_seconds, control=self.control
            )
        return self.lease

    async def _rebuild(self, bus: Bus) -> StartedRun:
        """The run as this worker holds it: from its spec, on the clone, the other
        workstreams counted as merged (the supervisor queued this one once they were)."""
        spec = bus.run.spec or {}
        clone = self.fetcher.clone
        plan = parse_plan(spec["plan"], clone)
        config = parse_config(spec["config"], source=f"run {bus.run_id}")
        branch = session_branch(bus.run_id, self.name)
        gate = RemoteGate(
            clone,
            bus,
            self.fetcher,
            session=self.name,
            worker=self.worker,
            into=spec.get("into"),
            confirm=self._lease(bus).confirm,
        )
        self._may_run(bus.run_id, config.sandbox)
        await self.fetcher.fetch(gate.branch, branch)  # the tip, and what was pushed of it
        base = bus.run.base_commit
        if base and await gitops.try_rev_parse(f"{base}^{{commit}}", clone) is None:
            raise NotForThisWorker(
                f"run {bus.run_id} is not of this worker's repository: its base commit"
                f" {base[:12]} is not in {clone}"
            )
        ledger = Ledger(config.max_usd_per_run)  # the whole run's spend, every worker's
        ledger.restore(spend_of(spec, await bus.sessions()))
        run = StartedRun(
            repo=clone,
            plan=plan,
            goal=bus.run.goal,
            config=config,
            env={},
            prompts=Prompts(clone),
            bus=bus,
            gate=gate,
            control=self.control,
            ledger=ledger,
            outcomes={w.id: Outcome(w.id) for w in plan.workstreams},
            remote=self.fetcher.remote,
        )
        for other in plan.workstreams:
            if other.id != self.name:
                run.outcomes[other.id].state = "merged"
                run.finished[other.id].set()
        handoff = WorkerHandoff(
            bus,
            ledger,
            self.fetcher,
            self.taken,
            worker=self.worker,
            host=self.host,
            lease=self._lease(bus),
        )
        await handoff.note_takeover(self.name, branch)
        run.handoff = handoff
        return run

    def _may_run(self, run_id: str, sandboxed: bool) -> None:
        """NotForThisWorker unless this worker may run the run's sessions as it says."""
        if not sandboxed and not self.allow_unsandboxed:
            raise NotForThisWorker(
                f"run {run_id} runs its sessions unsandboxed (sandbox = false), and this worker"
                " was not started with --allow-unsandboxed"
            )
        if sandboxed and (why := unavailable_reason()) is not None:
            raise NotForThisWorker(f"run {run_id} needs the sandbox: {why}")

    async def _hand_back(self, bus: Bus, outcome: Outcome) -> None:
        """The end written to the assignment; a stopped one's lease let go instead."""
        with contextlib.suppress(ConductorError):
            if self.lost:
                return
            if self.left or (self.control.stopping and outcome.state != "merged"):
                await work_queue.let_go(bus, self.taken)  # for another worker, at once
                return
            if outcome.state == "waiting":  # (an error the workstream's task did not catch)
                outcome.state = "failed"
            await work_queue.end(bus, self.taken, state=outcome.state, outcome=asdict(outcome))
