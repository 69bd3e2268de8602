"""A run's session trees: one per session, each with a git repository of its own.

A session works in `.conductor/worktrees/<run>/<session>` on branch `conductor/<run>-<session>`
(beside the run's integration branch `conductor/<run>`, not under it: git cannot hold both
`conductor/<run>` and `conductor/<run>/A`). The tree is a working tree of the session's own,
with its own repository in `.git/` that borrows the main repository's objects read-only
(`objects/info/alternates`): the session's commits, refs, index and reflog are its own, and
nothing it does to them can touch the main repository's refs, objects, config or hooks, or
another session's branch. That is what lets the jail keep the main repository read-only
while `git add -A && git commit` still works in the session. The gate takes a session's
work by fetching its branch into the main repository (`collect`), where only conductor
writes.

A tree is made in a folder beside its final place and renamed into it once whole, so a
crash while making it leaves nothing that looks like a tree; a tree is reused only when its
repository and branch are there. Both names derive from the run and session ids, which
follow strict patterns, so the same run and session always find the same tree again.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from conductor import gitops
from conductor.errors import ConductorError, InvalidInput
from conductor.jail import command_jail, scrubbed_env, short_tmp
from conductor.leftovers import supervised_env
from conductor.models import check_run_id, check_session_name
from conductor.paths import normalize
from conductor.workspace import STATE_DIR, ensure_state_dir
from conductor.worktrees.repo import (
    TORN_WRITE,
    collect,
    head_of,
    is_whole,
    own_repo,
    share_ref,
    tidy_after_death,
    uncommitted,
)

# What `worktrees.X` names: making and cleaning a run's trees, and (from `repo`) git in a
# session's own repository, found here as it always was.
__all__ = [
    "READY_SUFFIX",
    "SANDBOX_PLACEHOLDERS",
    "SETUP_TIMEOUT",
    "TORN_WRITE",
    "Bootstrap",
    "CleanReport",
    "PreparedTree",
    "SetupFailed",
    "clean",
    "collect",
    "ensure_session_repo",
    "head_of",
    "is_whole",
    "prepare",
    "run_worktrees",
    "session_branch",
    "share_ref",
    "tidy_after_death",
    "uncommitted",
    "worktree_path",
]

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


# Claude Code's Bash sandbox puts placeholders (device nodes, a folder) for the files it
# protects into the working directory while a command runs: `git add -A` inside that command
# would trip over them ("can only add regular files"). Untracked, they are ignored here; the
# session cannot change this file (the jail keeps `.git/info/` read-only).
SANDBOX_PLACEHOLDERS = (
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".zlogout",
    ".cshrc",
    ".tcshrc",
    ".kshrc",
    ".login",
    ".logout",
    ".gitconfig",
    ".gitmodules",
    ".ripgreprc",
    ".mcp.json",
    ".idea",
    ".vscode",
    # Claude Code's own folder (hooks, settings, skills, commands, agents, ... as placeholders,
    # and its write log): configuration of the CLI, not of the project a session builds.
    ".claude",
)
READY_SUFFIX = ".bootstrapped"  # beside the tree, where its session cannot remove it


@dataclass(frozen=True)
class PreparedTree:
    path: Path
    branch: str
    created: bool
    copied: list[str] = field(default_factory=list)


async def prepare(
    repo: Path,
    run_id: str,
    session: str,
    base: str,
    bootstrap: Bootstrap = Bootstrap(),
    *,
    jailed: bool = False,
) -> PreparedTree:
    """Make (or reuse) the session's tree; bootstrap it when it is new, or when its bootstrap
    never finished (a failing setup command, a Ctrl-C during it): a resumed run must not
    start a session in a tree whose setup was cut short. `jailed`: the setup command runs in
    the jail, since it runs in a tree a session may have written."""
    ensure_state_dir(repo)  # the trees live in .conductor/: it must be ignored before they exist
    path = worktree_path(repo, run_id, session)
    branch = session_branch(run_id, session)
    created = await ensure_session_repo(repo, path, branch, base)
    copied: list[str] = []
    ready = path.with_name(f".{path.name}{READY_SUFFIX}")
    if created:
        ready.unlink(missing_ok=True)
    if not ready.exists():  # new, or its setup was cut short or failed
        copied = _copy_files(repo, path, bootstrap.copy_files)
        if bootstrap.setup:
            await _run_setup(path, list(bootstrap.setup), run_id, jailed=jailed)
        ready.touch()
    return PreparedTree(path, branch, created, copied)


async def ensure_session_repo(repo: Path, path: Path, branch: str, base: str) -> bool:
    """The session's tree at `path` with `branch` checked out; returns whether it was made.

    Reused when whole. Made from the session's branch as the gate last collected it when
    there is one (a tree whose folder went away keeps what the gate took of it), else from
    `base`. A tree that is there but not whole is moved aside, never deleted."""
    path = Path(os.path.abspath(path))
    if await is_whole(path, branch):
        return False
    if path.exists():
        path.rename(path.with_name(f"{path.name}.broken-{int(time.time())}"))
    start = await gitops.try_rev_parse(f"refs/heads/{branch}", repo) or base
    partial = path.with_name(f".{path.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # what a crash while making it left
    partial.mkdir(parents=True)
    objects = await _common_dir(repo)
    await gitops.git(["init", "--quiet", "--template=", f"--initial-branch={branch}"], partial)
    git_dir = partial / ".git"
    (git_dir / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (git_dir / "objects" / "info" / "alternates").write_text(f"{objects / 'objects'}\n")
    (git_dir / "info").mkdir(exist_ok=True)
    (git_dir / "info" / "exclude").write_text(
        "# conductor: the Bash sandbox's placeholders, never committed\n"
        + "".join(f"/{name}\n" for name in SANDBOX_PLACEHOLDERS)
    )
    (git_dir / "hooks").mkdir(exist_ok=True)
    await gitops.git([*own_repo(partial), "update-ref", f"refs/heads/{branch}", start], partial)
    await gitops.git([*own_repo(partial), "reset", "--quiet", "--hard", branch], partial)
    partial.rename(path)
    return True


_COMMON_DIRS: dict[Path, Path] = {}


async def _common_dir(repo: Path) -> Path:
    """The main repository's git directory, whose objects every session tree borrows: asked
    of git once per repository and process (it does not move while a run goes on)."""
    if repo not in _COMMON_DIRS:
        argv = ["rev-parse", "--path-format=absolute", "--git-common-dir"]
        _COMMON_DIRS[repo] = Path((await gitops.git(argv, repo)).text)
    return _COMMON_DIRS[repo]


def _inside(target: Path, tree: Path) -> bool:
    """Whether `target`'s folder really is inside `tree` (no link of the session's leads out)."""
    real = Path(os.path.realpath(target.parent))
    return real == Path(os.path.realpath(tree)) or Path(os.path.realpath(tree)) in real.parents


def _copy_files(repo: Path, tree: Path, names: Sequence[str]) -> list[str]:
    copied = []
    for name in names:
        rel = normalize(name, repo)
        source = repo / rel
        if not source.exists():
            continue  # optional by nature: a .env that this checkout does not have
        target = tree / rel
        if not _inside(target, tree):
            continue  # a link the session made in the way: copy nothing through it
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        elif source.is_dir() and target.is_dir():
            shutil.rmtree(target)  # afresh: never copied into through a link inside it
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
        else:
            shutil.copy2(source, target)
        copied.append(rel)
    return copied


async def _run_setup(tree: Path, argv: list[str], run_id: str, *, jailed: bool) -> None:
    env = scrubbed_env(supervised_env(run_id))
    if jailed:
        argv = command_jail(tree, short_tmp(tree)).argv(argv)
    try:
        with anyio.fail_after(SETUP_TIMEOUT):
            done = await anyio.run_process(argv, cwd=tree, check=False, env=env)
    except FileNotFoundError:
        raise SetupFailed(f"setup command not found: {argv[0]}") from None
    except TimeoutError:
        raise SetupFailed(f"setup command timed out after {SETUP_TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()[-1:]
        raise SetupFailed(f"setup command failed ({done.returncode}): {' '.join(tail)}")


def _trees_root(repo: Path, run_id: str) -> Path:
    return repo / STATE_DIR / "worktrees" / check_run_id(run_id)


async def run_worktrees(repo: Path, run_id: str) -> list[gitops.Worktree]:
    """The run's session trees, by name (not the integration tree, not leftovers)."""
    root = _trees_root(repo, run_id)
    found = []
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if path.name.startswith(".") or ".broken-" in path.name:
                continue
            branch = session_branch(run_id, path.name)
            found.append(gitops.Worktree(path, await head_of(path, branch), branch))
    return found


@dataclass
class CleanReport:
    removed_worktrees: list[Path] = field(default_factory=list)
    kept_worktrees: list[tuple[Path, str]] = field(default_factory=list)
    deleted_branches: list[str] = field(default_factory=list)
    kept_branches: list[tuple[str, str]] = field(default_factory=list)


async def clean(repo: Path, run_id: str, *, into: str, force: bool = False) -> CleanReport:
    """Remove a run's trees and its branches merged into `into`. A tree's branch is collected
    into the main repository first, so removing the tree loses no commit; trees with
    uncommitted changes and unmerged branches stay unless `force`."""
    if await gitops.try_rev_parse(into, repo) is None:
        raise InvalidInput(f"{into} does not name a commit")
    report = CleanReport()
    for tree in await run_worktrees(repo, run_id):
        assert tree.branch is not None
        if not force and await uncommitted(tree.path):
            report.kept_worktrees.append((tree.path, "uncommitted changes (use --force)"))
            continue
        if tree.head is not None:
            await collect(repo, tree.path, tree.branch)
        shutil.rmtree(tree.path)
        tree.path.with_name(f".{tree.path.name}{READY_SUFFIX}").unlink(missing_ok=True)
        report.removed_worktrees.append(tree.path)
    integration = _trees_root(repo, run_id) / ".integration"
    if integration.exists():
        await gitops.remove_worktree(repo, integration, force=True)
    await gitops.git(["worktree", "prune"], repo)
    kept = {str(p) for p, _ in report.kept_worktrees}
    in_use = {session_branch(run_id, Path(p).name) for p in kept}
    for branch in await gitops.branches(repo, f"conductor/{run_id}-*"):
        if branch in in_use:
            report.kept_branches.append((branch, "its worktree was kept"))
        elif force or await gitops.is_merged(repo, branch, into):
            await gitops.delete_branch(repo, branch)
            report.deleted_branches.append(branch)
        else:
            report.kept_branches.append((branch, f"not merged into {into} (use --force)"))
    return report
