"""What follows a worker's turn: its mail, a nudge, the review gate, the merge gate.

After every turn that ended well the session's next prompt is decided here, in this order:
wait for mail if it said it is blocked; relay a verdict that was decided while nobody was
looking; wake it with unread messages; nudge it if its head has no review (or cannot have
one); have a pending review decided; send a rejection back; otherwise queue the reviewed
commit for the merge gate. A conflict or a red check comes back as the next prompt; a merge
(or nothing left to merge, or a tampered integration branch) ends the workstream: None.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from conductor import gitops, machine, worktrees
from conductor.errors import InvalidInput
from conductor.events import EventKind, MergeGateOutcome, MergeQueued
from conductor.gates import MergeOutcome, MergeStatus, ReviewGate
from conductor.models import Review, ReviewStatus, SessionStatus
from conductor.plan import Workstream
from conductor.run.replay import VERDICT_VIA, WAKE_VIA
from conductor.run.started import StartedRun
from conductor.run.summary import Outcome
from conductor.tools import describe

MAX_NUDGES = 2  # turns that end with nothing to review before the workstream is `empty`
MAIL_POLL = 0.2  # how often a blocked session's inbox is looked at for another process's mail
_DECIDED = (ReviewStatus.APPROVED, ReviewStatus.REJECTED)
_LANDED = (MergeStatus.MERGED, MergeStatus.ALREADY_MERGED)


class AfterTurn:
    """The gates' side of one workstream's loop, on its branch."""

    def __init__(
        self,
        run: StartedRun,
        reviews: ReviewGate,
        workstream: Workstream,
        outcome: Outcome,
        branch: str,
    ) -> None:
        self.run = run
        self.bus = run.bus
        self.reviews = reviews
        self.workstream = workstream
        self.name = workstream.id
        self.outcome = outcome
        self.branch = branch
        # Whether the prompt last given is a merge conflict to resolve: that turn may run on
        # another model (resolver_model).
        self.resolving = False

    async def next_prompt(self) -> str | None:
        """The next prompt for the session, or None when its workstream is over."""
        self.resolving = False
        me = await self.bus.session(self.name)
        if me.status is SessionStatus.BLOCKED:
            await self._wait_for_mail()
        tree = Path(str(me.worktree))
        head = await worktrees.head_of(tree, self.branch)
        review = await self.bus.latest_review(self.name)
        reviewed = review is not None and review.commit == head
        if reviewed and review is not None and review.status in _DECIDED:
            # Decided while this supervisor was not looking (it was killed, say): what
            # follows tells the session, so its verdict message must not wake it first.
            await self.bus.take_verdict(review.id, via=VERDICT_VIA)
        unread = await self.bus.take_unread(self.name, via=WAKE_VIA)
        if unread:
            return "New messages for you:\n" + "\n".join(describe(unread))
        if review is None or not reviewed:
            return await self._nudge(tree)
        review = await self._decided(review)
        if review.status is ReviewStatus.REJECTED:
            return (
                f"Review #{review.id} was rejected by {review.decided_by}: {review.comment}\n"
                "Fix it, commit, and call mcp__bus__request_review again."
            )
        return await self._merge(review)

    async def _wait_for_mail(self) -> None:
        with anyio.move_on_after(self.run.config.stall_seconds):
            while not await self.bus.has_unread(self.name):
                # a teammate's send here wakes it at once; another process's at the poll
                await self.bus.wait_for_change(MAIL_POLL)

    async def _nudge(self, tree: Path) -> str | None:
        """Its head has no review: the reason it cannot have one, or a reminder to ask;
        a session told MAX_NUDGES times in a row delivered nothing (`empty`)."""
        outcome = self.outcome
        try:
            await self.reviews.reviewable_head(tree, self.branch)
        except InvalidInput as refused:
            # Work it could not commit on a full disk is the machine's failure, not its.
            await machine.probe(self.run.machine_folders(tree))
            outcome.nudges += 1
            if outcome.nudges > MAX_NUDGES:
                outcome.state, outcome.detail = "empty", f"delivered nothing: {refused}"
                return None
            return (
                f"Your work is not ready for review: {refused}. Commit your work on your"
                " branch, then call mcp__bus__request_review (and mcp__bus__done)."
            )
        outcome.nudges = 0
        return (
            "Your latest commit has no review yet. Commit your work on your branch, then"
            " call mcp__bus__request_review (and mcp__bus__done when it is merged)."
        )

    async def _decided(self, review: Review) -> Review:
        """`review`, decided by its reviewer if it is still pending."""
        if review.status is not ReviewStatus.PENDING:
            return review
        self.outcome.review_rounds += 1
        review = await self.reviews.decide(self.workstream, review.id)
        await self.bus.take_verdict(review.id, via=VERDICT_VIA)  # the prompt or merge says it
        return review

    # ------------------------------------------------------------------------ the merge gate

    async def _merge(self, review: Review) -> str | None:
        """The reviewed commit through the merge gate, and what its outcome means."""
        run, outcome, branch = self.run, self.outcome, self.branch
        await self.bus.record(
            self.name,
            EventKind.MERGE_QUEUED,
            f"{branch} ({review.commit[:12]}) waits for the merge gate",
            MergeQueued(branch=branch, commit=review.commit).to_json(),
        )
        owners = await run.owners(self.workstream)
        merged = await run.gate.merge(branch, review.commit, owners=owners)
        if merged.status is MergeStatus.CHECK_FAILED:  # its fault, or a full disk's?
            await machine.probe(run.machine_folders())
        landed = 0
        if merged.status is MergeStatus.MERGED:  # the merge commit's second parent is its work
            landed = await gitops.count_new(
                run.repo, f"{merged.integration_head}^2", merged.integration_head + "^1"
            )
            outcome.commits = landed
        if not (merged.status is MergeStatus.ALREADY_MERGED and outcome.merge == "merged"):
            outcome.merge = merged.status.value  # (merged before a resume stays "merged")
        await self._record(merged, review, landed)
        return await self._merged(merged)

    async def _record(self, merged: MergeOutcome, review: Review, landed: int) -> None:
        foreign = [f"{p} (owned by {o})" for p, o in merged.foreign.items()]
        status = merged.status
        await self.bus.record(
            self.name,
            EventKind.merge_outcome(status.value),
            f"{self.branch} ({review.commit[:12]}): {status.value.replace('_', ' ')}"
            + (f" in {', '.join(foreign or merged.conflicts)}" if merged.conflicts else "")
            + (f" ({merged.check})" if merged.check else "")
            + (f": {merged.output}" if status is MergeStatus.TAMPERED else ""),
            MergeGateOutcome(
                branch=self.branch,
                commit=review.commit,
                integration_head=merged.integration_head,
                conflicts=merged.conflicts,
                foreign=merged.foreign,
                check=merged.check,
                commits=landed,
                output=merged.output if status is MergeStatus.CHECK_FAILED else None,
            ).to_json(),
        )

    async def _merged(self, merged: MergeOutcome) -> str | None:
        """What the merge gate's outcome means for the workstream."""
        run, outcome = self.run, self.outcome
        if merged.status in _LANDED:
            outcome.state = "merged"
            # Done the moment its work lands: its claims go and its dependents start now, not
            # once its CLI has shut down (the workstream's end records this again, harmlessly).
            await self.bus.update(self.name, status=SessionStatus.DONE)
            run.finished[self.name].set()
            await run.share.share()
            return None
        if merged.status is MergeStatus.NOTHING:  # the review saw changes the merge lacks
            outcome.state = "empty"
            outcome.detail = f"merging {self.branch} would change nothing on {run.gate.branch}"
            return None
        if merged.status is MergeStatus.TAMPERED:
            outcome.state, outcome.detail = "failed", merged.output
            run.control.tamper(merged.output)
            return None
        foreign = [f"{p} (owned by {o})" for p, o in merged.foreign.items()]
        self.resolving = merged.status is MergeStatus.CONFLICT
        return run.prompts.render(
            "conflict.md.j2",
            branch=self.branch,
            integration=run.gate.branch,
            conflicts=merged.conflicts,
            foreign=foreign,
            check=merged.check,
            check_output=merged.output,
        )
