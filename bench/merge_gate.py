"""What one merge through the merge gate costs: git processes and milliseconds per merge, for
N branches (each touching a file of its own) merged one after another, without checks and
with a trivial check (`true`), without and with the ownership check (`owners`, as the
supervisor passes them), for the old gate (gates.py as it was at --old-rev, loaded from git
history) and the current one side by side, in one run on one machine. Prints numbers; asserts
nothing.

    .venv/bin/python bench/merge_gate.py [--branches 8] [--rounds 3] [--old-rev REV]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio

from conductor import gitops
from conductor.gates import MergeGate, MergeStatus

PROJECT = Path(__file__).resolve().parent.parent
# The last commit whose gates.py merged in a worktree (`git merge`, reset before each merge).
OLD_REV = "1ffe027568f6c31d84ff422fc6307baa63007a1b"
RUN = "20261124-000000-b0b0"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def old_gates(rev: str) -> ModuleType:
    """conductor/gates.py as it was at `rev`, as a module of its own (it uses today's
    gitops, whose functions it calls are all still there)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:conductor/gates.py"],
        cwd=PROJECT,
        capture_output=True,
        check=True,
    ).stdout
    spec = importlib.util.spec_from_loader("conductor_gates_old", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    exec(compile(source, f"{rev[:12]}:conductor/gates.py", "exec"), module.__dict__)
    return module


def run(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_repo(path: Path, branches: int) -> list[tuple[str, str]]:
    """A repository with a few files on main and `branches` branches off it, each adding a
    file of its own: (branch, commit) each."""
    path.mkdir(parents=True)
    run(path, "init", "-q", "-b", "main")
    for i in range(20):
        (path / f"lib{i}.py").write_text(f"X{i} = {i}\n")
    run(path, "add", ".")
    run(path, "commit", "-q", "-m", "base")
    made = []
    for i in range(branches):
        name = f"feat-{i}"
        run(path, "checkout", "-q", "-b", name, "main")
        (path / f"f{i}.py").write_text(f"F{i} = {i}\n")
        run(path, "add", f"f{i}.py")
        run(path, "commit", "-q", "-m", name)
        made.append((name, run(path, "rev-parse", "HEAD")))
    run(path, "checkout", "-q", "main")
    return made


class Counter:
    """Counts the git processes conductor starts: gitops.git is its one door to git."""

    def __init__(self) -> None:
        self.calls = 0
        self._real = gitops.git

    async def __call__(self, args: Sequence[str], cwd: Path, **kwargs: Any) -> gitops.GitResult:
        self.calls += 1
        return await self._real(args, cwd, **kwargs)


async def measure(
    gate_class: Any, root: Path, branches: int, checks: Sequence[str], owners: bool
) -> tuple[float, float]:
    """(git processes per merge, ms per merge) for `branches` merges in a fresh repository,
    the gate prepared beforehand (as the supervisor does once per run)."""
    repo = root / f"repo-{len(list(root.iterdir()))}"
    made = make_repo(repo, branches)
    gate = gate_class(repo, RUN, base_commit=run(repo, "rev-parse", "main"), checks=checks)
    await gate.prepare()
    counter = Counter()
    gitops.git = counter  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        for i, (branch, commit) in enumerate(made):
            others = {f"f{j}.py": f"W{j}" for j in range(branches) if j != i} if owners else None
            outcome = await gate.merge(branch, commit, owners=others)
            assert outcome.status.value == MergeStatus.MERGED.value, outcome
        elapsed = time.perf_counter() - start
    finally:
        gitops.git = counter._real  # type: ignore[method-assign]
    return counter.calls / branches, elapsed * 1000 / branches


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="the median of these is shown")
    parser.add_argument("--old-rev", default=OLD_REV)
    args = parser.parse_args()
    os.environ.update(IDENTITY)
    old = old_gates(args.old_rev).MergeGate
    scenarios = [
        ("no checks", (), False),
        ("no checks, owners", (), True),
        ("check `true`", ("true",), False),
        ("check `true`, owners", ("true",), True),
    ]
    print(f"{args.branches} branches merged one after another; median of {args.rounds} rounds")
    print(f"old: gates.py at {args.old_rev[:12]}; new: the working tree's")
    print(f"{'':24} {'git processes/merge':>21} {'ms/merge':>17}")
    print(f"{'':24} {'old':>10} {'new':>10} {'old':>8} {'new':>8}")
    with tempfile.TemporaryDirectory(prefix="merge-gate-bench-") as tmp:
        for label, checks, owners in scenarios:
            found: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
            for _ in range(args.rounds):
                for name, gate_class in (("old", old), ("new", MergeGate)):
                    found[name].append(
                        await measure(gate_class, Path(tmp), args.branches, checks, owners)
                    )
            procs = {n: statistics.median(p for p, _ in rows) for n, rows in found.items()}
            ms = {n: statistics.median(m for _, m in rows) for n, rows in found.items()}
            print(
                f"{label:24} {procs['old']:>10.1f} {procs['new']:>10.1f}"
                f" {ms['old']:>8.1f} {ms['new']:>8.1f}"
            )


if __name__ == "__main__":
    anyio.run(main)
