"""Where conductor's state lives: `.conductor/` at the main working tree's root.

Found from any subdirectory, and from inside a linked worktree, by asking git for the main
working tree (git itself walks up to find `.git`). `--db` or `CONDUCTOR_DB` override the
database location, for scripts and for use outside a repository.

Finding it creates nothing: a command that only reads must leave a repository (or a
mistyped `CONDUCTOR_DB`) as it found it. A command that writes asks for `create=True`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from conductor import gitops
from conductor.errors import InvalidInput, NotARepository
from conductor.text import escape_controls

STATE_DIR = ".conductor"
DB_NAME = "conductor.db"
DB_ENV = "CONDUCTOR_DB"
# In the environment of every supervised session (and all it runs): the run it belongs to.
SUPERVISED_ENV = "CONDUCTOR_SUPERVISED"
NAMED_AT_MOST = 5  # uncommitted paths named in a refusal; the rest are counted


@dataclass(frozen=True)
class Workspace:
    db_path: Path
    repo_root: Path | None  # the main working tree's root
    tree_root: Path | None  # the root of the tree the command runs in (maybe a linked worktree)
    cwd: Path

    @property
    def path_root(self) -> Path:
        """What paths given on the command line are relative to, at the outermost."""
        return self.tree_root or self.repo_root or self.cwd


async def locate(cwd: Path, db: str | None = None, *, create: bool = False) -> Workspace:
    """Where the state of the repository around `cwd` lives; `create`: make `.conductor/`
    now when the database is to be kept there (for a command that writes it)."""
    cwd = Path(os.path.abspath(cwd))
    try:
        tree_root: Path | None = await gitops.toplevel(cwd)
        repo_root: Path | None = await gitops.main_root(cwd)
    except NotARepository:
        tree_root = repo_root = None
    return _workspace(cwd, db, tree_root, repo_root, create)


def locate_blocking(cwd: Path, db: str | None = None, *, create: bool = False) -> Workspace:
    """`locate` for a hand command, which has no event loop: one git process, waited for."""
    cwd = Path(os.path.abspath(cwd))
    try:
        tree_root: Path | None
        tree_root, repo_root = gitops.roots_blocking(cwd)
    except NotARepository:
        tree_root = repo_root = None
    return _workspace(cwd, db, tree_root, repo_root, create)


def _workspace(
    cwd: Path, db: str | None, tree_root: Path | None, repo_root: Path | None, create: bool
) -> Workspace:
    override = db or os.environ.get(DB_ENV) or None
    if repo_root is None and override is None:
        raise NotARepository(
            f"not a git repository: {cwd} (run conductor inside one, or pass --db)"
        )
    if override is not None:
        db_path = Path(os.path.abspath(os.path.expanduser(override)))
    else:
        assert repo_root is not None
        state = ensure_state_dir(repo_root) if create else repo_root / STATE_DIR
        db_path = state / DB_NAME
    return Workspace(db_path=db_path, repo_root=repo_root, tree_root=tree_root, cwd=cwd)


def ensure_state_dir(repo_root: Path) -> Path:
    """Create `.conductor/`, ignored by git through a `.gitignore` of its own, so the
    repository's own `.gitignore` is never touched."""
    state = repo_root / STATE_DIR
    state.mkdir(exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# conductor's state: never committed\n*\n")
    return state


async def refuse_uncommitted(repo: Path, *, besides: Path | None = None) -> None:
    """A run starts from HEAD, so changes not committed (untracked files too) would be left
    out of it without a word: refused, naming them, so the user need not guess which.
    `besides`: a file the run reads, not works on (the plan `--plan-only` saved there)."""
    ignored = []
    if besides is not None and besides.resolve().is_relative_to(repo.resolve()):
        ignored = ["--", ".", f":(exclude,literal){besides.resolve().relative_to(repo.resolve())}"]
    status = await gitops.git(["status", "--porcelain", "-z", *ignored], repo)
    changed = _status_paths(status.stdout)
    if changed:
        raise InvalidInput(
            f"the working tree has uncommitted changes: {_some(changed)}; commit or stash them"
            " (git stash -u takes untracked files too): a run starts from HEAD and would leave"
            " them out"
        )


def _status_paths(porcelain_z: bytes) -> list[str]:
    """The paths of `git status --porcelain -z`, untracked ones marked as such."""
    entries = iter(porcelain_z.decode("utf-8", "replace").split("\0"))
    paths = []
    for entry in entries:
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        paths.append(f"{path} (untracked)" if code == "??" else path)
        if "R" in code or "C" in code:
            next(entries, None)  # a rename's or copy's source follows it: the new name says it
    return paths


def _some(paths: list[str]) -> str:
    """The first few paths, written so a newline or escape in a name cannot break the line."""
    named = [escape_controls(p).replace("\n", "\\n").replace("\t", "\\t") for p in paths]
    more = len(named) - NAMED_AT_MOST
    if more <= 0:
        return ", ".join(named)
    return f"{', '.join(named[:NAMED_AT_MOST])} and {more} more"
