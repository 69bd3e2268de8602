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

import contextlib
import os
import socket
from collections.abc import Awaitable, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from conductor import actions, gitops, machine, worktrees
from conductor.bus import Bus, create_run, open_run, supervisor_lock
from conductor.config import Config, parse_config
from conductor.costs import PLANNER, Spend, planner_spend, run_spend
from conductor.errors import ConductorError, InvalidInput, LockHeld, MachineFault
from conductor.gates import (
    MergeGate,
    MergeStatus,
    ReviewPolicy,
    agent_reviewer,
    reviewer_for,
)
from conductor.jail import jails_supported, refuse_root_unsandboxed, require_sandbox
from conductor.leftovers import end_leftovers
from conductor.models import (
    AUTO_REVIEWER,
    HUMAN_REVIEWER,
    Event,
    Lease,
    Review,
    ReviewStatus,
    RunState,
    SessionKind,
    SessionStatus,
)
from conductor.paths import covers
from conductor.plan import Plan, Workstream, parse_plan
from conductor.prompts import Prompts
from conductor.session import HeadlessSession, SessionConfig, SessionDied, TurnResult
from conductor.store import Store
from conductor.tools import describe, reviewer_tools
from conductor.workspace import STATE_DIR, SUPERVISED_ENV

WRAP_UP = (
    "The run's budget is spent: stop here. Commit what you have on your branch with a message"
    " that says what is unfinished, and end your turn."
)
MAX_ROUNDS = 12  # turns of one workstream's loop before it is given up
MAX_NUDGES = 2  # turns that end with nothing to review before the workstream is `empty`
BLOCKED_POLL = 0.2
READ_ONLY_TOOLS = ("Read", "Glob", "Grep")
OVERLOADED = (429, 529)  # rate-limited, overloaded: wait and go on, never fail the run


def _busy(result: TurnResult) -> bool:
    """An answer to wait out, not to fail on: rate-limited, overloaded, or any 5xx that
    outlasted the CLI's own retries."""
    status = result.api_error_status
    return result.is_error and status is not None and (status in OVERLOADED or status >= 500)


MAX_PAUSES = 8
MAX_PAUSE_SECONDS = 600.0
INTERRUPT_WAIT = 5.0
_DECIDED = (ReviewStatus.APPROVED, ReviewStatus.REJECTED)
VERDICT_VIA = "verdict"  # how a verdict message is marked read when the supervisor relays it


@dataclass
class Outcome:
    """How one workstream ended, for the summary."""

    id: str
    state: str = "waiting"  # merged, failed, budget, skipped, interrupted
    detail: str = ""
    turns: int = 0
    cost_usd: float = 0.0
    review_rounds: int = 0
    commits: int = 0
    merge: str = ""
    nudges: int = 0  # prompts that found nothing to review, in a row


@dataclass
class RunSummary:
    run_id: str
    integration_branch: str
    integration_head: str
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False
    # What the sessions that are not workstreams spent: the planner, agent reviewers.
    others: dict[str, Spend] = field(default_factory=dict)

    tampered: str = ""  # why the integration branch cannot be trusted, if it cannot
    fault: str = ""  # what the machine did that stopped the run (disk full, ...), if it did

    @property
    def ok(self) -> bool:
        return not self.tampered and all(o.state == "merged" for o in self.outcomes)

    @property
    def cost_usd(self) -> float:
        return sum(o.cost_usd for o in self.outcomes) + sum(
            s.cost_usd for s in self.others.values()
        )


class NothingToResume(ConductorError):
    """`conductor resume` of a run that finished with everything merged: not a failure."""


class Supervisor:
    """`await Supervisor(repo, store, plan, ...).run()` starts a run;
    `await (await Supervisor.for_run(repo, store, run_id, env=...)).run()` continues one."""

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
        planner: Spend | None = None,
    ) -> None:
        """`planner`: what making the plan cost, stored with the run."""
        self.repo = repo
        self.planner = planner
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
        self.resuming = False
        self.stopping = False
        self.leftovers: list[int] = []  # processes of a killed supervisor, ended on resume
        self.started = anyio.Event()  # set once the run exists and this supervisor holds it
        self._scope = anyio.CancelScope()
        self._live: dict[str, HeadlessSession] = {}
        self.spent: dict[str, float] = {}  # session -> cost so far, for the run's budget
        self._shown: dict[Path, str] = {}  # session tree -> integration tip it was shown
        self._showing: dict[Path, anyio.Lock] = {}  # one showing per tree at a time
        self._in_turn: set[Path] = set()  # trees whose session is in the middle of a turn
        self._sharing = False  # a pass of _share_integration is under way
        self._share_again = False  # the tip moved during that pass
        self.tampered = ""  # set when the integration branch moved outside the gate
        self.fault = ""  # set when the machine failed (MachineFault): the run is interrupted

    @classmethod
    async def for_run(
        cls,
        repo: Path,
        store: Store,
        run_id: str | None,
        *,
        env: Mapping[str, str],
        prompts: Prompts | None = None,
    ) -> Supervisor:
        """The supervisor of an existing run, rebuilt from what the store kept of it."""
        named = run_id or os.environ.get("CONDUCTOR_RUN")
        if named is None and await store.latest_run() is None:  # killed before it was stored
            raise InvalidInput("no run to resume here: to start one, see conductor run --help")
        bus = await open_run(store, run_id)
        run = bus.run
        if run.spec is None:
            raise InvalidInput(
                f"run {run.id} was not started by conductor run (it has no plan): nothing to"
                " resume; its sessions use the hand commands"
            )
        if run.state is RunState.FINISHED:
            raise NothingToResume(f"run {run.id} finished: everything merged, nothing to resume")
        where = f"run {run.id}"
        supervisor = cls(
            repo,
            store,
            parse_plan(run.spec["plan"], repo),
            goal=run.goal,
            config=parse_config(run.spec["config"], source=where),
            env=env,
            into=run.spec.get("into"),
            remote=run.spec.get("remote"),
            prompts=prompts,
        )
        supervisor.bus = bus
        supervisor.resuming = True
        return supervisor

    @property
    def run_id(self) -> str | None:
        return self.bus.run_id if self.bus is not None else None

    # ------------------------------------------------------------------------ the run

    async def run(self) -> RunSummary:
        require_sandbox(self.config.sandbox)
        refuse_root_unsandboxed(self.config.sandbox, {**self.env, **self.config.env})
        if self.into is not None:
            await refuse_checked_out(self.repo, self.into)
        bus = self.bus or await self._create_run()
        self.bus = bus
        lease = await self._take_the_run(bus)
        self.started.set()
        try:
            try:
                return await self._supervise(bus)
            except (MachineFault, OSError) as e:  # before its workstreams began, or at the end
                fault = machine.fault_in(e)
                if fault is None:
                    raise
                self.fault = self.fault or str(fault)
                return await self._summary(bus)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(ConductorError):
                await bus.release_lock(lease)

    async def stop(self) -> None:
        """Ctrl-C: interrupt every session, end the run's tasks, and leave the run
        `interrupted` with each session's conversation and worktree ready for resume."""
        self.stopping = True
        try:
            with anyio.move_on_after(INTERRUPT_WAIT):
                for session in list(self._live.values()):
                    with contextlib.suppress(Exception):  # one that is dying already is fine
                        await session.interrupt()
        finally:
            self._scope.cancel()

    async def _create_run(self) -> Bus:
        base_commit = await gitops.rev_parse("HEAD", self.repo)
        spec: dict[str, Any] = {
            "plan": self.plan.to_json(),
            "config": asdict(self.config),
            "into": self.into,
            "remote": self.remote,
        }
        if self.planner is not None:
            spec[PLANNER] = self.planner.to_json()
        return await create_run(
            self.store,
            goal=self.goal,
            repo_root=self.repo,
            base_ref=await gitops.current_branch(self.repo),
            base_commit=base_commit,
            spec=spec,
        )

    async def _take_the_run(self, bus: Bus) -> Lease:
        """One supervisor per run: a second `resume` while one runs would drive the same
        conversations twice. A holder that died (SIGKILL) is reclaimed at once."""
        name = supervisor_lock(bus.run_id)
        try:
            return await bus.acquire_lock(
                f"pid {os.getpid()} on {socket.gethostname()}",
                name=name,
                lease_seconds=10 * 365 * 86400.0,  # held until released or its process dies
            )
        except LockHeld as held:
            raise InvalidInput(
                f"run {bus.run_id} is being supervised already ({held.holder}): stop that"
                " one first (Ctrl-C)"
            ) from None

    async def _supervise(self, bus: Bus) -> RunSummary:
        known = {s.name for s in await bus.sessions()}
        missing = [(w.id, w.name) for w in self.plan.workstreams if w.id not in known]
        if missing:  # a fresh run, or one killed before it registered them all
            await bus.register(missing)
        for name in (AUTO_REVIEWER, HUMAN_REVIEWER):
            if name not in known:
                kind = SessionKind.REVIEWER if name == AUTO_REVIEWER else SessionKind.HUMAN
                await bus.register([(name, f"{name} reviews")], kind=kind)
        if self.resuming:
            self.leftovers = await end_leftovers(bus.run_id)
            if self.leftovers:
                await bus.record(
                    None,
                    "run.leftovers",
                    f"ended {len(self.leftovers)} session processes the last supervisor left",
                    {"pids": self.leftovers},
                )
            await self.store.set_run_state(bus.run_id, RunState.ACTIVE, "resumed")
            await self._recount(bus)
        else:
            planner = planner_spend(bus.run.spec)
            self.spent = {PLANNER: planner.cost_usd} if planner is not None else {}
        self.gate = MergeGate(
            self.repo,
            bus.run_id,
            base_commit=bus.run.base_commit or await gitops.rev_parse("HEAD", self.repo),
            into=self.into,
            checks=self.config.checks,
            push=(bus, self.remote) if self.remote else None,
            jailed=self.config.sandbox and jails_supported(),
        )
        await self.gate.prepare()  # also undoes a merge that a killed supervisor left half done
        with self._scope:
            try:
                async with anyio.create_task_group() as tg:
                    for workstream in self.plan.workstreams:
                        tg.start_soon(self._workstream, workstream)
            except ExceptionGroup as group:  # from anywhere in the run's tasks
                faults, rest = group.split(lambda e: machine.fault_in(e) is not None)
                if faults is not None:
                    fault = machine.fault_in(faults)
                    assert fault is not None
                    await self._machine_failed(fault)
                if rest is not None:
                    raise rest from None
        return await self._summary(bus)

    async def _summary(self, bus: Bus) -> RunSummary:
        """The run's end, stored and summarised. After a machine fault the store may not
        take a write: the run then reads `interrupted` from its released lock all the same."""
        order = [w.id for w in self.plan.workstreams]
        for i in order:
            if self.fault and self.outcomes[i].state == "waiting":
                self.outcomes[i].state = "interrupted"
        spent = {n: Spend(0, c) for n, c in self.spent.items()}  # unless the store says
        head = ""
        with anyio.CancelScope(shield=True):
            # Reading works on a full disk: the head and the costs first, the end's write last.
            with contextlib.suppress(ConductorError):
                head = await self.gate.head() if self.gate is not None else ""
            with contextlib.suppress(MachineFault):
                events = await bus.events()
                spent = run_spend(bus.run.spec, events)
                await self._check_delivered(events, head)
            ok = not self.tampered and all(self.outcomes[i].state == "merged" for i in order)
            try:
                await self._store_the_end(bus, ok)
            except MachineFault as e:
                self.fault = self.fault or str(e)
        for i in order:
            recorded = spent.pop(i, Spend())
            self.outcomes[i].turns, self.outcomes[i].cost_usd = recorded.turns, recorded.cost_usd
        return RunSummary(
            bus.run_id,
            self.gate.branch if self.gate is not None else "",
            head,
            [self.outcomes[i] for i in order],
            interrupted=self.stopping or bool(self.fault),
            tampered=self.tampered,
            others=spent,
            fault=self.fault,
        )

    async def _check_delivered(self, events: list[Event], head: str) -> None:
        """The last word on "merged": the commit each merged workstream landed is on the
        integration branch and changes something since the run began. Whatever path led
        here (a resume, a crash between two records), a workstream whose work is not there
        reads `missing`, and the run does not say everything merged."""
        landed: dict[str, str] = {}
        for event in events:
            if event.kind in ("merge.merged", "merge.already_merged") and event.session:
                landed[event.session] = str((event.payload or {}).get("commit") or "")
        base = (self.bus.run.base_commit if self.bus else None) or head
        for outcome in self.outcomes.values():
            if outcome.state != "merged":
                continue
            commit = landed.get(outcome.id, "")
            there = bool(commit and head) and await gitops.is_merged(self.repo, commit, head)
            if not there or await gitops.adds_nothing(self.repo, base, commit):
                outcome.state = "missing"
                outcome.detail = "its work is not on the integration branch"

    async def _store_the_end(self, bus: Bus, ok: bool) -> None:
        if self.fault:
            await self.store.set_run_state(
                bus.run_id,
                RunState.INTERRUPTED,
                f"{self.fault}: resumable once that is fixed",
            )
        elif self.stopping:
            await self.store.set_run_state(
                bus.run_id,
                RunState.INTERRUPTED,
                "stopped: resumable",
            )
        else:
            await self.store.set_run_state(
                bus.run_id,
                RunState.FINISHED if ok else RunState.FAILED,
                "everything merged" if ok else (self.tampered or "not everything merged"),
            )

    async def _unless_the_machine(self, step: Awaitable[object]) -> None:
        """`step`, and if the machine fails it, the run stops (instead of the task raising)."""
        try:
            await step
        except MachineFault as fault:
            await self._machine_failed(fault)

    async def _machine_failed(self, fault: BaseException) -> None:
        """The disk filled up, or the store cannot be written: stop the run as Ctrl-C does,
        for `conductor resume` once the cause is gone (nothing is marked failed for it)."""
        if not self.fault:
            self.fault = str(fault)
            with contextlib.suppress(MachineFault):
                assert self.bus is not None
                await self.bus.record(None, "run.fault", self.fault)
        if not self.stopping:
            await self.stop()

    async def _recount(self, bus: Bus) -> None:
        """What the workstreams did before this supervisor, from the events: what every
        session spent (so budgets hold across resumes), decided reviews and the last merge
        outcome."""
        events = await bus.events()
        self.spent = {n: s.cost_usd for n, s in run_spend(bus.run.spec, events).items()}
        for event in events:
            payload = event.payload or {}
            if event.kind in ("review.approved", "review.rejected"):
                author = self.outcomes.get(str(payload.get("requester")))
                if author is not None:
                    author.review_rounds += 1
            outcome = self.outcomes.get(event.session or "")
            if outcome is None:
                continue
            if event.kind.startswith("merge.") and event.kind != "merge.queued":
                outcome.merge = event.kind.removeprefix("merge.")
                if event.kind == "merge.merged":  # what it delivered, counted when it landed
                    outcome.commits = int(payload.get("commits") or 0)

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
            SUPERVISED_ENV: self.bus.run_id,
        }
        private = self.repo / STATE_DIR / "sessions" / self.bus.run_id / name
        return replace(
            self.config.session(private, env),
            append_system_prompt=self.prompts.render("claude-md.md.j2"),
        )

    def _over_budget(self) -> bool:
        """The whole run's spend: planner, workers, reviewers."""
        return sum(self.spent.values()) >= self.config.max_usd_per_run

    async def _workstream(self, workstream: Workstream) -> None:
        assert self.bus is not None
        outcome = self.outcomes[workstream.id]
        me = await self.bus.session(workstream.id)
        if me.status is SessionStatus.DONE:  # merged before this supervisor started (a resume)
            outcome.state = "merged"
            if me.branch:
                await self._count_commits(me.branch, outcome)
            self.finished[workstream.id].set()
            return
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
        except Exception as e:
            fault = machine.fault_in(e)  # (a task group inside wraps what it raised)
            if fault is not None:  # not the work's failure: the run stops, to resume
                await self._machine_failed(fault)
            elif isinstance(e, ConductorError):  # this workstream failed; the others go on
                await self._unless_the_machine(machine.probe(self._machine_folders()))
                if not self.fault:
                    outcome.state, outcome.detail = "failed", str(e)
            else:
                raise
        finally:
            if self.stopping and outcome.state == "waiting":
                outcome.state = "interrupted"  # the session stays as it was, for resume
            # What it did, for the summary, counted once as it ends rather than after every
            # turn (a merged one's count was taken as it landed; a failing machine cannot say).
            with anyio.CancelScope(shield=True), contextlib.suppress(ConductorError):
                branch = (await self.bus.session(workstream.id)).branch
                if branch:
                    await self._count_commits(branch, outcome)
            # Stopping leaves an unfinished session as it was, for resume; a merge that
            # landed meanwhile is still recorded, or the resumed run would wake it again.
            if not self.stopping or outcome.state == "merged":
                if outcome.state == "waiting":
                    outcome.state = "failed"
                status = {"merged": SessionStatus.DONE, "failed": SessionStatus.FAILED}.get(
                    outcome.state, SessionStatus.STOPPED
                )
                with anyio.CancelScope(shield=True):  # stop() cancels the run's tasks
                    await self._unless_the_machine(
                        self.bus.update(workstream.id, status=status, note=outcome.detail or None)
                    )
                self.finished[workstream.id].set()

    # ------------------------------------------------------------------------ one workstream

    async def _drive(self, workstream: Workstream, outcome: Outcome) -> None:
        assert self.bus is not None and self.gate is not None
        bus, gate = self.bus, self.gate
        me = await bus.session(workstream.id)
        # Made, or reused as it was left when whole, or made again (from what the gate
        # collected of its branch) when a crash left it half made or it went away.
        tree = await actions.place_session(
            bus,
            self.repo,
            workstream.id,
            await gate.tip(),
            self.config.bootstrap(),
            jailed=self.config.sandbox and jails_supported(),
        )
        tree_path, branch = tree.path, tree.branch
        self._shown.pop(tree_path, None)  # a tree made anew has been shown nothing
        started = me.sdk_session_id is not None  # it had a conversation: a resumed run
        if me.status.ended:  # failed or stopped last time: resume gives it another go
            await bus.update(workstream.id, status=SessionStatus.IDLE, note="resumed")
        for path in workstream.owns:  # the plan's ownership, enforced by the write hooks
            await bus.claim(workstream.id, path, root=tree_path)
        config = self._session_config(workstream.id)
        resume = me.sdk_session_id if started else None
        others = [w for w in self.plan.workstreams if w.id != workstream.id]
        first_prompt = self.prompts.render(
            "session.md.j2", workstream=workstream, others=others, goal=self.goal, branch=branch
        )
        prompt: str | None
        if resume is None:
            prompt = first_prompt
        else:
            prompt = await self._resume_prompt(workstream.id)
            if prompt is None:  # it was between turns: the gates carry on where they were
                prompt = await self._after_turn(workstream, branch, outcome)
                if prompt is None:
                    return
        rounds, restarts, pauses = 0, 0, 0
        while True:
            try:
                if restarts or not tree.created:  # a tree made just now holds no leftovers
                    await self._tidy(workstream.id, tree_path)
                async with HeadlessSession(
                    bus,
                    workstream.id,
                    tree_path,
                    config,
                    resume=resume,
                    review_base=gate.branch,
                    request_review=partial(self._request_review, workstream, tree_path, branch),
                    owners=partial(self._owner_of, workstream),
                    claimable=partial(self._claim_refusal, workstream),
                    extra_tools=reviewer_tools(bus, workstream.id),
                ) as session:
                    self._live[workstream.id] = session
                    if resume is not None and not session.restored:
                        # Its conversation was never written down (killed as it began): it
                        # starts again from its task, told what happened since.
                        prompt, resume = f"{first_prompt}\n\n---\n\n{prompt}", None
                    while rounds < MAX_ROUNDS:
                        rounds += 1
                        self._in_turn.add(tree_path)  # before it is shown: no tip is missed
                        try:
                            await self._show_integration(tree_path)
                            result = await self._watched_turn(session, prompt)
                        finally:
                            self._in_turn.discard(tree_path)
                        if self.stopping:  # a turn cut short by stop() ends in an error
                            return  # result; the workstream is interrupted, not failed
                        if _busy(result):
                            pauses += 1  # in a row: a turn that gets through resets it
                            if pauses > MAX_PAUSES:
                                outcome.state = "failed"
                                outcome.detail = f"API error {result.api_error_status}, {pauses}x"
                                return
                            prompt = await self._pause(workstream.id, result, pauses)
                            rounds -= 1  # waiting out the API is not a round of work
                            continue
                        pauses = 0
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
                            self._account(session.name, await session.turn(WRAP_UP))
                            return
                        next_prompt = await self._after_turn(workstream, branch, outcome)
                        if next_prompt is None:
                            return
                        prompt = next_prompt
                    outcome.detail = f"no merge after {MAX_ROUNDS} rounds"
                    return
            except SessionDied as died:
                if self.stopping:  # stop() interrupted it: interrupted, not failed
                    return
                await machine.probe(self._machine_folders(tree_path))  # a disk it died of?
                resume = (await bus.session(workstream.id)).sdk_session_id
                restarts += 1
                if restarts > self.config.retries:
                    outcome.detail = f"{died} (after {restarts - 1} restarts)"
                    return
                await self._restarted(workstream.id, resume, restarts)
                prompt = await self._resume_prompt(
                    workstream.id, "Your session was restarted: its process ended."
                ) or ("Your session was restarted. Check `git status`, then carry on.")
                if resume is None:  # it died before it had a conversation: start it again
                    prompt = f"{first_prompt}\n\n---\n\n{prompt}"
            finally:
                self._live.pop(workstream.id, None)

    def _machine_folders(self, *trees: Path) -> list[Path]:
        """Where a run writes: its state (the store, sessions' transcripts, the gate's tree)
        and `trees` (a session's). A probe goes in a tree's `.git`, never in its files: one
        left by a kill at that instant must not be committed by the session."""
        return [self.repo / STATE_DIR, *(tree / ".git" for tree in trees)]

    async def _tidy(self, name: str, tree: Path) -> None:
        """Before a session (re)starts: what a killed one left half done in its tree."""
        assert self.bus is not None
        removed = await worktrees.tidy_after_death(tree)
        if removed:
            await self.bus.record(
                name,
                "session.tidied",
                f"removed what a killed CLI left half done: {', '.join(removed)}",
                {"removed": removed},
            )

    async def _restarted(self, name: str, resume: str | None, restarts: int) -> None:
        assert self.bus is not None
        await self.bus.record(
            name,
            "session.restarted",
            f"resumed {resume} (restart {restarts})",
            {"resume": resume, "restart": restarts},
        )

    async def _pause(self, name: str, result: TurnResult, pauses: int) -> str:
        """An overloaded or rate-limited API: wait, doubling each time, then carry on."""
        assert self.bus is not None
        seconds = min(self.config.backoff_seconds * 2 ** (pauses - 1), MAX_PAUSE_SECONDS)
        status = result.api_error_status
        await self.bus.record(
            name,
            "session.paused",
            f"API answered {status}: waiting {seconds:.0f}s (pause {pauses})",
            {"status": status, "seconds": seconds, "pause": pauses},
        )
        await anyio.sleep(seconds)
        return (
            f"The model API was busy (HTTP {status}) and conductor waited {seconds:.0f}s."
            " Carry on with your task from where you were."
        )

    async def _resume_prompt(
        self,
        name: str,
        why: str = "conductor was restarted (its supervisor had stopped) and re-attached you.",
    ) -> str | None:
        """What a re-attached session is told, from its events: the prompt of the turn the
        supervisor died in, and the messages it was handed since its last finished turn (it
        may not have seen them). None when it was between turns with nothing owed to it."""
        assert self.bus is not None
        events = await self.bus.events(session=name)
        # A turn ends with a result that is not an error: one cut short (Ctrl-C, an
        # overloaded API the supervisor died waiting out) still has its prompt to finish.
        last_result = max(
            (
                e.id
                for e in events
                if e.kind == "sdk.result" and not (e.payload or {}).get("is_error")
            ),
            default=0,
        )
        prompts = [e for e in events if e.kind == "session.prompt" and e.id > last_result]
        interrupted = prompts[-1] if prompts else None
        owed: list[int] = []
        for e in events:
            if e.kind != "message.read" or e.id <= last_result:
                continue
            payload = e.payload or {}
            carried = interrupted is not None and e.id < interrupted.id
            if payload.get("via") == "wake" and carried:
                continue  # in the interrupted prompt, which is sent again below
            if payload.get("via") == VERDICT_VIA:
                continue  # a review verdict: _after_turn acts on it and tells the session
            owed.extend(int(i) for i in payload.get("message_ids") or [])
        if interrupted is None and not owed:
            return None
        parts = [why]
        if interrupted is not None:
            parts.append(_interrupted_turn(interrupted))
        if owed:
            messages = [await self.bus.store.get_message(self.bus.run_id, i) for i in owed]
            parts.append(
                "Messages handed to you while it stopped (you may have seen some already):\n"
                + "\n".join(describe(messages))
            )
        return "\n\n".join(parts)

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
                self._account(session.name, result)
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
        """The session's own commits: not the other sessions' work it started from or took
        in (through the integration branch), and not merges. A merged workstream's count
        was taken when its merge landed (later, other branches carry its commits too)."""
        assert self.bus is not None
        if outcome.merge == "merged":
            return
        tree = (await self.bus.session(outcome.id)).worktree
        if tree and await worktrees.head_of(Path(tree), branch) is not None:
            await worktrees.collect(self.repo, Path(tree), branch)  # its latest, to count
        base = self.bus.run.base_commit or "HEAD"
        others = [s.branch for s in await self.bus.sessions() if s.branch and s.branch != branch]
        counted = await gitops.git(
            [
                "rev-list",
                "--count",
                "--no-merges",
                "--ignore-missing",
                branch,
                "--not",
                base,
                *others,
            ],
            self.repo,
            check=False,
        )
        if counted.returncode == 0:  # a merged branch a person deleted has no count
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
        tree = Path(str(me.worktree))
        head = await worktrees.head_of(tree, branch)
        review = await bus.store.latest_review(bus.run_id, workstream.id)
        if review is not None and review.commit == head and review.status in _DECIDED:
            # Decided while this supervisor was not looking (it was killed, say): what
            # follows tells the session, so its verdict message must not wake it first.
            await bus.take_verdict(review.id, via=VERDICT_VIA)
        unread = await bus.take_unread(workstream.id, via="wake")
        if unread:
            return "New messages for you:\n" + "\n".join(describe(unread))
        if review is None or review.commit != head:
            try:
                await self._reviewable_head(tree, branch)
            except InvalidInput as refused:
                # Work it could not commit on a full disk is the machine's failure, not its.
                await machine.probe(self._machine_folders(tree))
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
        if review.status is ReviewStatus.PENDING:
            outcome.review_rounds += 1
            review = await self._review(workstream, review.id)
            await bus.take_verdict(review.id, via=VERDICT_VIA)  # the prompt or merge says it
        if review.status is ReviewStatus.REJECTED:
            return (
                f"Review #{review.id} was rejected by {review.decided_by}: {review.comment}\n"
                "Fix it, commit, and call mcp__bus__request_review again."
            )
        await bus.record(
            workstream.id,
            "merge.queued",
            f"{branch} ({review.commit[:12]}) waits for the merge gate",
            {"branch": branch, "commit": review.commit},
        )
        merged = await self.gate.merge(branch, review.commit, owners=await self._owners(workstream))
        if merged.status is MergeStatus.CHECK_FAILED:  # its fault, or a full disk's?
            await machine.probe(self._machine_folders())
        landed = 0
        if merged.status is MergeStatus.MERGED:  # the merge commit's second parent is its work
            landed = await gitops.count_new(
                self.repo, f"{merged.integration_head}^2", merged.integration_head + "^1"
            )
            outcome.commits = landed
        if not (merged.status is MergeStatus.ALREADY_MERGED and outcome.merge == "merged"):
            outcome.merge = merged.status.value  # (merged before a resume stays "merged")
        foreign = [f"{p} (owned by {o})" for p, o in merged.foreign.items()]
        await bus.record(
            workstream.id,
            f"merge.{merged.status.value}",
            f"{branch} ({review.commit[:12]}): {merged.status.value.replace('_', ' ')}"
            + (f" in {', '.join(foreign or merged.conflicts)}" if merged.conflicts else "")
            + (f" ({merged.check})" if merged.check else "")
            + (f": {merged.output}" if merged.status is MergeStatus.TAMPERED else ""),
            {
                "branch": branch,
                "commit": review.commit,
                "integration_head": merged.integration_head,
                "conflicts": merged.conflicts,
                "foreign": merged.foreign,
                "check": merged.check,
                "commits": landed,
            },
        )
        if merged.status in (MergeStatus.MERGED, MergeStatus.ALREADY_MERGED):
            outcome.state = "merged"
            # Done the moment its work lands: its claims go and its dependents start now, not
            # once its CLI has shut down (the workstream's end records this again, harmlessly).
            await bus.update(workstream.id, status=SessionStatus.DONE)
            self.finished[workstream.id].set()
            await self._share_integration()
            return None
        if merged.status is MergeStatus.NOTHING:  # the review saw changes the merge lacks
            outcome.state = "empty"
            outcome.detail = f"merging {branch} would change nothing on {self.gate.branch}"
            return None
        if merged.status is MergeStatus.TAMPERED:
            # Nothing more lands on a branch that moved under the gate: the run stops and
            # says so, whatever else merged.
            self.tampered = merged.output
            outcome.state, outcome.detail = "failed", merged.output
            self._scope.cancel()
            return None
        return self.prompts.render(
            "conflict.md.j2",
            branch=branch,
            integration=self.gate.branch,
            conflicts=merged.conflicts,
            foreign=foreign,
            check=merged.check,
            check_output=merged.output,
        )

    async def _request_review(
        self, workstream: Workstream, tree: Path, branch: str, note: str
    ) -> Review:
        """The review gate's door: a session's request (its tool, or conductor on its
        behalf) is checked and collected here, never taken on its word. Refused with the
        reason when the tree has uncommitted changes or the branch adds nothing; the head is
        fetched into the main repository and its diff taken there, against the integration
        branch; the reviewer is assigned now, by policy, and only it can decide."""
        assert self.bus is not None and self.gate is not None
        bus, gate = self.bus, self.gate
        head = await self._reviewable_head(tree, branch)
        integration = await gate.tip()
        latest = await bus.store.latest_review(bus.run_id, workstream.id)
        if (
            latest is not None
            and latest.commit == head
            and latest.status is not ReviewStatus.SUPERSEDED
        ):
            return latest  # asked already (done after request_review, say)
        reviewer = reviewer_for(self.policy, workstream.id, await bus.sessions())
        if reviewer == agent_reviewer(workstream.id):
            await self._ensure_reviewer(workstream, reviewer)
        diff = await gitops.diff_range(integration, head, self.repo)
        return await bus.request_review(
            workstream.id, commit=head, diff=diff, reviewer=reviewer, base=gate.branch, note=note
        )

    async def _reviewable_head(self, tree: Path, branch: str) -> str:
        """The session's head, collected into the main repository; refused (InvalidInput,
        with the reason for the session) when the tree has uncommitted changes or the branch
        changes nothing of its own."""
        assert self.gate is not None
        loose = await worktrees.uncommitted(tree)
        if loose:
            shown = ", ".join(loose[:8]) + (f" and {len(loose) - 8} more" if len(loose) > 8 else "")
            raise InvalidInput(f"you have uncommitted changes ({shown}): commit them first")
        if await worktrees.head_of(tree, branch) is None:
            raise InvalidInput(f"your branch {branch} is gone: commit on it")
        head = await worktrees.collect(self.repo, tree, branch)
        tip = await self.gate.tip()
        if len(await gitops.merge_bases(self.repo, tip, head)) > 1:
            # Its diff against the integration branch would then show one merge base's view
            # while the merge does another: reviewed work must be what lands.
            raise InvalidInput(
                f"your branch {branch} has more than one merge base with {self.gate.branch}:"
                f' merge it in first (git merge "$CONDUCTOR_INTEGRATION_BRANCH")'
            )
        if await gitops.adds_nothing(self.repo, tip, head):
            raise InvalidInput(
                f"your branch {branch} has no commits of its own that change anything"
            )
        return head

    async def _owners(self, workstream: Workstream) -> dict[str, str]:
        """What other workstreams own (the plan) or claim (the bus): path -> owner."""
        assert self.bus is not None
        owners = {
            path: other.id
            for other in self.plan.workstreams
            if other.id != workstream.id
            for path in other.owns
        }
        for claim in await self.bus.claims():
            if claim.session != workstream.id:
                owners.setdefault(claim.path, claim.session)
        return owners

    async def _share_integration(self) -> None:
        """A new integration tip, shown at once to every session in the middle of a turn (one
        may be waiting there for a teammate's work to land); any other is shown it before its
        next turn, the only time its CLI acts. Merges that land while a pass is under way are
        shown by one more pass, at the newest tip: a burst of merges costs a pass or two, not a
        jailed git per merge per session (which grew with the square of the workstreams)."""
        if self._sharing:
            self._share_again = True
            return
        self._sharing = True
        try:
            again = True
            while again:
                self._share_again = False
                for tree in list(self._in_turn):
                    if (tree / ".git").is_dir():
                        with contextlib.suppress(ConductorError):  # one being removed
                            await self._show_integration(tree)
                again = self._share_again
        finally:
            self._sharing = False

    async def _owner_of(self, workstream: Workstream, path: str) -> tuple[str, str] | None:
        """Who else owns `path`, as the merge gate will judge it: the write hook's rule."""
        for owned, owner in (await self._owners(workstream)).items():
            if covers(owned, path):
                return owner, owned
        return None

    async def _claim_refusal(self, workstream: Workstream, path: str) -> str | None:
        """Why `path` may not be claimed: it takes in, or lies in, what the plan gave another
        workstream (a claim on `.` would shut every teammate out)."""
        for other in self.plan.workstreams:
            if other.id == workstream.id:
                continue
            for owned in other.owns:
                if covers(path, owned) or covers(owned, path):
                    return f"{path} overlaps {owned}, which the plan gives to {other.id}"
        return None

    async def _show_integration(self, tree: Path) -> None:
        """The integration branch's tip, as a branch of that name in the session's own
        repository: what it merges in after a conflict (its objects are borrowed)."""
        assert self.gate is not None
        async with self._showing.setdefault(tree, anyio.Lock()):  # no older tip written last
            head = await self.gate.tip()
            if self._shown.get(tree) == head:  # shown since it last moved: no jailed git again
                return
            await worktrees.share_ref(tree, self.gate.branch, head)
            self._shown[tree] = head

    async def _wait_for_mail(self, name: str) -> None:
        assert self.bus is not None
        with anyio.move_on_after(self.config.stall_seconds):
            while not await self.bus.has_unread(name):
                # a teammate's send here wakes it at once; another process's at the poll
                await self.store.wait_for_change(BLOCKED_POLL)

    def _account(self, name: str, result: TurnResult) -> None:
        self.spent[name] = self.spent.get(name, 0.0) + result.cost_usd

    # ------------------------------------------------------------------------ the review gate

    async def _review(self, workstream: Workstream, review_id: int) -> Review:
        """Have the review decided by the reviewer it was assigned when it was requested."""
        assert self.bus is not None
        bus = self.bus
        review = await bus.review(review_id, with_diff=False)
        reviewer = review.reviewer or reviewer_for(self.policy, workstream.id, await bus.sessions())
        if reviewer == AUTO_REVIEWER:
            return await bus.decide(review_id, AUTO_REVIEWER, approve=True, comment="auto")
        if reviewer == HUMAN_REVIEWER:
            return await self._wait_for_verdict(review_id)
        if reviewer == agent_reviewer(workstream.id):
            return await self._agent_review(workstream, review_id, reviewer)
        # A peer hears of it as a message and decides with its own mcp__bus__review_verdict
        # (the store takes a verdict on this review from the peer alone). A peer that does
        # not answer within stall_seconds (it may have finished already) hands it to an
        # agent: a new request, assigned to the agent, supersedes this one.
        ask = f"Please review #{review_id} of {workstream.id}: "
        asked = await bus.store.inbox(bus.run_id, reviewer, unread_only=False)
        if not any(m.body.startswith(ask) for m in asked):  # asked once, resumed or not
            await bus.send(
                None,
                reviewer,
                f"{ask}read it with mcp__bus__review_show (review_id {review_id}), then decide"
                f" with mcp__bus__review_verdict (review_id {review_id}, approve or reject,"
                " with comments).",
            )
        with anyio.move_on_after(self.config.stall_seconds):
            return await self._wait_for_verdict(review_id)
        whole = await bus.review(review_id)
        agent = agent_reviewer(workstream.id)
        await self._ensure_reviewer(workstream, agent)
        handed = await bus.request_review(
            workstream.id,
            commit=whole.commit,
            diff=whole.diff,
            reviewer=agent,
            base=whole.base,
            note=whole.note,
        )
        return await self._agent_review(workstream, handed.id, agent)

    async def _ensure_reviewer(self, workstream: Workstream, name: str) -> None:
        """The agent reviewer's session on the bus, so a review can be assigned to it."""
        assert self.bus is not None
        if name not in {s.name for s in await self.bus.sessions()}:
            await self.bus.register([(name, f"reviews {workstream.id}")], kind=SessionKind.REVIEWER)

    async def _wait_for_verdict(self, review_id: int) -> Review:
        """A person (`conductor review approve`, another process: seen at the poll) or a peer
        session (a tool call in this process: at once) decides."""
        assert self.bus is not None
        while True:
            review = await self.bus.review(review_id, with_diff=False)
            if review.status is not ReviewStatus.PENDING:
                return review
            await self.store.wait_for_change(BLOCKED_POLL)  # a peer here wakes it at once

    async def _agent_review(self, workstream: Workstream, review_id: int, name: str) -> Review:
        assert self.bus is not None
        bus = self.bus
        await self._ensure_reviewer(workstream, name)
        review = await bus.review(review_id)
        author = await bus.session(workstream.id)
        config = replace(self._session_config(name), tools=READ_ONLY_TOOLS)
        prompt = review_prompt = self.prompts.render(
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
                    self._live[name] = session
                    try:
                        return await self._review_turns(session, review_id, prompt)
                    finally:
                        self._live.pop(name, None)
            except SessionDied as died:  # the reviewer's own process: the author goes on
                if self.stopping:
                    await anyio.sleep_forever()  # stop() cancels the run's tasks next
                await machine.probe(self._machine_folders())
                restarts += 1
                if restarts > self.config.retries:
                    raise ConductorError(
                        f"reviewer {name}: {died} (after {restarts - 1} restarts)"
                    ) from None
                await self._restarted(name, resume, restarts)
                prompt = (
                    "Your session was restarted: its process ended. The review you were"
                    " doing, again:\n\n" + review_prompt
                )

    async def _review_turns(self, session: HeadlessSession, review_id: int, prompt: str) -> Review:
        """Turns until the reviewer decides: a pause when the API is overloaded, one reminder
        to give a verdict, then no verdict counts as a rejection."""
        assert self.bus is not None
        asked, pauses = 0, 0
        while asked < 2:
            result = await session.turn(prompt)
            self._account(session.name, result)
            if self.stopping:  # no verdict from a cut-short turn; resume asks again
                await anyio.sleep_forever()  # until stop() cancels the run's tasks
            review = await self.bus.review(review_id, with_diff=False)
            if review.status is not ReviewStatus.PENDING:
                return review
            if _busy(result) and pauses < MAX_PAUSES:
                pauses += 1
                prompt = await self._pause(session.name, result, pauses)
                continue
            asked += 1
            prompt = f"Give your verdict on review #{review_id} with mcp__bus__review_verdict."
        return await self.bus.decide(
            review_id, session.name, approve=False, comment="the reviewer gave no verdict"
        )


async def refuse_checked_out(repo: Path, branch: str) -> None:
    """The gate moves the integration branch by its ref: under a working tree that has it
    checked out, every merge would show there as staged reverts. So never such a branch."""
    for tree in await gitops.worktrees(repo):
        if tree.branch == branch:
            raise InvalidInput(
                f"--into {branch}: it is checked out in {tree.path}; check out another branch"
                " there, or merge into another branch"
            )


def _interrupted_turn(prompt: Event) -> str:
    text = str((prompt.payload or {}).get("prompt") or prompt.summary)
    return (
        "It stopped in the middle of your turn on the prompt below. Your conversation is"
        " restored, but your last steps may not have finished: check `git status` and"
        " `git log` on your branch, then carry on.\n\n--- the prompt ---\n" + text
    )
