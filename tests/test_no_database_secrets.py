"""What logs in to the bus's PostgreSQL server never reaches a session or what the gates run:
no `PG...` variable (the SDK starts the CLI with this process's whole environment under its
own), no CONDUCTOR_DB with a password, and in the jail no password file to read. A session
can commit what it reads; its worker pushes it and the gate merges it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from support import GIT_IDENTITY, clean_env, commit_file, git
from test_sandbox_mode import Standin, conductor_run, prepare

from conductor.gates import MergeGate, MergeStatus
from conductor.jail import scrubbed_env, unavailable_reason
from conductor.session.options import database_env
from conductor.worktrees import Bootstrap
from conductor.worktrees import prepare as prepare_tree

pytestmark = pytest.mark.anyio

RUN = "20261203-000000-dbdb"
ENV_SECRET = "pw-env-secret"
FILE_SECRET = "pw-file-secret"
HOME_SECRET = "pw-home-secret"
SERVICE_SECRET = "pw-service-secret"
URL_SECRET = "pw-url-secret"
SECRETS = (ENV_SECRET, FILE_SECRET, HOME_SECRET, SERVICE_SECRET, URL_SECRET)
needs_jail = pytest.mark.skipif(unavailable_reason() is not None, reason="needs bwrap")


def secret_env(tmp_path: Path) -> dict[str, str]:
    """A user who reaches a PostgreSQL server every way libpq knows: a password in the
    environment, a password file named by PGPASSFILE, a ~/.pgpass, a service file."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    for path, secret in (
        (home / ".pgpass", HOME_SECRET),
        (elsewhere / "pgpass", FILE_SECRET),
    ):
        path.write_text(f"db.internal:5432:*:conductor:{secret}\n")
        path.chmod(0o600)
    (elsewhere / "pg_service.conf").write_text(
        f"[bus]\nhost=db.internal\npassword={SERVICE_SECRET}\n"
    )
    return {
        "HOME": str(home),
        "PGPASSWORD": ENV_SECRET,
        "PGPASSFILE": str(elsewhere / "pgpass"),
        "PGSERVICEFILE": str(elsewhere / "pg_service.conf"),
        "PGUSER": "conductor",
    }


def snoop(tmp_path: Path, *, files: bool, env: str = "printenv") -> str:
    """A shell line that prints the environment and (`files`) every password file, by the
    names the variables gave and by their literal paths."""
    line = f"{env}; echo seen-env"
    if files:
        paths = [
            "~/.pgpass",
            '"$PGPASSFILE"',
            '"$PGSERVICEFILE"',
            str(tmp_path / "elsewhere" / "pgpass"),
            str(tmp_path / "elsewhere" / "pg_service.conf"),
            str(tmp_path / "home" / ".pgpass"),
        ]
        line += "; " + "; ".join(f"cat {p}" for p in paths) + "; echo seen-files"
    return line


def session_script(line: str) -> dict[str, Any]:
    """Session A writes what it saw into its tree and commits it with its work."""
    command = f"({line}) > seen.txt 2>&1; echo 'X = 1' > core.py; git add -A; git commit -qm core"
    steps = [
        {"tool": "Bash", "input": {"command": command}},
        {"tool": "mcp__bus__request_review", "input": {}},
        {"text": "Done."},
    ]
    return {"roles": {"A": [steps]}}


async def run_snooping_session(standin: Standin, tmp_path: Path, toml: str, *, files: bool) -> str:
    """Runs one session that snoops; what it committed (on any branch)."""
    secrets = secret_env(tmp_path)
    async with standin(session_script(snoop(tmp_path, files=files))) as offline:
        prepare(offline.repo, toml)
        env = {**clean_env(), **offline.env, **secrets}
        code, out, err = await conductor_run(offline.repo, env)
        assert code == 0, out + err
        return git(offline.repo, "log", "--all", "-p", "--", "seen.txt")


@needs_jail
async def test_a_jailed_session_reads_no_database_password(
    standin: Standin, tmp_path: Path
) -> None:
    committed = await run_snooping_session(standin, tmp_path, "", files=True)
    assert "seen-env" in committed and "seen-files" in committed  # it ran, and committed
    assert "PATH=" in committed  # its environment is there, less what logs in to a database
    assert not [s for s in SECRETS if s in committed]
    assert "PGPASSWORD" not in committed and "PGPASSFILE" not in committed


async def test_an_unjailed_session_gets_no_database_variable(
    standin: Standin, tmp_path: Path
) -> None:
    """Without the sandbox nothing hides a file from a session, but its environment is
    still conductor's to make."""
    committed = await run_snooping_session(standin, tmp_path, "sandbox = false\n", files=False)
    assert "seen-env" in committed and "PATH=" in committed
    assert not [s for s in SECRETS if s in committed]
    assert "PGUSER=conductor" not in committed and "PGPASSFILE=/" not in committed


def failing_snoop(tmp_path: Path, *, files: bool) -> str:
    """A check that prints what it sees and fails, so the gate hands back its output (its
    last lines: of the environment, what may name a database)."""
    env = "printenv | grep -i -e pg -e conductor -e pw-"
    return f"sh -c '{snoop(tmp_path, files=files, env=env)}; exit 1'"


@pytest.mark.parametrize(
    "jailed",
    [pytest.param(True, marks=needs_jail, id="jailed"), pytest.param(False, id="unjailed")],
)
async def test_a_merge_check_sees_no_database_password(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jailed: bool
) -> None:
    for key, value in {**GIT_IDENTITY, **secret_env(tmp_path)}.items():
        monkeypatch.setenv(key, value)  # (the identity: git finds none in this HOME)
    monkeypatch.setenv("CONDUCTOR_DB", f"postgresql://conductor:{URL_SECRET}@db.internal/bus")
    git(repo, "checkout", "-q", "-b", "feat-a", "main")
    commit_file(repo, "a.py", "A = 1\n", "a")
    git(repo, "checkout", "-q", "main")
    check = failing_snoop(tmp_path, files=jailed)
    gate = MergeGate(
        repo, RUN, base_commit=git(repo, "rev-parse", "main"), checks=[check], jailed=jailed
    )
    outcome = await gate.merge("feat-a", git(repo, "rev-parse", "feat-a"))
    assert outcome.status is MergeStatus.CHECK_FAILED
    assert "seen-env" in outcome.output and (not jailed or "seen-files" in outcome.output)
    assert not [s for s in SECRETS if s in outcome.output], outcome.output
    assert "PGUSER" not in outcome.output and "CONDUCTOR_DB" not in outcome.output


@needs_jail
async def test_a_setup_command_sees_no_database_password(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {**GIT_IDENTITY, **secret_env(tmp_path)}.items():
        monkeypatch.setenv(key, value)  # (the identity: git finds none in this HOME)
    monkeypatch.setenv("CONDUCTOR_DB", f"postgresql://conductor:{URL_SECRET}@db.internal/bus")
    setup = ["sh", "-c", f"({snoop(tmp_path, files=True)}) > seen.txt 2>&1"]
    tree = await prepare_tree(
        repo, RUN, "A", git(repo, "rev-parse", "main"), Bootstrap(setup=tuple(setup)), jailed=True
    )
    seen = (tree.path / "seen.txt").read_text()
    assert "seen-env" in seen and "seen-files" in seen
    assert not [s for s in SECRETS if s in seen], seen


def test_the_clis_environment_clears_every_database_variable_of_either_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK starts the CLI with `{**os.environ, **options.env}`: a variable of this
    process's is cleared over it, not merely left out."""
    monkeypatch.setenv("PGPASSWORD", ENV_SECRET)
    monkeypatch.setenv("PGSSLKEY", "/home/u/.postgresql/postgresql.key")
    monkeypatch.setenv("CONDUCTOR_DB", f"postgresql://conductor:{URL_SECRET}@db.internal/bus")
    session = {"PGSERVICE": "bus", "CONDUCTOR_DB": f"postgresql://u:{URL_SECRET}@h/db"}
    cleared = database_env(session)
    merged = {**os.environ, **session, **cleared}
    assert cleared == {
        "PGPASSWORD": "",
        "PGSSLKEY": "",
        "PGSERVICE": "",
        "CONDUCTOR_DB": "postgresql://u@h/db",
    }
    assert not [k for k, v in merged.items() if k.startswith("PG") and v]
    assert database_env({})["CONDUCTOR_DB"] == ""  # the parent's own never comes through


def test_commands_get_no_database_variable() -> None:
    env = {"PATH": "/bin", "PGPASSWORD": "x", "PGHOSTADDR": "10.0.0.1", "CONDUCTOR_DB": "u"}
    assert scrubbed_env(env) == {"PATH": "/bin"}


def test_the_planners_cli_gets_no_database_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conductor.config import Config
    from conductor.planner import planner_options
    from conductor.session import worker_config

    monkeypatch.setenv("PGPASSWORD", "hunter2")
    config = worker_config(Config(), tmp_path, {"PGPASSFILE": "/secret/pgpass"})
    env = planner_options(tmp_path, config).env
    assert env["PGPASSWORD"] == "" and env["PGPASSFILE"] == ""
