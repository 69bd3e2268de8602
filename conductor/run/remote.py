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

from conductor import gitops, machine
from conductor.bus import work as work_queue
from conductor.costs import spend_of
from conductor.gates import MergeStatus
from conductor.gates.remote import outcome_to_json
from conductor.models import MergeRequest
from conductor.plan import Workstream
from conductor.run import replay
from conductor.run.started import StartedRun
from conductor.run.summary import Outcome

POLL = 1.0  # how often the bus is looked at when no write here wakes the supervisor
_LANDED = (MergeStatus.MERGED, MergeStatus.ALREADY_MERGED)


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


async def fetch_branch(run: StartedRun, branch: str) -> bool:
    """A session's branch from the remote into the repository (the gate's copy); False
    when the remote has none (its worker never pushed)."""
    if run.remote is None:
        return False
    fetched = await gitops.git(
        [
            "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", run.remote,
            f"+refs/heads/{branch}:refs/heads/{branch}",
        ],
        run.repo,
        check=False,
    )  # fmt: skip
    return fetched.returncode == 0


async def refresh_spend(run: StartedRun) -> None:
    """The run's ledger as the store has it: the workers' sessions spend on other hosts,
    and the budget is the whole run's."""
    bus = run.bus
    run.ledger.restore(spend_of(bus.run.spec, await bus.sessions()))


async def delegate(run: StartedRun, workstream: Workstream, outcome: Outcome) -> None:
    """Hand the workstream to the workers, and wait for one to end it."""
    bus, name = run.bus, workstream.id
    await work_queue.queue(bus, name)
    while True:
        found = await work_queue.assignment(bus, name)
        if found is not None and found.state == "ended":
            break
        await bus.wait_for_change(POLL)
    ended = json.loads(found.outcome or "{}")
    if outcome.state != "merged":  # (the desk may have seen it land first)
        outcome.state = str(ended.get("state") or "failed")
    outcome.detail = str(ended.get("detail") or outcome.detail)
    outcome.merge = str(ended.get("merge") or outcome.merge)
    outcome.commits = int(ended.get("commits") or outcome.commits)
    rounds = replay.review_rounds(await bus.events())  # whichever worker saw them
    outcome.review_rounds = rounds.get(name, outcome.review_rounds)
    branch = (await bus.session(name)).branch
    if branch:
        await fetch_branch(run, branch)  # what it did, for the summary's count


class MergeDesk:
    """The supervisor's side of workers' merges: their requests through the one gate, in the
    order they came, each answered with the gate's outcome."""

    def __init__(self, run: StartedRun) -> None:
        self.run = run

    async def serve(self) -> None:
        """Until cancelled (the run's workstreams are over)."""
        bus = self.run.bus
        while True:
            for request in await work_queue.pending_merges(bus):
                await self.answer(request)
            await bus.wait_for_change(POLL)

    async def answer(self, request: MergeRequest) -> None:
        run = self.run
        await fetch_branch(run, request.branch)
        owners: dict[str, str] = json.loads(request.owners or "{}")
        merged = await run.gate.merge(request.branch, request.commit, owners=owners)
        if merged.status is MergeStatus.CHECK_FAILED:  # its fault, or a full disk's?
            await machine.probe(run.machine_folders())
        await work_queue.answer_merge(run.bus, request.id, outcome_to_json(merged))
        outcome = run.outcomes.get(request.session)
        if merged.status in _LANDED and outcome is not None:
            # Its dependents start now, not once its worker has shut its session down.
            outcome.state = "merged"
            run.finished[request.session].set()
        if merged.status is MergeStatus.TAMPERED:
            run.control.tamper(merged.output)
