"""The review gate: who reviews a branch, and the door every review request goes through.

A session's request (its tool, or conductor on its behalf) is checked and collected here,
never taken on its word: refused with the reason when the tree has uncommitted changes or
the branch adds nothing; the head is fetched into the main repository and its diff taken
there, against the integration branch; the reviewer is assigned at once, by policy, and only
it can decide. Deciding is the reviewer's: conductor itself (auto), a person (`conductor
review approve`), a peer session (asked by message; one that does not answer in time hands
the review to an agent), or an agent reviewer session, which the run drives (`agent`): the
gate runs no session itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio

from conductor import gitops, worktrees
from conductor.bus import Bus
from conductor.errors import InvalidInput
from conductor.gates.merge import MergeGate
from conductor.models import (
    AUTO_REVIEWER,
    HUMAN_REVIEWER,
    Review,
    ReviewPolicy,
    ReviewStatus,
    Session,
    SessionKind,
    SessionStatus,
)
from conductor.plan import REVIEWER_SUFFIX, Workstream

VERDICT_POLL = 0.2  # how often a verdict from another process (a person's CLI) is looked for
MAX_LOOSE_SHOWN = 8  # uncommitted files named in a refusal


def agent_reviewer(requester: str) -> str:
    """The reviewer session's id for an author: `A` is reviewed by `A-review`."""
    return f"{requester}{REVIEWER_SUFFIX}"


def reviewer_for(policy: ReviewPolicy, requester: str, sessions: Sequence[Session]) -> str:
    """Who reviews `requester`'s work. A peer is the next worker after the author that has not
    failed or stopped (round robin, so reviews spread); with no such peer, an agent reviews."""
    if policy is ReviewPolicy.AUTO:
        return AUTO_REVIEWER
    if policy is ReviewPolicy.HUMAN:
        return HUMAN_REVIEWER
    if policy is ReviewPolicy.PEER:
        workers = [s.name for s in sessions if s.kind is SessionKind.WORKER]
        if requester in workers:
            start = workers.index(requester)
            ring = workers[start + 1 :] + workers[:start]
            alive = {
                s.name
                for s in sessions
                if s.status not in (SessionStatus.FAILED, SessionStatus.STOPPED)
            }
            peer = next((w for w in ring if w in alive), None)
            if peer is not None:
                return peer
    return agent_reviewer(requester)


async def ensure_reviewer(bus: Bus, requester: str, name: str) -> None:
    """The agent reviewer's session on the bus, so a review can be assigned to it."""
    if name not in {s.name for s in await bus.sessions()}:
        await bus.register([(name, f"reviews {requester}")], kind=SessionKind.REVIEWER)


# (the workstream, the review, the agent reviewer's name) -> the decided review
AgentReview = Callable[[Workstream, int, str], Awaitable[Review]]


class ReviewGate:
    """One per run, beside the merge gate whose integration branch reviews are taken against.
    `agent` runs an agent reviewer's session until it decides (the run owns sessions)."""

    def __init__(
        self,
        bus: Bus,
        repo: Path,
        merge_gate: MergeGate,
        policy: ReviewPolicy,
        *,
        stall_seconds: float,
        agent: AgentReview,
    ) -> None:
        self.bus = bus
        self.repo = repo
        self.merge_gate = merge_gate
        self.policy = policy
        self.stall_seconds = stall_seconds
        self.agent = agent

    # ------------------------------------------------------------------------ the door

    async def request(self, requester: str, tree: Path, branch: str, note: str) -> Review:
        """A review of the head of `branch` (checked out in `tree`), asked of the reviewer the
        policy names now; the same review again when its head was asked for already (done
        after request_review, say)."""
        bus, gate = self.bus, self.merge_gate
        head = await self.reviewable_head(tree, branch)
        integration = await gate.tip()
        latest = await bus.latest_review(requester)
        if (
            latest is not None
            and latest.commit == head
            and latest.status is not ReviewStatus.SUPERSEDED
        ):
            return latest
        reviewer = reviewer_for(self.policy, requester, await bus.sessions())
        if reviewer == agent_reviewer(requester):
            await ensure_reviewer(bus, requester, reviewer)
        diff = await gitops.diff_range(integration, head, self.repo)
        return await bus.request_review(
            requester, commit=head, diff=diff, reviewer=reviewer, base=gate.branch, note=note
        )

    async def reviewable_head(self, tree: Path, branch: str) -> str:
        """The session's head, collected into the main repository; refused (InvalidInput,
        with the reason for the session) when the tree has uncommitted changes or the branch
        changes nothing of its own."""
        gate = self.merge_gate
        loose = await worktrees.uncommitted(tree)
        if loose:
            more = len(loose) - MAX_LOOSE_SHOWN
            shown = ", ".join(loose[:MAX_LOOSE_SHOWN]) + (f" and {more} more" if more > 0 else "")
            raise InvalidInput(f"you have uncommitted changes ({shown}): commit them first")
        if await worktrees.head_of(tree, branch) is None:
            raise InvalidInput(f"your branch {branch} is gone: commit on it")
        head = await worktrees.collect(self.repo, tree, branch)
        tip = await gate.tip()
        if len(await gitops.merge_bases(self.repo, tip, head)) > 1:
            # Its diff against the integration branch would then show one merge base's view
            # while the merge does another: reviewed work must be what lands.
            raise InvalidInput(
                f"your branch {branch} has more than one merge base with {gate.branch}:"
                f' merge it in first (git merge "$CONDUCTOR_INTEGRATION_BRANCH")'
            )
        if await gitops.adds_nothing(self.repo, tip, head):
            raise InvalidInput(
                f"your branch {branch} has no commits of its own that change anything"
            )
        return head

    # ------------------------------------------------------------------------ deciding

    async def decide(self, workstream: Workstream, review_id: int) -> Review:
        """Have the review decided by the reviewer it was assigned when it was requested."""
        bus = self.bus
        review = await bus.review(review_id, with_diff=False)
        reviewer = review.reviewer or reviewer_for(self.policy, workstream.id, await bus.sessions())
        if reviewer == AUTO_REVIEWER:
            return await bus.decide(review_id, AUTO_REVIEWER, approve=True, comment="auto")
        if reviewer == HUMAN_REVIEWER:
            return await self.wait_for_verdict(review_id)
        if reviewer == agent_reviewer(workstream.id):
            return await self.agent(workstream, review_id, reviewer)
        return await self._by_peer(workstream, review_id, reviewer)

    async def _by_peer(self, workstream: Workstream, review_id: int, peer: str) -> Review:
        """A peer hears of it as a message and decides with its own mcp__bus__review_verdict
        (the store takes a verdict on this review from the peer alone). A peer that does not
        answer within stall_seconds (it may have finished already) hands it to an agent: a new
        request, assigned to the agent, supersedes this one."""
        bus = self.bus
        ask = f"Please review #{review_id} of {workstream.id}: "
        asked = await bus.inbox(peer, include_read=True)
        if not any(m.body.startswith(ask) for m in asked):  # asked once, resumed or not
            await bus.send(
                None,
                peer,
                f"{ask}read it with mcp__bus__review_show (review_id {review_id}), then decide"
                f" with mcp__bus__review_verdict (review_id {review_id}, approve or reject,"
                " with comments).",
            )
        with anyio.move_on_after(self.stall_seconds):
            return await self.wait_for_verdict(review_id)
        whole = await bus.review(review_id)
        agent = agent_reviewer(workstream.id)
        await ensure_reviewer(bus, workstream.id, agent)
        handed = await bus.request_review(
            workstream.id,
            commit=whole.commit,
            diff=whole.diff,
            reviewer=agent,
            base=whole.base,
            note=whole.note,
        )
        return await self.agent(workstream, handed.id, agent)

    async def wait_for_verdict(self, review_id: int) -> Review:
        """A person (`conductor review approve`, another process: seen at the poll) or a peer
        session (a tool call in this process: at once) decides."""
        while True:
            review = await self.bus.review(review_id, with_diff=False)
            if review.status is not ReviewStatus.PENDING:
                return review
            await self.bus.wait_for_change(VERDICT_POLL)  # a peer here wakes it at once
