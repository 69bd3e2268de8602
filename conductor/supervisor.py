"""The run: one task group that takes a plan to merged, checked code with nobody watching.

Each workstream is one task: it waits for the workstreams it depends on to merge, takes a
place under `max_parallel`, gets a worktree from the integration branch's tip (so it builds
on what merged before it) and a headless session with the session template, and then loops:
a turn; a wake-up with its inbox if it is blocked and a message came; a nudge if it ended
without asking for review of its head; the review gate; the merge gate. A rejection, a
conflict or a red check goes back to the same session as its next prompt. The loop ends when
the branch merged, the session failed, or a budget ran out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio

from conductor import actions, gitops
from conductor.bus import Bus, create_run
from conductor.config import Config
from conductor.errors import ConductorError
from conductor.gates import (
    AUTO_REVIEWER,
    HUMAN_REVIEWER,
    MergeGate,
    MergeStatus,
    ReviewPolicy,
    agent_reviewer,
    reviewer_for,
)
from conductor.models import Review, ReviewStatus, RunState, SessionKind, SessionStatus
from conductor.plan import Plan, Workstream
from conductor.prompts import Prompts
from conductor.session import HeadlessSession, SessionConfig, SessionDied, TurnResult
from conductor.store import Store
from conductor.tools import describe, reviewer_tools

WRAP_UP = (
    "The run's budget is spent: stop here. Commit what you have on your branch with a message"
    " that says what is unfinished, and end your turn."
)
MAX_ROUNDS = 12  # turns of one workstream's loop before it is given up
BLOCKED_POLL = 0.2
READ_ONLY_TOOLS = ("Read", "Glob", "Grep")


@dataclass
class Outcome:
    """How one workstream ended, for the summary."""

    id: str
    state: str = "waiting"  # merged, failed, budget, skipped
    detail: str = ""
    turns: int = 0
    cost_usd: float = 0.0
    review_rounds: int = 0
    commits: int = 0
    merge: str = ""


@dataclass
class RunSummary:
    run_id: str
    integration_branch: str
    integration_head: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.state == "merged" for o in self.outcomes)

    @property
    def cost_usd(self) -> float:
        return sum(o.cost_usd for o in self.outcomes)


class Supervisor:
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
    ) -> None:
        self.repo = repo
        self.store = store
        self.plan = plan
        self.goal = goal
        self.config = config
        self.env = env
        self.into = into
        self.remote = remote
        self.prompts = prompts or Prompts(repo)
        self.policy = ReviewPolicy(config.review)
        self.outcomes = {w.id: Outcome(w.id) for w in plan.workstreams}
        self.finished = {w.id: anyio.Event() for w in plan.workstreams}
        self.limiter = anyio.CapacityLimiter(config.max_parallel)
        self.bus: Bus | None = None
        self.gate: MergeGate | None = None

    # ------------------------------------------------------------------------ the run

    async def run(self) -> RunSummary:
        base_commit = await gitops.rev_parse("HEAD", self.repo)
        base_ref = await gitops.current_branch(self.repo)
        bus = self.bus = await create_run(
            self.store,
            goal=self.goal,
            repo_root=self.repo,
            base_ref=base_ref,
            base_commit=base_commit,
            sessions=[(w.id, w.name) for w in self.plan.workstreams],
        )
        for name in (AUTO_REVIEWER, HUMAN_REVIEWER):
            kind = SessionKind.REVIEWER if name == AUTO_REVIEWER else SessionKind.HUMAN
            await bus.register([(name, f"{name} reviews")], kind=kind)
        self.gate = MergeGate(
            self.repo,
            bus.run_id,
            base_commit=base_commit,
            into=self.into,
            checks=self.config.checks,
            push=(bus, self.remote) if self.remote else None,
        )
        await self.gate.prepare()
        async with anyio.create_task_group() as tg:
            for workstream in self.plan.workstreams:
                tg.start_soon(self._workstream, workstream)
        order = [w.id for w in self.plan.workstreams]
        ok = all(self.outcomes[i].state == "merged" for i in order)
        await self.store.set_run_state(
            bus.run_id,
            RunState.FINISHED if ok else RunState.FAILED,
            "everything merged" if ok else "not everything merged",
        )
        return RunSummary(
            bus.run_id,
            self.gate.branch,
            await self.gate.head(),
            [self.outcomes[i] for i in order],
        )

    def _session_config(self, name: str) -> SessionConfig:
        """Sessions can use the hand commands too (`conductor sync`) and find the
        integration branch (to bring their branch up to date after a conflict)."""
        assert self.bus is not None and self.gate is not None
        env = {
            **self.env,
            "CONDUCTOR_RUN": self.bus.run_id,
            "CONDUCTOR_SESSION": name,
            "CONDUCTOR_DB": str(self.store.path),
            "CONDUCTOR_INTEGRATION_BRANCH": self.gate.branch,
        }
        return replace(
            self.config.session(self.repo / ".conductor", env),
            append_system_prompt=self.prompts.render("claude-md.md.j2"),
        )

    def _over_budget(self) -> bool:
        spent = sum(o.cost_usd for o in self.outcomes.values())
        return spent >= self.config.max_usd_per_run

    async def _workstream(self, workstream: Workstream) -> None:
        outcome = self.outcomes[workstream.id]
        try:
            for dep in workstream.depends_on:
                await self.finished[dep].wait()
                if self.outcomes[dep].state != "merged":
                    outcome.state, outcome.detail = "skipped", f"{dep} did not merge"
                    return
            async with self.limiter:
                if self._over_budget():
                    outcome.state, outcome.detail = "budget", "the run's budget was spent"
                    return
                await self._drive(workstream, outcome)
        except ConductorError as e:  # this workstream failed; the others go on
            outcome.state, outcome.detail = "failed", str(e)
        finally:
            if outcome.state == "waiting":
                outcome.state = "failed"
            assert self.bus is not None
            status = {"merged": SessionStatus.DONE, "failed": SessionStatus.FAILED}.get(
                outcome.state, SessionStatus.STOPPED
            )
            await self.bus.update(workstream.id, status=status, note=outcome.detail or None)
            self.finished[workstream.id].set()

    # ------------------------------------------------------------------------ one workstream

    async def _drive(self, workstream: Workstream, outcome: Outcome) -> None:
        assert self.bus is not None and self.gate is not None
        bus, gate = self.bus, self.gate
        tree = await actions.place_session(
            bus, self.repo, workstream.id, await gate.head(), self.config.bootstrap()
        )
        for path in workstream.owns:  # the plan's ownership, enforced by the write hooks
            await bus.claim(workstream.id, path, root=tree.path)
        config = self._session_config(workstream.id)
        others = [w for w in self.plan.workstreams if w.id != workstream.id]
        prompt = self.prompts.render(
            "session.md.j2",
            workstream=workstream,
            others=others,
            goal=self.goal,
            branch=tree.branch,
        )
        rounds, restarts, resume = 0, 0, None
        while True:
            try:
                async with HeadlessSession(
                    bus, workstream.id, tree.path, config, resume=resume, review_base=gate.branch
                ) as session:
                    while rounds < MAX_ROUNDS:
                        rounds += 1
                        result = await self._watched_turn(session, prompt)
                        self._account(outcome, result)
                        if result.is_error:
                            outcome.state = "budget" if result.hit_budget else "failed"
                            outcome.detail = result.result or (
                                f"API error {result.api_error_status}"
                                if result.api_error_status
                                else result.subtype
                            )
                            return
                        if self._over_budget():
                            outcome.state, outcome.detail = "budget", "the run's budget was spent"
                            self._account(outcome, await session.turn(WRAP_UP))
                            return
                        next_prompt = await self._after_turn(workstream, tree.branch, outcome)
                        await self._count_commits(tree.branch, outcome)
                        if next_prompt is None:
                            return
                        prompt = next_prompt
                    outcome.detail = f"no merge after {MAX_ROUNDS} rounds"
                    return
            except SessionDied as died:
                resume = (await bus.session(workstream.id)).sdk_session_id
                restarts += 1
                if restarts > self.config.retries or resume is None:
                    outcome.detail = f"{died} (after {restarts - 1} restarts)"
                    return
                await bus.record(
                    workstream.id,
                    "session.restarted",
                    f"resumed {resume} (restart {restarts})",
                    {"resume": resume, "restart": restarts},
                )
                prompt = (
                    "Your session was restarted: its process ended in the middle of your turn."
                    " Check `git status` and your branch, then carry on with your task."
                )

    async def _watched_turn(self, session: HeadlessSession, prompt: str) -> TurnResult:
        """A turn, interrupted if the session shows no sign of life (no event) for
        stall_seconds; a stalled turn is then treated like a dead process: resumed."""
        assert self.bus is not None
        bus, stall = self.bus, self.config.stall_seconds
        stalled = False

        async def watch() -> None:
            nonlocal stalled
            while True:
                await anyio.sleep(min(1.0, stall / 4))
                last = await bus.store.list_events(
                    bus.run_id, session=session.name, limit=1, newest=True
                )
                if last and bus.store.clock() - last[0].created_at > stall:
                    stalled = True
                    await bus.record(session.name, "session.stalled", f"no event for {stall:.0f}s")
                    await session.interrupt()
                    return

        died: SessionDied | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            try:
                result = await session.turn(prompt)
            except SessionDied as e:  # raised out of the group it would come wrapped
                died = e
            finally:
                tg.cancel_scope.cancel()
        if died is not None:
            raise died
        if stalled:
            raise SessionDied(f"session {session.name} stalled: no event for {stall:.0f}s")
        return result

    async def _count_commits(self, branch: str, outcome: Outcome) -> None:
        assert self.bus is not None
        base = self.bus.run.base_commit or "HEAD"
        counted = await gitops.git(["rev-list", "--count", f"{base}..{branch}"], self.repo)
        outcome.commits = int(counted.text or 0)

    async def _after_turn(
        self, workstream: Workstream, branch: str, outcome: Outcome
    ) -> str | None:
        """The next prompt for the session, or None when its workstream is over."""
        assert self.bus is not None and self.gate is not None
        bus = self.bus
        me = await bus.session(workstream.id)
        if me.status is SessionStatus.BLOCKED:
            await self._wait_for_mail(workstream.id)
        unread = await bus.take_unread(workstream.id, via="wake")
        if unread:
            return "New messages for you:\n" + "\n".join(describe(unread))
        head = await gitops.rev_parse(branch, self.repo)
        review = await bus.store.latest_review(bus.run_id, workstream.id)
        if review is None or review.commit != head:
            return (
                "Your latest commit has no review yet. Commit your work on your branch, then"
                " call mcp__bus__request_review (and mcp__bus__done when it is merged)."
            )
        if review.status is ReviewStatus.PENDING:
            outcome.review_rounds += 1
            review = await self._review(workstream, review.id)
        if review.status is ReviewStatus.REJECTED:
            return (
                f"Review #{review.id} was rejected by {review.decided_by}: {review.comment}\n"
                "Fix it, commit, and call mcp__bus__request_review again."
            )
        merged = await self.gate.merge(branch, review.commit)
        outcome.merge = merged.status.value
        if merged.status in (MergeStatus.MERGED, MergeStatus.ALREADY_MERGED):
            outcome.state = "merged"
            return None
        return self.prompts.render(
            "conflict.md.j2",
            branch=branch,
            integration=self.gate.branch,
            conflicts=merged.conflicts,
            check=merged.check,
            check_output=merged.output,
        )

    async def _wait_for_mail(self, name: str) -> None:
        assert self.bus is not None
        with anyio.move_on_after(self.config.stall_seconds):
            while not (await self.bus.unread_counts()).get(name):  # noqa: ASYNC110
                await anyio.sleep(BLOCKED_POLL)  # messages come from other processes too

    def _account(self, outcome: Outcome, result: TurnResult) -> None:
        outcome.turns += result.num_turns
        outcome.cost_usd += result.cost_usd

    # ------------------------------------------------------------------------ the review gate

    async def _review(self, workstream: Workstream, review_id: int) -> Review:
        assert self.bus is not None
        bus = self.bus
        reviewer = reviewer_for(self.policy, workstream.id, await bus.sessions())
        if reviewer == AUTO_REVIEWER:
            return await bus.decide(review_id, AUTO_REVIEWER, approve=True, comment="auto")
        if reviewer == HUMAN_REVIEWER:
            return await self._wait_for_verdict(review_id)
        if reviewer == agent_reviewer(workstream.id):
            return await self._agent_review(workstream, review_id, reviewer)
        # A peer hears of it as a message and decides with `conductor review approve/reject`
        # (its Bash has the run in its environment). A peer that does not answer within
        # stall_seconds (it may have finished already) hands the review to an agent.
        await bus.send(
            None,
            reviewer,
            f"Please review #{review_id} of {workstream.id}: `conductor review show"
            f" {review_id}`, then `conductor review approve|reject {review_id} --from"
            f" {reviewer} --comment ...`.",
        )
        with anyio.move_on_after(self.config.stall_seconds):
            return await self._wait_for_verdict(review_id)
        return await self._agent_review(workstream, review_id, agent_reviewer(workstream.id))

    async def _wait_for_verdict(self, review_id: int) -> Review:
        """A person (`conductor review approve`) or a peer decides in another process: poll."""
        assert self.bus is not None
        while True:
            review = await self.bus.review(review_id, with_diff=False)
            if review.status is not ReviewStatus.PENDING:
                return review
            await anyio.sleep(BLOCKED_POLL)

    async def _agent_review(self, workstream: Workstream, review_id: int, name: str) -> Review:
        assert self.bus is not None
        bus = self.bus
        known = {s.name for s in await bus.sessions()}
        if name not in known:
            await bus.register([(name, f"reviews {workstream.id}")], kind=SessionKind.REVIEWER)
        review = await bus.review(review_id)
        author = await bus.session(workstream.id)
        config = replace(self._session_config(name), tools=READ_ONLY_TOOLS)
        resume = (await bus.session(name)).sdk_session_id  # the same reviewer, round after round
        prompt = self.prompts.render(
            "reviewer.md.j2",
            role=name,
            requester=workstream.id,
            goal=self.goal,
            task=workstream.task,
            commit=review.commit,
            diff=review.diff.decode("utf-8", "replace"),
            review_id=review_id,
        )
        tree = Path(author.worktree or self.repo)
        async with HeadlessSession(
            bus,
            name,
            tree,
            config,
            resume=resume,
            extra_tools=reviewer_tools(bus, name, review_id),
        ) as session:
            for _ in range(2):
                await session.turn(prompt)
                review = await bus.review(review_id, with_diff=False)
                if review.status is not ReviewStatus.PENDING:
                    return review
                prompt = f"Give your verdict on review #{review_id} with mcp__bus__review_verdict."
        return await bus.decide(
            review_id, name, approve=False, comment="the reviewer gave no verdict"
        )
