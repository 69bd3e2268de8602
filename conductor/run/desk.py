"""The supervisor's merge desk for a run on workers: workers' merge requests through the
one merge gate, each taken only for what the run itself holds true."""

from __future__ import annotations

from typing import Any

from conductor import gitops, machine
from conductor.bus import work as work_queue
from conductor.errors import ConductorError, MachineFault
from conductor.gates import MergeStatus
from conductor.gates.remote import outcome_to_json
from conductor.models import MergeRequest, ReviewStatus
from conductor.run.started import StartedRun
from conductor.worktrees import session_branch

POLL = 1.0  # how often the bus is looked at when no write here wakes the supervisor
_LANDED = (MergeStatus.MERGED, MergeStatus.ALREADY_MERGED)


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
        """The gate's outcome for `request`, or a refusal: a request is taken for what the
        run itself holds to be true (its review, its branch, what others own), never for
        what the request says, and nothing in one request stops the desk (a refusal the
        worker may retry, for what a moment's trouble explains)."""
        run = self.run
        try:
            refusal = await self._refusal(request)
            if refusal is not None:
                await work_queue.answer_merge(run.bus, request.id, refusal)
                return
            workstream = next(w for w in run.plan.workstreams if w.id == request.session)
            owners = await run.owners(workstream)
            merged = await run.gate.merge(request.branch, request.commit, owners=owners)
        except MachineFault:
            raise  # the machine's, not the request's: the run stops, resumable
        except (ConductorError, OSError, TimeoutError) as e:
            answer = refused(f"the merge gate could not take it ({e})", retry=True)
            await work_queue.answer_merge(run.bus, request.id, answer)
            return
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

    async def _refusal(self, request: MergeRequest) -> dict[str, Any] | None:
        """Why `request` is not for the gate (a refusal to answer), or None."""
        run, bus, name = self.run, self.run.bus, request.session
        if name not in run.outcomes:
            return refused(f"{name} is no workstream of this run", retry=False)
        if request.branch != session_branch(run.run_id, name):
            return refused(f"{request.branch} is not {name}'s branch", retry=False)
        taken = await work_queue.assignment(bus, name)
        if taken is None or taken.state != "taken" or taken.worker != request.worker:
            return refused(f"worker {request.worker} no longer holds {name}", retry=False)
        review = await bus.latest_review(name)
        if review is None or review.commit != request.commit:
            return refused(f"{request.commit[:12]} is not {name}'s reviewed head", retry=False)
        if review.status is not ReviewStatus.APPROVED:
            return refused(f"review #{review.id} of {name} is {review.status.value}", retry=False)
        if not await fetch_branch(run, request.branch):
            return refused(f"{request.branch} could not be fetched from {run.remote}", retry=True)
        if not await gitops.is_merged(run.repo, request.commit, f"refs/heads/{request.branch}"):
            return refused(
                f"{request.commit[:12]} is not on {request.branch} as the remote has it",
                retry=True,
            )
        return None


def refused(why: str, *, retry: bool) -> dict[str, Any]:
    """A merge request's answer that is no outcome of the gate: `retry`, push and ask again
    (what a moment's trouble explains); else the request was wrong, and the workstream fails."""
    return {"refused": why, "retry": retry}
