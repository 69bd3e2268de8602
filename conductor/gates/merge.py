"""The merge gate: approved branches land one at a time, and only with the checks green.

Merges happen in the object store, as `git merge --no-ff` would make them but with no working
tree: `merge-tree` writes the merged tree (or names the conflicts), `commit-tree` the merge
commit (the tip first, then the branch). Only when the checks pass does the branch move, by a
compare-and-swap `update-ref` from the tip the merge was made on. So the integration branch
never points at an unchecked commit, even if conductor dies in the middle, and a conflict
leaves nothing to undo. A branch whose commit is already in the integration branch is
reported, never merged twice.

The checks run on the merge commit in one integration worktree (checks.py).

Nothing a session says is taken on its word; the gate re-checks the branch itself:
- a branch that changes a path another workstream owns or claimed goes back to its author
  (whatever wrote it: Write, Bash, a script), judged both by what it changed since it forked
  and by what merging it changes;
- the gate keeps its own record of the integration tip it last wrote, in a ref beside the
  branch that moves with it in one transaction, and the tip itself in memory between merges;
  a branch (or record) that moved any other way fails the compare-and-swap, or the read of
  both refs that every refusal makes, and stops the merge (`TAMPERED`): the run says so
  instead of reporting success;
- its git runs no hooks, fsmonitor or replace refs (gitops), and the checks run in the jail
  with only the integration tree writable and without the model API's credentials.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import anyio

from conductor import gitops, paths
from conductor.bus import Bus
from conductor.events import EventKind
from conductor.gates.checks import CHECK_TIMEOUT, IntegrationTree
from conductor.models import check_run_id
from conductor.workspace import ensure_state_dir

PUSH_LOCK_WAIT = 120.0


class MergeStatus(StrEnum):
    MERGED = "merged"
    ALREADY_MERGED = "already_merged"
    CONFLICT = "conflict"
    CHECK_FAILED = "check_failed"
    FOREIGN_PATHS = "foreign_paths"  # the branch changes paths other workstreams own
    NOTHING = "nothing"  # merged, it would change nothing on the integration branch
    TAMPERED = "tampered"  # the integration branch moved outside the gate


@dataclass(frozen=True)
class MergeOutcome:
    status: MergeStatus
    branch: str
    commit: str  # what was asked to land
    integration_head: str  # the integration branch's tip afterwards
    conflicts: list[str] = field(default_factory=list)
    foreign: dict[str, str] = field(default_factory=dict)  # path -> the workstream owning it
    check: str = ""
    output: str = ""
    pushed_to: str | None = None  # the remote the integration branch was pushed to


def integration_branch(run_id: str) -> str:
    return f"conductor/{check_run_id(run_id)}"


def gate_record_ref(run_id: str) -> str:
    """Where the gate keeps the integration tip it last wrote (outside refs/heads: no
    branch listing shows it, and only the gate writes it)."""
    return f"refs/conductor/runs/{check_run_id(run_id)}/integration"


class MergeGate:
    """One serial queue per run: `await gate.merge(branch, commit)` from any task.

    git processes per merge, when it lands: `merge-tree`, `commit-tree`, `update-ref` (3);
    with `owners`, also `merge-base` (the fork point, and whether the commit is in already)
    and one `diff-tree` for both path lists the ownership check reads (5); with checks, also a
    `checkout` of the worktree and an `ls-files` to see whether the checks left anything (a
    `clean` and a forced `checkout` follow only when they did). A refusal reads the two refs
    once more, so it too is judged against the branch as it is.

    Why not fewer with `owners`: the branch's own changes are listed from its fork point, and
    git finds that in a process of its own (`diff-tree --merge-base` finds it itself, but not
    with `--stdin`: the merge's changes would then need a second `diff-tree`); the merge's
    changes need the merged tree first; and neither list comes out of `merge-tree`,
    `commit-tree` or `update-ref`."""

    def __init__(
        self,
        repo: Path,
        run_id: str,
        *,
        base_commit: str,
        into: str | None = None,
        checks: Sequence[str] = (),
        check_timeout: float = CHECK_TIMEOUT,
        push: tuple[Bus, str] | None = None,
        jailed: bool = False,
    ) -> None:
        """`push=(bus, remote)`: after each merge, push the integration branch to `remote`
        holding the bus's git lock, as every other push in the run does. `jailed`: the checks
        run in the jail (see jail.py)."""
        self.record_ref = gate_record_ref(run_id)
        self.repo = repo
        self.run_id = check_run_id(run_id)
        self.base_commit = base_commit
        self.branch = into or integration_branch(run_id)
        self.checks = [shlex.split(c) for c in checks]
        self.push = push
        self.integration = IntegrationTree(
            repo, self.run_id, jailed=jailed, check_timeout=check_timeout
        )
        self.tree = self.integration.tree
        self._queue = anyio.Lock()
        self._ref = f"refs/heads/{self.branch}"
        # The tip the gate last read or wrote, both refs at it; None: read the refs first.
        self._tip: gitops.RefTip | None = None
        # Whether this gate has read its record: from then on a missing one was deleted.
        self._recorded = False

    async def prepare(self) -> None:
        """The integration branch (from the run's base commit) and the gate's record of it,
        read (or made); with checks, the integration worktree, made, or put back clean at
        the tip: whatever a killed supervisor left there (a merge half done, a check's
        files) is undone."""
        async with self._queue:
            self._tip = None
            self.integration.forget()
            ensure_state_dir(self.repo)
            found = await self._load()
            if self.checks:
                tip = found.get(self._ref)
                await self.integration.to(tip.commit if tip is not None else self._ref)

    async def moved_outside(self) -> str | None:
        """Why the integration branch cannot be trusted, or None: it is where the gate left
        it."""
        return self._moved(await gitops.ref_tips(self.repo, [self._ref, self.record_ref]))

    async def head(self) -> str:
        """The integration branch's tip as git has it now."""
        return await gitops.rev_parse(self.branch, self.repo)

    async def tip(self) -> str:
        """The integration tip the gate last read or wrote, with no git process: what a
        session is shown and reviewed against. Read from the branch when the gate knows
        none (before it first reads the refs, or after finding them moved)."""
        known = self._tip
        return known.commit if known is not None else await self.head()

    async def merge(
        self, branch: str, commit: str, *, owners: dict[str, str] | None = None
    ) -> MergeOutcome:
        """Land `commit` (of `branch`). `owners`: the paths other workstreams own or claim
        (path -> owner); a branch that changes any of them is refused."""
        async with self._queue:
            if self._tip is None:
                ensure_state_dir(self.repo)
                found = await self._load()
                if self._tip is None:
                    return self._tampered(branch, commit, found)
            outcome = await self._merge(branch, commit, self._tip, owners or {})
            outcome = replace(outcome, commit=commit)  # as it was asked for
            if outcome.status in (MergeStatus.MERGED, MergeStatus.TAMPERED):
                return outcome  # (judged by the compare-and-swap)
            # A refusal moves nothing; it is judged against the refs as they are now.
            found = await gitops.ref_tips(self.repo, [self._ref, self.record_ref])
            if self._moved(found) is not None:
                return self._tampered(branch, commit, found)
            return outcome

    async def _merge(
        self, branch: str, commit: str, tip: gitops.RefTip, owners: dict[str, str]
    ) -> MergeOutcome:
        if not gitops.is_object_id(commit):  # (callers pass one: a name costs a process)
            commit = await gitops.rev_parse(commit, self.repo)
        base = ""
        if owners:
            base = await gitops.merge_base(self.repo, tip.commit, commit)
            if base == commit:
                return MergeOutcome(MergeStatus.ALREADY_MERGED, branch, commit, tip.commit)
        merged = await gitops.merge_tree(self.repo, tip.commit, commit)
        changes = not merged.conflicts and merged.tree != tip.tree
        if owners:
            # What the branch changes since it forked (a conflict must not hide a foreign
            # path), and what the merge itself changes: judged by what the merge does, not by
            # what the branch says it changes (a history with two merge bases shows one thing
            # to a three-dot diff and does another when merged).
            spans = [(base, commit)] + ([(tip.tree, merged.tree)] if changes else [])
            forked, *landing = await gitops.changed_paths_each(self.repo, spans)
            if foreign := _owned(forked, owners):
                return _foreign(branch, commit, tip.commit, foreign)
            if landing and (foreign := _owned(landing[0], owners)):
                return _foreign(branch, commit, tip.commit, foreign)
        if merged.conflicts:
            return MergeOutcome(MergeStatus.CONFLICT, branch, commit, tip.commit, merged.conflicts)
        if not changes:  # the merge leaves the tip's tree as it is
            if not owners and await gitops.is_merged(self.repo, commit, tip.commit):
                return MergeOutcome(MergeStatus.ALREADY_MERGED, branch, commit, tip.commit)
            return MergeOutcome(MergeStatus.NOTHING, branch, commit, tip.commit)
        result = await gitops.commit_tree(
            self.repo, merged.tree, [tip.commit, commit], f"Merge {branch} ({commit[:12]})"
        )
        if self.checks:
            failed = await self.integration.run_checks(result, self.checks)
            if failed is not None:
                argv, output = failed
                return MergeOutcome(
                    MergeStatus.CHECK_FAILED,
                    branch,
                    commit,
                    tip.commit,
                    check=shlex.join(argv),
                    output=output,
                )
        # Compare-and-swap, of the branch and the gate's record of it in one transaction:
        # both move only if both are still at `tip`, the tip this merge was made on and
        # checked against, or neither does.
        refused = await gitops.swap_refs(
            self.repo,
            [(self._ref, result, tip.commit), (self.record_ref, result, tip.commit)],
            f"conductor: merge {branch}",
        )
        if refused is not None:
            found = await gitops.ref_tips(self.repo, [self._ref, self.record_ref])
            if self._moved(found) is None:
                raise refused  # not moved: git failed for a reason of its own
            return self._tampered(branch, commit, found)
        self._tip = gitops.RefTip(result, merged.tree)
        pushed_to = await self._push() if self.push else None
        return MergeOutcome(MergeStatus.MERGED, branch, commit, result, pushed_to=pushed_to)

    async def _load(self) -> dict[str, gitops.RefTip | None]:
        """Read the branch and the gate's record of it, in one git process, making what is
        missing: the branch at the base commit; the record where the branch is (the first
        time this run's gate sees the branch: from here on it knows each tip). The tip is
        trusted only when both agree. Returns what was read."""
        self._tip = None
        refs = [self._ref, self.record_ref]
        found = await gitops.ref_tips(self.repo, refs)
        if self._ref not in found or self.record_ref not in found:
            if self._ref not in found:
                await gitops.git(["branch", self.branch, self.base_commit], self.repo)
            if self.record_ref not in found and not self._recorded:
                # Create-only: a record another process made meanwhile is not overwritten.
                tip = await self.head()
                await gitops.git(["update-ref", self.record_ref, tip, ""], self.repo)
            found = await gitops.ref_tips(self.repo, refs)
        self._recorded = self._recorded or self.record_ref in found
        self._tip = found.get(self._ref) if self._moved(found) is None else None
        return found

    def _moved(self, found: dict[str, gitops.RefTip | None]) -> str | None:
        """Why the refs `found` say the branch moved outside the gate, or None: the branch
        and the gate's record of it agree (and are at the tip the gate knows, if it knows)."""
        tip, recorded = found.get(self._ref), found.get(self.record_ref)
        known = self._tip
        if tip is not None and tip == recorded and (known is None or tip == known):
            return None
        left = recorded if recorded != tip or known is None else known
        return (
            f"{self.branch} is at {(tip.commit if tip else 'nothing')[:12]} but the merge gate"
            f" left it at {(left.commit if left else 'nothing')[:12]}: it was moved outside"
            " the gate"
        )

    def _tampered(
        self, branch: str, commit: str, found: dict[str, gitops.RefTip | None]
    ) -> MergeOutcome:
        """The outcome for refs `found` moved outside the gate; the gate reads them again
        before its next merge (trusting them only if they are back where it left them)."""
        tip = found.get(self._ref)
        output = self._moved(found) or ""
        self._tip = None
        return MergeOutcome(
            MergeStatus.TAMPERED, branch, commit, tip.commit if tip else "", output=output
        )

    async def _push(self) -> str:
        assert self.push is not None
        bus, remote = self.push
        lease = await bus.acquire_lock("merge gate", wait_seconds=PUSH_LOCK_WAIT)
        try:
            await gitops.git(
                ["push", "--quiet", remote, f"refs/heads/{self.branch}:refs/heads/{self.branch}"],
                self.repo,
            )
        finally:
            await bus.release_lock(lease)
        await bus.record(
            None,
            EventKind.GIT_PUSH,
            f"{self.branch} -> {remote}",
            {"branch": self.branch, "remote": remote},
        )
        return remote


def _foreign(branch: str, commit: str, tip: str, foreign: dict[str, str]) -> MergeOutcome:
    return MergeOutcome(
        MergeStatus.FOREIGN_PATHS, branch, commit, tip, conflicts=sorted(foreign), foreign=foreign
    )


def _owned(changed: list[str], owners: dict[str, str]) -> dict[str, str]:
    """Which of `changed` another workstream owns: path -> owner."""
    found = {}
    for path in changed:
        owner = next((o for owned, o in owners.items() if paths.covers(owned, path)), None)
        if owner is not None:
            found[path] = owner
    return found
