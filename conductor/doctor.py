"""`conductor doctor`: whether this machine and this repository can run conductor, checked
the way `conductor run` would meet each thing, before a run meets it halfway through.

Every check looks and changes nothing: no folder, database or file is created, no model is
called. Each gives one line, and the fix when it fails. A check that cannot apply here (no
repository around the current directory, say) is skipped, which is not a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from conductor import credentials, gitops, jail
from conductor.errors import ConductorError, NotARepository
from conductor.store.interface import is_url, server_of, unreachable
from conductor.workspace import (
    CONFIG_NAME,
    DB_ENV,
    DB_KEY,
    DB_NAME,
    STATE_DIR,
    configured_db,
    database_location,
)

if TYPE_CHECKING:
    from conductor.config import Config

Status = Literal["ok", "fail", "skip"]

# `git merge-tree --write-tree`, which the merge gate merges with, came in git 2.38.
GIT_NEEDED = (2, 38)
GIT_TIMEOUT = 10.0
CLI_TIMEOUT = 30.0  # a cold start of the bundled CLI reads a few hundred MB from disk
PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, how it went, and what to do about it."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def line(self) -> str:
        mark = {"ok": "ok", "fail": "FAIL", "skip": "-"}[self.status]
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{mark:<5} {self.name}: {self.detail}{fix}"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Place:
    """Where the checks look: the current directory, and the database a command would use."""

    cwd: Path
    db: str | None  # --db, else CONDUCTOR_DB, else None (the repository's .conductor/)


def examine(place: Place, env: Mapping[str, str] | None = None) -> list[Check]:
    """Every check, in the order a person reads them: the tools, then the repository."""
    env = os.environ if env is None else env
    git = check_git()
    repo_line, repo = check_repository(place.cwd, git_works=not git.failed)
    config_line, config = check_config(repo)
    sandboxed = config.sandbox if config is not None else True
    config_env: Mapping[str, str] = config.env if config is not None else {}
    jail_line = check_sandbox(sandboxed, config_env)
    return [
        git,
        repo_line,
        check_cli(),
        check_credentials({**env, **config_env}),
        jail_line,
        check_bash_sandbox(sandboxed, jail_works=not jail_line.failed),
        *check_state(repo, place.db),
        config_line,
    ]


# ------------------------------------------------------------------------------ the tools


def check_git() -> Check:
    found = shutil.which("git")
    needed = ".".join(map(str, GIT_NEEDED))
    fix = f"install git {needed} or newer and put it on PATH"
    if found is None:
        return Check("git", "fail", "not found on PATH", fix)
    try:
        done = subprocess.run(
            [found, "--version"], capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return Check("git", "fail", f"{found} does not start: {_reason(err)}", fix)
    version = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", done.stdout)
    if done.returncode != 0 or version is None:
        said = _last_line(done.stderr or done.stdout) or f"exit {done.returncode}"
        return Check("git", "fail", f"{found} --version failed: {said}", fix)
    if (int(version[1]), int(version[2])) < GIT_NEEDED:
        return Check(
            "git",
            "fail",
            f"{version[0]} at {found} is too old: the merge gate needs git merge-tree"
            f" --write-tree, from git {needed}",
            fix,
        )
    return Check("git", "ok", f"{version[0]} at {found}")


def check_cli() -> Check:
    """The Claude Code CLI every session runs: the one claude-agent-sdk bundles (else
    `claude` on PATH, as the SDK itself would pick), asked for its version."""
    name = "Claude Code CLI"
    fix = "reinstall conductor (claude-agent-sdk's wheel bundles the CLI)"
    try:
        cli = jail.bundled_cli()
    except (ConductorError, ImportError) as err:
        return Check(name, "fail", str(err), fix)
    env = {k: v for k, v in os.environ.items() if k != "CLAUDECODE"}  # not refused as nested
    env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
    try:
        done = subprocess.run(
            [str(cli), "--version"],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=CLI_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Check(name, "fail", f"{cli} --version gave no answer in {CLI_TIMEOUT:g} s", fix)
    except OSError as err:
        return Check(name, "fail", f"{cli} does not start: {_reason(err)}", fix)
    if done.returncode != 0:
        said = _last_line(done.stderr or done.stdout) or "no output"
        return Check(name, "fail", f"{cli} --version failed (exit {done.returncode}): {said}", fix)
    return Check(name, "ok", f"{_last_line(done.stdout)} at {cli}")


def check_credentials(env: Mapping[str, str]) -> Check:
    """What `conductor run` requires before it starts (credentials.require_credentials), and
    the login's expiry, which the planner (never jailed) would otherwise meet. Found is not
    valid: no request is made to tell."""
    name = "credentials"
    named = [v for v in credentials.ENVIRONMENT_CREDENTIALS if env.get(v)]
    if named:
        return Check(name, "ok", f"{', '.join(named)} set in the environment")
    login = credentials.find_login(env)
    if login is None:
        return Check(name, "fail", credentials.NO_CREDENTIALS)
    try:
        credentials.token_env(login)
    except ConductorError as err:
        return Check(name, "fail", str(err))
    return Check(name, "ok", f"the Claude Code login in {login.path}")


def check_sandbox(sandboxed: bool, config_env: Mapping[str, str]) -> Check:
    """The OS boundary around each session, as `conductor run` checks it before starting."""
    name = "sandbox"
    if not sandboxed:
        try:
            jail.refuse_root_unsandboxed(False, config_env)
        except ConductorError as err:
            return Check(name, "fail", f"off in conductor.toml, and {err}")
        return Check(
            name, "ok", "off in conductor.toml: sessions are held by the hooks and gates alone"
        )
    reason = jail.unavailable_reason()
    if reason is not None:
        return Check(name, "fail", reason)
    if not jail.jails_supported():
        return Check(name, "ok", "Claude Code's own sandbox (Seatbelt) around Bash")
    return Check(name, "ok", "bubblewrap makes a jail for each session's CLI")


def check_bash_sandbox(sandboxed: bool, *, jail_works: bool) -> Check:
    """Claude Code's own Bash sandbox runs inside conductor's jail: a second bubblewrap,
    with no network and its own processes, nested in the first. Some kernels and
    containers allow one user namespace and not two."""
    name = "Bash sandbox"
    if not sandboxed:
        return Check(name, "skip", "off in conductor.toml")
    if not jail_works:
        return Check(name, "skip", "needs the sandbox above first")
    if not jail.jails_supported():
        return Check(name, "ok", f"Claude Code's built-in sandbox on {sys.platform}")
    inner = [jail.BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-net"]
    inner += ["--unshare-pid", "--proc", "/proc", "--", "true"]
    argv = jail.Jail(writable=(), own_processes=False).argv(inner)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        failed = _reason(err)
    else:
        if done.returncode == 0:
            return Check(name, "ok", "Claude Code's bubblewrap sandbox works inside the jail")
        failed = _last_line(done.stderr) or f"exit {done.returncode}"
    return Check(
        name,
        "fail",
        f"bubblewrap inside bubblewrap fails here ({failed})",
        "allow nested user namespaces (sysctl user.max_user_namespaces), or set"
        " sandbox = false in conductor.toml",
    )


# ------------------------------------------------------------------------------ the repository


def check_repository(cwd: Path, *, git_works: bool) -> tuple[Check, Path | None]:
    name = "git repository"
    if not git_works:
        return Check(name, "skip", "cannot tell without git"), None
    try:
        _, repo = gitops.roots_blocking(cwd)
    except (NotARepository, OSError, subprocess.TimeoutExpired):
        return (
            Check(
                name,
                "skip",
                f"{cwd} is not inside one: conductor run works inside a git repository, and"
                " the checks of one are skipped",
                "cd into your repository and run conductor doctor there",
            ),
            None,
        )
    return Check(name, "ok", str(repo)), repo


def check_config(repo: Path | None) -> tuple[Check, Config | None]:
    """conductor.toml, read by the loader `conductor run` uses, its complaint passed on."""
    from conductor.config import CONFIG_NAME, Config, load_config  # loads the SDK: not before

    if repo is None:
        return Check(CONFIG_NAME, "skip", "no repository"), None
    path = repo / CONFIG_NAME
    if not path.exists():
        return (
            Check(CONFIG_NAME, "ok", "none: the defaults apply (conductor init writes one)"),
            Config(),
        )
    try:
        config = load_config(repo)
    except (ConductorError, OSError, ValueError) as err:
        detail = " ".join(str(err).split()) if isinstance(err, ConductorError) else _reason(err)
        return Check(CONFIG_NAME, "fail", detail, f"edit {path}"), None
    return Check(CONFIG_NAME, "ok", f"{path} is valid"), config


def check_state(repo: Path | None, db: str | None) -> list[Check]:
    """`.conductor/` (plans, worktrees, the database), and a database named elsewhere (by
    --db, CONDUCTOR_DB or conductor.toml): can conductor write there, or reach it. What
    does not exist yet is not made: it is said that it will be."""
    checks = []
    named = f"{DB_ENV} or --db"
    if repo is None:
        checks.append(Check(f"{STATE_DIR}/", "skip", "no repository"))
    else:
        checks.append(_writable(f"{STATE_DIR}/", repo / STATE_DIR, folder=True))
        if db is None:
            # (A conductor.toml that cannot be read: its own check says what is wrong.)
            with contextlib.suppress(ConductorError):
                if (configured := configured_db(repo)) is not None:
                    db, named = database_location(configured, repo), f"{CONFIG_NAME} {DB_KEY}"
        if db is None:
            database = repo / STATE_DIR / DB_NAME
            if database.exists():
                checks.append(_writable("database", database, folder=False))
    if db is not None and is_url(db):
        checks.append(check_postgres(db, f"database ({named})"))
    elif db is not None:
        path = Path(os.path.abspath(os.path.expanduser(db)))
        checks.append(_writable(f"database ({named})", path, folder=False))
    return checks


def check_postgres(url: str, name: str) -> Check:
    """A PostgreSQL database: psycopg is there, and the server takes a login (a connection
    opened and closed: nothing is created)."""
    try:
        import psycopg
    except ImportError:
        from conductor.store import POSTGRES_EXTRA

        return Check(name, "fail", "PostgreSQL needs the postgres extra", POSTGRES_EXTRA)
    try:
        psycopg.connect(url, connect_timeout=int(PROBE_TIMEOUT)).close()
    except psycopg.Error as err:
        return Check(
            name,
            "fail",
            unreachable(url, err),
            "start the server or fix the URL (a password: PGPASSWORD or ~/.pgpass)",
        )
    return Check(name, "ok", f"PostgreSQL at {server_of(url)}, reachable")


def _writable(name: str, path: Path, *, folder: bool) -> Check:
    kind = "folder" if folder else "file"
    if path.exists():
        if path.is_dir() != folder:
            return Check(
                name, "fail", f"{path} is not a {kind}", f"move it away, conductor needs a {kind}"
            )
        if not _can_write(path if folder else path.parent) or not _can_write(path):
            return Check(
                name, "fail", f"{path} is not writable", f"make it writable: chmod u+w {path}"
            )
        return Check(name, "ok", f"{path} is writable")
    parent = _nearest_existing(path.parent)
    if not parent.is_dir():
        return Check(
            name, "fail", f"{path} cannot be created: {parent} is not a folder", f"fix {path}"
        )
    if not _can_write(parent):
        return Check(
            name,
            "fail",
            f"{path} cannot be created: {parent} is not writable",
            f"make it writable: chmod u+w {parent}",
        )
    return Check(name, "ok", f"{path} will be created by the first run")


def _can_write(path: Path) -> bool:
    # os.access answers for this process's user, and says no on a read-only file system.
    mode = os.W_OK | os.X_OK if path.is_dir() else os.W_OK
    return os.access(path, mode)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# ------------------------------------------------------------------------------ plumbing


def _last_line(text: str) -> str:
    return next((ln.strip() for ln in reversed(text.strip().splitlines()) if ln.strip()), "")


def _reason(err: BaseException) -> str:
    if isinstance(err, subprocess.TimeoutExpired):
        return f"no answer in {err.timeout:g} s"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.failed]
