"""A run once it is taken: what every part of it shares.

Made by the supervisor only after the run exists, this supervisor holds it, and its merge
gate is made, so nothing here is ever missing: the bus, the gate, the budget's ledger, each
workstream's outcome and the events its dependents wait on, and the run's control (stop,
fault, tampering). The helpers are the few things several parts do alike: a session's
configuration, where a run writes (for the machine's probe), the events of a session
restarted or tidied, and who owns what.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from pathlib import Path

import anyio

from conductor import worktrees
from conductor.bus import Bus
from conductor.config import Config
from conductor.errors import MachineFault
from conductor.events import EventKind, SessionRestarted, SessionTidied
from conductor.gates import MergeGate
from conductor.leftovers import owner_marker
from conductor.paths import covers
from conductor.plan import Plan, Workstream
from conductor.prompts import Prompts
from conductor.run.accounting import Ledger
from conductor.run.control import Control
from conductor.run.sharing import IntegrationShare
from conductor.run.summary import Outcome
from conductor.run.usage_window import UsageWindow
from conductor.session import SessionConfig, worker_config
from conductor.workspace import OWNER_ENV, STATE_DIR, SUPERVISED_ENV


class TurnHandoff:
    """What a run does around a session's turns besides driving them: nothing on one host.
    A worker on another host (`conductor.remote`) reads the run's spend from the store before
    a turn (the budget holds across workers), hands the session's branch to the git remote
    after it (whoever takes the workstream over carries on from there), and says whether a
    session it took over resumed its conversation or starts afresh (`takeover_note`)."""

    takeover_note = ""  # what a fresh session that took over a workstream is told first
    reattached = ""  # why a session is re-attached, when not a supervisor's restart

    async def before_turn(self, name: str) -> None:
        return None

    async def after_turn(self, name: str, tree: Path, branch: str) -> None:
        return None

    async def still_ours(self, name: str) -> bool:
        """Whether the workstream is still this run's to drive: to restart its session, to
        write its end (a worker that lost its lease is not: the one that took it over is)."""
        return True

    async def opened(self, name: str, *, resume: str, restored: bool) -> None:
        """A session asked to resume conversation `resume` was started (`restored`: it did)."""
        return None


class StartedRun:
    """The run this supervisor holds: made once, after the run is taken and its gate made."""

    def __init__(
        self,
        *,
        repo: Path,
        plan: Plan,
        goal: str,
        config: Config,
        env: Mapping[str, str],
        prompts: Prompts,
        bus: Bus,
        gate: MergeGate,
        control: Control,
        ledger: Ledger,
        outcomes: dict[str, Outcome],
        remote: str | None = None,
        on_workers: bool = False,
    ) -> None:
        """`remote`: the git remote the integration branch is pushed to; `on_workers`: the
        sessions run on workers on other hosts, which share it (`conductor.run.remote`)."""
        self.repo = repo
        self.plan = plan
        self.goal = goal
        self.config = config
        self.env = env
        self.prompts = prompts
        self.bus = bus
        self.gate = gate
        self.control = control
        self.ledger = ledger
        self.outcomes = outcomes
        self.remote = remote
        self.on_workers = on_workers
        # Set when a workstream's work landed or it ended: its dependents wait on it.
        self.finished = {w.id: anyio.Event() for w in plan.workstreams}
        self.limiter = anyio.CapacityLimiter(config.max_parallel)
        self.share = IntegrationShare(gate)
        self.handoff = TurnHandoff()  # a worker on another host sets its own
        self.usage = UsageWindow()  # a usage limit's reset, which every session waits for

    @property
    def run_id(self) -> str:
        return self.bus.run_id

    def session_config(self, name: str, model: str | None = None) -> SessionConfig:
        """Sessions can use the hand commands too (`conductor sync`) and find the
        integration branch (to bring their branch up to date after a conflict). `model`:
        the session's role's (None: the run's `model`)."""
        env = {
            **self.env,
            "CONDUCTOR_RUN": self.run_id,
            "CONDUCTOR_SESSION": name,
            "CONDUCTOR_DB": self.bus.session_db,
            "CONDUCTOR_INTEGRATION_BRANCH": self.gate.branch,
            SUPERVISED_ENV: self.run_id,
            OWNER_ENV: owner_marker(),  # this process's: only it ends what the session leaves
        }
        private = self.repo / STATE_DIR / "sessions" / self.run_id / name
        launch = worker_config(self.config, private, env)
        return replace(
            launch,
            model=model or launch.model,
            append_system_prompt=self.prompts.render("claude-md.md.j2"),
        )

    def machine_folders(self, *trees: Path) -> list[Path]:
        """Where a run writes: its state (the store, sessions' transcripts, the gate's tree)
        and `trees` (a session's). A probe goes in a tree's `.git`, never in its files: one
        left by a kill at that instant must not be committed by the session."""
        return [self.repo / STATE_DIR, *(tree / ".git" for tree in trees)]

    # ------------------------------------------------------------------------ stopping

    async def machine_failed(self, fault: BaseException) -> None:
        """The disk filled up, or the store cannot be written: stop the run as Ctrl-C does,
        for `conductor resume` once the cause is gone (nothing is marked failed for it)."""
        control = self.control
        if not control.fault:
            control.fault = str(fault)
            with contextlib.suppress(MachineFault):
                await self.bus.record(None, EventKind.RUN_FAULT, control.fault)
        if not control.stopping:
            await control.stop()

    async def unless_the_machine(self, step: Awaitable[object]) -> None:
        """`step`, and if the machine fails it, the run stops (instead of the task raising)."""
        try:
            await step
        except MachineFault as fault:
            await self.machine_failed(fault)

    # ------------------------------------------------------------------------ sessions' events

    async def tidy(self, name: str, tree: Path) -> None:
        """Before a session (re)starts: what a killed one left half done in its tree."""
        removed = await worktrees.tidy_after_death(tree)
        if removed:
            await self.bus.record(
                name,
                EventKind.SESSION_TIDIED,
                f"removed what a killed CLI left half done: {', '.join(removed)}",
                SessionTidied(removed=removed).to_json(),
            )

    async def restarted(self, name: str, resume: str | None, restarts: int) -> None:
        await self.bus.record(
            name,
            EventKind.SESSION_RESTARTED,
            f"resumed {resume} (restart {restarts})",
            SessionRestarted(resume=resume, restart=restarts).to_json(),
        )

    # ------------------------------------------------------------------------ who owns what

    async def owners(self, workstream: Workstream) -> dict[str, str]:
        """What other workstreams own (the plan) or claim (the bus): path -> owner."""
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

    async def owner_of(self, workstream: Workstream, path: str) -> tuple[str, str] | None:
        """Who else owns `path`, as the merge gate will judge it: the write hook's rule."""
        for owned, owner in (await self.owners(workstream)).items():
            if covers(owned, path):
                return owner, owned
        return None

    async def claim_refusal(self, workstream: Workstream, path: str) -> str | None:
        """Why `path` may not be claimed: it takes in, or lies in, what the plan gave another
        workstream (a claim on `.` would shut every teammate out)."""
        for other in self.plan.workstreams:
            if other.id == workstream.id:
                continue
            for owned in other.owns:
                if covers(path, owned) or covers(owned, path):
                    return f"{path} overlaps {owned}, which the plan gives to {other.id}"
        return None
