"""`conductor worker`: a process on any host that runs sessions for the runs that share its
database, `--slots` at a time.

It keeps a clone of the git remote in its own directory, says it is alive every few seconds
(`conductor workers` lists it), and takes the next workstream waiting for a worker, or whose
worker went silent (its lease ran out), whenever a slot is free. Each taken workstream runs
as `TakenWorkstream`. Asked to stop (Ctrl-C, SIGTERM), it interrupts its sessions and lets
their leases go at once, so another worker takes them over without waiting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from conductor import gitops
from conductor.bus import work as work_queue
from conductor.errors import ConductorError, InvalidInput
from conductor.gates.remote import Fetcher
from conductor.models import Assignment
from conductor.remote.assignment import TakenWorkstream
from conductor.store.interface import Storage

IDLE_POLL = 2.0  # how often an idle worker asks for work when no write wakes it


async def ensure_clone(url: str, where: Path) -> Path:
    """The worker's clone of the run's remote at `where` (made, or fetched)."""
    if (where / ".git").is_dir():
        await gitops.git(["fetch", "--quiet", "--no-tags", "origin"], where)
        return where
    where.parent.mkdir(parents=True, exist_ok=True)
    partial = where.with_name(f".{where.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # what a worker killed while cloning left
    cloned = await gitops.git(
        ["clone", "--quiet", "--no-checkout", url, str(partial)], where.parent, check=False
    )
    if cloned.returncode != 0:
        why = cloned.stderr.strip().splitlines()[-1:] or ["git clone failed"]
        raise InvalidInput(f"cannot clone {url}: {why[0]}")
    partial.rename(where)
    return where


class Worker:
    def __init__(
        self,
        store: Storage,
        repo_url: str,
        directory: Path,
        *,
        slots: int = 1,
        worker_id: str | None = None,
        lease_seconds: float = work_queue.LEASE_SECONDS,
        allow_unsandboxed: bool = False,
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        """`say`: a line for the person who started the worker (what it took, how it ended).
        `allow_unsandboxed`: runs with `sandbox = false` may run here (see TakenWorkstream)."""
        if slots < 1:
            raise InvalidInput("--slots must be at least 1")
        self.store = store
        self.repo_url = repo_url
        self.directory = directory
        self.slots = slots
        self.host = socket.gethostname()
        self.id = worker_id or f"{self.host}-{os.getpid()}"
        self.lease_seconds = lease_seconds
        self.allow_unsandboxed = allow_unsandboxed
        self.say = say
        # Runs this worker leaves alone: run -> until when (None: for good, as another
        # repository's); a fetch that failed leaves its run to other workers for a while.
        self.skipped: dict[str, float | None] = {}
        self.taken: dict[tuple[str, str], TakenWorkstream] = {}
        self.stopping = False

    async def run(self) -> None:
        """Until `stop()`: take work whenever a slot is free; then wait for what it took to
        be let go."""
        clone = await ensure_clone(self.repo_url, self.directory / "repo")
        fetcher = Fetcher(clone)
        await self._alive()
        try:
            async with anyio.create_task_group() as beating:
                beating.start_soon(self._heartbeat)
                async with anyio.create_task_group() as tg:
                    while not self.stopping:
                        if len(self.taken) < self.slots:
                            got = await self._take()
                            if got is not None:
                                tg.start_soon(self._run, self._taking(fetcher, got))
                                continue
                        await work_queue.wait(self.store, IDLE_POLL)
                beating.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(ConductorError):
                await work_queue.stopped(self.store, self.id)

    async def stop(self) -> None:
        """Interrupt every session and let their leases go; `run()` ends once they have."""
        self.stopping = True
        for taken in list(self.taken.values()):
            await taken.stop()

    def _taking(self, fetcher: Fetcher, got: Assignment) -> TakenWorkstream:
        taken = TakenWorkstream(
            self.store,
            fetcher,
            got,
            worker=self.id,
            host=self.host,
            lease_seconds=self.lease_seconds,
            allow_unsandboxed=self.allow_unsandboxed,
        )
        self.taken[(got.run_id, got.session)] = taken  # at once: it fills a slot
        return taken

    async def _run(self, taken: TakenWorkstream) -> None:
        got = taken.taken
        over = f", taken over from {got.previous_worker}" if got.previous_worker else ""
        self.say(f"took {taken.name} of run {got.run_id}{over}")
        try:
            if self.stopping:  # taken as the worker was asked to stop: let it go at once
                await taken.stop()
            try:
                outcome = await taken.run()
            except Exception as e:  # one workstream's trouble is not every slot's
                self.say(f"{taken.name} of run {got.run_id}: {type(e).__name__}: {e}")
                return
            if taken.left:
                until = None if taken.skip_for is None else time.monotonic() + taken.skip_for
                self.skipped[got.run_id] = until
                self.say(f"{taken.left}: left to other workers")
            elif taken.lost:
                self.say(f"{taken.name} of run {got.run_id}: lost (another worker took it over)")
            elif taken.control.stopping and outcome.state != "merged":
                self.say(f"{taken.name} of run {got.run_id}: let go, for another worker")
            else:
                detail = f" ({outcome.detail})" if outcome.detail else ""
                self.say(f"{taken.name} of run {got.run_id}: {outcome.state}{detail}")
        finally:
            self.taken.pop((taken.taken.run_id, taken.name), None)

    async def _take(self) -> Assignment | None:
        """The next workstream for this worker, or None (none, or the store out of reach
        for now: the worker asks again, it does not die of it)."""
        try:
            return await work_queue.take(
                self.store,
                self.id,
                host=self.host,
                lease_seconds=self.lease_seconds,
                skip_runs=self._skipped(),
            )
        except ConductorError as e:
            self.say(f"cannot ask for work now ({e}); asking again")
            await anyio.sleep(IDLE_POLL)
            return None

    def _skipped(self) -> list[str]:
        now = time.monotonic()
        return sorted(r for r, until in self.skipped.items() if until is None or until > now)

    async def _alive(self) -> None:
        await work_queue.alive(
            self.store, self.id, host=self.host, pid=os.getpid(), slots=self.slots
        )

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(work_queue.HEARTBEAT_SECONDS)
            with contextlib.suppress(ConductorError):  # a missed beat: the next one counts
                await self._alive()
