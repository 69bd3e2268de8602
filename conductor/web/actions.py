"""What a person can do from the browser: decide a review waiting on them, stop a run, resume
one. Each is what the command line does (`review approve --from human`, `conductor stop`,
`conductor resume`), through the same bus and with the same refusals.
"""

from __future__ import annotations

import functools
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from conductor.bus import Bus
from conductor.errors import InvalidInput
from conductor.models import HUMAN_REVIEWER, Review, ReviewStatus, RunState, for_a_person
from conductor.workspace import ensure_state_dir

BROWSER = "human (browser)"  # who asked, in the events: the view acts for the person at it
RESUME_SETTLE = 3.0  # how long a resume is watched for failing at once, before "resuming"
DB_ENV = "CONDUCTOR_DB"


def waits_on_person(review: Review, policy: str | None) -> bool:
    """Pending and the person's to decide: assigned to `human`, or to no one in a run whose
    review policy is human (as the live view reads it)."""
    return review.status is ReviewStatus.PENDING and for_a_person(review.reviewer, policy)


def review_policy(bus: Bus) -> str | None:
    config = (bus.run.spec or {}).get("config") or {}
    policy = config.get("review")
    return policy if isinstance(policy, str) else None


async def decide(bus: Bus, review_id: int, *, approve: bool, comment: str) -> Review:
    """A verdict as `human`, only on a review that waits on a person: the browser never
    decides for a session or an agent reviewer."""
    review = await bus.review(review_id, with_diff=False)
    if not waits_on_person(review, review_policy(bus)):
        raise InvalidInput(
            f"review #{review_id} is {review.status.value}"
            + (f" and assigned to {review.reviewer}" if review.reviewer else "")
            + ": it is not waiting on a person"
        )
    return await bus.decide(review_id, HUMAN_REVIEWER, approve=approve, comment=comment)


async def stop(bus: Bus) -> str:
    """Ask the run's supervisor, wherever it runs, to stop (it does within a second or two
    and leaves the run interrupted, resumable)."""
    await bus.ask_stop(BROWSER)
    return f"asked run {bus.run_id} to stop: its sessions are interrupted, it stays resumable"


@dataclass(frozen=True)
class Resuming:
    pid: int
    log: Path


async def resume(
    bus: Bus,
    *,
    repo: Path,
    location: str,
    env: Mapping[str, str],
    pending: dict[str, subprocess.Popen[Any] | None],
) -> Resuming:
    """`conductor resume RUN` in a process of its own that outlives the browser view (its
    output to a log under .conductor/logs). Refused, as resume refuses, for a finished run or
    one a supervisor drives now, and while a resume this server started is still on its way
    (`pending`: run id -> its process, None while it is being started; two clicks start
    one); a resume that fails at once says why in one line."""
    run_id = bus.run_id
    if run_id in pending:
        earlier = pending[run_id]
        if earlier is None or earlier.poll() is None:
            which = f" (pid {earlier.pid})" if earlier is not None else ""
            raise InvalidInput(f"run {run_id} is being resumed already{which}")
    pending[run_id] = None  # held from here, before any await: two clicks, one resume
    try:
        process, log = await _start_resume(bus, repo=repo, location=location, env=env)
    except BaseException:
        del pending[run_id]
        raise
    pending[run_id] = process  # kept: it is this server's child until it ends
    # Not waited for: it outlives this request and the server. (Popen reaps a child it
    # dropped when it next starts one; the process group is the run's own.)
    with anyio.move_on_after(RESUME_SETTLE):
        while process.poll() is None:
            if (await bus.seen_state()) == RunState.ACTIVE.value:
                break
            await anyio.sleep(0.1)
    code = process.poll()
    if code is not None and code != 0:
        raise InvalidInput(f"resume of run {run_id} failed: {_last_line(log)}")
    return Resuming(process.pid, log)


async def _start_resume(
    bus: Bus, *, repo: Path, location: str, env: Mapping[str, str]
) -> tuple[subprocess.Popen[Any], Path]:
    """The checks `conductor resume` would make, then the process, with its log."""
    run = await bus.refresh()
    seen = await bus.seen_state()
    if run.spec is None:
        raise InvalidInput(f"run {run.id} was not started by conductor run: nothing to resume")
    if run.state is RunState.FINISHED:
        raise InvalidInput(f"run {run.id} finished: everything merged, nothing to resume")
    if seen == RunState.ACTIVE.value:
        raise InvalidInput(f"run {run.id} is being supervised already")
    logs = ensure_state_dir(repo) / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"resume-{run.id}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}.log"
    # The database by the environment, not the argument list: a URL's password would show
    # in the process list.
    child_env = {**env, DB_ENV: location}
    with log.open("ab") as out:
        spawn = functools.partial(
            subprocess.Popen,
            [sys.executable, "-m", "conductor", "resume", run.id],
            cwd=repo,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the server is not the run's
        )
        return await anyio.to_thread.run_sync(spawn), log


def _last_line(log: Path) -> str:
    try:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return f"see {log}"
    return lines[-1] if lines else f"it printed nothing (see {log})"
