"""The git commands and the review gate, against real repositories and a real remote."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from support import Cli, clean_env, commit_file, git, make_repo, one_line_error

from conductor import worktrees
from conductor.bus import create_run
from conductor.run.launch import merge_target
from conductor.store import Store

# ------------------------------------------------------------------------------ commit


def test_commit_prefixes_the_session(team: Cli, repo: Path) -> None:
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "a.txt")
    team.ok("commit", "add PII detection middleware", "--session", "A")
    assert git(repo, "log", "-1", "--format=%s") == "[Session A] add PII detection middleware"


def test_commit_message_from_stdin(process_cli: Cli, team: Cli, repo: Path) -> None:
    (repo / "long.txt").write_text("long\n")
    git(repo, "add", "long.txt")
    body = "subject line\n\n" + "a long body line\n" * 40_000  # ~700 kB
    done = process_cli.ok("commit", "-", "--session", "A", input=body.encode())
    assert done.out.startswith("[Session A] subject line (")  # its subject, not 700 kB
    assert git(repo, "log", "-1", "--format=%s") == "[Session A] subject line"
    assert git(repo, "log", "-1", "--format=%B").count("a long body line") == 40_000


def test_commit_all_stages_every_change_first(team: Cli, repo: Path) -> None:
    (repo / "new.txt").write_text("new\n")
    team.ok("commit", "everything", "--session", "B", "--all")
    assert git(repo, "status", "--porcelain") == ""
    assert "new.txt" in git(repo, "show", "--name-only", "--format=", "HEAD")


def test_commit_with_nothing_staged_is_refused(team: Cli, repo: Path) -> None:
    (repo / "untracked.txt").write_text("x\n")
    head = git(repo, "rev-parse", "HEAD")
    assert "nothing staged" in one_line_error(team.fails("commit", "x", "--session", "A"))
    assert git(repo, "rev-parse", "HEAD") == head


def test_commit_is_an_event(team: Cli, repo: Path) -> None:
    (repo / "e.txt").write_text("e\n")
    team.ok("commit", "evented", "--session", "C", "--all")
    events = team.ok("dashboard", "--json").json()["events"]
    assert any(e["kind"] == "git.commit" and e["session"] == "C" for e in events)


# ------------------------------------------------------------------------------ push and pull


@pytest.fixture
def remote(repo: Path, tmp_path: Path) -> Path:
    """A bare remote that `repo` tracks on main."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "-u", "origin", "main")
    return bare


@pytest.fixture
def other_clone(remote: Path, tmp_path: Path) -> Path:
    """Another developer's clone of the same remote."""
    clone = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    return clone


def test_push_publishes_the_branch_and_frees_the_lock(team: Cli, repo: Path, remote: Path) -> None:
    head = commit_file(repo, "api.py", "x = 1\n")
    team.ok("push", "--session", "A")
    assert git(remote, "rev-parse", "main") == head
    assert team.ok("lock", "show", "--json").json() is None


def test_push_rebases_onto_work_pushed_meanwhile(
    team: Cli, repo: Path, remote: Path, other_clone: Path
) -> None:
    commit_file(other_clone, "theirs.py", "t = 1\n")
    git(other_clone, "push", "-q", "origin", "main")
    commit_file(repo, "ours.py", "o = 1\n")
    assert "rebased" in team.ok("push", "--session", "A").out
    files = git(remote, "ls-tree", "--name-only", "main").splitlines()
    assert {"theirs.py", "ours.py"} <= set(files)
    assert git(repo, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")


def test_push_with_a_conflicting_rebase_leaves_the_tree_as_it_was(
    team: Cli, repo: Path, remote: Path, other_clone: Path
) -> None:
    commit_file(other_clone, "README.md", "theirs\n")
    git(other_clone, "push", "-q", "origin", "main")
    ours = commit_file(repo, "README.md", "ours\n")
    line = one_line_error(team.fails("push", "--session", "A"))
    assert "rebase" in line
    assert not (repo / ".git" / "rebase-merge").exists()
    assert not (repo / ".git" / "rebase-apply").exists()
    assert git(repo, "rev-parse", "HEAD") == ours
    assert git(repo, "status", "--porcelain") == ""
    assert team.ok("lock", "show", "--json").json() is None


def test_push_without_a_remote_says_so(team: Cli) -> None:
    assert "no remote" in one_line_error(team.fails("push", "--session", "A"))


def test_push_waits_for_a_lock_held_by_a_live_process(team: Cli, repo: Path, remote: Path) -> None:
    holder = _hold_lock(repo, seconds=30)
    try:
        line = one_line_error(team.fails("push", "--session", "A", "--wait", "0.3"))
        assert "held by holder-X" in line
    finally:
        _stop(holder)
    # The holder is dead now: its lease is reclaimed at once.
    team.ok("push", "--session", "A", "--wait", "0")


def test_pull_rebases_onto_the_upstream(
    team: Cli, repo: Path, remote: Path, other_clone: Path
) -> None:
    theirs = commit_file(other_clone, "theirs.py", "t = 1\n")
    git(other_clone, "push", "-q", "origin", "main")
    team.ok("pull", "--session", "A")
    assert git(repo, "rev-parse", "HEAD") == theirs


# ------------------------------------------------------------------------------ the lock


def _hold_lock(repo: Path, seconds: float) -> subprocess.Popen[bytes]:
    """A separate process that takes the git lock and keeps living."""
    code = textwrap.dedent(
        f"""
        import anyio, sys
        from pathlib import Path
        from conductor.bus import open_run
        from conductor.store import Store
        async def main():
            async with Store.open(Path({str(repo / ".conductor" / "conductor.db")!r})) as s:
                bus = await open_run(s)
                await bus.acquire_lock("holder-X", lease_seconds=600)
                print("held", flush=True)
                await anyio.sleep({seconds})
        anyio.run(main)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=repo, env=clean_env(), stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill and reap (a zombie would still look alive), and close its pipe."""
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def lock_holder(team: Cli, repo: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = _hold_lock(repo, seconds=30)
    yield proc
    _stop(proc)


def test_lock_show_names_the_holder(team: Cli, lock_holder: subprocess.Popen[bytes]) -> None:
    lease = team.ok("lock", "show", "--json").json()
    assert lease["holder"] == "holder-X" and lease["pid"] == lock_holder.pid
    assert "held by holder-X" in team.ok("lock", "show").out


def test_lock_release_needs_force(team: Cli, lock_holder: subprocess.Popen[bytes]) -> None:
    assert "--force" in one_line_error(team.fails("lock", "release"))
    assert "holder-X" in team.ok("lock", "release", "--force").out
    assert team.ok("lock", "show", "--json").json() is None


# ------------------------------------------------------------------------------ reviews


@pytest.fixture
def feature(team: Cli, repo: Path) -> str:
    """Session A works on branch `feature` with one commit; returns that commit."""
    git(repo, "checkout", "-q", "-b", "feature")
    head = commit_file(repo, "feature.py", "def f():\n    return 1\n")
    git(repo, "checkout", "-q", "main")
    team.ok("update", "A", "--branch", "feature")
    return head


def test_review_diff_is_computed_from_the_sessions_branch(
    team: Cli, repo: Path, feature: str
) -> None:
    review = team.ok("review", "request", "--from", "A", "--to", "B", "--json").json()
    assert review["commit"] == feature
    shown = team.ok("review", "show", str(review["id"]), "--diff-only").raw
    assert (
        shown
        == subprocess.run(
            ["git", "diff", "--binary", f"main...{feature}"],
            cwd=repo,
            capture_output=True,
            check=True,
        ).stdout
    )
    assert b"+def f():" in shown


def test_review_diff_from_stdin_comes_back_byte_for_byte(process_cli: Cli, team: Cli) -> None:
    diff = b"--- a\n+++ b\n" + bytes(range(256)) * 8192 + "\u00e9\n".encode("latin-1")
    assert len(diff) > 2_000_000  # far beyond any command-line limit
    process_cli.ok("review", "request", "--from", "A", "--diff-file", "-", input=diff)
    assert process_cli.ok("review", "show", "1", "--diff-only").raw == diff


def test_review_diff_dash_reads_stdin_byte_for_byte(process_cli: Cli, team: Cli) -> None:
    diff = b"--- a\n+++ b\n" + b"+\x1b[31m a line of a megabyte diff\n" * 32_768 + b"\n\n"
    assert len(diff) > 1 << 20
    process_cli.ok("review", "request", "--from", "A", "--diff", "-", input=diff)
    assert process_cli.ok("review", "show", "1", "--diff-only").raw == diff  # not "-"


def test_review_note_from_stdin(team: Cli) -> None:
    team.ok("review", "request", "--from", "A", "--diff", "+x", "--note", "-", input=b"see\n")
    assert team.ok("review", "show", "1", "--json").json()["note"] == "see"


def test_only_one_value_comes_from_stdin(team: Cli) -> None:
    for args in (["--diff", "-", "--note", "-"], ["--diff-file", "-", "--note", "-"]):
        line = one_line_error(team.fails("review", "request", "--from", "A", *args, input=b"x"))
        assert "only one of --diff, --diff-file and --note can read stdin" in line
    assert "not both" in one_line_error(
        team.fails("review", "request", "--from", "A", "--diff", "x", "--diff-file", "-")
    )


def test_review_comment_from_stdin(team: Cli) -> None:
    team.ok("review", "request", "--from", "A", "--to", "B", "--diff", "+x")
    team.ok("review", "reject", "1", "--from", "B", "-m", "-", input=b"fix\nthis\n\n")
    assert team.ok("review", "show", "1", "--json").json()["comment"] == "fix\nthis"


def test_review_diff_from_a_file(team: Cli, tmp_path: Path) -> None:
    patch = tmp_path / "change.patch"
    patch.write_bytes(b"+[bold]not markup[/bold]\n")
    team.ok("review", "request", "--from", "A", "--diff-file", str(patch))
    assert team.ok("review", "show", "1", "--diff-only").raw == patch.read_bytes()
    assert "[bold]not markup[/bold]" in team.ok("review", "show", "1").out


def test_requester_cannot_approve_their_own_review(team: Cli, feature: str) -> None:
    team.ok("review", "request", "--from", "A")
    line = one_line_error(team.fails("review", "approve", "1", "--from", "A"))
    assert "cannot decide" in line


def test_only_the_assigned_reviewer_decides(team: Cli, feature: str) -> None:
    team.ok("review", "request", "--from", "A", "--to", "B")
    assert "assigned to B" in one_line_error(team.fails("review", "approve", "1", "--from", "C"))
    team.ok("review", "approve", "1", "--from", "B")


def test_merge_ok_is_false_without_a_review(process_cli: Cli, team: Cli, feature: str) -> None:
    assert "no review" in process_cli.fails("merge-ok", "A", code=1).out


def test_merge_ok_follows_the_review_of_the_current_head(
    process_cli: Cli, team: Cli, repo: Path, feature: str
) -> None:
    team.ok("review", "request", "--from", "A", "--to", "B")
    process_cli.fails("merge-ok", "A", code=1)
    team.ok("review", "approve", "1", "--from", "B", "--comment", "lgtm")
    assert "approved" in process_cli.ok("merge-ok", "A").out
    git(repo, "checkout", "-q", "feature")
    commit_file(repo, "later.py", "x = 2\n")
    git(repo, "checkout", "-q", "main")
    assert "head is now" in process_cli.fails("merge-ok", "A", code=1).out


def test_rejection_then_rerequest_supersedes_the_old_review(
    team: Cli, repo: Path, feature: str
) -> None:
    team.ok("review", "request", "--from", "A", "--to", "B")
    team.ok("review", "reject", "1", "--from", "B", "--comment", "fix the error types first")
    assert "fix the error types first" in team.ok("sync", "--session", "A").out
    git(repo, "checkout", "-q", "feature")
    fixed = commit_file(repo, "feature.py", "def f():\n    return 2\n")
    git(repo, "checkout", "-q", "main")
    team.ok("review", "request", "--from", "A", "--to", "B")
    old, new = team.ok("review", "list", "--json").json()
    assert (old["status"], old["superseded_by"]) == ("superseded", new["id"])
    assert "superseded" in one_line_error(team.fails("review", "approve", "1", "--from", "B"))
    team.ok("review", "approve", str(new["id"]), "--from", "B")
    verdict = team.ok("merge-ok", "A", "--json").json()
    assert verdict["ok"] is True and verdict["review"]["commit"] == fixed


def test_the_reviewer_hears_of_a_request(team: Cli, feature: str) -> None:
    team.ok("review", "request", "--from", "A", "--to", "B", "--note", "please look at f()")
    assert "please look at f()" in team.ok("sync", "--session", "B").out


# ------------------------------------------------------------------------------ git info


def test_git_status_diff_and_log_pass_through(team: Cli, repo: Path) -> None:
    (repo / "s.txt").write_text("s\n")
    git(repo, "add", "s.txt")
    assert "A  s.txt" in team.ok("git-status").out
    assert "+s" in team.ok("git-diff", "--staged").out
    assert "initial" in team.ok("git-log", "-n", "1").out


def test_git_commands_work_in_a_second_repository_too(tmp_path: Path) -> None:
    other = make_repo(tmp_path / "second")
    assert "initial" in Cli(other).ok("git-log").out


@pytest.mark.parametrize(
    "args", [["git-status"], ["git-diff"], ["git-log"], ["git-log", "-n", "3"]]
)
def test_git_commands_outside_a_repository_are_a_one_line_error(
    tmp_path: Path, args: list[str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    line = one_line_error(Cli(plain, process=True).fails(*args))
    assert line.startswith(f"error: git {args[0].removeprefix('git-')}: ")
    assert "not a git repository" in line.lower()


def test_git_failing_inside_a_repository_is_a_one_line_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    line = one_line_error(Cli(empty).fails("git-log"))
    assert "does not have any commits yet" in line
    line = one_line_error(Cli(empty).fails("git-diff", "--no-such-option"))
    assert "no-such-option" in line
    assert one_line_error(Cli(empty).fails("git-log", "-n", "0")).startswith(
        "error: invalid value for '-n'"
    )


def test_git_diff_keeps_its_answer_that_the_trees_differ(team: Cli, repo: Path) -> None:
    assert team.ok("git-diff", "--exit-code").out == ""
    (repo / "README.md").write_text("changed\n")
    differs = team.fails("git-diff", "--exit-code", code=1)
    assert "+changed" in differs.out and differs.err == ""


# ------------------------------------------------------------------------------ clean


def test_clean_after_a_run_with_into_judges_branches_by_that_branch(cli: Cli, repo: Path) -> None:
    """A run started with `--into release` merges there, never into conductor/<run>: clean
    deletes the branches merged into release (not "not merged into main"), keeps the others,
    and leaves release itself alone."""

    async def started() -> str:
        async with Store.open(repo / ".conductor" / "conductor.db") as store:
            bus = await create_run(
                store,
                goal="g",
                repo_root=repo,
                base_ref="main",
                base_commit=git(repo, "rev-parse", "HEAD"),
                sessions=[("A", "a"), ("B", "b")],
                spec={"plan": {}, "config": {}, "into": "release", "remote": None},
            )
            assert merge_target(bus.run) == "release"
            return bus.run_id

    run = anyio.run(started)
    git(repo, "branch", "release")
    base = git(repo, "rev-parse", "HEAD")
    trees = {name: anyio.run(worktrees.prepare, repo, run, name, base).path for name in "AB"}
    commit_file(trees["A"], "a.py", "a = 1\n")
    commit_file(trees["B"], "b.py", "b = 1\n")
    for name in "AB":
        anyio.run(worktrees.collect, repo, trees[name], f"conductor/{run}-{name}")
    git(repo, "checkout", "-q", "release")
    git(repo, "merge", "-q", "--no-ff", "-m", "A in", f"conductor/{run}-A")
    git(repo, "checkout", "-q", "main")
    release = git(repo, "rev-parse", "release")

    out = cli.ok("clean", run).out
    assert f"deleted branch conductor/{run}-A" in out
    assert f"kept branch conductor/{run}-B: not merged into release (use --force)" in out
    assert git(repo, "branch", "--list", f"conductor/{run}-*").split() == [f"conductor/{run}-B"]
    assert git(repo, "rev-parse", "release") == release
