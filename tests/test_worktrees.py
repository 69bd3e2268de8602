"""A run's worktrees: made per session, reused, bootstrapped, and cleaned up. Real git."""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path

import anyio
import pytest
from support import Cli, commit_file, git

from conductor import worktrees
from conductor.errors import ConductorError
from conductor.worktrees import Bootstrap, SetupFailed

pytestmark = pytest.mark.anyio

RUN = "20261123-120000-abcd"


async def test_a_session_gets_its_own_worktree_on_its_own_branch(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    tree = await worktrees.prepare(repo, RUN, "A", base)
    assert tree.created
    assert tree.path == repo / ".conductor" / "worktrees" / RUN / "A"
    assert tree.branch == f"conductor/{RUN}-A"
    assert git(tree.path, "rev-parse", "--abbrev-ref", "HEAD") == tree.branch
    assert git(tree.path, "rev-parse", "HEAD") == base
    assert git(repo, "status", "--porcelain") == ""  # .conductor/ is ignored


async def test_preparing_the_same_session_again_reuses_its_worktree(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    first = await worktrees.prepare(repo, RUN, "A", base)
    work = commit_file(first.path, "a.py", "a = 1\n")
    again = await worktrees.prepare(repo, RUN, "A", base)
    assert (again.path, again.created) == (first.path, False)
    assert git(again.path, "rev-parse", "HEAD") == work


async def test_a_worktree_whose_folder_vanished_is_made_again_from_what_the_gate_collected(
    repo: Path,
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    first = await worktrees.prepare(repo, RUN, "A", base)
    work = commit_file(first.path, "a.py", "a = 1\n")
    assert await worktrees.collect(repo, first.path, first.branch) == work
    shutil.rmtree(first.path)
    again = await worktrees.prepare(repo, RUN, "A", base)
    assert again.created and git(again.path, "rev-parse", "HEAD") == work


async def test_a_session_tree_has_a_repository_of_its_own_that_borrows_the_objects(
    repo: Path,
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    tree = await worktrees.prepare(repo, RUN, "A", base)
    assert (tree.path / ".git").is_dir()  # not a linked worktree's .git file
    alternates = (tree.path / ".git" / "objects" / "info" / "alternates").read_text()
    assert alternates.strip() == str(repo / ".git" / "objects")
    work = commit_file(tree.path, "a.py", "a = 1\n")
    # The commit is the session's alone until the gate collects it.
    assert git(repo, "cat-file", "-t", work, check=False) != "commit"
    assert git(repo, "branch", "--list", tree.branch) == ""
    assert await worktrees.collect(repo, tree.path, tree.branch) == work
    assert git(repo, "rev-parse", tree.branch) == work


async def test_a_tree_cut_off_while_it_was_made_is_made_anew(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    path = worktrees.worktree_path(repo, RUN, "A")
    half = path.with_name(f".{path.name}.partial")
    half.mkdir(parents=True)
    (half / "junk").write_text("a crash left this\n")
    tree = await worktrees.prepare(repo, RUN, "A", base)
    assert tree.created and not half.exists()
    assert git(tree.path, "rev-parse", "HEAD") == base


async def test_a_tree_that_is_not_whole_is_moved_aside_and_made_anew(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    first = await worktrees.prepare(repo, RUN, "A", base)
    (first.path / ".git" / "index").unlink()
    again = await worktrees.prepare(repo, RUN, "A", base)
    assert again.created and git(again.path, "status", "--porcelain") == ""
    assert [p.name for p in first.path.parent.iterdir() if ".broken-" in p.name]


async def test_the_sandbox_placeholders_are_never_staged(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    tree = await worktrees.prepare(repo, RUN, "A", base)
    for name in (".bashrc", ".gitconfig", ".mcp.json"):
        (tree.path / name).write_text("")
    (tree.path / ".claude").mkdir()
    (tree.path / ".claude" / ".cc-writes").write_text("")
    (tree.path / "real.py").write_text("x = 1\n")
    git(tree.path, "add", "-A")
    assert git(tree.path, "diff", "--cached", "--name-only") == "real.py"
    assert await worktrees.uncommitted(tree.path) == ["real.py"]


async def test_sessions_starting_together_each_get_their_worktree(repo: Path) -> None:
    # git's own `worktree add`/`prune` trip over each other's half-made trees when they run
    # at once; a run starts its sessions together, so conductor takes them one at a time.
    base = git(repo, "rev-parse", "HEAD")
    names = [f"S{i}" for i in range(8)]
    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(worktrees.prepare, repo, RUN, name, base)
    made = {t.branch for t in await worktrees.run_worktrees(repo, RUN)}
    assert made == {f"conductor/{RUN}-{n}" for n in names}


async def test_declared_files_are_copied_into_a_new_worktree(repo: Path) -> None:
    (repo / ".gitignore").write_text(".env\n")
    (repo / ".env").write_text("SECRET=1\n")
    base = git(repo, "rev-parse", "HEAD")
    tree = await worktrees.prepare(
        repo, RUN, "A", base, Bootstrap(copy_files=[".env", "missing.cfg"])
    )
    assert tree.copied == [".env"]
    assert (tree.path / ".env").read_text() == "SECRET=1\n"


async def test_the_setup_command_runs_in_a_new_worktree_only(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    count = [
        sys.executable,
        "-c",
        "import pathlib; p = pathlib.Path('setup.log');"
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x')",
    ]
    tree = await worktrees.prepare(repo, RUN, "A", base, Bootstrap(setup=count))
    await worktrees.prepare(repo, RUN, "A", base, Bootstrap(setup=count))
    assert (tree.path / "setup.log").read_text() == "x"


async def test_the_setup_command_carries_the_runs_marker(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    record = [
        sys.executable,
        "-c",
        "import os, pathlib;"
        " pathlib.Path('marker.txt').write_text(os.environ['CONDUCTOR_SUPERVISED'])",
    ]
    tree = await worktrees.prepare(repo, RUN, "A", base, Bootstrap(setup=record))
    assert (tree.path / "marker.txt").read_text() == RUN


async def test_a_setup_that_did_not_finish_runs_again_when_the_tree_is_reused(
    repo: Path,
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    fail_once = [
        sys.executable,
        "-c",
        "import pathlib, sys; p = pathlib.Path('setup.log'); runs = p.read_text() if"
        " p.exists() else ''; p.write_text(runs + 'x'); sys.exit(None if runs else 'no')",
    ]
    with pytest.raises(SetupFailed):
        await worktrees.prepare(repo, RUN, "A", base, Bootstrap(setup=fail_once))
    tree = await worktrees.prepare(repo, RUN, "A", base, Bootstrap(setup=fail_once))
    await worktrees.prepare(repo, RUN, "A", base, Bootstrap(setup=fail_once))  # done by now
    assert not tree.created
    assert (tree.path / "setup.log").read_text() == "xx"


async def test_a_failing_setup_command_is_a_clear_error(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    fail = [sys.executable, "-c", "import sys; sys.exit('npm: not today')"]
    with pytest.raises(SetupFailed, match="failed \\(1\\): npm: not today"):
        await worktrees.prepare(repo, RUN, "A", base, Bootstrap(setup=fail))


def _run_with_two_sessions(cli: Cli, repo: Path) -> tuple[str, dict[str, Path]]:
    """A run with sessions A and B in worktrees; A's branch merged into main, B's not."""
    run = cli.ok("init", "--sessions", "A:x B:y", "--json").json()["run"]["id"]
    base = git(repo, "rev-parse", "HEAD")
    trees = {name: anyio.run(worktrees.prepare, repo, run, name, base).path for name in ("A", "B")}
    commit_file(trees["A"], "a.py", "a = 1\n")
    commit_file(trees["B"], "b.py", "b = 1\n")
    anyio.run(worktrees.collect, repo, trees["A"], f"conductor/{run}-A")
    git(repo, "merge", "-q", "--ff-only", f"conductor/{run}-A")
    return run, trees


def test_a_runs_worktrees_are_listed(cli: Cli, repo: Path) -> None:
    run, trees = _run_with_two_sessions(cli, repo)
    listed = cli.ok("worktrees", "--json").json()
    assert [(t["path"], t["branch"]) for t in listed] == [
        (str(trees["A"]), f"conductor/{run}-A"),
        (str(trees["B"]), f"conductor/{run}-B"),
    ]
    assert f"conductor/{run}-B" in cli.ok("worktrees", run).out


def test_clean_removes_worktrees_and_merged_branches_and_keeps_unmerged(
    cli: Cli, repo: Path
) -> None:
    run, trees = _run_with_two_sessions(cli, repo)
    out = cli.ok("clean").out
    assert f"removed worktree {trees['A']}" in out
    assert f"deleted branch conductor/{run}-A" in out
    assert f"kept branch conductor/{run}-B: not merged into main (use --force)" in out
    assert not trees["A"].exists() and not trees["B"].exists()
    assert git(repo, "branch", "--list", f"conductor/{run}-*").split() == [f"conductor/{run}-B"]


def test_clean_with_force_leaves_nothing_of_the_run(cli: Cli, repo: Path) -> None:
    run, trees = _run_with_two_sessions(cli, repo)
    (trees["B"] / "uncommitted.txt").write_text("work in progress\n")
    kept = cli.ok("clean").out
    assert "uncommitted changes (use --force)" in kept and trees["B"].exists()
    cli.ok("clean", run, "--force")
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not trees["B"].exists()
    assert git(repo, "branch", "--list", "conductor/*") == ""
    assert "nothing to clean" in cli.ok("clean", run).out


async def test_a_repository_a_session_bent_elsewhere_cannot_steer_conductors_git(
    repo: Path, tmp_path: Path
) -> None:
    # The session writes a `commondir` into its own .git, pointing at a repository of its
    # making whose config names a filter, and a .gitattributes that applies it.
    base = git(repo, "rev-parse", "HEAD")
    tree = await worktrees.prepare(repo, RUN, "A", base)
    crafted = tmp_path / "crafted.git"
    git(tmp_path, "init", "-q", "--bare", str(crafted))
    ran = tmp_path / "filter-ran"
    git(crafted, "config", "filter.evil.clean", f"sh -c 'touch {ran}; cat'")
    (tree.path / ".gitattributes").write_text("* filter=evil\n")
    (tree.path / "README.md").write_text("HELLO\n")  # same size: git hashes it, filtered
    (tree.path / ".git" / "commondir").write_text(f"{crafted}\n")
    with contextlib.suppress(ConductorError):
        await worktrees.uncommitted(tree.path)
    assert not ran.exists()
    # Nor can it send conductor's writes into the main repository's refs.
    (tree.path / ".git" / "commondir").write_text(f"{repo / '.git'}\n")
    with contextlib.suppress(ConductorError):
        await worktrees.share_ref(tree.path, "conductor/stolen", base)
    assert git(repo, "branch", "--list", "conductor/stolen") == ""


async def test_bootstrapping_again_copies_nothing_through_a_link_the_session_made(
    repo: Path, tmp_path: Path
) -> None:
    (repo / ".env").write_text("SECRET=1\n")
    base = git(repo, "rev-parse", "HEAD")
    fail_once = [sys.executable, "-c", "import os,sys; sys.exit(0 if os.path.exists('ok') else 1)"]
    with pytest.raises(SetupFailed):
        await worktrees.prepare(
            repo, RUN, "A", base, Bootstrap(copy_files=[".env"], setup=fail_once)
        )
    tree = worktrees.worktree_path(repo, RUN, "A")
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    (tree / ".env").unlink()
    (tree / ".env").symlink_to(victim)  # the session, before the next bootstrap
    (tree / "ok").write_text("")
    await worktrees.prepare(repo, RUN, "A", base, Bootstrap(copy_files=[".env"], setup=fail_once))
    assert victim.read_text() == "mine\n"
    assert (tree / ".env").read_text() == "SECRET=1\n" and not (tree / ".env").is_symlink()


async def test_the_bootstrap_record_is_kept_out_of_the_sessions_tree(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    tree = await worktrees.prepare(repo, RUN, "A", base, Bootstrap(setup=["true"]))
    assert not list(tree.path.rglob("*bootstrapped*"))
    assert tree.path.with_name(".A.bootstrapped").exists()


async def test_what_a_killed_session_left_half_done_is_tidied_before_it_starts_again(
    repo: Path,
) -> None:
    tree = (await worktrees.prepare(repo, RUN, "A", git(repo, "rev-parse", "HEAD"))).path
    (tree / ".git" / "index.lock").write_text("")  # git was committing when it died
    (tree / "src").mkdir()
    (tree / "src" / "a.py.tmp.1151.b03620464cd6").write_text("half")  # the CLI was writing
    (tree / "notes.tmp").write_text("the session's own file")
    removed = await worktrees.tidy_after_death(tree)
    assert sorted(removed) == [".git/index.lock", "src/a.py.tmp.1151.b03620464cd6"]
    assert (tree / "notes.tmp").exists()
    commit_file(tree, "a.py", "a = 1\n")  # its next commit goes through


async def test_tidying_never_deletes_through_a_link_the_session_made(
    repo: Path, tmp_path: Path
) -> None:
    tree = (await worktrees.prepare(repo, RUN, "A", git(repo, "rev-parse", "HEAD"))).path
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.tmp.1.abcdefabcdef").write_text("not the session's")
    (tree / "link").symlink_to(outside, target_is_directory=True)
    await worktrees.tidy_after_death(tree)
    assert (outside / "keep.tmp.1.abcdefabcdef").exists()
