"""The OS boundary around everything a session runs, and around what the gates run.

Two layers, each sound alone (see the README's enforcement model):

- **The jail** (this module, Linux): the session's whole Claude Code CLI process runs inside
  bubblewrap with the file system read-only except its own worktree (which holds its own git
  repository), its own Claude config dir and its own temporary dir. That covers what the
  CLI does itself (Write/Edit/NotebookEdit, the git it runs for its prompt, hooks it might
  load), not only Bash. It runs in a user namespace as a non-root uid without capabilities,
  so the mounts are locked: `mount -o remount,rw` and `unshare` cannot undo them (seen, and
  tested). Inside the worktree, the repository's `config`, `hooks/`, `info/` and
  `objects/info/` are bound read-only again: conductor wrote them, and it runs git there.
- **Claude Code's own Bash sandbox** inside it, for what the model runs: the same file
  system rules again, and no network except the domains `conductor.toml` allows.

Merge checks and setup commands, which run code a session wrote, go through the same jail
with only their own tree writable (they keep the network: a check may need a service).

Neither gets what logs in to a PostgreSQL server (the bus's, perhaps): no `PG...` variable, no
CONDUCTOR_DB with a password, libpq's password files shown empty. What a session can read, it
can commit, and its worker pushes that and the gate merges it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from conductor.errors import ConductorError
from conductor.private import (
    DATABASE_NAMES,
    browser_profiles,
    database_names,
    database_secret_files,
    is_database_variable,
)

if TYPE_CHECKING:  # the SDK takes most of a second to import: hand commands never need it
    from claude_agent_sdk.types import SandboxSettings

BWRAP = "bwrap"
SOCAT = "socat"
JAIL_UID = 1000  # the uid inside the jail when conductor runs as root: never root in there
GIT_PROTECTED = ("config", "hooks", "info", "objects/info")  # inside a session's .git

# What the model API needs, stripped from the environment of merge checks and setup
# commands: they run code a session wrote, which has no business with the key.
CREDENTIAL_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_OAUTH", "CLAUDE_CODE_USE_")
CREDENTIAL_NAMES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"}
    | {"GOOGLE_APPLICATION_CREDENTIALS", "CLOUD_ML_REGION", "ANTHROPIC_VERTEX_PROJECT_ID"}
)


class SandboxUnavailable(ConductorError):
    """The platform cannot give sessions the OS boundary (and conductor.toml did not say
    `sandbox = false`)."""


@dataclass(frozen=True)
class Jail:
    """Where a jailed process may write; everything else is read-only to it."""

    writable: tuple[Path, ...]
    read_only: tuple[Path, ...] = ()  # inside a writable path, bound read-only again
    # (outside file, where it appears inside): files shown read-only at another place
    shown: tuple[tuple[Path, Path], ...] = ()
    chdir: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()  # variables taken out of the environment inside
    hidden: tuple[Path, ...] = ()  # files shown empty inside (those that exist)
    hidden_dirs: tuple[Path, ...] = ()  # folders shown empty inside (those that exist)
    network: bool = True  # a session's CLI must reach the model API; conductor's git need not
    # A process namespace of its own with a fresh /proc: it sees and signals nothing of
    # conductor's, and everything in it dies with it. Not for a session's CLI: Claude Code's
    # sandbox inside mounts a /proc of its own, which the kernel allows only where the host's
    # is fully visible (the CLI's Bash gets its own process namespace from that sandbox).
    own_processes: bool = True

    def argv(self, command: Sequence[str]) -> list[str]:
        """`bwrap ... -- COMMAND`: the command inside the jail."""
        inside_uid = os.getuid() or JAIL_UID
        inside_gid = os.getgid() or JAIL_UID
        args = [
            BWRAP,
            "--unshare-user",
            "--uid",
            str(inside_uid),
            "--gid",
            str(inside_gid),
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            *(
                ["--unshare-pid", "--proc", "/proc"]
                if self.own_processes
                else ["--bind", "/proc", "/proc"]
            ),
            "--die-with-parent",
            "--new-session",
        ]
        if not self.network:
            args.append("--unshare-net")
        for path in self.writable:
            args += ["--bind", str(path), str(path)]
        for path in self.read_only:
            if path.exists():
                args += ["--ro-bind", str(path), str(path)]
        for outside, inside in self.shown:
            args += ["--ro-bind", str(outside), str(inside)]
        hidden = [p for p in self.hidden if p.is_file()]
        for path in hidden:  # after the writable binds: a file inside one is hidden too
            args += ["--ro-bind", str(empty_file()), str(path)]
        for path in self.hidden_dirs:
            if path.is_dir() and not path.is_symlink():
                args += ["--tmpfs", str(path)]
        for name in self.unset:
            args += ["--unsetenv", name]
        for key, value in self.env.items():
            args += ["--setenv", key, value]
        if self.chdir is not None:
            args += ["--chdir", str(self.chdir)]
        return [*args, "--", *command]

    def hiding_databases(self, env: Mapping[str, str], *, keep: Set[str] = frozenset()) -> Jail:
        """This jail without the database variables of `env` (but those in `keep`) inside,
        with the password files `env` names (or libpq's defaults) shown empty, and the
        person's browser profiles too (`browser_profiles`)."""
        names = tuple(n for n in database_names(env) if n not in keep)
        return replace(
            self,
            unset=names,
            hidden=database_secret_files(env),
            hidden_dirs=browser_profiles(env),
        )


def session_jail(
    worktree: Path,
    config_dir: Path,
    tmp: Path,
    *,
    writes_tree: bool = True,
    login: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Jail:
    """A session's jail: its worktree (with its own repository, less what git runs or
    trusts), its Claude config dir and its temporary dir are all it can write. A reviewer
    (`writes_tree=False`) reads its author's tree and writes none of it. `login`: the user's
    Claude Code credentials file, shown read-only where the CLI looks (credentials.py).
    `env`: what the CLI is started with over this process's environment (the SDK's merge):
    no database variable of either reaches inside, no password file either names is read."""
    started = {**os.environ, **(env or {})}
    git_dir = worktree / ".git"
    shown: tuple[tuple[Path, Path], ...] = ()
    if login is not None:
        shown = ((login, _mount_point(config_dir / login.name)),)
    return Jail(
        # `.git` and `.git/objects` bound at their own places too: a mount point cannot be
        # renamed, so the session cannot move either aside (taking the read-only parts with
        # it) and put one of its own making in its place.
        writable=(worktree, *_pinned(git_dir), config_dir, tmp)
        if writes_tree
        else (config_dir, tmp),
        read_only=tuple(git_dir / p for p in GIT_PROTECTED) if writes_tree else (),
        shown=shown,
        chdir=worktree,
        env={"TMPDIR": str(tmp)},
        own_processes=False,
    ).hiding_databases(started, keep=DATABASE_NAMES)  # the CLI's CONDUCTOR_DB is password-free


def _mount_point(path: Path) -> Path:
    """An empty regular file at `path` to bind over, whatever a session left there (a link
    would take the bind somewhere else)."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink() or not path.is_file():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    path.touch(mode=0o600, exist_ok=True)
    return path


def _pinned(git_dir: Path) -> tuple[Path, ...]:
    """A repository's folders that hold read-only parts, bound where they are."""
    return (git_dir, git_dir / "objects")


def command_jail(tree: Path, tmp: Path) -> Jail:
    """A merge check's or setup command's jail: its own tree and a temporary dir, less the
    tree's `.git` (a linked worktree's pointer to its repository, or a session's own
    repository's config and hooks), which conductor's git reads after the command."""
    git = tree / ".git"
    writable: tuple[Path, ...]
    protected: tuple[Path, ...]
    if git.is_file():
        writable, protected = (tree, tmp), (git,)
    else:  # a session's own repository: pinned in place, its config and hooks read-only
        writable, protected = (tree, *_pinned(git), tmp), tuple(git / p for p in GIT_PROTECTED)
    jail = Jail(writable=writable, read_only=protected, chdir=tree, env={"TMPDIR": str(tmp)})
    return jail.hiding_databases(os.environ)


# The longest temporary folder the sessions' sockets still fit under: the CLI's sandbox adds
# about 60 bytes below `conductor-<digest>/`, and a socket's path stops at 107.
SHORT_TMP_ROOT_MAX = 24


def _short_tmp_root() -> Path:
    """The user's temporary folder, unless its path is too long for a socket under it (macOS's
    `/var/folders/.../T/` is 49 bytes): then `/tmp`, which every Unix has."""
    root = Path(tempfile.gettempdir())
    if len(os.fsencode(root)) > SHORT_TMP_ROOT_MAX and os.access("/tmp", os.W_OK | os.X_OK):
        return Path("/tmp")
    return root


def short_tmp(owner: Path) -> Path:
    """A temporary dir for one jailed session, made now, at a short path: Claude Code's
    sandbox puts unix sockets in it, and a socket's path may not exceed 107 bytes (a dir
    under a deep repository would). Derived from `owner`, so a restart finds the same one."""
    digest = hashlib.sha1(str(owner).encode()).hexdigest()[:16]
    path = _short_tmp_root() / f"conductor-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid():
        # Someone else's (a link another user planted under that name, say): the jail must
        # never bind what it points at. A fresh one of ours instead.
        return Path(tempfile.mkdtemp(prefix="conductor-", dir=_short_tmp_root()))
    return path


def empty_file() -> Path:
    """An empty file no one can write, to show in place of a secret one: a regular file, so
    libpq reads nothing from it rather than warning (a device bound in a user namespace
    cannot even be opened). Made once per user under the temporary folder; one found there
    that is not ours, not a plain empty file or writable gives way to a fresh one."""
    path = _short_tmp_root() / f"conductor-empty-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444))
    found = os.lstat(path)
    ours = stat.S_ISREG(found.st_mode) and found.st_uid == os.geteuid()
    if ours and found.st_size == 0 and not found.st_mode & 0o222:
        return path
    fd, fresh = tempfile.mkstemp(prefix="conductor-empty-", dir=_short_tmp_root())
    os.close(fd)
    os.chmod(fresh, 0o444)
    return Path(fresh)


def write_cli_wrapper(jail: Jail, cli: Path, path: Path) -> Path:
    """An executable that starts the real CLI inside the jail, for the SDK's `cli_path`
    (the SDK starts `cli_path ARGS...`). It lives outside the worktree, so the session
    cannot change what starts it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = shlex.join(jail.argv([str(cli)]))
    path.write_text(f'#!/bin/sh\nexec {line} "$@"\n')
    path.chmod(0o755)
    return path


def bundled_cli() -> Path:
    """The Claude Code CLI the SDK would start: its bundled one, else `claude` on PATH."""
    import claude_agent_sdk

    name = "claude.exe" if sys.platform == "win32" else "claude"
    bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / name
    if bundled.is_file():
        return bundled
    found = shutil.which("claude")
    if found is None:
        raise SandboxUnavailable("no Claude Code CLI found (claude-agent-sdk bundles one)")
    return Path(found)


def scrubbed_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the model API's credentials and without what logs in to a database."""
    return {
        k: v
        for k, v in env.items()
        if not k.startswith(CREDENTIAL_PREFIXES)
        and k not in CREDENTIAL_NAMES
        and not is_database_variable(k)
    }


def cli_sandbox(allowed_domains: Sequence[str] = ()) -> SandboxSettings:
    """Claude Code's own Bash sandbox, on, with no way around it: no unsandboxed commands,
    and the network only to `allowed_domains` (none by default)."""
    return {
        "enabled": True,
        "autoAllowBashIfSandboxed": True,
        "allowUnsandboxedCommands": False,
        "network": {"allowedDomains": list(allowed_domains)},
    }


def unavailable_reason() -> str | None:
    """Why sessions cannot be sandboxed here, in one line naming the fix; None when they can.
    Checked by running the jail once, not by looking for files: a kernel without user
    namespaces has bwrap and still cannot jail."""
    return _probe(shutil.which(BWRAP) is not None, shutil.which(SOCAT) is not None)


@cache
def _probe(has_bwrap: bool, has_socat: bool) -> str | None:
    if sys.platform == "darwin":
        return None  # Claude Code's Seatbelt sandbox; conductor's own jail is Linux only
    if not sys.platform.startswith("linux"):
        return f"no sandbox for {sys.platform}: set sandbox = false in conductor.toml"
    missing = [n for n, ok in ((BWRAP, has_bwrap), (SOCAT, has_socat)) if not ok]
    if missing:
        return (
            f"the session sandbox needs {' and '.join(missing)}: install them (Debian/Ubuntu:"
            " apt-get install bubblewrap socat), or set sandbox = false in conductor.toml"
        )
    probe = Jail(writable=(), own_processes=False).argv(["true"])
    done = subprocess.run(probe, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["it failed"])[-1]
        return (
            f"bubblewrap cannot make a sandbox here ({why}): allow user namespaces, or set"
            " sandbox = false in conductor.toml"
        )
    return None


def require_sandbox(wanted: bool) -> None:
    """Refuse to start sessions without the sandbox conductor.toml asks for (the default)."""
    if wanted and (reason := unavailable_reason()) is not None:
        raise SandboxUnavailable(reason)


def refuse_root_unsandboxed(sandboxed: bool, env: Mapping[str, str]) -> None:
    """As root, Claude Code refuses hands-off sessions (`--dangerously-skip-permissions`)
    unless it is told the machine is a sandbox; each session would die with a long
    traceback. In conductor's jail sessions run as another user, so this only matters
    without it: say so in one line before anything starts."""
    if os.geteuid() != 0 or (sandboxed and jails_supported()):
        return
    if env.get("IS_SANDBOX") or os.environ.get("IS_SANDBOX"):
        return
    raise SandboxUnavailable(
        "as root, Claude Code refuses to run sessions hands-off outside a sandbox: keep"
        " sandbox = true (conductor's jail runs them as another user), run conductor as"
        " another user, or set IS_SANDBOX=1 if this machine is itself a sandbox"
    )


def refuse_root_planner(env: Mapping[str, str]) -> None:
    """The planner's CLI runs outside conductor's jail, as this user: as root, Claude Code
    refuses it hands-off unless told the machine is a sandbox, and it would die with a long
    traceback. Say so in one line before anything starts (a plan given with --plan needs no
    planner)."""
    if os.geteuid() != 0 or env.get("IS_SANDBOX") or os.environ.get("IS_SANDBOX"):
        return
    raise SandboxUnavailable(
        "as root, Claude Code refuses to run the planner hands-off: run conductor as another"
        " user, give a plan with --plan FILE, or set IS_SANDBOX=1 if this machine is itself"
        " a sandbox"
    )


def describe_mode(sandboxed: bool) -> str:
    """One line for a person: how sessions are confined in this run."""
    if not sandboxed:
        return "sandbox: off (sessions are held by conductor's hooks and merge gate only)"
    if jails_supported():
        return (
            "sandbox: on (each session's CLI in a bubblewrap jail, Bash in Claude Code's sandbox)"
        )
    return "sandbox: on (Bash in Claude Code's sandbox)"


def jails_supported() -> bool:
    """Whether conductor's own jail (bubblewrap) is used on this platform."""
    return sys.platform.startswith("linux")
