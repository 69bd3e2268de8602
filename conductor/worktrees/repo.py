"""git in a session's own repository: conductor's git there runs jailed where it can, with
the repository named outright (`own_repo`), because the session shapes that repository.

What the gate takes of a session's work (`collect`), what it shows a session (`share_ref`),
what a session left uncommitted, and what a killed one left half done (`tidy_after_death`).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from conductor import gitops
from conductor.jail import Jail, jails_supported, unavailable_reason


async def is_whole(path: Path, branch: str) -> bool:
    """Whether `path` holds a session tree to reuse: its own repository (not a linked
    worktree of the main one), its branch, and an index."""
    git_dir = path / ".git"
    if not (git_dir.is_dir() and (git_dir / "index").is_file()):
        return False
    return await head_of(path, branch) is not None


def can_jail() -> bool:
    return jails_supported() and unavailable_reason() is None


def own_repo(tree: Path) -> list[str]:
    """git's options that name a session tree's repository outright: git never goes looking
    (a tree without `.git` must not fall through to the main repository around it)."""
    return [f"--git-dir={tree / '.git'}", f"--work-tree={tree}"]


async def in_tree(
    tree: Path, args: list[str], *, writes: bool = False, check: bool = True
) -> gitops.GitResult:
    """conductor's git in a session's repository. The session shapes that repository (a
    `commondir` file it wrote sends git to other refs and config; a `.gitattributes` names
    filters), so where the jail can run, this git runs in one: reading, nothing is writable
    to it; writing (`writes`), only the tree's own `.git`. A repository bent elsewhere then
    fails, harmlessly, instead of steering conductor."""
    wrapper: list[str] = []
    if can_jail():
        writable = (tree / ".git",) if writes else ()
        wrapper = Jail(writable=writable, chdir=tree, network=False).argv([])
    # GIT_COMMON_DIR overrides a `commondir` file planted in the repository.
    pinned = {"GIT_COMMON_DIR": str(tree / ".git")}
    return await gitops.git(
        [*own_repo(tree), *args], tree, check=check, wrapper=wrapper, env=pinned
    )


async def head_of(tree: Path, branch: str) -> str | None:
    """The tip of `branch` in a session's own repository."""
    result = await in_tree(
        tree, ["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"], check=False
    )
    return result.text if result.returncode == 0 else None


async def collect(repo: Path, tree: Path, branch: str) -> str:
    """Fetch the session's branch from its repository into the main one (the gate's copy,
    which only conductor writes); returns the commit. The `upload-pack` that serves the fetch
    reads the session's repository, so it runs jailed like all conductor's git there; the
    main repository checks what arrives (the fetch's connectivity check)."""
    upload_pack = ["git", "upload-pack"]
    if can_jail():
        upload_pack = Jail(writable=(), chdir=tree, network=False).argv(upload_pack)
    await gitops.git(
        [
            "fetch",
            f"--upload-pack={shlex.join(upload_pack)}",
            "--quiet",
            "--no-tags",
            "--no-recurse-submodules",
            "--no-write-fetch-head",
            str(tree / ".git"),
            f"+refs/heads/{branch}:refs/heads/{branch}",
        ],
        repo,
    )
    return await gitops.rev_parse(f"refs/heads/{branch}", repo)


async def share_ref(tree: Path, ref: str, commit: str) -> None:
    """Point `ref` in a session's repository at `commit` (whose objects it borrows): how a
    session sees the integration branch it must bring its branch up to date with."""
    await in_tree(tree, ["update-ref", f"refs/heads/{ref}", commit], writes=True)


# Claude Code writes a file as `<name>.tmp.<pid>.<12 hex>` and renames it into place: a CLI
# killed in between leaves that half of a write behind, which a later `git add -A` commits.
TORN_WRITE = re.compile(r"\.tmp\.\d+\.[0-9a-f]{12}$")


async def tidy_after_death(tree: Path) -> list[str]:
    """What a killed session left half done in its tree, removed before it starts again (no
    process of it is left to finish any of it): git's lock files, which would refuse its
    next commit, and the CLI's torn writes. Returns what went, relative to the tree."""
    removed = []
    git_dir = tree / ".git"
    for folder, dirs, files in os.walk(git_dir):  # never into linked folders
        if Path(folder) == git_dir:
            dirs[:] = [d for d in dirs if d != "objects"]
        for name in files:
            if name.endswith(".lock"):
                path = Path(folder) / name
                path.unlink(missing_ok=True)
                removed.append(str(path.relative_to(tree)))
    listed = await in_tree(tree, ["ls-files", "-z", "--others", "--exclude-standard"])
    real_tree = tree.resolve()
    for name in listed.stdout.decode("utf-8", "replace").split("\0"):
        if not name or not TORN_WRITE.search(name):
            continue
        path = tree / name
        # Only a regular file reached through folders of the tree itself, never a link's.
        through_links = path.parent.resolve() != (real_tree / name).parent
        if through_links or path.is_symlink() or not path.is_file():
            continue
        path.unlink(missing_ok=True)
        removed.append(name)
    return removed


async def uncommitted(tree: Path) -> list[str]:
    """What the session changed and did not commit (untracked files too, less what git
    ignores): `done` with any of it is refused."""
    out = await in_tree(
        tree, ["status", "--porcelain", "-z", "--ignore-submodules=all", "--untracked-files=all"]
    )
    entries = iter(out.stdout.decode("utf-8", "replace").split("\0"))
    found = set()
    for entry in entries:
        if len(entry) > 3:
            found.add(entry[3:])
            if "R" in entry[:2] or "C" in entry[:2]:
                found.add(next(entries, ""))  # a rename's or copy's source follows it
    return sorted(found - {""})
