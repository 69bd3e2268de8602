"""Reading never creates anything: a command that only reads, pointed at a database that is
not there (a fresh repository, a mistyped CONDUCTOR_DB), says so in one line and exits 2,
leaving the disk as it was. Only commands that write (init, run, demo) make the state folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import Cli, git, one_line_error

READING = [
    ("status",),
    ("status", "--json"),
    ("sync", "-s", "A"),
    ("inbox", "-s", "A"),
    ("runs",),
    ("show",),
    ("logs",),
    ("logs", "-f"),
    ("dashboard",),
    ("transcript", "A"),
    ("worktrees",),
    ("claims",),
    ("context", "show"),
    ("review", "list"),
    ("review", "show", "1"),
    ("lock", "show"),
    ("merge-ok", "A"),
    ("resume",),
    ("report",),
    ("report", "--out", "-"),
]
GIT_READING = [("git-status",), ("git-log",), ("git-diff",)]


def everything_under(path: Path) -> set[Path]:
    return {p.relative_to(path) for p in path.rglob("*") if ".git" not in p.parts}


@pytest.mark.parametrize("command", READING, ids=" ".join)
def test_in_a_fresh_repository_reading_says_no_run_yet_and_creates_nothing(
    repo: Path, command: tuple[str, ...]
) -> None:
    before = everything_under(repo)
    line = one_line_error(Cli(repo, process=True).fails(*command))
    assert line.startswith("error: no run yet: no database at ")
    assert str(repo / ".conductor" / "conductor.db") in line
    assert everything_under(repo) == before
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("command", READING, ids=" ".join)
def test_with_conductor_db_in_a_missing_folder_reading_creates_no_folder(
    repo: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    db = tmp_path / "nonexistent" / "dir" / "x.db"
    line = one_line_error(Cli(repo, process=True).fails(*command, CONDUCTOR_DB=str(db)))
    assert f"no database at {db}" in line
    assert not (tmp_path / "nonexistent").exists()
    assert not (repo / ".conductor").exists()


def test_with_the_db_option_in_a_missing_folder_reading_creates_no_folder(
    repo: Path, tmp_path: Path
) -> None:
    db = tmp_path / "nonexistent" / "x.db"
    line = one_line_error(Cli(repo, process=True).fails("--db", str(db), "claims"))
    assert f"no database at {db}" in line
    assert not (tmp_path / "nonexistent").exists()


def test_an_existing_state_folder_without_a_database_gets_none(repo: Path) -> None:
    state = repo / ".conductor"
    state.mkdir()
    one_line_error(Cli(repo, process=True).fails("status"))
    assert list(state.iterdir()) == []


@pytest.mark.parametrize("command", GIT_READING, ids=" ".join)
def test_git_reading_commands_create_nothing(
    repo: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    before = everything_under(repo)
    db = tmp_path / "nonexistent" / "x.db"
    Cli(repo, process=True)(*command, CONDUCTOR_DB=str(db))
    Cli(repo, process=True)(*command)
    assert everything_under(repo) == before
    assert not (tmp_path / "nonexistent").exists()


def test_a_command_that_writes_makes_the_state_folder_ignored_by_git(repo: Path) -> None:
    Cli(repo, process=True).ok("init", "--sessions", "A:x")
    assert (repo / ".conductor" / "conductor.db").is_file()
    assert git(repo, "status", "--porcelain") == ""
