"""One workstream as a task of the run: its dependencies, its place, its session, its end.

It waits for the workstreams it depends on to merge, takes a place under `max_parallel`,
and hands over to its session's driver. However that ends (merged, failed, out of budget, a
failing machine, a stop), the end is recorded here once: the outcome's state, the session's
status on the bus (which releases its claims) and its commits, for the summary.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import anyio

from conductor import gitops, machine, worktrees
from conductor.errors import ConductorError
from conductor.gates import ReviewGate
from conductor.models import SessionStatus
from conductor.plan import Workstream
from conductor.run.driver import drive_session
from conductor.run.remote import OnWorkers, refresh_spend
from conductor.run.started import StartedRun
from conductor.run.summary import Outcome

_ENDED_AS = {"merged": SessionStatus.DONE, "failed": SessionStatus.FAILED}


class WorkstreamTask:
    def __init__(
        self,
        run: StartedRun,
        reviews: ReviewGate,
        workstream: Workstream,
        on_workers: OnWorkers | None = None,
    ) -> None:
        """`on_workers`: the run's sessions run on workers: it hands this one to them."""
        self.run = run
        self.on_workers = on_workers
        self.reviews = reviews
        self.workstream = workstream
        self.name = workstream.id
        self.outcome = run.outcomes[workstream.id]

    async def __call__(self) -> None:
        run, outcome = self.run, self.outcome
        me = await run.bus.session(self.name)
        if me.status is SessionStatus.DONE:  # merged before this supervisor started (a resume)
            outcome.state = "merged"
            if me.branch:
                await count_commits(run, me.branch, outcome)
            run.finished[self.name].set()
            return
        try:
            if not await self._dependencies_merged():
                return
            async with run.limiter:
                if run.on_workers:  # what the workers' sessions spent is in the store
                    await refresh_spend(run)
                if run.ledger.over_budget():
                    outcome.state, outcome.detail = "budget", "the run's budget was spent"
                    return
                if self.on_workers is not None:
                    await self.on_workers.delegate(self.workstream, outcome)
                else:
                    await drive_session(run, self.reviews, self.workstream, outcome)
        except Exception as e:
            if not await self._failed(e):
                raise
        finally:
            await self._end()

    async def _dependencies_merged(self) -> bool:
        """Wait for every dependency to end; False (and `skipped`) if one did not merge."""
        for dep in self.workstream.depends_on:
            await self.run.finished[dep].wait()
            if self.run.outcomes[dep].state != "merged":
                self.outcome.state, self.outcome.detail = "skipped", f"{dep} did not merge"
                return False
        return True

    async def _failed(self, error: Exception) -> bool:
        """A machine's fault stops the run (to resume); a ConductorError fails this
        workstream alone, and the others go on. False: not this task's to handle."""
        run = self.run
        fault = machine.fault_in(error)  # (a task group inside wraps what it raised)
        if fault is not None:
            await run.machine_failed(fault)
        elif isinstance(error, ConductorError):
            await run.unless_the_machine(machine.probe(run.machine_folders()))
            if not run.control.fault:
                self.outcome.state, self.outcome.detail = "failed", str(error)
        else:
            return False
        return True

    async def _end(self) -> None:
        run, outcome = self.run, self.outcome
        if run.control.stopping and outcome.state == "waiting":
            outcome.state = "interrupted"  # the session stays as it was, for resume
        # What it did, for the summary, counted once as it ends rather than after every
        # turn (a merged one's count was taken as it landed; a failing machine cannot say).
        with anyio.CancelScope(shield=True), contextlib.suppress(ConductorError):
            branch = (await run.bus.session(self.name)).branch
            if branch:
                await count_commits(run, branch, outcome)
        # Stopping leaves an unfinished session as it was, for resume; a merge that
        # landed meanwhile is still recorded, or the resumed run would wake it again.
        if run.control.stopping and outcome.state != "merged":
            return
        if outcome.state == "waiting":
            outcome.state = "failed"
        status = _ENDED_AS.get(outcome.state, SessionStatus.STOPPED)
        with anyio.CancelScope(shield=True):  # stop() cancels the run's tasks
            if not await run.handoff.still_ours(self.name):
                return
            await run.unless_the_machine(
                run.bus.update(self.name, status=status, note=outcome.detail or None)
            )
        run.finished[self.name].set()


async def count_commits(run: StartedRun, branch: str, outcome: Outcome) -> None:
    """The session's own commits: not the other sessions' work it started from or took
    in (through the integration branch), and not merges. A merged workstream's count
    was taken when its merge landed (later, other branches carry its commits too)."""
    if outcome.merge == "merged":
        return
    bus = run.bus
    tree = (await bus.session(outcome.id)).worktree
    # (a worker's tree is on its host: its branch was fetched from the remote as it ended)
    if tree and not run.on_workers and await worktrees.head_of(Path(tree), branch) is not None:
        await worktrees.collect(run.repo, Path(tree), branch)  # its latest, to count
    base = bus.run.base_commit or "HEAD"
    others = [s.branch for s in await bus.sessions() if s.branch and s.branch != branch]
    counted = await gitops.git(
        ["rev-list", "--count", "--no-merges", "--ignore-missing", branch, "--not", base, *others],
        run.repo,
        check=False,
    )
    if counted.returncode == 0:  # a merged branch a person deleted has no count
        outcome.commits = int(counted.text or 0)
