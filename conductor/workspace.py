"""Where conductor's state lives: `.conductor/` at the main working tree's root.

Found from any subdirectory, and from inside a linked worktree, by asking git for the main
working tree (git itself walks up to find `.git`). `--db` or `CONDUCTOR_DB` override the
database location, for scripts and for use outside a repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from conductor import gitops
from conductor.errors import NotARepository

STATE_DIR = ".conductor"
DB_NAME = "conductor.db"
DB_ENV = "CONDUCTOR_DB"
# In the environment of every supervised session (and all it runs): the run it belongs to.
SUPERVISED_ENV = "CONDUCTOR_SUPERVISED"


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


async def locate(cwd: Path, db: str | None = None) -> Workspace:
    cwd = Path(os.path.abspath(cwd))
    try:
        tree_root: Path | None = await gitops.toplevel(cwd)
        repo_root: Path | None = await gitops.main_root(cwd)
    except NotARepository:
        tree_root = repo_root = None
    return _workspace(cwd, db, tree_root, repo_root)


def locate_blocking(cwd: Path, db: str | None = None) -> Workspace:
    """`locate` for a hand command, which has no event loop: one git process, waited for."""
    cwd = Path(os.path.abspath(cwd))
    try:
        tree_root: Path | None
        tree_root, repo_root = gitops.roots_blocking(cwd)
    except NotARepository:
        tree_root = repo_root = None
    return _workspace(cwd, db, tree_root, repo_root)


def _workspace(
    cwd: Path, db: str | None, tree_root: Path | None, repo_root: Path | None
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
        db_path = ensure_state_dir(repo_root) / DB_NAME
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
