"""Flows that join the bus to git: commit, push under the lock, pull, review from a branch.

These are what a session (or a person) does by hand between tasks; the supervisor of later
issues reuses them. A session that has a worktree recorded works there; otherwise the
command's own working tree is the session's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conductor import gitops, worktrees
from conductor.bus import Bus, MergeVerdict
from conductor.errors import InvalidInput
from conductor.events import CommitMade, EventKind, Pushed
from conductor.models import Review, Session
from conductor.worktrees import Bootstrap, PreparedTree

PUSH_LEASE_SECONDS = 300.0


def session_tree(session: Session, cwd: Path) -> Path:
    return Path(session.worktree) if session.worktree else cwd


async def session_head(bus: Bus, name: str, cwd: Path) -> tuple[str, str]:
    """(ref, commit) of the session's work: its recorded branch, else HEAD of its tree."""
    session = await bus.session(name)
    tree = session_tree(session, cwd)
    ref = session.branch or "HEAD"
    commit = await gitops.try_rev_parse(ref, tree)
    if commit is None:
        raise InvalidInput(f"session {name}: {ref} does not name a commit in {tree}")
    return ref, commit


async def commit(bus: Bus, name: str, message: str, cwd: Path, *, stage_all: bool) -> str:
    """Commit as `[Session NAME] message`; returns the new commit id."""
    if not message.strip():
        raise InvalidInput("empty commit message")
    tree = session_tree(await bus.session(name), cwd)
    if stage_all:
        await gitops.git(["add", "--all"], tree)
    if not await gitops.has_staged_changes(tree):
        raise InvalidInput("nothing staged to commit: stage files with git add, or pass --all")
    sha = await gitops.commit(f"[Session {name}] {message}", tree)
    await bus.record(name, EventKind.GIT_COMMIT, f"{sha[:12]} {message}", CommitMade(sha).to_json())
    return sha


@dataclass(frozen=True)
class PushResult:
    remote: str
    branch: str
    commit: str
    rebased: bool


async def _push_target(tree: Path) -> tuple[str, str, bool]:
    """(remote, branch, tracked): the upstream if set, else `origin` (or the only remote)."""
    branch = await gitops.current_branch(tree)
    if branch is None:
        raise InvalidInput("HEAD is detached: check out a branch to push")
    tracked = await gitops.upstream(tree)
    if tracked is not None:
        return tracked[0], tracked[1], True
    names = await gitops.remotes(tree)
    if not names:
        raise InvalidInput("no remote to push to: add one with git remote add")
    remote = "origin" if "origin" in names else names[0]
    return remote, branch, False


async def push(bus: Bus, name: str, cwd: Path, *, wait_seconds: float = 60.0) -> PushResult:
    """Take the lock, then fetch, rebase, push, release: the rebase happens inside the lock,
    and a failed rebase is aborted so the tree is never left mid-rebase."""
    tree = session_tree(await bus.session(name), cwd)
    remote, branch, tracked = await _push_target(tree)
    lease = await bus.acquire_lock(
        f"session {name}", lease_seconds=PUSH_LEASE_SECONDS, wait_seconds=wait_seconds
    )
    try:
        await gitops.git(["fetch", "--quiet", remote], tree)
        before = await gitops.rev_parse("HEAD", tree)
        remote_ref = f"refs/remotes/{remote}/{branch}"
        if await gitops.try_rev_parse(remote_ref, tree) is not None:
            await gitops.rebase_onto(remote_ref, tree)
        args = ["push", "--quiet", remote, f"HEAD:refs/heads/{branch}"]
        await gitops.git(
            args if tracked else [*args[:2], "--set-upstream", *args[2:]], tree, trusted=True
        )
        if not tracked:
            await gitops.git(["branch", "--set-upstream-to", f"{remote}/{branch}"], tree)
        sha = await gitops.rev_parse("HEAD", tree)
    finally:
        await bus.release_lock(lease)
    rebased = sha != before
    await bus.record(
        name,
        EventKind.GIT_PUSH,
        f"{branch} -> {remote} at {sha[:12]}",
        Pushed(branch, remote, sha).to_json(),
    )
    return PushResult(remote, branch, sha, rebased)


async def pull(bus: Bus, name: str, cwd: Path) -> str:
    """Fetch and rebase onto the upstream; a failed rebase is aborted. Returns the new head."""
    tree = session_tree(await bus.session(name), cwd)
    remote, branch, _ = await _push_target(tree)
    await gitops.git(["fetch", "--quiet", remote], tree)
    remote_ref = f"refs/remotes/{remote}/{branch}"
    if await gitops.try_rev_parse(remote_ref, tree) is not None:
        await gitops.rebase_onto(remote_ref, tree)
    return await gitops.rev_parse("HEAD", tree)


async def request_review(
    bus: Bus,
    requester: str,
    cwd: Path,
    *,
    reviewer: str | None = None,
    diff: bytes | None = None,
    base: str | None = None,
    commit: str | None = None,
    note: str = "",
) -> Review:
    """Ask for review of the session's head; without a diff, compute it against `base`
    (default: the commit the run started from, which, unlike a branch, does not move)."""
    session = await bus.session(requester)
    tree = session_tree(session, cwd)
    _, head = await session_head(bus, requester, cwd)
    if commit is not None:
        head = await gitops.try_rev_parse(commit, tree) or _bad_commit(commit)
    base = base or bus.run.base_commit or bus.run.base_ref
    if diff is None:
        if base is None:
            raise InvalidInput("no base to diff against: pass --base REF or a diff")
        diff = await gitops.diff_range(base, head, tree)
    return await bus.request_review(
        requester, commit=head, diff=diff, reviewer=reviewer, base=base, note=note
    )


async def place_session(
    bus: Bus,
    repo: Path,
    name: str,
    base: str,
    bootstrap: Bootstrap = Bootstrap(),
    *,
    jailed: bool = False,
) -> PreparedTree:
    """Give a session its worktree (made or reused) and record its branch and path on the bus,
    so every later command, tool and hook works in that tree."""
    tree = await worktrees.prepare(repo, bus.run_id, name, base, bootstrap, jailed=jailed)
    await bus.update(name, branch=tree.branch, worktree=str(tree.path))
    return tree


async def merge_ok(bus: Bus, name: str, cwd: Path) -> MergeVerdict:
    _, head = await session_head(bus, name, cwd)
    return await bus.merge_ok(name, head)


def _bad_commit(ref: str) -> str:
    raise InvalidInput(f"{ref} does not name a commit")
