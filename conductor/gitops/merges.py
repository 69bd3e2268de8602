"""Merges without a working tree: `merge-tree` writes the merged tree, `commit-tree` the merge
commit, and `update-ref --stdin` moves refs by compare-and-swap. Each is one git process.

Every call goes through `gitops.git`, looked up when it runs: the one door to git.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conductor import gitops
from conductor.errors import GitError


@dataclass(frozen=True)
class RefTip:
    commit: str
    tree: str


async def ref_tips(repo: Path, refs: Sequence[str]) -> dict[str, RefTip | None]:
    """What each of `refs` (full names) points at, all read by one `git for-each-ref`: its
    commit and that commit's tree, or None when it points at something other than a commit.
    A ref that does not exist (or is broken) is left out; a symbolic one is read through."""
    fmt = "%(objecttype) %(objectname) %(tree) %(refname)"
    out = await gitops.git(["for-each-ref", f"--format={fmt}", *refs], repo)
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
    return (await gitops.git(["merge-base", a, b], repo)).text


@dataclass(frozen=True)
class MergedTree:
    tree: str  # with conflict markers in the conflicted files, if any
    conflicts: list[str]  # the conflicted paths; empty when the merge is clean


async def merge_tree(repo: Path, ours: str, theirs: str) -> MergedTree:
    """Merge two commits in the object store, as `git merge` would (every merge base, the
    same strategy), touching no working tree and no ref. Raises GitError when git cannot
    merge them at all (unrelated histories, say)."""
    args = ["merge-tree", "--write-tree", "-z", "--name-only", ours, theirs]
    done = await gitops.git(args, repo, check=False)
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
        raise gitops.failure(args, done, repo, "git merge-tree named no tree or no conflict")
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
    done = await gitops.git(args, repo, input=lines.encode(), check=False)
    if done.returncode != 0 or done.stderr.strip():  # (git says "error:" yet exits 0)
        raise gitops.failure(args, done, repo)
    parts = done.stdout.split(f"{end}\n".encode())
    if len(parts) != len(spans) + 1 or parts[-1]:
        raise gitops.failure(args, done, repo, "git diff-tree --stdin gave output of another shape")
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
    return (await gitops.git([*args, "-m", message], repo)).text


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
    done = await gitops.git(args, repo, input=f"start\n{lines}commit\n".encode(), check=False)
    return None if done.returncode == 0 else gitops.failure(args, done, repo)
