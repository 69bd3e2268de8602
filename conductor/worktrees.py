"""A run's worktrees: one per session, on its own branch, known to the run and cleaned up.

Worktrees live in `.conductor/worktrees/<run>/<session>` (ignored by git with the rest of
`.conductor/`), on branches `conductor/<run>-<session>`: beside the run's integration branch
`conductor/<run>`, not under it (git cannot hold both `conductor/<run>` and
`conductor/<run>/A`). Both are derived from the run and
session ids, which follow strict patterns, so the same run and session always find the same
tree again: a re-run or a resume reuses it instead of failing with "already exists".
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from conductor import gitops
from conductor.errors import ConductorError, InvalidInput
from conductor.leftovers import supervised_env
from conductor.models import check_run_id, check_session_name
from conductor.paths import normalize
from conductor.workspace import STATE_DIR, ensure_state_dir

SETUP_TIMEOUT = 600.0


class SetupFailed(ConductorError):
    pass


def worktree_path(repo: Path, run_id: str, session: str) -> Path:
    return repo / STATE_DIR / "worktrees" / check_run_id(run_id) / check_session_name(session)


def session_branch(run_id: str, session: str) -> str:
    return f"conductor/{check_run_id(run_id)}-{check_session_name(session)}"


@dataclass(frozen=True)
class Bootstrap:
    """What a new worktree gets before its session starts: files git does not carry (`.env`)
    copied from the main tree, and a setup command (an argument list) run inside it."""

    copy_files: Sequence[str] = ()
    setup: Sequence[str] = ()


@dataclass(frozen=True)
class PreparedTree:
    path: Path
    branch: str
    created: bool
    copied: list[str] = field(default_factory=list)


async def prepare(
    repo: Path, run_id: str, session: str, base: str, bootstrap: Bootstrap = Bootstrap()
) -> PreparedTree:
    """Create (or reuse) the session's worktree; bootstrap it when it is new, or when its
    bootstrap never finished (a failing setup command, a Ctrl-C during it): a resumed run
    must not start a session in a tree whose setup was cut short."""
    ensure_state_dir(repo)  # the trees live in .conductor/: it must be ignored before they exist
    path = worktree_path(repo, run_id, session)
    branch = session_branch(run_id, session)
    tree, created = await gitops.ensure_worktree(repo, path, branch, base)
    copied: list[str] = []
    ready = await _ready_marker(tree.path)
    if created or not ready.exists():  # new, or its setup was cut short or failed
        copied = _copy_files(repo, tree.path, bootstrap.copy_files)
        if bootstrap.setup:
            await _run_setup(tree.path, list(bootstrap.setup), run_id)
        ready.touch()
    return PreparedTree(tree.path, branch, created, copied)


async def _ready_marker(tree: Path) -> Path:
    """Kept in the worktree's own git directory: out of the session's sight and its commits,
    and gone with the worktree."""
    git_dir = await gitops.git(["rev-parse", "--absolute-git-dir"], tree)
    return Path(git_dir.text) / "conductor-bootstrapped"


def _copy_files(repo: Path, tree: Path, names: Sequence[str]) -> list[str]:
    copied = []
    for name in names:
        rel = normalize(name, repo)
        source = repo / rel
        if not source.exists():
            continue  # optional by nature: a .env that this checkout does not have
        target = tree / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
        else:
            shutil.copy2(source, target)
        copied.append(rel)
    return copied


async def _run_setup(tree: Path, argv: list[str], run_id: str) -> None:
    try:
        with anyio.fail_after(SETUP_TIMEOUT):
            done = await anyio.run_process(argv, cwd=tree, check=False, env=supervised_env(run_id))
    except FileNotFoundError:
        raise SetupFailed(f"setup command not found: {argv[0]}") from None
    except TimeoutError:
        raise SetupFailed(f"setup command timed out after {SETUP_TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()[-1:]
        raise SetupFailed(f"setup command failed ({done.returncode}): {' '.join(tail)}")


async def run_worktrees(repo: Path, run_id: str) -> list[gitops.Worktree]:
    root = repo / STATE_DIR / "worktrees" / check_run_id(run_id)
    return [t for t in await gitops.worktrees(repo) if root in t.path.parents]


@dataclass
class CleanReport:
    removed_worktrees: list[Path] = field(default_factory=list)
    kept_worktrees: list[tuple[Path, str]] = field(default_factory=list)
    deleted_branches: list[str] = field(default_factory=list)
    kept_branches: list[tuple[str, str]] = field(default_factory=list)


async def clean(repo: Path, run_id: str, *, into: str, force: bool = False) -> CleanReport:
    """Remove a run's worktrees and its branches merged into `into`. Worktrees with
    uncommitted changes and unmerged branches stay unless `force`: nothing is lost silently."""
    if await gitops.try_rev_parse(into, repo) is None:
        raise InvalidInput(f"{into} does not name a commit")
    report = CleanReport()
    for tree in await run_worktrees(repo, run_id):
        if not force and not tree.prunable and await gitops.is_dirty(tree.path):
            report.kept_worktrees.append((tree.path, "uncommitted changes (use --force)"))
            continue
        await gitops.remove_worktree(repo, tree.path, force=True)
        report.removed_worktrees.append(tree.path)
    await gitops.git(["worktree", "prune"], repo)
    kept = {str(p) for p, _ in report.kept_worktrees}
    in_use = {t.branch for t in await gitops.worktrees(repo) if str(t.path) in kept}
    for branch in await gitops.branches(repo, f"conductor/{run_id}-*"):
        if branch in in_use:
            report.kept_branches.append((branch, "its worktree was kept"))
        elif force or await gitops.is_merged(repo, branch, into):
            await gitops.delete_branch(repo, branch)
            report.deleted_branches.append(branch)
        else:
            report.kept_branches.append((branch, f"not merged into {into} (use --force)"))
    return report
