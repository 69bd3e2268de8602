"""What a worker does around its session's turns that a supervisor on one host does not:
read the run's spend from the store before a turn (every worker's sessions count against the
run's budget), push the session's branch to the git remote after it (so a worker that takes
the workstream over carries on from there), and say whether a session it took over resumed
its conversation or starts afresh.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from conductor import gitops, worktrees
from conductor.bus import Bus
from conductor.costs import spend_of
from conductor.errors import ConductorError
from conductor.events import EventKind, SessionRestarted
from conductor.gates.remote import Fetcher
from conductor.models import Assignment
from conductor.remote.lease import HeldLease
from conductor.run.accounting import Ledger
from conductor.run.started import TurnHandoff


class WorkerHandoff(TurnHandoff):
    def __init__(
        self,
        bus: Bus,
        ledger: Ledger,
        fetcher: Fetcher,
        taken: Assignment,
        *,
        worker: str,
        host: str,
        lease: HeldLease,
    ) -> None:
        """`lease`: this worker's on the workstream, confirmed before what hands work on."""
        self.bus = bus
        self.lease = lease
        self.ledger = ledger
        self.fetcher = fetcher
        self.taken = taken
        self.worker = worker
        self.host = host
        self._said = False  # the taking is announced in the events once

    @property
    def taken_again(self) -> bool:
        """Another taking of the workstream than its first: its last worker went silent or
        let it go (by this worker's name too: a worker restarted under the same `--id`)."""
        return self.taken.attempt > 1 and self.taken.previous_worker is not None

    def _how_taken(self) -> str:
        previous = self.taken.previous_worker
        how = "again" if previous == self.worker else f"over from worker {previous}"
        return f"taken {how} by worker {self.worker} on {self.host}"

    async def before_turn(self, name: str) -> None:
        bus = self.bus
        self.ledger.restore(spend_of(bus.run.spec, await bus.sessions()))

    async def after_turn(self, name: str, tree: Path, branch: str) -> None:
        head = await worktrees.head_of(tree, branch)
        if head is None:
            return
        await self.lease.confirm()
        await worktrees.collect(self.fetcher.clone, tree, branch)
        await self.fetcher.push(branch, head)

    async def still_ours(self, name: str) -> bool:
        with contextlib.suppress(ConductorError):
            return await self.lease.renew()
        return False  # the store cannot say: the next holder ends it

    async def opened(self, name: str, *, resume: str, restored: bool) -> None:
        """Said once per taking (a restart of its CLI later in this taking is not one)."""
        if not self.taken_again or self._said:
            return
        self._said = True
        said = (
            f"{self._how_taken()}: resumed its conversation {resume}"
            if restored
            else f"{self._how_taken()}: its conversation is not on this host, so a fresh"
            " session starts, told what its branch holds"
        )
        await self.bus.record(
            name,
            EventKind.SESSION_RESTARTED,
            said,
            SessionRestarted(resume=resume if restored else None, restart=0).to_json(),
        )

    async def note_takeover(self, name: str, branch: str) -> None:
        """What a fresh session that took the workstream over is told first: who ran it, and
        the commits its branch holds already (fetched from the remote)."""
        if not self.taken_again:
            return
        base = self.bus.run.base_commit or "HEAD"
        clone = self.fetcher.clone
        listed = await gitops.git(
            [
                "log",
                "--oneline",
                "--no-decorate",
                "-n",
                "30",
                f"refs/heads/{branch}",
                "--not",
                base,
            ],
            clone,
            check=False,
        )
        held = listed.text if listed.returncode == 0 else ""
        if self.taken.previous_worker != self.worker:  # (else the stop is what it is told)
            self.reattached = f"Your workstream was {self._how_taken()}: its last one stopped."
        self.takeover_note = (
            f"Your workstream was {self._how_taken()}, and your conversation is not on this"
            " host: this is a fresh session. "
            + (
                f"Your branch {branch} already holds its commits:\n{held}\nBuild on them: check"
                " `git status` and `git log`, then carry on with what is left."
                if held
                else f"Your branch {branch} holds no commits of it yet."
            )
        )
