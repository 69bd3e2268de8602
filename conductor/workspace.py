"""Where conductor's state lives: `.conductor/` at the main working tree's root.

Found from any subdirectory, and from inside a linked worktree, by asking git for the main
working tree (git itself walks up to find `.git`).

The database (the bus) is `.conductor/conductor.db` unless chosen elsewhere, first of:
`--db`, `CONDUCTOR_DB`, the key `db` in the repository's conductor.toml. Each is a SQLite
file's path or a PostgreSQL URL (`postgresql://...`), for a team across hosts. Only the
database moves: sessions' worktrees, transcripts, plans and the gate's tree stay in
`.conductor/`, on the machine that runs them.

Finding it creates nothing: a command that only reads must leave a repository (or a
mistyped `CONDUCTOR_DB`) as it found it. A command that writes asks for `create=True`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conductor import gitops
from conductor.errors import InvalidInput, NotARepository
from conductor.store.interface import is_url
from conductor.text import escape_controls

STATE_DIR = ".conductor"
DB_NAME = "conductor.db"
DB_ENV = "CONDUCTOR_DB"
# config.CONFIG_NAME, and the key in it that chooses the database. (Not imported from
# config: its checking machinery costs a hand command more than the rest of its start.)
CONFIG_NAME = "conductor.toml"
DB_KEY = "db"
# In the environment of every supervised session (and all it runs): the run it belongs to.
SUPERVISED_ENV = "CONDUCTOR_SUPERVISED"
# Beside it: the conductor process (supervisor or worker) that started it (`leftovers`).
OWNER_ENV = "CONDUCTOR_OWNER"
NAMED_AT_MOST = 5  # uncommitted paths named in a refusal; the rest are counted


@dataclass(frozen=True)
class Workspace:
    # The database: a SQLite file's absolute path, or a PostgreSQL URL (password and all:
    # print `conductor.store.shown(location)`). `Store.open(location)` opens either.
    location: str
    repo_root: Path | None  # the main working tree's root
    tree_root: Path | None  # the root of the tree the command runs in (maybe a linked worktree)
    cwd: Path

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database's file; None when the database is a PostgreSQL server."""
        return None if is_url(self.location) else Path(self.location)

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
    if override is not None:
        location = database_location(override)
    elif repo_root is not None:
        location = default_location(repo_root)
        if create and location == str(repo_root / STATE_DIR / DB_NAME):
            ensure_state_dir(repo_root)  # (before the database makes the folder)
    else:
        raise NotARepository(
            f"not a git repository: {cwd} (run conductor inside one, or pass --db)"
        )
    return Workspace(location=location, repo_root=repo_root, tree_root=tree_root, cwd=cwd)


def default_location(repo_root: Path) -> str:
    """The repository's database when neither --db nor CONDUCTOR_DB names one: the `db` of
    its conductor.toml, else `.conductor/conductor.db` (what a printed command need not
    name: `hints.db_unless_default`)."""
    configured = configured_db(repo_root)
    if configured is not None:
        return database_location(configured, repo_root)
    return str(repo_root / STATE_DIR / DB_NAME)


def database_location(given: str, base: Path | None = None) -> str:
    """A database as given (`--db`, CONDUCTOR_DB, conductor.toml): a URL as it is, a file's
    path made absolute (`~` expanded; a relative one from `base`, else the current folder)."""
    if is_url(given):
        return given
    return os.path.abspath((base or Path.cwd()) / os.path.expanduser(given))


def configured_db(repo_root: Path) -> str | None:
    """The `db` conductor.toml names, if any. Read here, without conductor.config's checks
    of every other setting (which `conductor run` and `doctor` make): a hand command only
    needs to know where the bus is, and must not fall back to another one quietly, so a
    file it cannot read is an error here too."""
    path = repo_root / CONFIG_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "it is not UTF-8 text"
        raise InvalidInput(f"cannot read {path}: {reason}") from None
    if DB_KEY not in text:  # (no need to parse a file that cannot name one)
        return None
    import tomllib

    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidInput(f"{path} is not valid TOML: {e}") from None
    value = data.get(DB_KEY)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"{path}: {DB_KEY} must be a SQLite file's path or a postgresql:// URL, not {value!r}"
        )
    return value


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
