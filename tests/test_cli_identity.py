"""Who a hand command acts as: inside a supervised session only as that session, and a
database the command cannot write is one line, not a traceback."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from support import Cli, Result, clean_env, git, one_line_error

from conductor.bus import open_run
from conductor.cli.common import read_only_message, unwritable
from conductor.store import Store

SESSIONS = "A:frontend B:backend C:infra human:review"


@pytest.fixture
def crew(cli: Cli) -> Cli:
    """A run by hand with sessions A, B, C and `human`, who answers reviews."""
    cli.ok("init", "--sessions", SESSIONS)
    return cli


@pytest.fixture
def inside_b(crew: Cli) -> dict[str, str]:
    """The environment the supervisor gives session B (and every command B's Bash runs)."""
    run = crew.ok("runs", "--json").json()[0]["id"]
    return {"CONDUCTOR_SUPERVISED": run, "CONDUCTOR_SESSION": "B", "CONDUCTOR_RUN": run}


def db_path(repo: Path) -> Path:
    return repo / ".conductor" / "conductor.db"


def dump(repo: Path) -> list[str]:
    """Every row of every table: what "the database is unchanged" compares."""
    with contextlib.closing(sqlite3.connect(db_path(repo))) as db:
        return list(db.iterdump())


def refused(cli: Cli, repo: Path, env: dict[str, str], *args: str) -> str:
    """Run a forged command as session B: exit 2, one line, and nothing written."""
    before = dump(repo)
    line = one_line_error(cli.fails(*args, code=2, **env))
    assert dump(repo) == before
    return line


# ------------------------------------------------------------------------------ forged moves


def test_a_session_cannot_approve_a_review_as_human(
    crew: Cli, repo: Path, inside_b: dict[str, str]
) -> None:
    crew.ok("review", "request", "--from", "B", "--to", "human", "--diff", "+x")
    line = refused(crew, repo, inside_b, "review", "approve", "1", "--from", "human")
    assert line == (
        "error: inside supervised session B you act only as B (not human):"
        " use your mcp__bus__ tools"
    )
    assert crew.ok("review", "show", "1", "--json").json()["status"] == "pending"


def test_a_session_cannot_decide_a_review_as_another_session(
    crew: Cli, repo: Path, inside_b: dict[str, str]
) -> None:
    crew.ok("review", "request", "--from", "A", "--to", "C", "--diff", "+x")
    line = refused(crew, repo, inside_b, "review", "reject", "1", "--from", "C", "-m", "no")
    assert "act only as B (not C)" in line
    assert crew.ok("review", "show", "1", "--json").json()["status"] == "pending"


def test_a_session_can_decide_a_review_as_itself(crew: Cli, inside_b: dict[str, str]) -> None:
    crew.ok("review", "request", "--from", "A", "--to", "B", "--diff", "+x")
    decided = crew.ok("review", "approve", "1", "--json", **inside_b).json()
    assert (decided["status"], decided["decided_by"]) == ("approved", "B")


def test_a_session_cannot_message_as_another_session(
    crew: Cli, repo: Path, inside_b: dict[str, str]
) -> None:
    line = refused(crew, repo, inside_b, "message", "A", "from C, honest", "--from", "C")
    assert "act only as B (not C)" in line
    assert crew.ok("inbox", "--session", "A", "--json").json() == []


def test_a_session_cannot_message_as_human(crew: Cli, repo: Path, inside_b: dict[str, str]) -> None:
    line = refused(crew, repo, inside_b, "message", "A", "ship it", "--from", "human")
    assert "(not human)" in line


def test_a_session_messages_as_itself(crew: Cli, inside_b: dict[str, str]) -> None:
    crew.ok("message", "A", "hi", **inside_b)
    crew.ok("message", "A", "again", "--from", "B", **inside_b)
    inbox = crew.ok("inbox", "--session", "A", "--json").json()
    assert [(m["sender"], m["body"]) for m in inbox] == [("B", "hi"), ("B", "again")]


def test_a_session_cannot_release_another_sessions_claim(
    crew: Cli, repo: Path, inside_b: dict[str, str]
) -> None:
    crew.ok("claim", "api/", "--session", "A")
    line = refused(crew, repo, inside_b, "unclaim", "api", "--session", "A")
    assert "act only as B (not A)" in line
    assert [(c["path"], c["session"]) for c in crew.ok("claims", "--json").json()] == [("api", "A")]


def test_a_session_cannot_force_release_the_lock(
    crew: Cli, repo: Path, inside_b: dict[str, str]
) -> None:
    async def hold() -> None:
        async with Store.open(db_path(repo)) as store:
            await (await open_run(store)).acquire_lock("holder-X", lease_seconds=600)

    anyio.run(hold)  # held for this (living) test process
    line = refused(crew, repo, inside_b, "lock", "release", "--force")
    assert "may not run 'conductor lock release'" in line
    assert crew.ok("lock", "show", "--json").json()["holder"] == "holder-X"


@pytest.mark.parametrize("args", [["init", "--sessions", "X:x"], ["init"]])
def test_a_session_cannot_init(
    crew: Cli, repo: Path, inside_b: dict[str, str], args: list[str]
) -> None:
    assert "may not run 'conductor init'" in refused(crew, repo, inside_b, *args)
    assert len(crew.ok("runs", "--json").json()) == 1
    assert not (repo / "conductor.toml").exists()


def test_a_session_cannot_update_another_session(
    crew: Cli, repo: Path, inside_b: dict[str, str]
) -> None:
    line = refused(crew, repo, inside_b, "update", "A", "--status", "done")
    assert "act only as B (not A)" in line
    assert crew.ok("status", "--json").json()[0]["status"] == "pending"


def test_a_session_updates_itself(crew: Cli, inside_b: dict[str, str]) -> None:
    crew.ok("update", "B", "--status", "blocked", "--note", "waiting on A", **inside_b)
    row = crew.ok("status", "--json").json()[1]
    assert (row["name"], row["status"], row["note"]) == ("B", "blocked", "waiting on A")


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "--session", "C"],
        ["reply", "1", "x", "--from", "C"],
        ["mark-read", "1", "--session", "C"],
        ["context", "add", "x", "--session", "C"],
        ["claim", "src/", "--session", "C"],
        ["review", "request", "--from", "C", "--diff", "x"],
        ["commit", "x", "--session", "C", "--all"],
        ["push", "--session", "C"],
        ["pull", "--session", "C"],
    ],
)
def test_every_command_that_acts_as_a_session_refuses_another_name(
    crew: Cli, repo: Path, inside_b: dict[str, str], args: list[str]
) -> None:
    crew.ok("message", "C", "for C", "--from", "A")
    (repo / "work.txt").write_text("C's work, in this tree\n")
    head = git(repo, "rev-parse", "HEAD")
    assert "act only as B (not C)" in refused(crew, repo, inside_b, *args)
    assert git(repo, "rev-parse", "HEAD") == head


def test_a_session_cannot_act_in_another_run(
    crew: Cli, repo: Path, inside_b: dict[str, str]
) -> None:
    other = crew.ok("init", "--sessions", "B:elsewhere", "--json").json()["run"]["id"]
    for args in (
        ["--run", other, "message", "all", "hi"],
        ["message", "all", "hi", "--run", other],  # --run after the command: the same run
        ["context", "add", "x", "--run", other],
        ["review", "request", "--diff", "x", "--run", other],
    ):
        line = refused(crew, repo, inside_b, *args)
        assert f"only in run {inside_b['CONDUCTOR_RUN']} (not {other})" in line


def test_a_session_acts_in_its_own_run_not_the_newest(crew: Cli, inside_b: dict[str, str]) -> None:
    crew.ok("init", "--sessions", "A:newer B:newer")
    env = {k: v for k, v in inside_b.items() if k != "CONDUCTOR_RUN"}
    crew.ok("message", "A", "hi", **env)
    run = inside_b["CONDUCTOR_RUN"]
    assert crew.ok("--run", run, "inbox", "--session", "A", "--json").json()[0]["sender"] == "B"
    assert crew.ok("inbox", "--session", "A", "--json").json() == []


def test_a_supervised_command_without_a_session_acts_as_no_one(
    crew: Cli, repo: Path, inside_b: dict[str, str]
) -> None:
    env = {k: v for k, v in inside_b.items() if k != "CONDUCTOR_SESSION"}
    assert "act as no one" in refused(crew, repo, env, "message", "A", "hi", "--from", "C")


def test_reading_is_left_alone_inside_a_session(crew: Cli, inside_b: dict[str, str]) -> None:
    crew.ok("message", "A", "for A", "--from", "C")
    assert crew.ok("inbox", "--session", "A", "--json", **inside_b).json()[0]["body"] == "for A"
    assert crew.ok("status", "--json", **inside_b).json()[0]["name"] == "A"


# ------------------------------------------------------------------------------ outside


def test_a_person_still_approves_as_human(crew: Cli) -> None:
    crew.ok("review", "request", "--from", "B", "--to", "human", "--diff", "+x")
    assert "approved by human" in crew.ok("review", "approve", "1", "--from", "human").out


def test_a_person_still_acts_as_any_session(crew: Cli) -> None:
    crew.ok("claim", "api/", "--session", "A")
    crew.ok("unclaim", "api", "--session", "A", CONDUCTOR_SESSION="B")
    crew.ok("update", "A", "--status", "done", CONDUCTOR_SESSION="B")
    assert crew.ok("claims", "--json").json() == []


# ------------------------------------------------------------------------------ read-only db


def read_only(repo: Path, *args: str, **env: str) -> Result:
    """`conductor ARGS` in `repo` with the whole file system read-only, as the OS boundary
    around a session makes the database: root's permissions cannot get around a mount."""
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--"]
    proc = subprocess.run(
        [*argv, sys.executable, "-m", "conductor", *args],
        cwd=repo,
        env=clean_env(**env),
        capture_output=True,
        check=False,
        timeout=60,
    )
    out, err = (proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))
    return Result(proc.returncode, out, err, proc.stdout)


@pytest.fixture
def live(crew: Cli, repo: Path) -> Iterator[None]:
    """The run as while its supervisor works: the database open, its WAL files present (so
    a reader can open it read-only, and the first write is what fails)."""
    with contextlib.closing(sqlite3.connect(db_path(repo))) as db:
        db.execute("SELECT count(*) FROM sessions").fetchall()
        yield


def test_a_read_only_database_inside_a_session_points_to_the_bus_tools(
    crew: Cli, repo: Path, inside_b: dict[str, str], live: None
) -> None:
    result = read_only(repo, "message", "A", "hi", **inside_b)
    assert result.code == 2
    assert one_line_error(result) == (
        f"error: the database {db_path(repo)} is read-only inside supervised session B:"
        " use your mcp__bus__ tools"
    )
    assert crew.ok("inbox", "--session", "A", "--json").json() == []


def test_a_read_only_database_is_one_line_for_a_person(crew: Cli, repo: Path, live: None) -> None:
    result = read_only(repo, "message", "B", "hi", "--from", "A")
    assert result.code == 2
    line = one_line_error(result)
    assert "is read-only here" in line and "readonly database" in line
    assert crew.ok("inbox", "--session", "B", "--json").json() == []


def test_reads_still_work_on_a_read_only_database_of_a_live_run(
    crew: Cli, repo: Path, live: None
) -> None:
    assert read_only(repo, "status", "--json").json()[0]["name"] == "A"


def test_a_read_only_database_that_cannot_even_be_opened_is_one_line(
    crew: Cli, repo: Path, inside_b: dict[str, str]
) -> None:
    result = read_only(repo, "sync", **inside_b)  # no WAL files: opening must write
    assert result.code == 2
    assert "read-only inside supervised session B" in one_line_error(result)


def test_sqlites_read_only_refusal_is_recognised(
    crew: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where bwrap is missing, at least the mapping is checked on a real refusal."""
    uri = f"file:{db_path(repo)}?mode=ro"
    with (
        contextlib.closing(sqlite3.connect(uri, uri=True)) as db,
        pytest.raises(sqlite3.OperationalError) as caught,
    ):
        db.execute("DELETE FROM sessions")
    assert unwritable(caught.value)
    monkeypatch.setenv("CONDUCTOR_SUPERVISED", "run-1")
    monkeypatch.setenv("CONDUCTOR_SESSION", "B")
    assert read_only_message(db_path(repo), caught.value).endswith(
        "read-only inside supervised session B: use your mcp__bus__ tools"
    )
