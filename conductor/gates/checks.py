"""The integration worktree, where the merge gate runs the checks on a merge commit.

Made once and moved from merge to merge by `checkout`. It is cleaned only when a check left
anything there (a file, an ignored one, an empty folder, a nested repository, a change to a
tracked file), and then before the next merge's checks see it. The checks run in the jail
(when the run is jailed) with only this tree writable, without the model API's credentials,
each with an empty temporary folder of its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from subprocess import STDOUT

import anyio

from conductor import gitops
from conductor.errors import NotARepository
from conductor.jail import command_jail, scrubbed_env, short_tmp
from conductor.leftovers import supervised_env
from conductor.workspace import STATE_DIR

CHECK_TIMEOUT = 900.0
OUTPUT_TAIL_LINES = 60


class IntegrationTree:
    def __init__(
        self, repo: Path, run_id: str, *, jailed: bool, check_timeout: float = CHECK_TIMEOUT
    ) -> None:
        self.repo = repo
        self.run_id = run_id
        self.jailed = jailed
        self.check_timeout = check_timeout
        self.tree = repo / STATE_DIR / "worktrees" / run_id / ".integration"
        # Whether the worktree is known to exist with nothing in it but its commit's files.
        self._ready = False

    def forget(self) -> None:
        """Its state unknown (a killed supervisor may have left anything): reset next time."""
        self._ready = False

    async def run_checks(
        self, commit: str, checks: Sequence[list[str]]
    ) -> tuple[list[str], str] | None:
        """`checks` on `commit`, in order until one fails: (that check, the tail of its
        output), or None when all pass. The tree is left at `commit` alone either way."""
        await self.to(commit)
        self._ready = False  # until `_tidy` has seen what the checks left
        failed = None
        for argv in checks:
            ok, output = await self._check(argv)
            if not ok:
                failed = argv, output
                break
        await self._tidy(commit)
        return failed

    async def to(self, commit: str) -> None:
        """The integration worktree at `commit`, clean: made if missing, reset if its state
        is unknown, else moved there by `checkout` (forced: the index and HEAD follow even if
        a check changed them outside a jail) and reset only when that fails."""
        if self._ready and (self.tree / ".git").is_file():
            moved = await gitops.git(
                ["checkout", "--quiet", "--force", "--detach", commit], self.tree, check=False
            )
            if moved.returncode == 0:
                return
        self._ready = False
        if not await gitops.ensure_detached_worktree(self.repo, self.tree, commit):
            await _reset(self.tree, commit)
        self._ready = True

    async def _tidy(self, commit: str) -> None:
        """After the checks: the worktree back to `commit` alone, if they left anything."""
        if not (self.tree / ".git").is_file():
            # Never git in a tree without its own `.git`: git would find the main repository
            # above it. (Only an unjailed check can remove it; the next merge's checks then
            # fail to make the worktree again, and say so.)
            return
        if await gitops.residue(self.tree):
            await _reset(self.tree, commit)
        self._ready = True

    async def _check(self, argv: list[str]) -> tuple[bool, str]:
        env = scrubbed_env(supervised_env(self.run_id))
        tmp = short_tmp(self.tree)
        for leftover in tmp.iterdir():  # each check starts with an empty temporary dir
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        if self.jailed:
            argv = command_jail(self.tree, tmp).argv(argv)
        try:
            with anyio.fail_after(self.check_timeout):
                done = await anyio.run_process(
                    argv, cwd=self.tree, check=False, stderr=STDOUT, env=env
                )
        except FileNotFoundError:
            return False, f"{argv[0]}: command not found"
        except TimeoutError:
            return False, f"timed out after {self.check_timeout:.0f}s"
        text = done.stdout.decode("utf-8", "replace")
        tail = "\n".join(text.rstrip().splitlines()[-OUTPUT_TAIL_LINES:])
        return done.returncode == 0, tail


async def _reset(tree: Path, commit: str) -> None:
    """Back to `commit` with nothing else in the tree: every file git does not track dropped
    (ignored ones too, and with -ff folders holding a repository of their own), then the
    index, the tracked files and a detached HEAD forced to `commit`, which also ends a merge
    left half done (and moves no branch, should HEAD have been attached to one). So nothing
    a check planted reaches the next merge's checks."""
    if not (tree / ".git").is_file():  # git would find the main repository above it
        raise NotARepository(f"the integration worktree {tree} has no .git of its own")
    await gitops.git(["clean", "-ffdqx"], tree)
    await gitops.git(["checkout", "--quiet", "--force", "--detach", commit], tree)
