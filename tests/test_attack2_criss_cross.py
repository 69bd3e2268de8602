"""Attack: a crafted merge commit that gives the branch two merge bases with the integration
branch, so that what the gate checks and the reviewer reads is not what the merge does.

After two workstreams (B, C) merged, the integration branch is M2 = merge(M1, B1) with
M1 = merge(base, C1). Session A makes its head a merge commit whose parents are M1 and B1
(both borrowed objects, readable in its own repository), with the tree of whichever of them
`git merge-base` names first, plus a file of its own. `git diff tip...head` (what the merge
gate's foreign-path check and the review diff use) takes that first merge base and shows
only A's file; `git merge` (ort) builds a virtual base from both and so undoes everything
the other base brought: the work of another workstream, in paths it owns, vanishes from
the integration branch without the foreign-path check or the reviewer seeing it.

Green = defended: the gate refuses the head (foreign paths, or a refusal of its own), or
merges it without losing B's or C's work.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import commit_file, git

from conductor import gitops
from conductor.gates import MergeGate, MergeStatus

pytestmark = pytest.mark.anyio

RUN = "20261124-000000-c0de"


def _branch(repo: Path, name: str, files: dict[str, str]) -> str:
    git(repo, "checkout", "-q", "-b", name, "main")
    for path, text in files.items():
        commit_file(repo, path, text, f"{name}: {path}")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return head


def _crafted_head(repo: Path, tip: str, left: str, right: str) -> tuple[str, str]:
    """A's head: a merge commit of `left` and `right` with the tree of the merge base git
    names first, plus a.txt. Returns (head, the base the diff uses)."""
    probe = git(repo, "commit-tree", f"{left}^{{tree}}", "-p", left, "-p", right, "-m", "probe")
    first = git(repo, "merge-base", tip, probe)
    bases = git(repo, "merge-base", "--all", tip, probe).split()
    assert len(bases) == 2, bases  # the shape of the attack: two merge bases
    idx = repo / ".git" / "attack-index"
    env_git = ["-c", "core.hooksPath=/dev/null"]
    import os
    import subprocess

    from support import clean_env

    env = {**clean_env(), "GIT_INDEX_FILE": str(idx)}
    subprocess.run(["git", *env_git, "read-tree", first], cwd=repo, env=env, check=True)
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=repo,
            env=env,
            input=b"A's own work\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    subprocess.run(
        ["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},a.txt"],
        cwd=repo,
        env=env,
        check=True,
    )
    tree = (
        subprocess.run(["git", "write-tree"], cwd=repo, env=env, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
    os.unlink(idx)
    head = git(repo, "commit-tree", tree, "-p", left, "-p", right, "-m", "A: a.txt")
    return head, first


async def test_a_criss_cross_head_cannot_drop_a_teammates_work_unseen(repo: Path) -> None:
    c1 = _branch(repo, "conductor/run-C", {"c.txt": "C's work\n"})
    b1 = _branch(repo, "conductor/run-B", {"b.txt": "B's work\n"})
    gate = MergeGate(repo, RUN, base_commit=git(repo, "rev-parse", "main"))
    assert (await gate.merge("conductor/run-C", c1)).status is MergeStatus.MERGED
    assert (await gate.merge("conductor/run-B", b1)).status is MergeStatus.MERGED
    tip = await gate.head()
    m1 = git(repo, "rev-parse", f"{tip}^1")  # the integration tip with C merged, before B

    head, _first = _crafted_head(repo, tip, m1, b1)
    # What the reviewer would read, and what the foreign-path check sees: A's file alone.
    shown = await gitops.changed_paths(repo, tip, head)
    diff = (await gitops.diff_range(tip, head, repo)).decode()

    owners = {"b.txt": "B", "c.txt": "C"}
    outcome = await gate.merge("conductor/run-A", head, owners=owners)
    landed = git(repo, "ls-tree", "--name-only", gate.branch).split()
    lost = [p for p in ("b.txt", "c.txt") if p not in landed]
    print("diff shown to the reviewer / foreign check:", shown, repr(diff[:200]))
    print("outcome:", outcome.status, "lost:", lost)
    # Defended: refused, or merged without losing anyone's work.
    assert outcome.status is not MergeStatus.MERGED or not lost, (
        f"HOLE: the gate merged {head[:12]} (its diff shows only {shown}) and the integration"
        f" branch lost {lost}, owned by {[owners[p] for p in lost]}"
    )
