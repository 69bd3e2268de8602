"""Commands printed for a person to paste: spelled so that they work when pasted.

`conductor` need not be on PATH where it runs: `make demo` runs `.venv/bin/conductor` without
activating the environment, and `python -m conductor` needs no script at all. So a hint names
this conductor the way it was started: `conductor` when that is what PATH finds, else the
absolute path of the script that is running, else this Python with `-m conductor`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from importlib import metadata
from pathlib import Path

from conductor.cli.plumbing import DISTRIBUTION
from conductor.errors import ConductorError
from conductor.store.interface import without_password
from conductor.workspace import default_location


def conductor_argv() -> list[str]:
    """The command that starts this conductor, from any directory."""
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is not None and started.name.startswith("conductor") and started.is_file():
        script = Path(os.path.abspath(started))  # cwd has not changed since the start
        found = shutil.which("conductor")
        if found is not None and Path(found).resolve() == script.resolve():
            return ["conductor"]
        return [str(script)]
    # `python -m conductor`, or conductor driven from other Python code (the tests)
    python = [sys.executable, "-m", "conductor"]
    try:
        metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # a checkout run as is: Python finds it by the path
        import conductor

        return [f"PYTHONPATH={Path(conductor.__file__).resolve().parent.parent}", *python]
    return python


def command(*args: str | Path, db: str | Path | None = None, cd: Path | None = None) -> str:
    """`conductor ARGS` for a POSIX shell, every word quoted as needed; `db`: a database
    that is not where conductor looks by default (a file's path or a URL, printed without
    its password: libpq reads that from PGPASSWORD or ~/.pgpass); `cd`: the directory to
    run it in."""
    first, *rest = conductor_argv()
    named = ["--db", without_password(str(db))] if db is not None else []
    words = [*rest, *named, *map(str, args)]
    line = " ".join([_word(first), *(shlex.quote(w) for w in words)])
    return f"cd {shlex.quote(str(cd))} && {line}" if cd is not None else line


def shell(*words: str | Path) -> str:
    """Any command, its words quoted for a POSIX shell."""
    return shlex.join(map(str, words))


def _word(first: str) -> str:
    """The first word: a `NAME=value` assignment keeps its `=` outside the quotes."""
    name, is_assignment, value = first.partition("=")
    if is_assignment and name.isidentifier():
        return f"{name}={shlex.quote(value)}"
    return shlex.quote(first)


def db_unless_default(db: str, repo: Path) -> str | None:
    """`db` (a store's location) when it is not the one conductor finds in `repo` by itself
    (conductor.toml's `db`, else `.conductor/conductor.db`): a command on the same run must
    then be told where it is."""
    try:
        found = default_location(repo)
    except ConductorError:  # (a conductor.toml it cannot read: name the database)
        return db
    return None if db == found else db
