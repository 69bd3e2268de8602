"""The wheel, as a user gets it: built from this source tree and installed into a fresh virtual
environment, its `conductor demo` runs from a directory that is no repository, with that
environment's `conductor` not on PATH; every hint it prints works when pasted; it leaves
nothing behind but what --keep kept, and the hint that removes that removes everything.

One demo run (about half a minute), after a wheel build and an install (dependencies from the
machine's pip setup, as `make` gets them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import clean_env

pytestmark = pytest.mark.timeout(900)

SOURCE = Path(__file__).resolve().parent.parent
NOT_SOURCE = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__")


def run(argv: list[str | Path], **kw: object) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return str(done.stdout)


def without_conductor(path: str) -> str:
    """PATH without a directory that has a `conductor` in it."""
    return os.pathsep.join(
        d for d in path.split(os.pathsep) if d and not Path(d, "conductor").exists()
    )


def test_the_installed_wheel_runs_the_demo_from_anywhere(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(SOURCE, source, ignore=NOT_SOURCE)  # built in a copy: the checkout is untouched
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, source])
    (wheel,) = dist.glob("conductor_swarm-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    run([venv / "bin" / "pip", "install", "--quiet", wheel])

    conductor = venv / "bin" / "conductor"
    elsewhere, tmp = tmp_path / "elsewhere", tmp_path / "tmp"  # no repository; its TMPDIR
    elsewhere.mkdir()
    tmp.mkdir()
    env = clean_env(TMPDIR=str(tmp), PATH=without_conductor(os.environ["PATH"]))
    shown = run([conductor, "demo", "--keep", "--no-live"], cwd=elsewhere, env=env, timeout=600)

    lines = shown.splitlines()
    assert "planned 3 workstreams in" in shown and "passed" in shown
    kept = next(line for line in lines if line.startswith("The demo's repository is kept in "))
    repo = Path(
        kept.removeprefix("The demo's repository is kept in ").removesuffix(". Look at it:")
    )
    assert repo.parent.parent == tmp and list(tmp.iterdir()) == [repo.parent]
    assert not list(elsewhere.iterdir())
    at = lines.index(kept)
    look = [line.removeprefix("  ") for line in lines[at + 1 : at + 4]]
    assert [line.startswith(f"cd {repo} && {conductor} ") for line in look] == [False, True, True]
    outputs = [run(["bash", "-c", line], cwd="/", env=env) for line in look]  # pasted, as printed
    assert "Merge conductor/" in outputs[0]
    assert "finished" in outputs[1]
    assert "You are session B" in outputs[2]
    remove = lines[at + 4].removeprefix("Remove it with: ")
    run(["bash", "-c", remove], cwd="/", env=env)
    assert not list(tmp.iterdir())
