"""Choosing the database: `--db`, `CONDUCTOR_DB` and conductor.toml's `db` name a SQLite file
or a PostgreSQL URL, in that order of precedence, and SQLite in `.conductor/` stays the
default. Every command, through the full app and through the hand door (`python -m
conductor`, no typer), opens the same database, proved by a message sent through one way
and read through another. Against a real PostgreSQL server (tests/postgres.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import Cli, clean_env, git, one_line_error

from conductor.config import DEFAULT_TOML, parse_config
from conductor.errors import InvalidInput
from conductor.standin.harness import STANDIN_MODEL, offline
from conductor.store import Store, shown
from conductor.store.interface import is_url, server_of, without_password
from conductor.workspace import CONFIG_NAME, locate_blocking

SQLITE_DEFAULT = Path(".conductor") / "conductor.db"
SESSIONS = "A:frontend B:backend"
NOWHERE = "postgresql://conductor@127.0.0.1:1/conductor"  # nothing listens on port 1


def runs_in(url: str) -> list[str]:
    """The ids of the runs stored at `url`, read straight from the store."""

    async def read() -> list[str]:
        async with Store.open(url, create=False) as store:
            return [r.id for r in await store.list_runs()]

    return anyio.run(read)


def configure(repo: Path, text: str) -> None:
    (repo / CONFIG_NAME).write_text(text)
    git(repo, "add", CONFIG_NAME)
    git(repo, "commit", "-qm", "conductor.toml")


def synced(result: Any) -> str:
    assert result.code == 0, result.err
    return str(result.out)


# ------------------------------------------------------------------------------ --db


def test_db_option_puts_the_run_in_postgres(cli: Cli, repo: Path, postgres_url: str) -> None:
    made = cli.ok("--db", postgres_url, "init", "--sessions", SESSIONS, "--json").json()
    assert runs_in(postgres_url) == [made["run"]["id"]]
    assert not (repo / SQLITE_DEFAULT).exists()  # only the database moved: no SQLite file


def test_db_option_reaches_the_same_database_by_hand(
    cli: Cli, process_cli: Cli, postgres_url: str
) -> None:
    cli.ok("--db", postgres_url, "init", "--sessions", SESSIONS)
    sent = process_cli.ok("--db", postgres_url, "message", "B", "over the wire", "--from", "A")
    assert "message #1 sent to B" in sent.out
    assert 'from=A: "over the wire"' in synced(cli("--db", postgres_url, "sync", "-s", "B"))


# ------------------------------------------------------------------------------ CONDUCTOR_DB


def test_conductor_db_reaches_the_database_db_wrote(
    cli: Cli, process_cli: Cli, postgres_url: str
) -> None:
    cli.ok("--db", postgres_url, "init", "--sessions", SESSIONS)
    cli.ok("--db", postgres_url, "message", "B", "by the option", "--from", "A")
    read = process_cli("sync", "-s", "B", CONDUCTOR_DB=postgres_url)  # the hand door
    assert 'from=A: "by the option"' in synced(read)
    status = process_cli.ok("status", "--json", CONDUCTOR_DB=postgres_url).json()
    assert {s["name"]: s["unread"] for s in status}["B"] == 0  # the sync above read it


def test_conductor_db_starts_a_run_in_postgres(cli: Cli, repo: Path, postgres_url: str) -> None:
    made = cli.ok("init", "--sessions", SESSIONS, "--json", CONDUCTOR_DB=postgres_url).json()
    assert runs_in(postgres_url) == [made["run"]["id"]]
    assert not (repo / SQLITE_DEFAULT).exists()


# ------------------------------------------------------------------------------ conductor.toml


def test_conductor_toml_db_is_used_by_every_command(
    cli: Cli, process_cli: Cli, repo: Path, postgres_url: str
) -> None:
    configure(repo, f'db = "{postgres_url}"\n')
    made = cli.ok("init", "--sessions", SESSIONS, "--json").json()
    assert runs_in(postgres_url) == [made["run"]["id"]]
    process_cli.ok("message", "B", "from the config", "--from", "A")  # the hand door
    assert 'from=A: "from the config"' in synced(cli("sync", "-s", "B"))  # the full app
    assert not (repo / SQLITE_DEFAULT).exists()


def test_conductor_toml_db_is_read_from_a_subfolder_and_a_worktree(
    cli: Cli, process_cli: Cli, repo: Path, postgres_url: str
) -> None:
    configure(repo, f'db = "{postgres_url}"\n')
    cli.ok("init", "--sessions", SESSIONS)
    (repo / "sub").mkdir()
    process_cli.ok("message", "B", "from below", "--from", "A", cwd=repo / "sub")
    git(repo, "worktree", "add", "-q", str(repo.parent / "tree"), "-b", "tree")
    assert 'from=A: "from below"' in synced(
        process_cli("sync", "-s", "B", cwd=repo.parent / "tree")
    )


def test_conductor_toml_db_may_be_a_sqlite_file_relative_to_the_repository(
    cli: Cli, repo: Path
) -> None:
    configure(repo, 'db = "state/bus.db"\n')
    (repo / "sub").mkdir()
    cli.ok("init", "--sessions", SESSIONS, cwd=repo / "sub")
    assert (repo / "state" / "bus.db").is_file()
    assert not (repo / SQLITE_DEFAULT).exists()


def test_conductor_toml_db_is_checked_with_the_settings() -> None:
    assert parse_config({"db": "postgresql://h/db", "max_parallel": 2}).max_parallel == 2
    with pytest.raises(InvalidInput, match="db: expected a SQLite file's path or a postgresql"):
        parse_config({"db": 5})
    with pytest.raises(InvalidInput, match="unknown setting; did you mean db"):
        parse_config({"dbb": "x"})
    assert "# db = " in DEFAULT_TOML  # documented where people look, off by default


def test_a_conductor_toml_db_of_the_wrong_kind_is_one_line(cli: Cli, repo: Path) -> None:
    configure(repo, "db = 5\n")
    line = one_line_error(cli.fails("status"))
    assert "conductor.toml: db must be a SQLite file's path or a postgresql:// URL" in line


# ------------------------------------------------------------------------------ precedence


def test_db_wins_over_conductor_db_which_wins_over_conductor_toml(
    repo: Path, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(repo, 'db = "from-toml.db"\n')
    monkeypatch.chdir(repo)
    assert locate_blocking(repo).location == str(repo / "from-toml.db")
    monkeypatch.setenv("CONDUCTOR_DB", postgres_url)
    assert locate_blocking(repo).location == postgres_url
    assert locate_blocking(repo, str(tmp_path / "x.db")).location == str(tmp_path / "x.db")


def test_precedence_through_the_commands(
    cli: Cli, process_cli: Cli, repo: Path, postgres_url: str, tmp_path: Path
) -> None:
    configure(repo, f'db = "{postgres_url}"\n')
    other = str(tmp_path / "other.db")
    cli.ok("init", "--sessions", SESSIONS)  # in PostgreSQL, as conductor.toml says
    cli.ok("--db", other, "init", "--sessions", "C:infra")  # --db wins over it
    by_env = process_cli.ok("status", "--json", CONDUCTOR_DB=other).json()
    assert [s["name"] for s in by_env] == ["C"]  # CONDUCTOR_DB wins over it too
    by_toml = process_cli.ok("status", "--json").json()
    assert [s["name"] for s in by_toml] == ["A", "B"]
    both = process_cli.ok("--db", postgres_url, "status", "--json", CONDUCTOR_DB=other).json()
    assert [s["name"] for s in both] == ["A", "B"]  # --db wins over CONDUCTOR_DB


# ------------------------------------------------------------------------------ SQLite default


def test_sqlite_in_conductor_is_still_the_default(cli: Cli, process_cli: Cli, repo: Path) -> None:
    cli.ok("init", "--sessions", SESSIONS)
    assert (repo / SQLITE_DEFAULT).is_file()
    assert locate_blocking(repo).location == str(repo / SQLITE_DEFAULT)
    process_cli.ok("message", "B", "local", "--from", "A")
    assert 'from=A: "local"' in synced(cli("sync", "-s", "B"))


def test_a_sqlite_db_option_is_a_path_from_the_current_folder(cli: Cli, repo: Path) -> None:
    (repo / "sub").mkdir()
    cli.ok("--db", "here.db", "init", "--sessions", SESSIONS, cwd=repo / "sub")
    assert (repo / "sub" / "here.db").is_file()


# ------------------------------------------------------------------------------ failures


@pytest.mark.parametrize("door", ["full", "hand"])
def test_an_unreachable_server_is_one_line_naming_the_host(
    cli: Cli, process_cli: Cli, door: str
) -> None:
    secret = NOWHERE.replace("conductor@", "conductor:s3cret@")
    for run in (cli, process_cli) if door == "full" else (process_cli,):
        result = run.fails("--db", secret, "status")
        line = one_line_error(result)
        assert line.startswith("error: cannot reach the PostgreSQL database 127.0.0.1:1/conductor:")
        assert "s3cret" not in result.err + result.out
        assert "Traceback" not in result.err


@pytest.mark.parametrize("door", ["full", "hand"])
def test_an_unreachable_server_inside_a_session_points_at_the_bus_tools(
    cli: Cli, process_cli: Cli, door: str
) -> None:
    run = cli if door == "full" else process_cli
    inside = {"CONDUCTOR_SUPERVISED": "r1", "CONDUCTOR_SESSION": "A", "CONDUCTOR_DB": NOWHERE}
    line = one_line_error(run.fails("status", **inside))
    assert line == (
        "error: the database 127.0.0.1:1/conductor is out of reach inside supervised session A"
        " (the sandbox lets no connection out): use your mcp__bus__ tools"
    )


def test_an_unreachable_server_through_conductor_db_is_one_line(process_cli: Cli) -> None:
    result = process_cli.fails("sync", "-s", "A", CONDUCTOR_DB=NOWHERE)
    assert "cannot reach the PostgreSQL database 127.0.0.1:1/conductor" in one_line_error(result)


def test_a_bad_url_is_one_line(cli: Cli, process_cli: Cli) -> None:
    for run in (cli, process_cli):
        line = one_line_error(run.fails("--db", "postgresql://h:notaport/db", "status"))
        assert "cannot reach the PostgreSQL database" in line
        assert "database h:notaport/db:" in line  # as written, for the user to see


def test_a_wrong_user_is_one_line_without_the_password(cli: Cli, postgres_url: str) -> None:
    # (the test server trusts every local login: a role that does not exist is refused)
    url = postgres_url.replace("postgresql://postgres@", "postgresql://nobody:hunter2@")
    result = cli.fails("--db", url, "init", "--sessions", SESSIONS)
    line = one_line_error(result)
    assert 'role "nobody" does not exist' in line
    assert "hunter2" not in result.err


def test_reading_a_database_without_a_run_says_so(cli: Cli, postgres_url: str) -> None:
    line = one_line_error(cli.fails("--db", postgres_url, "status"))
    assert "no run yet" in line


def test_without_psycopg_a_url_asks_for_the_extra(repo: Path) -> None:
    # psycopg made unimportable in a process of its own (the extra not installed)
    code = (
        "import sys; sys.modules['psycopg'] = None; from conductor.cli import main;"
        f" sys.argv = ['conductor', '--db', {NOWHERE!r}, 'status']; main()"
    )
    for hand in (True, False):
        argv = code if hand else code.replace("'status'", "'runs'")  # runs: the full app
        done = subprocess.run(
            [sys.executable, "-c", argv], cwd=repo, env=clean_env(), capture_output=True, text=True
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert "pip install 'conductor-swarm[postgres]'" in done.stderr


# ------------------------------------------------------------------------------ doctor


def test_doctor_says_the_server_is_reachable(cli: Cli, postgres_url: str) -> None:
    checks = cli("--db", postgres_url, "doctor", "--json").json()["checks"]
    database = next(c for c in checks if c["check"].startswith("database"))
    assert database["status"] == "ok"
    assert database["detail"] == f"PostgreSQL at {server_of(postgres_url)}, reachable"


def test_doctor_reads_conductor_toml_db(cli: Cli, repo: Path) -> None:
    configure(repo, f'db = "{NOWHERE}"\n')
    checks = cli("doctor", "--json").json()["checks"]
    database = next(c for c in checks if c["check"].startswith("database"))
    assert database["check"] == "database (conductor.toml db)"
    assert database["status"] == "fail"
    assert "cannot reach the PostgreSQL database 127.0.0.1:1/conductor" in database["detail"]


# ------------------------------------------------------------------------------ the location


def test_a_url_is_told_without_its_password() -> None:
    assert shown("postgresql://u:pw@h:5/d") == "postgresql://u:***@h:5/d"
    assert shown("postgresql://h/d?password=pw&sslmode=require") == (
        "postgresql://h/d?password=***&sslmode=require"
    )
    assert shown("/a/b.db") == "/a/b.db"
    assert server_of("postgres://u:pw@db.example.com:6543/team") == "db.example.com:6543/team"
    assert server_of("postgresql://postgres@/d?host=/run/pg") == "/run/pg/d"
    assert is_url("postgres://h/d") and not is_url("postgres.db")


def test_json_of_status_is_the_same_on_both_backends(
    cli: Cli, repo: Path, postgres_url: str
) -> None:
    cli.ok("init", "--sessions", SESSIONS)
    cli.ok("--db", postgres_url, "init", "--sessions", SESSIONS)
    local = cli.ok("status", "--json").json()
    remote = cli.ok("--db", postgres_url, "status", "--json").json()
    strip = {"created_at", "updated_at", "heartbeat_at", "id", "run_id"}
    assert [{k: v for k, v in s.items() if k not in strip} for s in local] == [
        {k: v for k, v in s.items() if k not in strip} for s in remote
    ]
    assert json.dumps(local)  # (plain JSON both)


# ------------------------------------------------------------------------------ a whole run

PY = sys.executable
SYNC_BY_HAND = f'{PY} -m conductor sync --json; echo "exit=$?"'
RUN_SCRIPT = {
    "roles": {
        "A": [
            [
                {"tool": "Bash", "input": {"command": SYNC_BY_HAND}},
                {"tool": "Bash", "input": {"command": 'echo "db=$CONDUCTOR_DB"'}},
                {"tool": "Write", "input": {"file_path": "${cwd}/a.py", "content": "A = 1\n"}},
                {"tool": "Bash", "input": {"command": "git add -A && git commit -qm a"}},
                {"tool": "mcp__bus__request_review", "input": {}},
                {"text": "A asked for review."},
            ]
        ]
    }
}


def _tool_results(requests: list[Any]) -> list[str]:
    """What the session's tools answered, in order, as the model was told."""
    said: dict[str, str] = {}
    for request in requests:
        for message in request.body["messages"]:
            if message["role"] != "user" or not isinstance(message["content"], list):
                continue
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    content = block["content"]
                    said[block["tool_use_id"]] = (
                        content if isinstance(content, str) else str(content)
                    )
    return list(said.values())


@pytest.mark.anyio
async def test_a_run_with_db_url_ends_merged_with_its_events_in_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    async with offline(RUN_SCRIPT, tmp_path / "offline") as off:
        repo = off.repo
        plan = {"workstreams": [{"id": "A", "name": "a", "task": "a.py", "owns": ["a.py"]}]}
        (repo / "plan.json").write_text(json.dumps(plan))
        (repo / CONFIG_NAME).write_text(
            f'review = "auto"\nmodel = "{STANDIN_MODEL}"\nmax_parallel = 1\nchecks = []\n'
        )
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "plan and config")
        # (the test server trusts local logins: the password is there only to be kept out)
        url = postgres_url.replace("postgres@", "postgres:s3cret@")
        argv = [PY, "-m", "conductor", "--db", url, "run", "x", "--plan", "plan.json"]
        with anyio.fail_after(180):
            done = await anyio.run_process(
                [*argv, "--json"], cwd=repo, env={**clean_env(), **off.env}, check=False
            )
        summary = json.loads(done.stdout)
        assert done.returncode == 0 and summary["ok"], done.stderr.decode()
        assert b"s3cret" not in done.stdout + done.stderr
        said = _tool_results(off.server.requests)
    assert git(repo, "show", f"{summary['integration_branch']}:a.py") == "A = 1"
    async with Store.open(postgres_url, create=False) as store:
        run = await store.get_run(summary["run_id"])
        events = await store.list_events(run.id)
    assert run.state == "finished"
    assert {"run.state", "review.approved"} <= {e.kind for e in events}
    assert not [e for e in events if "s3cret" in f"{e.summary} {e.payload}"]
    # Only the database moved: the worktrees and transcripts stay in .conductor/.
    assert not (repo / SQLITE_DEFAULT).exists()
    assert (repo / ".conductor" / "sessions" / run.id / "A").is_dir()
    # `conductor sync` by hand inside the session's Bash: the sandbox lets no connection out
    # (no unix socket, no network), so the server is out of reach, said in one line that
    # points at the bus tools, as a read-only SQLite file is.
    assert said[0].splitlines()[:2] == [
        f"error: the database {server_of(postgres_url)} is out of reach inside supervised"
        " session A (the sandbox lets no connection out): use your mcp__bus__ tools",
        "exit=2",
    ]
    # The session is told the database without its password: it has no use for it.
    assert said[1].splitlines()[0] == f"db={postgres_url}"


def test_the_watch_commands_read_postgres(cli: Cli, postgres_url: str) -> None:
    made = cli.ok("--db", postgres_url, "init", "--sessions", SESSIONS, "--json").json()
    run_id = made["run"]["id"]
    cli.ok("--db", postgres_url, "message", "B", "seen by logs", "--from", "A")
    assert [r["id"] for r in cli.ok("--db", postgres_url, "runs", "--json").json()] == [run_id]
    assert "seen by logs" in cli.ok("--db", postgres_url, "logs").out
    assert run_id in cli.ok("--db", postgres_url, "show").out


def test_a_url_is_pasted_without_its_password() -> None:
    assert without_password("postgresql://u:pw@h/d") == "postgresql://u@h/d"
    assert without_password("postgresql://h/d?password=x&sslmode=require") == (
        "postgresql://h/d?sslmode=require"
    )
    assert without_password("postgresql://h/d?sslmode=require&password=x") == (
        "postgresql://h/d?sslmode=require"
    )
    assert without_password("postgresql://h/d?sslpassword=k&password=x&sslmode=require") == (
        "postgresql://h/d?sslmode=require"
    )
    assert without_password("/a/b.db") == "/a/b.db"


def test_doctor_without_psycopg_asks_for_the_extra(repo: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None; from conductor.cli import main;"
        f" sys.argv = ['conductor', '--db', {NOWHERE!r}, 'doctor', '--json']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=clean_env(), capture_output=True, text=True
    )
    checks = json.loads(done.stdout)["checks"]
    database = next(c for c in checks if c["check"].startswith("database"))
    assert (database["status"], database["fix"]) == (
        "fail",
        "pip install 'conductor-swarm[postgres]'",
    )


def test_a_printed_command_names_a_url_without_its_password(
    cli: Cli, repo: Path, tmp_path: Path
) -> None:
    plan = {"workstreams": [{"id": "A", "name": "a", "task": "a.py", "owns": ["a.py"]}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    url = "postgresql://u:s3cret@db.internal/team"
    argv = ["--db", url, "run", "x", "--plan-only", "--plan", str(tmp_path / "plan.json")]
    printed = cli.ok(*argv).out
    assert "--db postgresql://u@db.internal/team run x --plan" in printed
    assert "s3cret" not in printed


def test_a_database_conductor_finds_by_itself_is_not_named_in_a_hint(repo: Path) -> None:
    from conductor.cli.hints import db_unless_default

    assert db_unless_default(str(repo / SQLITE_DEFAULT), repo) is None
    configure(repo, 'db = "postgresql://h/team"\n')
    assert db_unless_default("postgresql://h/team", repo) is None
    assert db_unless_default(str(repo / SQLITE_DEFAULT), repo) == str(repo / SQLITE_DEFAULT)
