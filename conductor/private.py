"""What no jail lets a session's code read: what logs in to a database (libpq's variables and
files, conductor's CONDUCTOR_DB) and the person's browser profiles (their history says where
`conductor serve` listens, their cookies how to act there as the person).

`jail.Jail.hiding_databases` shows these files and folders empty and unsets these variables;
checks, setup commands and `gh` get an environment without them (`jail.scrubbed_env`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Mapping
from pathlib import Path

# What libpq reads to reach and log in to a server: every variable named `PG...` (PGPASSWORD,
# PGPASSFILE, PGSERVICE, PGSERVICEFILE, PGUSER, PGHOST, PGSSLKEY, ...; libpq reads no other
# spelling), and conductor's own CONDUCTOR_DB, whose URL may hold the password.
DATABASE_PREFIX = "PG"
DATABASE_NAMES = frozenset({"CONDUCTOR_DB"})
DEBIAN_SYSCONFDIR = Path("/etc/postgresql-common")  # libpq's pg_service.conf on Debian


def homes(env: Mapping[str, str]) -> list[Path]:
    """The person's home folders: HOME in `env`, and the passwd entry's (libpq before 15
    asks passwd, not HOME)."""
    found = {Path(env["HOME"])} if env.get("HOME") else set()
    with contextlib.suppress(KeyError):
        found.add(Path(pwd.getpwuid(os.getuid()).pw_dir))
    return sorted(found)


def is_database_variable(name: str) -> bool:
    """Whether libpq (or conductor, CONDUCTOR_DB) reads `name` to reach or log in to a
    PostgreSQL server."""
    return name.startswith(DATABASE_PREFIX) or name in DATABASE_NAMES


def database_names(*envs: Mapping[str, str]) -> tuple[str, ...]:
    """The database variables set in any of `envs`, sorted."""
    return tuple(sorted({k for env in envs for k in env if is_database_variable(k)}))


def database_secret_files(env: Mapping[str, str]) -> tuple[Path, ...]:
    """The files libpq may read a password or a client key from, as `env` (a process's
    environment) names them or by default: the password file (PGPASSFILE, `~/.pgpass`), the
    service files (PGSERVICEFILE, `~/.pg_service.conf`, the system one), the client key
    (PGSSLKEY, `~/.postgresql/postgresql.key`). Those that exist, to be shown empty."""
    named = ("PGPASSFILE", "PGSERVICEFILE", "PGSSLKEY")
    found = [Path(env[k]) for k in named if env.get(k)]
    for home in homes(env):
        found += [home / n for n in (".pgpass", ".pg_service.conf", ".postgresql/postgresql.key")]
    sysconf = [Path(env["PGSYSCONFDIR"])] if env.get("PGSYSCONFDIR") else []
    found += [d / "pg_service.conf" for d in (*sysconf, DEBIAN_SYSCONFDIR)]
    unique = dict.fromkeys(p if p.is_absolute() else Path.cwd() / p for p in found)
    return tuple(p for p in unique if p.is_file())


# Where browsers keep a profile (history, cookies, sessions), under a home folder: what
# signs the person in to `conductor serve` (its address in the history, its cookie) and to
# everything else. Linux's own packages, snaps and flatpaks.
BROWSER_PROFILES = (
    ".config/chromium",
    ".config/google-chrome",
    ".config/google-chrome-beta",
    ".config/google-chrome-unstable",
    ".config/BraveSoftware",
    ".config/microsoft-edge",
    ".config/vivaldi",
    ".config/opera",
    ".mozilla",
    ".librewolf",
    ".cache/chromium",
    ".cache/google-chrome",
    ".cache/mozilla",
    "snap/chromium",
    "snap/firefox",
    ".var/app/org.chromium.Chromium",
    ".var/app/com.google.Chrome",
    ".var/app/org.mozilla.firefox",
)


def browser_profiles(env: Mapping[str, str]) -> tuple[Path, ...]:
    """The browser profile folders under the person's home (HOME in `env`, and the passwd
    entry's), those that exist: shown empty in every jail. A session's code reads the file
    system; from a browser's history it would learn where `conductor serve` listens, and from
    its cookies how to act there as the person."""
    found = [home / name for home in homes(env) for name in BROWSER_PROFILES]
    return tuple(p for p in found if p.is_dir() and not p.is_symlink())
