"""Async git: every call an argument list, a timeout, and no editor or prompt to hang on.

Nothing here knows about sessions or the bus; callers compose these into flows. The
merges without a working tree are a part of their own (`merges`), importable from here.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from conductor import machine
from conductor.errors import GitError, NotARepository, git_error
from conductor.gitops.merges import (
    MergedTree,
    RefTip,
    changed_paths_each,
    commit_tree,
    is_object_id,
    merge_base,
    merge_tree,
    ref_tips,
    swap_refs,
)

if TYPE_CHECKING:
    from anyio.lowlevel import EventLoopToken

# What `gitops.X` names: its own, and the merges' (a part of their own, which calls `git`
# here), found here as they always were.
__all__ = [
    "DEFAULT_TIMEOUT",
    "GitResult",
    "MergedTree",
    "RefTip",
    "Worktree",
    "adds_nothing",
    "branch_exists",
    "branches",
    "changed_paths",
    "changed_paths_each",
    "commit",
    "commit_tree",
    "count_new",
    "current_branch",
    "delete_branch",
    "diff_range",
    "ensure_detached_worktree",
    "failure",
    "git",
    "has_staged_changes",
    "is_merged",
    "is_object_id",
    "main_root",
    "merge_base",
    "merge_bases",
    "merge_tree",
    "rebase_onto",
    "ref_tips",
    "remotes",
    "remove_worktree",
    "residue",
    "rev_parse",
    "roots_blocking",
    "swap_refs",
    "toplevel",
    "try_rev_parse",
    "upstream",
    "worktrees",
]


DEFAULT_TIMEOUT = 120.0

# Never wait on a person: no editor for rebase/merge messages, no credential prompt.
_GIT_ENV = {
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_MERGE_AUTOEDIT": "no",
}
# conductor's own git runs nothing a repository configured: no hooks, no fsmonitor command,
# and objects as they are, not as `refs/replace/` says. `-c` also reaches the git processes
# git starts itself (submodules), through GIT_CONFIG_PARAMETERS.
_UNTRUSTED_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")
_UNTRUSTED_ENV = {"GIT_NO_REPLACE_OBJECTS": "1"}


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace").strip()


async def git(
    args: Sequence[str],
    cwd: Path,
    *,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    trusted: bool = False,
    wrapper: Sequence[str] = (),
) -> GitResult:
    """Run `git ARGS` in `cwd`. Raises GitError on a non-zero exit when `check`.

    Only `trusted` calls (a person's own commit or push, by hand) run the repository's hooks
    and honour its replace refs; conductor's own git never does. `wrapper`: what git runs
    inside (a jail's `bwrap ... --`)."""
    full_env = {**os.environ, **_GIT_ENV, **(env or {})}
    argv = [*wrapper, "git", *args]
    if not trusted:
        argv = [*wrapper, "git", *_UNTRUSTED_CONFIG, *args]
        full_env.update(_UNTRUSTED_ENV)
    with anyio.fail_after(timeout):
        proc = await anyio.run_process(argv, cwd=cwd, env=full_env, check=False, input=input)
    result = GitResult(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))
    if check and result.returncode != 0:
        raise failure(args, result, cwd)
    return result


def failure(args: Sequence[str], result: GitResult, cwd: Path, why: str = "") -> GitError:
    """The error for a git command that failed (or whose output made no sense: `why`): a
    machine fault when git, or the disk it ran on, says it was one."""
    stderr = result.stderr or why
    return git_error(list(args), result.returncode or 1, stderr, machine.disk_trouble(cwd))


async def toplevel(cwd: Path) -> Path:
    """The root of the working tree (a linked worktree's own root inside one)."""
    result = await git(["rev-parse", "--show-toplevel"], cwd, check=False)
    if result.returncode != 0:
        raise NotARepository(f"not a git repository: {cwd}")
    return Path(result.text)


async def main_root(cwd: Path) -> Path:
    """The main working tree's root, also from inside a linked worktree."""
    result = await git(
        ["rev-parse", "--path-format=absolute", "--git-common-dir"], cwd, check=False
    )
    if result.returncode != 0:
        raise NotARepository(f"not a git repository: {cwd}")
    common = Path(result.text)
    return common.parent if common.name == ".git" else await toplevel(cwd)


async def current_branch(cwd: Path) -> str | None:
    """The checked-out branch, or None on a detached HEAD."""
    result = await git(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd, check=False)
    return result.text if result.returncode == 0 else None


async def rev_parse(ref: str, cwd: Path) -> str:
    return (await git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd)).text


async def try_rev_parse(ref: str, cwd: Path) -> str | None:
    result = await git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd, check=False)
    return result.text if result.returncode == 0 else None


async def diff_range(base: str, head: str, cwd: Path) -> bytes:
    """What `head` adds since it forked from `base` (three-dot), byte for byte."""
    args = ["diff", "--binary", "--no-ext-diff", "--no-textconv", f"{base}...{head}"]
    return (await git(args, cwd)).stdout


async def changed_paths(
    repo: Path, base: str, head: str, *, cwd: Path | None = None, forked: bool = False
) -> list[str]:
    """Every path in which `head` differs from `base` (the trees themselves; with `forked`,
    from where it forked from `base`, three-dot). A rename counts as both of its paths.
    `cwd`: a worktree of `repo` whose HEAD is meant."""
    span = [f"{base}...{head}"] if forked else [base, head]
    args = ["diff", "--name-only", "--no-renames", "--no-ext-diff", "-z", *span]
    out = await git(args, cwd or repo)
    return [p for p in out.stdout.decode("utf-8", "replace").split("\0") if p]


async def merge_bases(repo: Path, a: str, b: str) -> list[str]:
    """Every best common ancestor of `a` and `b` (more than one: a criss-cross history)."""
    out = await git(["merge-base", "--all", a, b], repo, check=False)
    return out.text.split()


async def adds_nothing(repo: Path, base: str, head: str) -> bool:
    """Whether `head` changes nothing since it forked from `base`: no commit of its own, or
    only commits that cancel out."""
    done = await git(["diff", "--quiet", "--no-renames", f"{base}...{head}"], repo, check=False)
    return done.returncode == 0


async def count_new(repo: Path, head: str, base: str) -> int:
    """Commits of `head` that `base` does not have, merges not counted."""
    out = await git(["rev-list", "--count", "--no-merges", head, "--not", base], repo)
    return int(out.text or 0)


async def has_staged_changes(cwd: Path) -> bool:
    result = await git(["diff", "--cached", "--quiet"], cwd, check=False)
    return result.returncode == 1


async def commit(message: str, cwd: Path, *, stage_all: bool = False) -> str:
    """Commit what is staged (everything, with `stage_all`); return the new commit's id.
    A person's commit by hand: the repository's hooks run, as with `git commit`."""
    if stage_all:
        await git(["add", "--all"], cwd, trusted=True)
    await git(["commit", "--quiet", "--file", "-"], cwd, input=message.encode(), trusted=True)
    return await rev_parse("HEAD", cwd)


async def upstream(cwd: Path) -> tuple[str, str] | None:
    """(remote, branch) the current branch tracks, if any."""
    result = await git(
        ["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"], cwd, check=False
    )
    if result.returncode != 0 or "/" not in result.text:
        return None
    remote, _, branch = result.text.partition("/")
    return remote, branch


async def remotes(cwd: Path) -> list[str]:
    return (await git(["remote"], cwd)).text.split()


async def rebase_onto(upstream_ref: str, cwd: Path) -> GitResult:
    """Rebase onto `upstream_ref`; a failed rebase is aborted so no tree is left mid-rebase."""
    result = await git(["rebase", upstream_ref], cwd, check=False)
    if result.returncode != 0:
        await git(["rebase", "--abort"], cwd, check=False)
        raise git_error(["rebase", upstream_ref], result.returncode, result.stderr or result.text)
    return result


# ------------------------------------------------------------------------------ worktrees


@dataclass(frozen=True)
class Worktree:
    path: Path
    head: str | None
    branch: str | None  # short name, None when detached
    prunable: bool = False


_worktree_locks: dict[tuple[str, EventLoopToken], anyio.Lock] = {}


@asynccontextmanager
async def _worktrees_changing(repo: Path) -> AsyncIterator[None]:
    """One change to a repository's worktrees at a time. git is not safe against itself
    here: a `worktree prune` or `list` that runs while another `worktree add` is half done
    fails ("failed to read .git/worktrees/C/commondir") or prunes the new tree, which is
    what sessions starting together used to hit. Per event loop, as anyio locks are."""
    from anyio.lowlevel import current_token  # here: a hand command never needs it

    key = (os.path.abspath(repo), current_token())
    lock = _worktree_locks.setdefault(key, anyio.Lock())
    async with lock:
        yield


async def worktrees(repo: Path) -> list[Worktree]:
    """Every worktree git knows of, the main one first (`git worktree list --porcelain`)."""
    async with _worktrees_changing(repo):
        return await _worktrees(repo)


async def _worktrees(repo: Path) -> list[Worktree]:
    out = (await git(["worktree", "list", "--porcelain"], repo)).stdout.decode()
    found = []
    for record in out.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in record.splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value
        if "worktree" not in fields:
            continue
        branch = fields.get("branch", "").removeprefix("refs/heads/") or None
        found.append(
            Worktree(Path(fields["worktree"]), fields.get("HEAD"), branch, "prunable" in fields)
        )
    return found


async def branch_exists(repo: Path, branch: str) -> bool:
    result = await git(
        ["show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], repo, check=False
    )
    return result.returncode == 0


async def ensure_detached_worktree(repo: Path, path: Path, ref: str) -> bool:
    """A worktree at `path` with `ref` checked out detached, unless one is there already
    (whatever it has checked out). Returns whether it was made."""
    path = Path(os.path.abspath(path))
    async with _worktrees_changing(repo):
        if path in {t.path for t in await _worktrees(repo) if not t.prunable}:
            return False
        await git(["worktree", "prune"], repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        await git(["worktree", "add", "--quiet", "--detach", str(path), ref], repo)
        return True


async def remove_worktree(repo: Path, path: Path, *, force: bool = False) -> None:
    async with _worktrees_changing(repo):
        await git(["worktree", "remove", *(["--force"] if force else []), str(path)], repo)


async def is_merged(repo: Path, branch: str, into: str) -> bool:
    """Whether every commit of `branch` is already in `into`."""
    result = await git(["merge-base", "--is-ancestor", branch, into], repo, check=False)
    return result.returncode == 0


async def delete_branch(repo: Path, branch: str) -> None:
    await git(["branch", "-D", branch], repo)


async def branches(repo: Path, pattern: str) -> list[str]:
    """Local branches matching a for-each-ref pattern (a glob, or a prefix up to a `/`)."""
    out = await git(["for-each-ref", "--format=%(refname:short)", f"refs/heads/{pattern}"], repo)
    return [b for b in out.text.splitlines() if b]


async def residue(tree: Path) -> list[str]:
    """What in a worktree differs from its index: tracked files changed or gone, and every
    other file or folder, ignored ones, empty folders and nested repositories included
    (`git status` shows no empty folder; `ls-files` without exclude patterns does). Changes
    are found by all of each file's stat data, ctime included, whatever the repository says."""
    args = [
        *("-c", "core.checkStat=default", "-c", "core.trustctime=true"),
        *("-c", "core.ignoreStat=false"),
        *("ls-files", "-z", "--modified", "--deleted", "--others", "--directory"),
    ]
    out = await git(args, tree)
    return [p for p in out.stdout.decode("utf-8", "replace").split("\0") if p]


def roots_blocking(cwd: Path, timeout: float = DEFAULT_TIMEOUT) -> tuple[Path, Path]:
    """(the working tree's root, the main working tree's root), as `toplevel` and
    `main_root` give them, from one git process waited for in this thread: for a hand
    command, which has no event loop to start for it."""
    argv = ["git", *_UNTRUSTED_CONFIG, "rev-parse", "--show-toplevel"]
    argv += ["--path-format=absolute", "--git-common-dir"]
    env = {**os.environ, **_GIT_ENV, **_UNTRUSTED_ENV}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=timeout)
    lines = done.stdout.decode("utf-8", "replace").rstrip("\n").split("\n")
    if done.returncode != 0 or len(lines) != 2:
        raise NotARepository(f"not a git repository: {cwd}")
    tree, common = Path(lines[0].strip()), Path(lines[1].strip())  # as `toplevel` reads them
    return tree, common.parent if common.name == ".git" else tree
