"""One workstream's session, from its worktree to its end.

The session gets its tree (made, or reused as it was left, or made again when a crash left it
half made), its claims, and its first prompt: the task, or on resume what it is owed. Then it
loops: a turn (shown the integration tip first, watched for stalls); a pause when the API is
busy; the end on an error or a spent budget; otherwise what follows the turn (`AfterTurn`).
A session whose process dies is resumed into its own conversation, up to `retries` times.
"""

from __future__ import annotations

from functools import partial

from conductor import actions, machine
from conductor.gates import ReviewGate
from conductor.jail import jails_supported
from conductor.models import Session, SessionStatus
from conductor.plan import Workstream
from conductor.run import backoff
from conductor.run.after_turn import AfterTurn
from conductor.run.started import StartedRun
from conductor.run.summary import Outcome
from conductor.run.turns import resume_prompt, watched_turn
from conductor.run.usage_window import wait_for_window
from conductor.session import HeadlessSession, SessionDied, TurnResult, author_model
from conductor.tools import reviewer_tools
from conductor.worktrees import Bootstrap, PreparedTree

MAX_ROUNDS = 12  # turns of one workstream's loop before it is given up
WRAP_UP = (
    "The run's budget is spent: stop here. Commit what you have on your branch with a message"
    " that says what is unfinished, and end your turn."
)
RESTARTED = "Your session was restarted: its process ended."
RESTARTED_BLANK = "Your session was restarted. Check `git status`, then carry on."


async def drive_session(
    run: StartedRun, reviews: ReviewGate, workstream: Workstream, outcome: Outcome
) -> None:
    """The workstream's session in its tree, until its workstream is over."""
    me = await run.bus.session(workstream.id)
    tree = await place(run, workstream.id)
    await SessionDriver(run, reviews, workstream, outcome, tree).drive(me)


async def place(run: StartedRun, name: str) -> PreparedTree:
    """The session's tree: made, or reused as it was left when whole, or made again (from
    what the gate collected of its branch) when a crash left it half made or it went away."""
    tree = await actions.place_session(
        run.bus,
        run.repo,
        name,
        await run.gate.tip(),
        Bootstrap(copy_files=run.config.copy_files, setup=run.config.setup_argv),
        jailed=run.config.sandbox and jails_supported(),
    )
    run.share.forget(tree.path)  # a tree made anew has been shown nothing
    return tree


class SessionDriver:
    """The loop of one workstream's session in its placed tree: turns, pauses, restarts."""

    def __init__(
        self,
        run: StartedRun,
        reviews: ReviewGate,
        workstream: Workstream,
        outcome: Outcome,
        tree: PreparedTree,
    ) -> None:
        self.run = run
        self.bus = run.bus
        self.reviews = reviews
        self.workstream = workstream
        self.name = workstream.id
        self.outcome = outcome
        self.tree, self.branch, self.created = tree.path, tree.branch, tree.created
        self.follow = AfterTurn(run, reviews, workstream, outcome, tree.branch)
        self.config = run.session_config(self.name, author_model(run.config, workstream.model))
        # A merge conflict's turn runs on the resolver model, when one is set.
        self.resolver = run.config.resolver_model or None
        self.first_prompt = run.prompts.render(
            "session.md.j2",
            workstream=workstream,
            others=[w for w in run.plan.workstreams if w.id != self.name],
            goal=run.goal,
            branch=self.branch,
        )
        self.rounds = 0  # turns of work, across restarts
        self.restarts = 0
        self.pauses = 0  # in a row: a turn that gets through resets it
        self.waited: float | None = None  # the last usage window's reset it waited for

    async def drive(self, me: Session) -> None:
        """`me`: the session as it was before its tree was placed."""
        await self._take_up(me)
        resume = me.sdk_session_id  # it had a conversation: a resumed run
        prompt = await self._opening(resume)
        while prompt is not None:
            try:
                if self.restarts or not self.created:  # a tree made just now holds no leftovers
                    await self.run.tidy(self.name, self.tree)
                async with self._session(resume) as session:
                    with self.run.control.living(session):
                        if resume is not None:
                            await self.run.handoff.opened(
                                self.name, resume=resume, restored=session.restored
                            )
                        if resume is not None and not session.restored:
                            # Its conversation was never written down (killed as it began):
                            # it starts again from its task, told what happened since.
                            prompt, resume = self._from_the_start(prompt), None
                        await self._turns(session, prompt)
                        return
            except SessionDied as died:
                prompt, resume = await self._after_death(died)

    async def _take_up(self, me: Session) -> None:
        """Its status back to idle if it ended last time (resume gives it another go), and
        the plan's ownership claimed, as the write hooks enforce it."""
        if me.status.ended:
            await self.bus.update(self.name, status=SessionStatus.IDLE, note="resumed")
        for path in self.workstream.owns:
            await self.bus.claim(self.name, path, root=self.tree)

    async def _opening(self, resume: str | None) -> str | None:
        """The first prompt: the task, or on resume what the session is owed; a session that
        was between turns owes the gates their next step (None: it is over)."""
        if resume is None:
            return self.first_prompt
        why = self.run.handoff.reattached
        owed = await resume_prompt(self.run, self.name, *([why] if why else []))
        if owed is None:  # it was between turns: the gates carry on where they were
            return await self.follow.next_prompt()
        return owed

    def _from_the_start(self, prompt: str) -> str:
        note = self.run.handoff.takeover_note
        return f"{self.first_prompt}\n\n---\n\n" + (f"{note}\n\n" if note else "") + prompt

    def _session(self, resume: str | None) -> HeadlessSession:
        run, workstream = self.run, self.workstream
        return HeadlessSession(
            self.bus,
            self.name,
            self.tree,
            self.config,
            resume=resume,
            review_base=run.gate.branch,
            request_review=partial(self.reviews.request, self.name, self.tree, self.branch),
            owners=partial(run.owner_of, workstream),
            claimable=partial(run.claim_refusal, workstream),
            extra_tools=reviewer_tools(self.bus, self.name),
        )

    async def _turns(self, session: HeadlessSession, prompt: str) -> None:
        while self.rounds < MAX_ROUNDS:
            self.rounds += 1
            result = await self._turn(session, prompt)
            following = await self._following(session, result)
            if following is None:
                return
            prompt = following
        self.outcome.detail = f"no merge after {MAX_ROUNDS} rounds"

    async def _turn(self, session: HeadlessSession, prompt: str) -> TurnResult:
        share = self.run.share
        handoff = self.run.handoff
        await handoff.before_turn(self.name)
        until = self.run.usage.ahead(self.waited)  # another session hit a usage limit
        if until is not None and self.run.config.max_usage_wait > 0:
            await wait_for_window(self.bus, self.name, until, self.run.config.max_usage_wait)
            self.waited = until
        resolving = self.follow.resolving and self.resolver is not None
        await session.use_model(self.resolver if resolving else self.config.model)
        with share.in_turn(self.tree):  # before it is shown: no tip is missed
            await share.show(self.tree)
            result = await watched_turn(self.run, session, prompt)
        await handoff.after_turn(self.name, self.tree, self.branch)
        return result

    async def _following(self, session: HeadlessSession, result: TurnResult) -> str | None:
        """The prompt after `result`, or None when the workstream is over."""
        run, outcome = self.run, self.outcome
        if run.control.stopping:  # a turn cut short by stop() ends in an error result;
            return None  # the workstream is interrupted, not failed
        if backoff.busy(result):
            return await self._wait_out(result)
        self.pauses = 0
        if result.is_error:
            outcome.state = "budget" if result.hit_budget else "failed"
            outcome.detail = result.result or (
                f"API error {result.api_error_status}"
                if result.api_error_status
                else result.subtype
            )
            return None
        if run.ledger.over_budget():
            outcome.state, outcome.detail = "budget", "the run's budget was spent"
            run.ledger.account(session.name, await session.turn(WRAP_UP))
            return None
        return await self.follow.next_prompt()

    async def _wait_out(self, result: TurnResult) -> str | None:
        """A busy API: a pause, or the end after too many in a row; a usage limit that
        resets: a wait until then, which counts toward no end."""
        run = self.run
        until = run.usage.reset_for(result) if run.config.max_usage_wait > 0 else None
        if until is not None:
            self.rounds -= 1
            self.waited = until
            return await wait_for_window(self.bus, self.name, until, run.config.max_usage_wait)
        self.pauses += 1
        if not backoff.may_pause(self.pauses):
            self.outcome.state = "failed"
            self.outcome.detail = f"API error {result.api_error_status}, {self.pauses}x"
            return None
        self.rounds -= 1  # waiting out the API is not a round of work
        return await backoff.pause(
            self.bus, self.name, result, self.pauses, self.run.config.backoff_seconds
        )

    async def _after_death(self, died: SessionDied) -> tuple[str | None, str | None]:
        """(the prompt to resume with, the conversation to resume): (None, _) to end, when
        stopping or out of restarts."""
        run = self.run
        if run.control.stopping:  # stop() interrupted it: interrupted, not failed
            return None, None
        if not await run.handoff.still_ours(self.name):  # a worker that lost it: left as is
            await run.control.stop()
            return None, None
        await machine.probe(run.machine_folders(self.tree))  # a disk it died of?
        resume = (await self.bus.session(self.name)).sdk_session_id
        self.restarts += 1
        if self.restarts > run.config.retries:
            self.outcome.detail = f"{died} (after {self.restarts - 1} restarts)"
            return None, None
        await run.restarted(self.name, resume, self.restarts)
        prompt = await resume_prompt(run, self.name, RESTARTED) or RESTARTED_BLANK
        if resume is None:  # it died before it had a conversation: start it again
            prompt = self._from_the_start(prompt)
        return prompt, resume
