"""The merge gate as a worker on another host sees it: the integration branch read from the
git remote, and a merge asked of the supervisor's gate through the bus.

Only the supervisor's gate writes the integration branch (one serial queue, its checks, its
tamper record); it pushes every merge to the remote. A worker keeps a clone of that remote:
the tip it shows its sessions and reviews against is the remote's, fetched when asked for,
and a reviewed commit goes to the gate by pushing the session's branch to the remote (the
worker pushes; its sessions never can) and leaving a merge request on the bus, whose answer
is the gate's outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from conductor import gitops
from conductor.bus import Bus
from conductor.bus import work as work_queue
from conductor.errors import InvalidInput
from conductor.gates.merge import MergeGate, MergeOutcome, MergeStatus

ANSWER_POLL = 1.0  # how often a merge request's answer is looked for without a wake-up
MERGE_TRIES = 4  # a merge refused for a moment's trouble (a fetch that failed) is asked again
RETRY_SECONDS = 2.0
TRANSPORT_TRIES = 3  # a fetch or push to the remote, before its failure counts


def outcome_to_json(outcome: MergeOutcome) -> dict[str, Any]:
    return {
        "status": outcome.status.value,
        "branch": outcome.branch,
        "commit": outcome.commit,
        "integration_head": outcome.integration_head,
        "conflicts": list(outcome.conflicts),
        "foreign": dict(outcome.foreign),
        "check": outcome.check,
        "output": outcome.output,
        "pushed_to": outcome.pushed_to,
    }


def outcome_from_json(data: dict[str, Any]) -> MergeOutcome:
    return MergeOutcome(
        MergeStatus(data["status"]),
        str(data.get("branch", "")),
        str(data.get("commit", "")),
        str(data.get("integration_head", "")),
        conflicts=[str(c) for c in data.get("conflicts") or []],
        foreign={str(k): str(v) for k, v in (data.get("foreign") or {}).items()},
        check=str(data.get("check") or ""),
        output=str(data.get("output") or ""),
        pushed_to=data.get("pushed_to"),
    )


async def _again_if_it_fails(args: list[str], cwd: Path) -> gitops.GitResult:
    """git talking to the remote, tried again after a pause when it fails (a network's or
    a server's moment of trouble); its last failure raised."""
    for attempt in range(1, TRANSPORT_TRIES):
        result = await gitops.git(args, cwd, check=False)
        if result.returncode == 0:
            return result
        await anyio.sleep(RETRY_SECONDS * attempt)
    return await gitops.git(args, cwd)


class Fetcher:
    """git fetches and pushes between a worker's clone and the remote, one at a time (two
    at once in one repository would race for the same ref locks)."""

    def __init__(self, clone: Path, remote: str = "origin") -> None:
        self.clone = clone
        self.remote = remote
        self._lock = anyio.Lock()

    async def fetch(self, *branches: str) -> dict[str, str | None]:
        """Each branch from the remote to the clone's branch of that name (forced: the
        remote is the truth); branch -> its commit, or None when the remote has none."""
        async with self._lock:
            found: dict[str, str | None] = {}
            listed = await _again_if_it_fails(
                ["ls-remote", "--heads", self.remote, *(f"refs/heads/{b}" for b in branches)],
                self.clone,
            )
            there = {
                ref.removeprefix("refs/heads/"): sha
                for sha, ref in (line.split("\t", 1) for line in listed.text.splitlines() if line)
            }
            wanted = [b for b in branches if b in there]
            if wanted:
                await _again_if_it_fails(
                    [
                        "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", self.remote,
                        *(f"+refs/heads/{b}:refs/heads/{b}" for b in wanted),
                    ],
                    self.clone,
                )  # fmt: skip
            for branch in branches:
                found[branch] = there.get(branch)
            return found

    async def push(self, branch: str, commit: str) -> None:
        """`commit` as the remote's `branch` (forced: a session's branch is its own, and a
        worker that takes it over carries on from what was pushed last)."""
        async with self._lock:
            await _again_if_it_fails(
                ["push", "--quiet", "--force", self.remote, f"{commit}:refs/heads/{branch}"],
                self.clone,
            )


class RemoteGate(MergeGate):
    """A worker's view of the run's merge gate (see the module's docstring)."""

    def __init__(
        self,
        clone: Path,
        bus: Bus,
        fetcher: Fetcher,
        *,
        session: str,
        worker: str,
        into: str | None,
        confirm: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`session`: the workstream this worker runs (the only one that merges here);
        `confirm`: that it still holds the workstream's lease (else it must stop)."""
        super().__init__(clone, bus.run_id, base_commit=bus.run.base_commit or "", into=into)
        self.bus = bus
        self.session = session
        self.confirm = confirm
        self.fetcher = fetcher
        self.worker = worker

    async def prepare(self) -> None:
        await self.tip()

    async def head(self) -> str:
        return await self.tip()

    async def tip(self) -> str:
        """The integration branch's tip on the remote (the run's base before the first
        merge, if the supervisor has not pushed it yet)."""
        found = (await self.fetcher.fetch(self.branch))[self.branch]
        return found or self.base_commit

    async def merge(
        self, branch: str, commit: str, *, owners: dict[str, str] | None = None
    ) -> MergeOutcome:
        """`commit` pushed as the remote's `branch`, merged by the supervisor's gate; its
        outcome, with the integration branch's new tip fetched into the clone."""
        for attempt in range(1, MERGE_TRIES + 1):
            answer = await self._ask(branch, commit, owners or {})
            if "refused" not in answer:
                outcome = outcome_from_json(answer)
                break
            if not answer.get("retry") or attempt == MERGE_TRIES:
                raise InvalidInput(f"the merge gate refused {branch}: {answer['refused']}")
            await anyio.sleep(RETRY_SECONDS * attempt)
        await self.tip()  # its objects, for what the worker counts of the merge
        return outcome

    async def _ask(self, branch: str, commit: str, owners: dict[str, str]) -> dict[str, Any]:
        """One merge request, its commit pushed first (the lease confirmed before): the
        gate's answer."""
        bus = self.bus
        if self.confirm is not None:
            await self.confirm()
        await self.fetcher.push(branch, commit)
        asked = await work_queue.request_merge(
            bus, self.session, branch=branch, commit=commit, owners=owners, worker=self.worker
        )
        while (answer := await work_queue.merge_answer(bus, asked)) is None:
            await bus.wait_for_change(ANSWER_POLL)
        return answer
