"""The merge gate, on real repositories: one branch at a time, checks on the merged result,
the integration branch advanced only when they pass, nothing half-merged left behind."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import commit_file, git

from conductor import gitops
from conductor.bus import create_run
from conductor.gates import MergeGate, MergeStatus
from conductor.store import Store

pytestmark = pytest.mark.anyio

RUN = "20261124-000000-beef"


def branch_with(repo: Path, name: str, files: dict[str, str], base: str = "main") -> str:
    git(repo, "checkout", "-q", "-b", name, base)
    for path, text in files.items():
        commit_file(repo, path, text, f"{name}: {path}")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return head


def gate(repo: Path, checks: Sequence[str] = (), into: str | None = None) -> MergeGate:
    return MergeGate(
        repo, RUN, base_commit=git(repo, "rev-parse", "main"), checks=checks, into=into
    )


def integration_is_clean(g: MergeGate) -> bool:
    """Nothing half merged left behind: no integration worktree at all (a gate without checks
    merges in the object store alone), or one with nothing in it but its commit's files."""
    if not g.tree.exists():
        return not g.checks
    return (
        git(g.tree, "status", "--porcelain", "--ignored") == ""
        and not (Path(git(g.tree, "rev-parse", "--git-dir")) / "MERGE_HEAD").exists()
    )


async def test_an_approved_branch_lands_on_the_integration_branch(repo: Path) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = gate(repo)
    outcome = await g.merge("feat-a", a)
    assert outcome.status is MergeStatus.MERGED
    assert g.branch == f"conductor/{RUN}"
    assert git(repo, "rev-parse", g.branch) == outcome.integration_head
    assert (
        git(
            repo,
            "merge-base",
            "--is-ancestor",
            a,
            g.branch,
        )
        == ""
    )
    assert git(repo, "rev-parse", "main") != outcome.integration_head  # main untouched
    assert integration_is_clean(g)


async def test_a_branch_is_never_merged_twice(repo: Path) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = gate(repo)
    first = await g.merge("feat-a", a)
    again = await g.merge("feat-a", a)
    assert again.status is MergeStatus.ALREADY_MERGED
    assert again.integration_head == first.integration_head
    assert git(repo, "rev-list", "--count", "--merges", g.branch) == "1"


async def test_a_conflict_is_aborted_cleanly_and_names_the_files(repo: Path) -> None:
    a = branch_with(repo, "feat-a", {"README.md": "A's readme\n"})
    b = branch_with(repo, "feat-b", {"README.md": "B's readme\n", "b.py": "B = 1\n"})
    g = gate(repo)
    landed = await g.merge("feat-a", a)
    outcome = await g.merge("feat-b", b)
    assert outcome.status is MergeStatus.CONFLICT
    assert outcome.conflicts == ["README.md"]
    assert git(repo, "rev-parse", g.branch) == landed.integration_head
    assert integration_is_clean(g)


CHECK = (
    f'{sys.executable} -c "import pathlib, sys;'
    " sys.exit('broken: ' + pathlib.Path('state.txt').read_text().strip()"
    " if pathlib.Path('state.txt').read_text().strip() != 'ok' else 0)\""
)


async def test_a_red_check_leaves_the_integration_branch_where_it_was(repo: Path) -> None:
    commit_file(repo, "state.txt", "ok\n")
    bad = branch_with(repo, "feat-bad", {"state.txt": "bad\n"})
    g = gate(repo, [CHECK])
    before = git(repo, "rev-parse", "main")  # the integration branch starts here
    outcome = await g.merge("feat-bad", bad)
    assert outcome.status is MergeStatus.CHECK_FAILED
    assert "broken: bad" in outcome.output and outcome.check.startswith(sys.executable)
    assert git(repo, "rev-parse", g.branch) == before
    assert integration_is_clean(g)


async def test_a_fixed_branch_lands_after_its_red_check(repo: Path) -> None:
    commit_file(repo, "state.txt", "ok\n")
    bad = branch_with(repo, "feat", {"state.txt": "bad\n"})
    g = gate(repo, [CHECK])
    assert (await g.merge("feat", bad)).status is MergeStatus.CHECK_FAILED
    git(repo, "checkout", "-q", "feat")
    commit_file(repo, "state.txt", "ok\n", "fix state")
    fixed = commit_file(repo, "feature.txt", "the feature\n")  # what the branch is for
    git(repo, "checkout", "-q", "main")
    assert (await g.merge("feat", fixed)).status is MergeStatus.MERGED


async def test_checks_run_on_the_merged_result_not_the_branch_alone(repo: Path) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    b = branch_with(repo, "feat-b", {"b.py": "from a import A\nB = A + 1\n"})
    needs_both = f"{sys.executable} -c 'import b; assert b.B == 2'"
    g = gate(repo, [needs_both])
    assert (await g.merge("feat-a", a)).status is MergeStatus.CHECK_FAILED  # no b.py yet
    g.checks = []
    assert (await g.merge("feat-a", a)).status is MergeStatus.MERGED
    g = gate(repo, [needs_both])
    assert (await g.merge("feat-b", b)).status is MergeStatus.MERGED  # b alone would fail


async def test_checks_carry_the_runs_marker_so_a_resume_can_end_them(repo: Path) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    seen = repo.parent / "marker.txt"
    record = (
        f'{sys.executable} -c "import os, pathlib;'
        f" pathlib.Path('{seen}').write_text(os.environ['CONDUCTOR_SUPERVISED'])\""
    )
    assert (await gate(repo, [record]).merge("feat-a", a)).status is MergeStatus.MERGED
    assert seen.read_text() == RUN


async def test_concurrent_requests_merge_one_at_a_time(repo: Path) -> None:
    heads = {n: branch_with(repo, f"feat-{n}", {f"{n}.py": f"{n} = 1\n"}) for n in "abc"}
    g = gate(repo, [f"{sys.executable} -c 'import time; time.sleep(0.1)'"])
    outcomes = []

    async def land(name: str) -> None:
        outcomes.append(await g.merge(f"feat-{name}", heads[name]))

    async with anyio.create_task_group() as tg:
        for name in heads:
            tg.start_soon(land, name)
    assert [o.status for o in outcomes] == [MergeStatus.MERGED] * 3
    assert git(repo, "rev-list", "--count", "--merges", g.branch) == "3"
    files = git(repo, "ls-tree", "--name-only", g.branch).split()
    assert {"a.py", "b.py", "c.py"} <= set(files)


async def test_into_targets_another_branch(repo: Path) -> None:
    git(repo, "branch", "release")
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = gate(repo, into="release")
    outcome = await g.merge("feat-a", a)
    assert git(repo, "rev-parse", "release") == outcome.integration_head
    assert not git(repo, "branch", "--list", f"conductor/{RUN}")


async def test_with_a_remote_the_integration_branch_is_pushed_under_the_lock(
    repo: Path, tmp_path: Path, store: Store
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    bus = await create_run(store, goal="g", repo_root=repo, base_ref="main", base_commit=None)
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = MergeGate(repo, RUN, base_commit=git(repo, "rev-parse", "main"), push=(bus, "origin"))
    outcome = await g.merge("feat-a", a)
    assert outcome.pushed_to == "origin"
    assert git(remote, "rev-parse", g.branch) == outcome.integration_head
    kinds = [e.kind for e in await bus.events()]
    assert kinds[-3:] == ["lock.acquired", "lock.released", "git.push"]
    assert await bus.lock() is None


# ------------------------------------------------------------------------------ re-checks


async def test_a_branch_that_changes_another_workstreams_paths_is_refused_naming_them(
    repo: Path,
) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n", "api/b.py": "taken = True\n"})
    g = gate(repo)
    await g.prepare()
    before = await g.head()
    outcome = await g.merge("feat-a", a, owners={"api": "B", "docs": "C"})
    assert outcome.status is MergeStatus.FOREIGN_PATHS
    assert outcome.foreign == {"api/b.py": "B"}
    assert await g.head() == before and integration_is_clean(g)


async def test_paths_a_branch_only_took_in_from_the_integration_branch_are_not_its_own(
    repo: Path,
) -> None:
    b = branch_with(repo, "feat-b", {"api/b.py": "B = 1\n"})
    g = gate(repo)
    assert (await g.merge("feat-b", b)).status is MergeStatus.MERGED
    # A brings its branch up to date with the integration branch (B's api/ comes with it).
    git(repo, "checkout", "-q", "-b", "feat-a", "main")
    git(repo, "merge", "-q", "--no-edit", g.branch)
    commit_file(repo, "a.py", "A = 1\n")
    a = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    assert (await g.merge("feat-a", a, owners={"api": "B"})).status is MergeStatus.MERGED


async def test_an_integration_branch_moved_outside_the_gate_stops_the_merge(repo: Path) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    g = gate(repo)
    landed = await g.merge("feat-a", a)
    git(repo, "update-ref", f"refs/heads/{g.branch}", b)  # unreviewed work, put there by hand
    outcome = await g.merge("feat-b", b)
    assert outcome.status is MergeStatus.TAMPERED
    assert "moved outside the gate" in outcome.output
    assert git(repo, "rev-parse", g.record_ref) == landed.integration_head


async def test_the_gate_records_each_tip_it_writes_and_a_new_gate_trusts_only_that(
    repo: Path,
) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = gate(repo)
    landed = await g.merge("feat-a", a)
    again = gate(repo)  # a resumed supervisor's gate
    await again.prepare()
    assert await again.moved_outside() is None
    assert git(repo, "rev-parse", again.record_ref) == landed.integration_head


async def test_the_gate_runs_no_hook_of_the_repository(repo: Path) -> None:
    hooks = repo / ".git" / "hooks"
    ran = repo.parent / "hook-ran"
    for name in ("post-merge", "pre-merge-commit", "reference-transaction", "post-checkout"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {ran}\n")
        hook.chmod(0o755)
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    ran.unlink(missing_ok=True)  # the test's own checkouts ran them
    assert (await gate(repo).merge("feat-a", a)).status is MergeStatus.MERGED
    assert not ran.exists()


async def test_checks_run_without_the_model_api_credentials(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "oauth-secret")
    leak = (
        f"{sys.executable} -c"
        " \"import os, sys; sys.exit(any('secret' in v for v in os.environ.values()))\""
    )
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    for jailed in (False, True):
        g = MergeGate(
            repo, RUN, base_commit=git(repo, "rev-parse", "main"), checks=[leak], jailed=jailed
        )
        outcome = await g.merge("feat-a", a)
        assert outcome.status in (MergeStatus.MERGED, MergeStatus.ALREADY_MERGED), outcome.output


async def test_a_jailed_check_writes_only_its_own_tree(repo: Path) -> None:
    outside = repo / "written-by-a-check"
    write = f"{sys.executable} -c \"open('{outside}', 'w').write('x')\""
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = MergeGate(
        repo, RUN, base_commit=git(repo, "rev-parse", "main"), checks=[write], jailed=True
    )
    outcome = await g.merge("feat-a", a)
    assert outcome.status is MergeStatus.CHECK_FAILED
    assert "Read-only file system" in outcome.output
    assert not outside.exists()


async def test_a_check_that_repoints_the_worktrees_git_file_runs_nothing_outside_the_jail(
    repo: Path, tmp_path: Path
) -> None:
    """The check makes a repository of its own in the tree (the objects borrowed from the
    main one, a smudge filter that leaves a mark outside the tree) and tries to point the
    tree's `.git` file at it, for the gate's git that cleans the tree outside the jail to
    run that filter. The jail keeps `.git` read-only, so the gate's git stays its own."""
    mark = tmp_path / "ran-outside-the-jail"
    plant = tmp_path / "plant.sh"
    plant.write_text(
        "set -e\n"
        "git init -q --bare evil.git\n"
        f"echo {repo / '.git' / 'objects'} > evil.git/objects/info/alternates\n"
        f"git --git-dir=evil.git config filter.evil.smudge 'sh -c \"touch {mark}; cat\"'\n"
        "mkdir -p evil.git/info\n"
        "echo '* filter=evil' > evil.git/info/attributes\n"
        'printf "gitdir: %s\\n" "$PWD/evil.git" > .git\n'
        "exit 1\n"
    )
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    g = MergeGate(
        repo,
        RUN,
        base_commit=git(repo, "rev-parse", "main"),
        checks=[f"sh {plant}"],
        jailed=True,
    )
    assert (await g.merge("feat-a", a)).status is MergeStatus.CHECK_FAILED
    assert (await g.merge("feat-b", b)).status is MergeStatus.CHECK_FAILED
    assert not mark.exists()
    assert integration_is_clean(g)


async def test_a_branch_whose_merge_changes_nothing_is_not_merged(repo: Path) -> None:
    commit_file(repo, "state.txt", "ok\n")
    git(repo, "checkout", "-q", "-b", "feat", "main")
    commit_file(repo, "state.txt", "changed\n")
    undone = commit_file(repo, "state.txt", "ok\n", "undo")  # commits that cancel out
    git(repo, "checkout", "-q", "main")
    g = gate(repo)
    await g.prepare()
    before = await g.head()
    assert (await g.merge("feat", undone)).status is MergeStatus.NOTHING
    assert await g.head() == before and integration_is_clean(g)


# ------------------------------------------------------------------------------ in the object store


@pytest.fixture
def git_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every git process conductor starts from here on (gitops.git is its one door to git),
    as its argument list."""
    calls: list[list[str]] = []
    real = gitops.git

    async def counting(args: Sequence[str], cwd: Path, **kwargs: Any) -> gitops.GitResult:
        calls.append(list(args))
        return await real(args, cwd, **kwargs)

    monkeypatch.setattr(gitops, "git", counting)
    return calls


def commands(calls: list[list[str]]) -> list[str]:
    """Each call's git command (`-c name=value` options passed over)."""
    found = []
    for args in calls:
        rest = list(args)
        while rest[:1] == ["-c"]:
            rest = rest[2:]
        found.append(rest[0])
    return found


async def test_a_merge_without_checks_runs_three_git_processes(
    repo: Path, git_calls: list[list[str]]
) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = gate(repo)
    await g.prepare()
    git_calls.clear()
    assert (await g.merge("feat-a", a)).status is MergeStatus.MERGED
    assert commands(git_calls) == ["merge-tree", "commit-tree", "update-ref"]


async def test_the_tip_a_session_is_shown_after_a_merge_costs_no_git_process(
    repo: Path, git_calls: list[list[str]]
) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = gate(repo)
    await g.prepare()
    merged = await g.merge("feat-a", a)
    git_calls.clear()
    assert await g.tip() == merged.integration_head
    assert git_calls == []
    assert await g.head() == merged.integration_head


async def test_a_merge_judged_for_foreign_paths_runs_five_git_processes(
    repo: Path, git_calls: list[list[str]]
) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = gate(repo)
    await g.prepare()
    git_calls.clear()
    assert (await g.merge("feat-a", a, owners={"api": "B"})).status is MergeStatus.MERGED
    # The fork point (and whether it is in already), the merge, both path lists, the commit,
    # the compare-and-swap.
    assert commands(git_calls) == [
        "merge-base",
        "merge-tree",
        "diff-tree",
        "commit-tree",
        "update-ref",
    ]


async def test_merges_with_checks_reuse_one_worktree_and_reset_it_only_when_a_check_wrote(
    repo: Path, git_calls: list[list[str]]
) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    c = branch_with(repo, "feat-c", {"c.py": "C = 1\n"})
    g = gate(repo, [f"{sys.executable} -c pass"])
    await g.prepare()
    git_calls.clear()
    assert (await g.merge("feat-a", a)).status is MergeStatus.MERGED
    assert (await g.merge("feat-b", b)).status is MergeStatus.MERGED
    assert (
        commands(git_calls)
        == ["merge-tree", "commit-tree", "checkout", "ls-files", "update-ref"] * 2
    )
    g.checks = [[sys.executable, "-c", "open('built.txt', 'w').write('x')"]]  # leaves a file
    git_calls.clear()
    outcome = await g.merge("feat-c", c)
    assert outcome.status is MergeStatus.MERGED
    # The checks' file is found, and dropped: a clean, then the checkout again, forced.
    assert commands(git_calls) == [
        *("merge-tree", "commit-tree", "checkout", "ls-files"),
        *("clean", "checkout", "update-ref"),
    ]
    assert integration_is_clean(g) and git(g.tree, "rev-parse", "HEAD") == outcome.integration_head


async def test_the_merge_commit_is_the_one_git_merge_no_ff_makes(repo: Path) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = gate(repo)
    await g.prepare()
    tip = await g.head()
    made = (await g.merge("feat-a", a)).integration_head
    # What the gate's git merge used to make, with the same environment and configuration.
    git(repo, "checkout", "-q", "--detach", tip)
    message = f"Merge feat-a ({a[:12]})"
    await gitops.git(["merge", "-q", "--no-ff", "--no-edit", "-m", message, a], repo)
    fields = "%P|%T|%B|%an <%ae>|%cn <%ce>"
    assert git(repo, "log", "-1", f"--format={fields}", made) == git(
        repo, "log", "-1", f"--format={fields}", "HEAD"
    )
    assert git(repo, "log", "-1", "--format=%P", made) == f"{tip} {a}"


async def test_a_conflict_names_a_path_with_a_newline_whole(repo: Path) -> None:
    odd = 'odd "name"\nwith a newline.txt'
    a = branch_with(repo, "feat-a", {odd: "A's\n"})
    b = branch_with(repo, "feat-b", {odd: "B's\n"})
    g = gate(repo)
    assert (await g.merge("feat-a", a)).status is MergeStatus.MERGED
    outcome = await g.merge("feat-b", b)
    assert outcome.status is MergeStatus.CONFLICT
    assert outcome.conflicts == [odd]


async def test_foreign_paths_with_odd_bytes_are_found_and_named(repo: Path) -> None:
    odd = 'api/we"ird\nname.py'
    not_utf8 = os.fsdecode(b"api/\xff.py")
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n", odd: "x = 1\n", not_utf8: "y = 1\n"})
    outcome = await gate(repo).merge("feat-a", a, owners={"api": "B"})
    assert outcome.status is MergeStatus.FOREIGN_PATHS
    assert outcome.foreign == {odd: "B", "api/\N{REPLACEMENT CHARACTER}.py": "B"}


async def test_a_branch_already_in_is_reported_so_with_or_without_owners(repo: Path) -> None:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = gate(repo)
    assert (await g.merge("feat-a", a)).status is MergeStatus.MERGED
    assert (await g.merge("feat-a", a)).status is MergeStatus.ALREADY_MERGED
    again = await g.merge("feat-a", a, owners={"a.py": "B"})  # (its own path, landed before)
    assert again.status is MergeStatus.ALREADY_MERGED


# ------------------------------------------------------------------------------ moved outside


async def land_one(repo: Path, g: MergeGate) -> str:
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    return (await g.merge("feat-a", a)).integration_head


async def test_the_gates_record_moved_alone_stops_the_merge(repo: Path) -> None:
    g = gate(repo)
    landed = await land_one(repo, g)
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    git(repo, "update-ref", g.record_ref, b)
    outcome = await g.merge("feat-b", b)
    assert outcome.status is MergeStatus.TAMPERED, outcome
    assert git(repo, "rev-parse", g.branch) == landed


async def test_a_deleted_integration_branch_stops_the_merge(repo: Path) -> None:
    g = gate(repo)
    landed = await land_one(repo, g)
    git(repo, "update-ref", "-d", f"refs/heads/{g.branch}")
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    outcome = await g.merge("feat-b", b)
    assert outcome.status is MergeStatus.TAMPERED
    assert f"{g.branch} is at nothing" in outcome.output
    assert git(repo, "rev-parse", g.record_ref) == landed


async def test_a_record_deleted_with_the_branch_moved_is_not_made_again_at_the_moved_tip(
    repo: Path,
) -> None:
    g = gate(repo)
    await land_one(repo, g)
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    git(repo, "update-ref", f"refs/heads/{g.branch}", b)  # moved outside the gate...
    git(repo, "update-ref", "-d", g.record_ref)  # ...and the gate's record of it deleted
    c = branch_with(repo, "feat-c", {"c.py": "C = 1\n"})
    assert (await g.merge("feat-c", c)).status is MergeStatus.TAMPERED
    again = await g.merge("feat-c", c)  # the gate reads the refs afresh: still not trusted
    assert again.status is MergeStatus.TAMPERED
    assert git(repo, "rev-parse", g.branch) == b


async def test_both_refs_moved_together_stop_the_merge(repo: Path) -> None:
    g = gate(repo)
    await land_one(repo, g)
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    for ref in (f"refs/heads/{g.branch}", g.record_ref):
        git(repo, "update-ref", ref, b)  # the gate's record too: it is not the gate's tip
    c = branch_with(repo, "feat-c", {"c.py": "C = 1\n"})
    outcome = await g.merge("feat-c", c)
    assert outcome.status is MergeStatus.TAMPERED
    assert f"{g.branch} is at {b[:12]} but the merge gate left it at" in outcome.output
    assert git(repo, "rev-parse", g.branch) == b


async def test_a_symbolic_ref_planted_at_the_branch_name_is_never_written_through(
    repo: Path,
) -> None:
    g = gate(repo)
    landed = await land_one(repo, g)
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    git(repo, "branch", "elsewhere", b)
    git(repo, "symbolic-ref", f"refs/heads/{g.branch}", "refs/heads/elsewhere")
    outcome = await g.merge("feat-b", b)
    assert outcome.status is MergeStatus.TAMPERED  # it reads as a branch that moved
    # Planted at a ref that is at the tip: the merge lands on the branch itself, and the
    # ref it pointed at stays where it was.
    git(repo, "update-ref", "refs/heads/elsewhere", landed)
    outcome = await g.merge("feat-b", b)
    assert outcome.status is MergeStatus.MERGED
    assert git(repo, "rev-parse", "elsewhere") == landed
    assert git(repo, "symbolic-ref", "-q", f"refs/heads/{g.branch}", check=False) == ""
    assert git(repo, "rev-parse", g.branch) == outcome.integration_head


async def test_an_edit_of_packed_refs_is_a_move(repo: Path) -> None:
    g = gate(repo)
    landed = await land_one(repo, g)
    git(repo, "pack-refs", "--all")  # packing moves nothing
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    assert (await g.merge("feat-b", b)).status is MergeStatus.MERGED
    git(repo, "pack-refs", "--all")
    packed = repo / ".git" / "packed-refs"
    tip = git(repo, "rev-parse", g.branch)
    packed.write_text(packed.read_text().replace(f"{tip} refs/heads/", f"{landed} refs/heads/"))
    c = branch_with(repo, "feat-c", {"c.py": "C = 1\n"})
    outcome = await g.merge("feat-c", c)
    assert outcome.status is MergeStatus.TAMPERED
    assert git(repo, "rev-parse", g.branch) == landed


async def test_a_branch_moved_while_its_merge_is_checked_is_not_landed_on(repo: Path) -> None:
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    a = branch_with(repo, "feat-a", {"a.py": "A = 1\n"})
    g = gate(repo)
    mover = f"git -C {repo} update-ref refs/heads/{g.branch} {b}"  # during the merge
    g.checks = [shlex.split(mover)]
    outcome = await g.merge("feat-a", a)
    assert outcome.status is MergeStatus.TAMPERED
    assert git(repo, "rev-parse", g.branch) == b  # where the mover put it, nothing on top
    assert git(repo, "rev-parse", g.record_ref) == git(repo, "rev-parse", "main")


async def test_a_refusal_on_a_moved_branch_says_it_moved(repo: Path) -> None:
    g = gate(repo)
    await land_one(repo, g)
    a = git(repo, "rev-parse", "feat-a")
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    git(repo, "update-ref", f"refs/heads/{g.branch}", b)
    assert (await g.merge("feat-a", a)).status is MergeStatus.TAMPERED  # not "already merged"


async def test_a_branch_moved_back_where_the_gate_left_it_is_trusted_again(repo: Path) -> None:
    g = gate(repo)
    landed = await land_one(repo, g)
    b = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    git(repo, "update-ref", f"refs/heads/{g.branch}", b)
    assert (await g.merge("feat-b", b)).status is MergeStatus.TAMPERED
    git(repo, "update-ref", f"refs/heads/{g.branch}", landed)
    assert (await g.merge("feat-b", b)).status is MergeStatus.MERGED


# ------------------------------------------------------------------------------ the worktree


async def test_an_empty_folder_a_red_check_leaves_does_not_reach_the_next_check(
    repo: Path,
) -> None:
    # `import core` finds an empty folder named core (a namespace package): a red check that
    # leaves one would turn the next branch's red check green.
    plant = branch_with(repo, "feat-a", {"plant.py": "import os\nos.makedirs('core')\n"})
    g = gate(repo, [f"{sys.executable} -c 'import plant; raise SystemExit(1)'"])
    assert (await g.merge("feat-a", plant)).status is MergeStatus.CHECK_FAILED
    lacking = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    g.checks = [[sys.executable, "-c", "import core"]]
    assert (await g.merge("feat-b", lacking)).status is MergeStatus.CHECK_FAILED


async def test_prepare_undoes_a_merge_a_killed_supervisor_left_half_done(repo: Path) -> None:
    a = branch_with(repo, "feat-a", {"README.md": "A's readme\n"})
    b = branch_with(repo, "feat-b", {"README.md": "B's readme\n"})
    g = gate(repo, [f"{sys.executable} -c pass"])
    landed = (await g.merge("feat-a", a)).integration_head
    # What a supervisor killed in the middle of a merge in the worktree leaves there.
    git(g.tree, "merge", "--no-edit", b, check=False)
    (g.tree / "stray.txt").write_text("left by a check\n")
    (g.tree / "empty").mkdir()
    assert not integration_is_clean(g)
    resumed = gate(repo, [f"{sys.executable} -c pass"])
    await resumed.prepare()
    assert integration_is_clean(resumed) and not (resumed.tree / "empty").exists()
    assert git(resumed.tree, "rev-parse", "HEAD") == landed
