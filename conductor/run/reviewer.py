"""An agent reviewer's session: read-only tools, one review, turns until it decides.

The review gate decides who reviews; when that is an agent, the run drives its session here
(the run owns sessions, the gate none). The same reviewer conversation is resumed each round;
a reviewer whose process dies is restarted up to `retries` times, and its author goes on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio

from conductor import machine
from conductor.errors import ConductorError
from conductor.gates import ensure_reviewer
from conductor.models import Review, ReviewStatus
from conductor.plan import Workstream
from conductor.run import backoff
from conductor.run.started import StartedRun
from conductor.run.usage_window import wait_for_window
from conductor.session import HeadlessSession, SessionDied, author_model, reviewer_model
from conductor.tools import reviewer_tools

READ_ONLY_TOOLS = ("Read", "Glob", "Grep")
VERDICT_ASKS = 2  # turns that end without a verdict before no verdict counts as a rejection
RESTARTED = "Your session was restarted: its process ended. The review you were doing, again:\n\n"


class AgentReviewer:
    def __init__(self, run: StartedRun) -> None:
        self.run = run

    async def review(self, workstream: Workstream, review_id: int, name: str) -> Review:
        """Review `review_id` of `workstream` by the agent reviewer `name`, until decided."""
        run, bus = self.run, self.run.bus
        await ensure_reviewer(bus, workstream.id, name)
        review = await bus.review(review_id)
        author = await bus.session(workstream.id)
        model = reviewer_model(run.config, author_model(run.config, workstream.model))
        config = replace(run.session_config(name, model), tools=READ_ONLY_TOOLS)
        prompt = review_prompt = run.prompts.render(
            "reviewer.md.j2",
            role=name,
            requester=workstream.id,
            goal=run.goal,
            task=workstream.task,
            commit=review.commit,
            diff=review.diff.decode("utf-8", "replace"),
            review_id=review_id,
        )
        tree = Path(author.worktree or run.repo)
        restarts = 0
        while True:
            resume = (await bus.session(name)).sdk_session_id  # the same reviewer, each round
            try:
                async with HeadlessSession(
                    bus,
                    name,
                    tree,
                    config,
                    resume=resume,
                    extra_tools=reviewer_tools(bus, name, review_id),
                    writes_tree=False,
                    coordinates=False,
                ) as session:
                    with run.control.living(session):
                        return await self._turns(session, review_id, prompt)
            except SessionDied as died:  # the reviewer's own process: the author goes on
                if run.control.stopping:
                    await anyio.sleep_forever()  # stop() cancels the run's tasks next
                await machine.probe(run.machine_folders())
                restarts += 1
                if restarts > run.config.retries:
                    raise ConductorError(
                        f"reviewer {name}: {died} (after {restarts - 1} restarts)"
                    ) from None
                await run.restarted(name, resume, restarts)
                prompt = RESTARTED + review_prompt

    async def _turns(self, session: HeadlessSession, review_id: int, prompt: str) -> Review:
        """Turns until the reviewer decides: a pause when the API is overloaded, one reminder
        to give a verdict, then no verdict counts as a rejection."""
        run, bus = self.run, self.run.bus
        asked, pauses = 0, 0
        while asked < VERDICT_ASKS:
            result = await session.turn(prompt)
            run.ledger.account(session.name, result)
            if run.control.stopping:  # no verdict from a cut-short turn; resume asks again
                await anyio.sleep_forever()  # until stop() cancels the run's tasks
            review = await bus.review(review_id, with_diff=False)
            if review.status is not ReviewStatus.PENDING:
                return review
            until = run.usage.reset_for(result) if run.config.max_usage_wait > 0 else None
            if until is not None:  # a usage limit: wait for its window, which fails nothing
                prompt = await wait_for_window(bus, session.name, until, run.config.max_usage_wait)
                continue
            if backoff.busy(result) and backoff.may_pause(pauses + 1):
                pauses += 1
                prompt = await backoff.pause(
                    bus, session.name, result, pauses, run.config.backoff_seconds
                )
                continue
            asked += 1
            prompt = f"Give your verdict on review #{review_id} with mcp__bus__review_verdict."
        return await bus.decide(
            review_id, session.name, approve=False, comment="the reviewer gave no verdict"
        )
