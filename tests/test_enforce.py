"""The PreToolUse policy: writes judged where they really land, pushes judged as the shell
reads the command. Real files and real symlinks under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.enforce import protected_reason, pushes, write_target, written_path
from conductor.errors import ConductorError, InvalidInput, PathOutsideRepository


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    tree = tmp_path / "worktree"
    (tree / "src").mkdir(parents=True)
    return tree


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    other = tmp_path / "elsewhere"
    other.mkdir()
    return other


# ----------------------------------------------------------------------------- written_path


def test_a_write_tool_names_the_path_it_writes() -> None:
    assert written_path("Write", {"file_path": "a.txt"}) == "a.txt"
    assert written_path("NotebookEdit", {"notebook_path": "n.ipynb"}) == "n.ipynb"


def test_other_tools_write_no_path() -> None:
    assert written_path("Bash", {"command": "touch a.txt"}) is None


# ----------------------------------------------------------------------------- write_target


def test_a_relative_path_is_taken_from_the_worktree(worktree: Path) -> None:
    assert write_target("src/a.py", worktree) == "src/a.py"


def test_an_absolute_path_inside_the_worktree_becomes_repo_relative(worktree: Path) -> None:
    assert write_target(str(worktree / "src" / "a.py"), worktree) == "src/a.py"


def test_a_path_climbing_out_of_the_worktree_is_refused(worktree: Path) -> None:
    with pytest.raises(PathOutsideRepository, match="outside your worktree"):
        write_target("../evil.txt", worktree)


def test_a_write_through_a_symlink_to_the_worktree_root_is_judged_by_its_real_path(
    worktree: Path,
) -> None:
    (worktree / "d").symlink_to(".")
    assert write_target("d/owned.txt", worktree) == "owned.txt"


def test_a_write_through_a_symlinked_directory_returns_the_real_directory(
    worktree: Path,
) -> None:
    (worktree / "alias").symlink_to("src")
    assert write_target(str(worktree / "alias" / "a.py"), worktree) == "src/a.py"


def test_a_write_through_a_symlink_leaving_the_worktree_is_refused_naming_the_worktree(
    worktree: Path, elsewhere: Path
) -> None:
    (worktree / "out").symlink_to(elsewhere)
    with pytest.raises(PathOutsideRepository) as refused:
        write_target("out/owned.txt", worktree)
    assert f"outside your worktree {worktree}" in str(refused.value)
    assert str(elsewhere.resolve()) in str(refused.value)


def test_dot_dot_after_a_symlink_climbs_from_where_the_symlink_points(
    worktree: Path, elsewhere: Path
) -> None:
    (elsewhere / "sub").mkdir()
    (worktree / "link").symlink_to(elsewhere / "sub")
    with pytest.raises(PathOutsideRepository, match="outside your worktree"):
        write_target("link/../escaped.txt", worktree)


def test_a_symlinked_file_is_judged_by_the_file_it_points_to(worktree: Path) -> None:
    (worktree / "src" / "real.txt").write_text("x\n")
    (worktree / "link.txt").symlink_to("src/real.txt")
    assert write_target("link.txt", worktree) == "src/real.txt"


def test_a_symlinked_file_pointing_outside_is_refused(worktree: Path) -> None:
    (worktree / "link.txt").symlink_to("../../x")
    with pytest.raises(PathOutsideRepository, match="outside your worktree"):
        write_target("link.txt", worktree)


def test_a_dangling_symlink_is_resolved_as_far_as_it_goes(worktree: Path, elsewhere: Path) -> None:
    (worktree / "inside.txt").symlink_to("src/not-yet.txt")
    (worktree / "outside.txt").symlink_to(elsewhere / "not-yet.txt")
    assert write_target("inside.txt", worktree) == "src/not-yet.txt"
    with pytest.raises(PathOutsideRepository):
        write_target("outside.txt", worktree)


def test_a_worktree_behind_a_symlink_is_compared_resolved(tmp_path: Path, worktree: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(worktree)
    assert write_target(str(worktree / "src" / "a.py"), alias) == "src/a.py"
    assert write_target(str(alias / "src" / "a.py"), worktree) == "src/a.py"
    assert write_target("src/a.py", alias) == "src/a.py"


def test_an_empty_path_is_bad_input(worktree: Path) -> None:
    with pytest.raises(InvalidInput, match="empty path"):
        write_target("  ", worktree)


def test_a_path_with_a_nul_byte_is_bad_input(worktree: Path) -> None:
    with pytest.raises(InvalidInput, match="NUL"):
        write_target("a\0b", worktree)


@pytest.mark.parametrize(
    "path", [".git", ".git/config", ".git/hooks/post-merge", "sub/.git/config", ".GIT/config"]
)
def test_writes_into_git_data_are_refused(worktree: Path, path: str) -> None:
    with pytest.raises(InvalidInput, match="git's own data: commit with git"):
        write_target(path, worktree)


def test_a_symlink_into_git_data_is_refused(worktree: Path) -> None:
    (worktree / ".git").mkdir()
    (worktree / "g").symlink_to(".git")
    with pytest.raises(InvalidInput, match=r"^\.git/config is git's own data"):
        write_target("g/config", worktree)


@pytest.mark.parametrize(
    "path",
    [
        ".claude/settings.json",
        ".claude/settings.local.json",
        ".mcp.json",
        "sub/.mcp.json",
        "sub/.claude/settings.json",
    ],
)
def test_writes_to_claude_code_configuration_are_refused(worktree: Path, path: str) -> None:
    with pytest.raises(InvalidInput, match="configures Claude Code itself"):
        write_target(path, worktree)


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        ".github/workflows/x.yml",
        ".gitignore",
        ".gitattributes",
        ".gitmodules",
        "docs/settings.json",
        ".claude/commands/review.md",
        "src/.git-blame-ignore",
    ],
)
def test_ordinary_files_are_written(worktree: Path, path: str) -> None:
    assert write_target(path, worktree) == path


def test_every_refusal_is_a_conductor_error_the_hook_reports(worktree: Path) -> None:
    for path in ("../x", ".git/config", ".mcp.json", ""):
        with pytest.raises(ConductorError):
            write_target(path, worktree)


def test_protected_reason_is_none_for_an_ordinary_path() -> None:
    assert protected_reason("src/a.py") is None
    assert protected_reason(".") is None


def test_protected_reason_names_the_path() -> None:
    reason = protected_reason("sub/.git/config")
    assert reason is not None and reason.startswith("sub/.git/config ")


# ----------------------------------------------------------------------------- pushes


@pytest.mark.parametrize(
    "command",
    [
        "git push",
        "/usr/bin/git push",
        "git -C x push",
        "git -c a=b push",
        "git --git-dir=.git --work-tree . --no-pager push",
        "cd x && git push origin HEAD",
        'sh -c "git push"',
        "bash -lc 'git push'",
        'bash -euo pipefail -c "git push"',
        "eval git push",
        "echo $(git push)",
        'echo "$(git push)"',
        "`git push`",
        "env FOO=1 git push",
        "env -i FOO=1 git push",
        "FOO=1 git push",
        "git send-pack ../r.git",
        "git http-push https://example.com/r.git",
        "git -c alias.p=push p",
        "git -c alias.x='!sh -c true' x",
        "gh pr create --fill",
        "gh pr merge 3",
        "gh repo sync",
        "gh api repos/o/r/git/refs",
        "timeout 5 git push",
        "timeout -s KILL 5 git push",
        "sudo -u bob git push",
        "nohup git push &",
        "command git push",
        "exec git push",
        "nice -n 10 git push",
        "xargs git push",
        "time git push",
        "'git' push",
        "2>/dev/null git push",
        "git status; git push",
        "git status\ngit push",
        "echo ok || (git push)",
        "if true; then git push; fi",
        "git \\\npush",
        "git submodule foreach git push",
        "bash <<'EOF'\ngit push\nEOF",
        "cat <<EOF\n$(git push)\nEOF",
    ],
)
def test_every_spelling_of_a_push_is_caught(command: str) -> None:
    assert pushes(command)


@pytest.mark.parametrize(
    "command",
    [
        'echo "git push is forbidden"',
        'grep -r "git push" docs/',
        "git status",
        "git log --grep push",
        "printf 'git push\\n'",
        'git commit -m "push later"',
        'git commit -m "fix; then git push"',
        "echo '$(git push)'",
        "echo ok # then git push",
        "git pushy",
        "git stash push -m wip",
        "gh pr view 3",
        "bash script.sh",
    ],
)
def test_text_that_only_mentions_a_push_is_not_one(command: str) -> None:
    assert not pushes(command)


def test_a_quoted_heredoc_body_is_text_not_a_command() -> None:
    assert not pushes("cat <<'EOF'\ngit push\nEOF")


def test_a_comment_does_not_hide_the_command_on_the_next_line() -> None:
    assert pushes("echo hi # a comment\ngit push")


def test_a_git_alias_from_a_config_file_is_left_to_the_sandbox() -> None:
    assert not pushes("git p")


def test_git_exec_path_without_a_value_prints_and_exits_so_nothing_after_runs() -> None:
    assert not pushes("git --exec-path push")


def test_an_unbalanced_quote_falls_back_to_the_pattern() -> None:
    assert pushes("git push 'origin")
    assert not pushes("echo 'unbalanced")


def test_deep_nesting_falls_back_to_the_pattern_instead_of_recursing_forever() -> None:
    assert pushes("echo $(" * 30 + "git push" + ")" * 30)
    assert pushes("eval " * 30 + "git push")
