"""A run whose sessions run on workers on other hosts (`conductor run --workers`).

The supervisor still plans, orders the workstreams (a dependent waits for its dependencies to
merge, `max_parallel` at a time) and owns the one merge gate. What changes is where a
workstream's session runs: instead of driving it here, the supervisor queues it on the bus and
any `conductor worker` that shares the database and the git remote takes it, runs its session
with the same hooks, sandbox, review gate and loop, and hands its branch back through the
remote. A worker's reviewed commit comes back as a merge request, which the supervisor's
`MergeDesk` puts through the gate one at a time (fetching the branch from the remote first);
the gate pushes every merge to the remote, where the workers read the new tip.
"""

from __future__ import annotations

import json
from typing import Any

import anyio

from conductor import gitops
from conductor.bus import work as work_queue
from conductor.costs import spend_of
from conductor.models import ReviewStatus
from conductor.plan import Workstream
from conductor.run.desk import MergeDesk, fetch_branch
from conductor.run.started import StartedRun
from conductor.run.summary import Outcome

POLL = 1.0  # how often the bus is looked at when no write here wakes the supervisor
_DECIDED = (ReviewStatus.APPROVED, ReviewStatus.REJECTED)


async def publish(run: StartedRun) -> None:
    """The integration branch on the remote, for the workers to build on, before any
    workstream is queued (the gate pushes it again after every merge)."""
    remote = run.remote
    if remote is None:
        return
    branch = run.gate.branch
    await gitops.git(
        ["push", "--quiet", remote, f"{await run.gate.head()}:refs/heads/{branch}"], run.repo
    )


async def heartbeat(run: StartedRun) -> None:
    """Until cancelled: the supervisor is alive, for the workers (see bus.work)."""
    while True:
        await work_queue.supervisor_alive(run.bus)
        await anyio.sleep(work_queue.HEARTBEAT_SECONDS)


async def refresh_spend(run: StartedRun) -> None:
    """The run's ledger as the store has it: the workers' sessions spend on other hosts,
    and the budget is the whole run's."""
    bus = run.bus
    run.ledger.restore(spend_of(bus.run.spec, await bus.sessions()))


class OnWorkers:
    """The supervisor's side of a run on workers: `serve()` as a task of the run (the
    heartbeat, the merge desk, one reader of the workstreams' ends), and `delegate()` for
    each workstream's task in place of driving its session here."""

    def __init__(self, run: StartedRun) -> None:
        self.run = run
        self._waiting: dict[str, anyio.Event] = {}  # workstream -> set once it may have ended

    async def serve(self) -> None:
        """Until cancelled (the run's workstreams are over)."""
        await publish(self.run)
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat, self.run)
            tg.start_soon(MergeDesk(self.run).serve)
            tg.start_soon(self._watch_ends)

    async def delegate(self, workstream: Workstream, outcome: Outcome) -> None:
        """Hand the workstream to the workers, and wait for one to end it."""
        bus, name = self.run.bus, workstream.id
        await work_queue.queue(bus, name)
        while True:
            waiting = self._waiting[name] = anyio.Event()
            await waiting.wait()
            found = await work_queue.assignment(bus, name)  # (read before it was queued?)
            if found is not None and found.state == "ended":
                break
        await self._ended(name, json.loads(found.outcome or "{}"), outcome)

    async def _watch_ends(self) -> None:
        """One read of the run's assignments per wake-up for all the workstreams waiting,
        not one each: every write of every worker wakes the supervisor (NOTIFY)."""
        bus = self.run.bus
        while True:
            if self._waiting:
                for found in await work_queue.assignments(bus):
                    if found.state == "ended" and found.session in self._waiting:
                        self._waiting.pop(found.session).set()
            await bus.wait_for_change(POLL)

    async def _ended(self, name: str, ended: dict[str, Any], outcome: Outcome) -> None:
        run, bus = self.run, self.run.bus
        if outcome.state != "merged":  # (the desk may have seen it land first)
            outcome.state = str(ended.get("state") or "failed")
        outcome.detail = str(ended.get("detail") or outcome.detail)
        outcome.merge = str(ended.get("merge") or outcome.merge)
        outcome.commits = int(ended.get("commits") or outcome.commits)
        decided = [r for r in await bus.reviews(session=name) if r.requester == name]
        outcome.review_rounds = sum(r.status in _DECIDED for r in decided)  # on any worker
        branch = (await bus.session(name)).branch
        if branch:
            await fetch_branch(run, branch)  # what it did, for the summary's count
