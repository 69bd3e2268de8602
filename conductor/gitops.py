"""Async git: every call an argument list, a timeout, and no editor or prompt to hang on.

Nothing here knows about sessions or the bus; callers compose these into flows.
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

if TYPE_CHECKING:
    from anyio.lowlevel import EventLoopToken

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


# ------------------------------------------------------------------------------ object-store merges
#
# A merge without a working tree: `merge-tree` writes the merged tree, `commit-tree` the merge
# commit, and `update-ref --stdin` moves refs by compare-and-swap. Each is one git process.


@dataclass(frozen=True)
class RefTip:
    commit: str
    tree: str


async def ref_tips(repo: Path, refs: Sequence[str]) -> dict[str, RefTip | None]:
    """What each of `refs` (full names) points at, all read by one `git for-each-ref`: its
    commit and that commit's tree, or None when it points at something other than a commit.
    A ref that does not exist (or is broken) is left out; a symbolic one is read through."""
    fmt = "%(objecttype) %(objectname) %(tree) %(refname)"
    out = await git(["for-each-ref", f"--format={fmt}", *refs], repo)
    wanted = set(refs)
    found: dict[str, RefTip | None] = {}
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        kind, oid, tree, name = line.split(" ", 3)
        if name in wanted:  # (a pattern also matches the refs under it)
            found[name] = RefTip(oid, tree) if kind == "commit" and tree else None
    return found


async def merge_base(repo: Path, a: str, b: str) -> str:
    """The best common ancestor of `a` and `b` (the first, when a criss-cross history has
    more: the one a three-dot diff uses). Raises GitError when they have none."""
    return (await git(["merge-base", a, b], repo)).text


@dataclass(frozen=True)
class MergedTree:
    tree: str  # with conflict markers in the conflicted files, if any
    conflicts: list[str]  # the conflicted paths; empty when the merge is clean


async def merge_tree(repo: Path, ours: str, theirs: str) -> MergedTree:
    """Merge two commits in the object store, as `git merge` would (every merge base, the
    same strategy), touching no working tree and no ref. Raises GitError when git cannot
    merge them at all (unrelated histories, say)."""
    args = ["merge-tree", "--write-tree", "-z", "--name-only", ours, theirs]
    done = await git(args, repo, check=False)
    # -z: the tree, NUL; when it conflicts, each conflicted path NUL-terminated, then an
    # empty field and git's messages (not read).
    fields = done.stdout.split(b"\0")
    tree = fields[0].decode("ascii", "replace")
    if not is_object_id(tree):
        tree = ""
    conflicts = []
    if done.returncode == 1:
        for raw in fields[1:]:
            if not raw:
                break
            conflicts.append(raw.decode("utf-8", "replace"))
    if done.returncode not in (0, 1) or (done.returncode == 1 and not conflicts) or not tree:
        raise failure(args, done, repo, "git merge-tree named no tree or no conflict")
    return MergedTree(tree, conflicts)


def is_object_id(text: str) -> bool:
    """Whether `text` is a full object id (SHA-1 or SHA-256, lower-case hex)."""
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


async def changed_paths_each(repo: Path, spans: Sequence[tuple[str, str]]) -> list[list[str]]:
    """For each `(old, new)` (two trees, or two commits), every path in which `new` differs
    from `old`, as `changed_paths` gives it; all of them from one `git diff-tree --stdin`.
    Both of a span must be full object ids of the same kind (git compares a commit with a
    commit, a tree with a tree)."""
    if not all(is_object_id(oid) for span in spans for oid in span):
        raise ValueError(f"not full object ids: {spans}")  # git would echo them as text
    # git echoes a line that is not an object id, so a line of our own, which no path can
    # contain (it is drawn at random now), ends each span's output.
    end = f"--end-{os.urandom(16).hex()}"
    lines = "".join(f"{new} {old}\n{end}\n" for old, new in spans)
    args = ["diff-tree", "--stdin", "-r", "--name-only", "--no-renames", "-z"]
    done = await git(args, repo, input=lines.encode(), check=False)
    if done.returncode != 0 or done.stderr.strip():  # (git says "error:" yet exits 0)
        raise failure(args, done, repo)
    parts = done.stdout.split(f"{end}\n".encode())
    if len(parts) != len(spans) + 1 or parts[-1]:
        raise failure(args, done, repo, "git diff-tree --stdin gave output of another shape")
    found = []
    for (old, new), part in zip(spans, parts, strict=False):
        # Each span's changes come after a header: the two trees and a newline (always), or
        # the commit and a NUL (only when something changed).
        for header in (f"{new} {old}\n".encode(), f"{new}\0".encode()):
            if part.startswith(header):
                part = part[len(header) :]
                break
        found.append([p.decode("utf-8", "replace") for p in part.split(b"\0") if p])
    return found


async def commit_tree(repo: Path, tree: str, parents: Sequence[str], message: str) -> str:
    """A commit of `tree` with `parents` (in order) and `message`, by the identity git is
    configured with, as `git merge` would make it; no ref moves."""
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    return (await git([*args, "-m", message], repo)).text


async def swap_refs(
    repo: Path, updates: Sequence[tuple[str, str, str]], message: str
) -> GitError | None:
    """Move each `(ref, new, old)` from `old` to `new` in one transaction: all of them, or,
    when any is not at its `old` (moved, deleted), none. Never through a symbolic ref: a ref
    that became one is itself replaced, not the ref it points at. Returns None when they
    moved, else git's error, unraised: a caller reads the refs to learn whether they had
    moved, which git's message does not say in a form to rely on."""
    lines = "".join(f"update {ref} {new} {old}\n" for ref, new, old in updates)
    args = ["update-ref", "--no-deref", "--stdin", "-m", message]
    done = await git(args, repo, input=f"start\n{lines}commit\n".encode(), check=False)
    return None if done.returncode == 0 else failure(args, done, repo)


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
