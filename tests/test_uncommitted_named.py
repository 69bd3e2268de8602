"""A run starts from HEAD, so `conductor run` refuses a working tree with uncommitted changes,
and names them: the user should not have to guess which file (an untracked one, often) it
means. Run as the real command; it stops before planning, so no model is needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import Cli, commit_file, one_line_error


@pytest.fixture
def runner(repo: Path) -> Cli:
    # The sandbox off (with IS_SANDBOX, which root needs then) so the refusal does not
    # depend on bubblewrap being installed: the dirty check comes after the sandbox's.
    commit_file(repo, "conductor.toml", "sandbox = false\n")
    return Cli(repo, process=True, IS_SANDBOX="1", ANTHROPIC_API_KEY="k")


def test_an_untracked_file_is_named_as_untracked(runner: Cli, repo: Path) -> None:
    (repo / "notes.txt").write_text("mine\n")
    line = one_line_error(runner.fails("run", "Build X"))
    assert "uncommitted changes: notes.txt (untracked);" in line
    assert (repo / "notes.txt").read_text() == "mine\n"  # nothing lost


def test_a_modified_file_is_named(runner: Cli, repo: Path) -> None:
    (repo / "README.md").write_text("edited\n")
    assert "uncommitted changes: README.md;" in one_line_error(runner.fails("run", "Build X"))


def test_many_changes_are_named_five_then_counted(runner: Cli, repo: Path) -> None:
    for n in range(8):
        (repo / f"f{n}.txt").write_text("x\n")
    line = one_line_error(runner.fails("run", "Build X"))
    assert "f4.txt (untracked) and 3 more;" in line
    assert "f5.txt" not in line


def test_a_name_with_a_newline_or_an_escape_stays_on_one_line(runner: Cli, repo: Path) -> None:
    (repo / "two\nlines\x1b[31m").write_text("x\n")
    line = one_line_error(runner.fails("run", "Build X"))
    assert "two\\nlines\\x1b[31m (untracked)" in line
