"""The merge gate: approved branches land one at a time, and only with the checks green.

Merges happen in an integration worktree on a detached HEAD at the integration branch's tip.
The checks run on the merged result there; only when they pass does the branch move, by a
compare-and-swap `update-ref` from the tip the merge started on. So the integration branch
never points at an unchecked commit, even if conductor dies in the middle; a conflict or a
red check is undone with `merge --abort` / `reset --hard`, leaving the worktree clean. A
branch whose commit is already in the integration branch is reported, never merged twice.

Nothing a session says is taken on its word; the gate re-checks the branch itself:
- a branch that changes a path another workstream owns or claimed goes back to its author
  (whatever wrote it: Write, Bash, a script);
- the gate keeps its own record of the integration tip it last wrote, in a ref beside the
  branch that moves with it in one transaction; a branch that moved any other way stops the
  merge (`TAMPERED`), and the run says so instead of reporting success;
- its git runs no hooks, fsmonitor or replace refs (gitops), and the checks run in the jail
  with only the integration tree writable and without the model API's credentials.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from subprocess import STDOUT

import anyio

from conductor import gitops, paths
from conductor.bus import Bus
from conductor.errors import git_error
from conductor.jail import command_jail, scrubbed_env, short_tmp
from conductor.leftovers import supervised_env
from conductor.models import Session, SessionKind, SessionStatus, check_run_id
from conductor.plan import REVIEWER_SUFFIX
from conductor.workspace import STATE_DIR, ensure_state_dir

CHECK_TIMEOUT = 900.0
PUSH_LOCK_WAIT = 120.0
OUTPUT_TAIL_LINES = 60


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
    """One serial queue per run: `await gate.merge(branch, commit)` from any task."""

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
        self.jailed = jailed
        self.record_ref = gate_record_ref(run_id)
        self.repo = repo
        self.run_id = check_run_id(run_id)
        self.base_commit = base_commit
        self.branch = into or integration_branch(run_id)
        self.checks = [shlex.split(c) for c in checks]
        self.check_timeout = check_timeout
        self.push = push
        self.tree = repo / STATE_DIR / "worktrees" / self.run_id / ".integration"
        self._queue = anyio.Lock()

    async def prepare(self) -> None:
        """The integration branch (from the run's base commit) and its worktree, clean."""
        ensure_state_dir(self.repo)
        if not await gitops.branch_exists(self.repo, self.branch):
            await gitops.git(["branch", self.branch, self.base_commit], self.repo)
        if await gitops.try_rev_parse(self.record_ref, self.repo) is None:
            # The first time this run's gate sees the branch: from here on it knows each tip.
            # (Create-only: a record another process made meanwhile is not overwritten.)
            tip = await self.head()
            await gitops.git(["update-ref", self.record_ref, tip, ""], self.repo)
        await gitops.ensure_detached_worktree(self.repo, self.tree, self.branch)
        await _reset(self.tree, self.branch)

    async def moved_outside(self) -> str | None:
        """Why the integration branch cannot be trusted, or None: it is where the gate left
        it."""
        tip = await gitops.try_rev_parse(self.branch, self.repo)
        recorded = await gitops.try_rev_parse(self.record_ref, self.repo)
        if tip is not None and tip == recorded:
            return None
        return (
            f"{self.branch} is at {(tip or 'nothing')[:12]} but the merge gate left it at"
            f" {(recorded or 'nothing')[:12]}: it was moved outside the gate"
        )

    async def head(self) -> str:
        return await gitops.rev_parse(self.branch, self.repo)

    async def merge(
        self, branch: str, commit: str, *, owners: dict[str, str] | None = None
    ) -> MergeOutcome:
        """Land `commit` (of `branch`). `owners`: the paths other workstreams own or claim
        (path -> owner); a branch that changes any of them is refused."""
        async with self._queue:
            await self.prepare()
            tip = await self.head()
            moved = await self.moved_outside()
            if moved is not None:
                return MergeOutcome(MergeStatus.TAMPERED, branch, commit, tip, output=moved)
            if await gitops.is_merged(self.repo, commit, tip):
                return MergeOutcome(MergeStatus.ALREADY_MERGED, branch, commit, tip)
            # What the branch changes since it forked (a conflict must not hide a foreign
            # path), and below, what the merge itself changes.
            forked = await gitops.changed_paths(self.repo, tip, commit, forked=True)
            if foreign := _owned(forked, owners or {}):
                return _foreign(branch, commit, tip, foreign)
            merged = await gitops.git(
                ["merge", "--no-ff", "--no-edit", "-m", f"Merge {branch} ({commit[:12]})", commit],
                self.tree,
                check=False,
            )
            if merged.returncode != 0:
                conflicts = (
                    await gitops.git(["diff", "--name-only", "--diff-filter=U"], self.tree)
                ).text.splitlines()
                await _reset(self.tree, tip)
                if not conflicts:
                    raise git_error(["merge", commit], merged.returncode, merged.stderr)
                return MergeOutcome(MergeStatus.CONFLICT, branch, commit, tip, conflicts)
            # Judged by what the merge does, not by what the branch says it changes (a
            # history with two merge bases shows one thing to a three-dot diff and does
            # another when merged): the paths the merge result changes against the tip.
            landing = await gitops.changed_paths(self.repo, tip, "HEAD", cwd=self.tree)
            if not landing:
                await _reset(self.tree, tip)
                return MergeOutcome(MergeStatus.NOTHING, branch, commit, tip)
            if foreign := _owned(landing, owners or {}):
                await _reset(self.tree, tip)
                return _foreign(branch, commit, tip, foreign)
            for argv in self.checks:
                ok, output = await self._check(argv)
                if not ok:
                    await _reset(self.tree, tip)
                    return MergeOutcome(
                        MergeStatus.CHECK_FAILED,
                        branch,
                        commit,
                        tip,
                        check=shlex.join(argv),
                        output=output,
                    )
            result = await gitops.rev_parse("HEAD", self.tree)
            # Compare-and-swap, of the branch and the gate's record of it in one transaction:
            # both move only if nobody moved the branch since `tip`, or neither does.
            await gitops.git(
                ["update-ref", "--stdin", "-m", f"conductor: merge {branch}"],
                self.repo,
                input=(
                    "start\n"
                    f"update refs/heads/{self.branch} {result} {tip}\n"
                    f"update {self.record_ref} {result} {tip}\n"
                    "commit\n"
                ).encode(),
            )
            pushed_to = await self._push() if self.push else None
            return MergeOutcome(MergeStatus.MERGED, branch, commit, result, pushed_to=pushed_to)

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
            "git.push",
            f"{self.branch} -> {remote}",
            {"branch": self.branch, "remote": remote},
        )
        return remote

    async def _check(self, argv: list[str]) -> tuple[bool, str]:
        env = scrubbed_env(supervised_env(self.run_id))
        tmp = short_tmp(self.tree)
        for leftover in tmp.iterdir():  # each check starts with an empty temporary dir
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        if self.jailed:
            argv = command_jail(self.tree, tmp).argv(argv)
        try:
            with anyio.fail_after(self.check_timeout):
                done = await anyio.run_process(
                    argv, cwd=self.tree, check=False, stderr=STDOUT, env=env
                )
        except FileNotFoundError:
            return False, f"{argv[0]}: command not found"
        except TimeoutError:
            return False, f"timed out after {self.check_timeout:.0f}s"
        text = done.stdout.decode("utf-8", "replace")
        tail = "\n".join(text.rstrip().splitlines()[-OUTPUT_TAIL_LINES:])
        return done.returncode == 0, tail


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


async def _reset(tree: Path, commit: str) -> None:
    """Back to `commit` with nothing half-merged: abort any merge, reset, drop strays:
    ignored files too, and (-ff) folders holding a repository of their own, so nothing a
    check planted reaches the next merge's checks."""
    await gitops.git(["merge", "--abort"], tree, check=False)
    await gitops.git(["reset", "--quiet", "--hard", commit], tree)
    await gitops.git(["clean", "-ffdqx"], tree)
    await gitops.git(["checkout", "--quiet", "--detach", commit], tree)


# ------------------------------------------------------------------------------ review gate


class ReviewPolicy(StrEnum):
    AGENT = "agent"  # a dedicated reviewer session per author
    PEER = "peer"  # another workstream's session
    HUMAN = "human"  # a person, through `conductor review approve/reject`
    AUTO = "auto"  # conductor approves at once (the merge gate's checks still apply)


HUMAN_REVIEWER = "human"
AUTO_REVIEWER = "auto"


def agent_reviewer(requester: str) -> str:
    """The reviewer session's id for an author: `A` is reviewed by `A-review`."""
    return f"{requester}{REVIEWER_SUFFIX}"


def reviewer_for(policy: ReviewPolicy, requester: str, sessions: Sequence[Session]) -> str:
    """Who reviews `requester`'s work. A peer is the next worker after the author that has not
    failed or stopped (round robin, so reviews spread); with no such peer, an agent reviews."""
    if policy is ReviewPolicy.AUTO:
        return AUTO_REVIEWER
    if policy is ReviewPolicy.HUMAN:
        return HUMAN_REVIEWER
    if policy is ReviewPolicy.PEER:
        workers = [s.name for s in sessions if s.kind is SessionKind.WORKER]
        if requester in workers:
            start = workers.index(requester)
            ring = workers[start + 1 :] + workers[:start]
            alive = {
                s.name
                for s in sessions
                if s.status not in (SessionStatus.FAILED, SessionStatus.STOPPED)
            }
            peer = next((w for w in ring if w in alive), None)
            if peer is not None:
                return peer
    return agent_reviewer(requester)
