"""Attack: a merge check (code a session wrote) rewrites the integration tree's `.git` file.

The check jail leaves the integration tree writable, and that tree is a linked worktree whose
`.git` is a plain file (`gitdir: <main>/.git/worktrees/.integration`). A check that points it
at a repository of its own making steers every unjailed git conductor runs there next
(`_reset`'s `reset --hard`, `rev-parse HEAD`): that repository's config and
`info/attributes` name a smudge filter, which git then runs as conductor, outside any jail.
Green = defended: nothing ran outside the jail, the integration branch is where the gate
left it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support import git

from conductor.gates import MergeGate, MergeStatus

pytestmark = [
    pytest.mark.anyio,
]

RUN = "20261124-000000-beef"

# Runs inside the check's jail, in the integration tree: make a repository of its own beside
# the files, borrowing the main repository's objects, whose config runs `marker` as a smudge
# filter; point the tree's `.git` at it.
PAYLOAD = r"""
import os, pathlib, sys
tree = pathlib.Path.cwd()
real = pathlib.Path((tree / ".git").read_text().split(":", 1)[1].strip())
objects = (real / (real / "commondir").read_text().strip()).resolve() / "objects"
evil = tree / ".evil"
for d in ("objects/info", "refs/heads", "info"):
    (evil / d).mkdir(parents=True, exist_ok=True)
(evil / "HEAD").write_text("ref: refs/heads/x\n")
(evil / "objects/info/alternates").write_text(f"{objects}\n")
(evil / "info/attributes").write_text("* filter=x\n")
(evil / "info/exclude").write_text("/.evil\n")  # `git clean` keeps it
(evil / "config").write_text(
    "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
    "[filter \"x\"]\n\tsmudge = \"touch MARKER; cat\"\n\tclean = cat\n"
)
(tree / ".git").write_text(f"gitdir: {evil}\n")
sys.exit(1)
"""


def branch_with(repo: Path, name: str, files: dict[str, str]) -> str:
    git(repo, "checkout", "-q", "-b", name, "main")
    for path, text in files.items():
        (repo / path).write_text(text)
        git(repo, "add", path)
    git(repo, "commit", "-qm", name)
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return head


async def test_a_check_cannot_redirect_conductors_git_in_the_integration_tree(
    repo: Path,
) -> None:
    marker = repo.parent / "ran-outside-the-jail"
    evil = branch_with(repo, "feat-a", {"core.py": PAYLOAD.replace("MARKER", str(marker))})
    gate = MergeGate(
        repo,
        RUN,
        base_commit=git(repo, "rev-parse", "main"),
        checks=[f'{sys.executable} -c "import core"'],
        jailed=True,
    )
    outcome = await gate.merge("feat-a", evil)
    assert outcome.status is MergeStatus.CHECK_FAILED
    # The gate's own `_reset` after the red check must not have run the check's filter.
    assert not marker.exists(), "the check's smudge filter ran outside the jail"
    honest = branch_with(repo, "feat-b", {"b.py": "B = 1\n"})
    gate.checks = []
    again = await gate.merge("feat-b", honest)
    assert not marker.exists(), "the check's smudge filter ran outside the jail"
    assert again.status is MergeStatus.MERGED
    assert git(repo, "rev-parse", gate.branch) == again.integration_head


# The same move, for a green check: the tree's HEAD, as conductor's unjailed `rev-parse HEAD`
# reads it after the checks, becomes a commit of the check's choosing (any commit in the main
# repository's objects: one the gate refused earlier, say), and the gate moves the integration
# branch there.
REDIRECT = r"""
import pathlib
tree = pathlib.Path.cwd()
real = pathlib.Path((tree / ".git").read_text().split(":", 1)[1].strip())
objects = (real / (real / "commondir").read_text().strip()).resolve() / "objects"
evil = tree / ".evil"
for d in ("objects/info", "refs/heads", "info"):
    (evil / d).mkdir(parents=True, exist_ok=True)
(evil / "HEAD").write_text("CHOSEN\n")
(evil / "objects/info/alternates").write_text(f"{objects}\n")
(evil / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = false\n")
(tree / ".git").write_text(f"gitdir: {evil}\n")
"""


async def test_a_green_check_cannot_choose_what_the_integration_branch_becomes(
    repo: Path,
) -> None:
    # A commit the gate never checked (it touches what another workstream owns, say).
    unchecked = branch_with(repo, "refused", {"owned-by-b.py": "stolen = True\n"})
    a = branch_with(repo, "feat-a", {"core.py": REDIRECT.replace("CHOSEN", unchecked)})
    gate = MergeGate(
        repo,
        RUN,
        base_commit=git(repo, "rev-parse", "main"),
        checks=[f'{sys.executable} -c "import core"'],
        jailed=True,
    )
    await gate.merge("feat-a", a)
    tip = git(repo, "rev-parse", gate.branch)
    assert tip != unchecked, "the integration branch points at a commit no gate checked"
    assert "owned-by-b.py" not in git(repo, "ls-tree", "--name-only", tip)
