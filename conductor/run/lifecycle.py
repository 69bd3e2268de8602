"""The run's start and end: made (or opened) and taken, its sessions registered, what a
resumed run did before picked up from its events; and at the end, what landed checked
against the integration branch, the run's state stored, and its summary."""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio

from conductor import gitops
from conductor.bus import Bus, create_run, supervisor_lock
from conductor.config import Config
from conductor.costs import PLANNER, Spend, spend_of
from conductor.errors import ConductorError, InvalidInput, LockHeld, MachineFault
from conductor.events import EventKind, LeftoversEnded
from conductor.gates import MergeGate
from conductor.jail import jails_supported
from conductor.leftovers import end_leftovers, orphaned
from conductor.models import AUTO_REVIEWER, HUMAN_REVIEWER, Event, Lease, RunState, SessionKind
from conductor.plan import Plan
from conductor.run import replay
from conductor.run.started import StartedRun
from conductor.run.summary import RunSummary
from conductor.store import Store

HELD_UNTIL_RELEASED = 10 * 365 * 86400.0  # the run's lock: until released or its holder dies


async def create(
    store: Store,
    repo: Path,
    plan: Plan,
    *,
    goal: str,
    config: Config,
    into: str | None,
    remote: str | None,
    planner: Spend | None,
    workers: bool = False,
) -> Bus:
    """A new run, with everything a resume needs to rebuild its supervisor (the spec)."""
    spec: dict[str, Any] = {
        "plan": plan.to_json(),
        "config": asdict(config),
        "into": into,
        "remote": remote,
        "workers": workers,
    }
    if planner is not None:
        spec[PLANNER] = planner.to_json()
    return await create_run(
        store,
        goal=goal,
        repo_root=repo,
        base_ref=await gitops.current_branch(repo),
        base_commit=await gitops.rev_parse("HEAD", repo),
        spec=spec,
    )


async def take(bus: Bus) -> Lease:
    """One supervisor per run: a second `resume` while one runs would drive the same
    conversations twice. A holder that died (SIGKILL) is reclaimed at once."""
    try:
        return await bus.acquire_lock(
            f"pid {os.getpid()} on {socket.gethostname()}",
            name=supervisor_lock(bus.run_id),
            lease_seconds=HELD_UNTIL_RELEASED,
        )
    except LockHeld as held:
        raise InvalidInput(
            f"run {bus.run_id} is being supervised already ({held.holder}): stop that"
            " one first (Ctrl-C)"
        ) from None


async def merge_gate(
    repo: Path, bus: Bus, config: Config, *, into: str | None, remote: str | None
) -> MergeGate:
    """The run's merge gate, made (prepared later, by `prepare`)."""
    return MergeGate(
        repo,
        bus.run_id,
        base_commit=bus.run.base_commit or await gitops.rev_parse("HEAD", repo),
        into=into,
        checks=config.checks,
        push=(bus, remote) if remote else None,
        jailed=config.sandbox and jails_supported(),
    )


async def prepare(run: StartedRun, *, resuming: bool) -> None:
    """The sessions on the bus (a fresh run, or one killed before it registered them all),
    a resumed run's past picked up, and the merge gate prepared (which also undoes a merge
    that a killed supervisor left half done)."""
    bus = run.bus
    known = {s.name for s in await bus.sessions()}
    missing = [(w.id, w.name) for w in run.plan.workstreams if w.id not in known]
    if missing:
        await bus.register(missing)
    for name in (AUTO_REVIEWER, HUMAN_REVIEWER):
        if name not in known:
            kind = SessionKind.REVIEWER if name == AUTO_REVIEWER else SessionKind.HUMAN
            await bus.register([(name, f"{name} reviews")], kind=kind)
    if resuming:
        await _pick_up(run)
    await run.gate.prepare()


async def _pick_up(run: StartedRun) -> None:
    """A resumed run: the processes a killed supervisor left ended (those whose owner is
    gone: never a live worker's on this host, `conductor.leftovers`), the run active again,
    and what the workstreams did before counted from the events."""
    bus = run.bus
    leftovers = await end_leftovers(bus.run_id, whose=orphaned)
    if leftovers:
        await bus.record(
            None,
            EventKind.RUN_LEFTOVERS,
            f"ended {len(leftovers)} session processes the last supervisor left",
            LeftoversEnded(pids=leftovers).to_json(),
        )
    await bus.set_state(RunState.ACTIVE, "resumed")
    run.ledger.restore(spend_of(bus.run.spec, await bus.sessions()))
    recount(run, await bus.events())


def recount(run: StartedRun, events: list[Event]) -> None:
    """What the workstreams did before this supervisor, from the events: decided reviews
    and the last merge outcome."""
    for author, rounds in replay.review_rounds(events).items():
        if author in run.outcomes:
            run.outcomes[author].review_rounds += rounds
    for name, merge in replay.last_merges(events).items():
        if name in run.outcomes:
            run.outcomes[name].merge = merge.status
            run.outcomes[name].commits = merge.commits


# ---------------------------------------------------------------------------- the end


async def summarise(run: StartedRun) -> RunSummary:
    """The run's end, stored and summarised. After a machine fault the store may not
    take a write: the run then reads `interrupted` from its released lock all the same."""
    control, outcomes = run.control, run.outcomes
    order = [w.id for w in run.plan.workstreams]
    for i in order:
        if control.fault and outcomes[i].state == "waiting":
            outcomes[i].state = "interrupted"
    spent = run.ledger.as_spends()  # unless the store says
    head = ""
    with anyio.CancelScope(shield=True):
        # Reading works on a full disk: the head and the costs first, the end's write last.
        with contextlib.suppress(ConductorError):
            head = await run.gate.head()
        with contextlib.suppress(MachineFault):
            spent = spend_of(run.bus.run.spec, await run.bus.sessions())
            events = await run.bus.events()
            await check_delivered(run, events, head)
        ok = not control.tampered and all(outcomes[i].state == "merged" for i in order)
        try:
            await store_the_end(run, ok)
        except MachineFault as e:
            control.fault = control.fault or str(e)
    for i in order:
        recorded = spent.pop(i, Spend())
        outcomes[i].turns, outcomes[i].cost_usd = recorded.turns, recorded.cost_usd
    return RunSummary(
        run.run_id,
        run.gate.branch,
        head,
        [outcomes[i] for i in order],
        interrupted=control.interrupted,
        tampered=control.tampered,
        others=spent,
        fault=control.fault,
        ceiling=control.ceiling,
    )


async def check_delivered(run: StartedRun, events: list[Event], head: str) -> None:
    """The last word on "merged": the commit each merged workstream landed is on the
    integration branch and changes something since the run began. Whatever path led
    here (a resume, a crash between two records), a workstream whose work is not there
    reads `missing`, and the run does not say everything merged."""
    landed = replay.landed_commits(events)
    base = run.bus.run.base_commit or head
    for outcome in run.outcomes.values():
        if outcome.state != "merged":
            continue
        commit = landed.get(outcome.id, "")
        there = bool(commit and head) and await gitops.is_merged(run.repo, commit, head)
        if not there or await gitops.adds_nothing(run.repo, base, commit):
            outcome.state = "missing"
            outcome.detail = "its work is not on the integration branch"


async def store_the_end(run: StartedRun, ok: bool) -> None:
    control = run.control
    if control.fault:
        await run.bus.set_state(
            RunState.INTERRUPTED, f"{control.fault}: resumable once that is fixed"
        )
    elif control.ended:
        await run.bus.set_state(RunState.FAILED, control.ended)
    elif control.stopping:
        await run.bus.set_state(RunState.INTERRUPTED, control.stop_note)
    elif ok:
        await run.bus.set_state(RunState.FINISHED, "everything merged")
    else:
        await run.bus.set_state(RunState.FAILED, control.tampered or "not everything merged")


async def refuse_checked_out(repo: Path, branch: str) -> None:
    """The gate moves the integration branch by its ref: under a working tree that has it
    checked out, every merge would show there as staged reverts. So never such a branch."""
    for tree in await gitops.worktrees(repo):
        if tree.branch == branch:
            raise InvalidInput(
                f"--into {branch}: it is checked out in {tree.path}; check out another branch"
                " there, or merge into another branch"
            )
