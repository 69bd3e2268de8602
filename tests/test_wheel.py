"""The wheel, as a user gets it: built from this source tree and installed into a fresh virtual
environment, its `conductor demo` runs from a directory that is no repository, with that
environment's `conductor` not on PATH; every hint it prints works when pasted; it leaves
nothing behind but what --keep kept, and the hint that removes that removes everything. The
prompt templates (the top-level templates/ of the source) render from the installed wheel, and
a repository's own template still wins there.

One demo run (about half a minute), after one wheel build and an install (dependencies from the
machine's pip setup, as `make` gets them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
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


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel built from this source tree installed."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(SOURCE, source, ignore=NOT_SOURCE)  # built in a copy: the checkout is untouched
    dist = root / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, source])
    (wheel,) = dist.glob("conductor_swarm-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", venv])
    run([venv / "bin" / "pip", "install", "--quiet", wheel])
    return venv


def test_every_directory_of_the_package_is_a_listed_package() -> None:
    """pyproject.toml lists the packages (the templates' mapping needs it): a directory of
    conductor/ missing from the list would be missing from the wheel."""
    listed = set(
        tomllib.loads((SOURCE / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    directories = {
        ".".join(d.relative_to(SOURCE).parts)
        for d in [SOURCE / "conductor", *(SOURCE / "conductor").rglob("*")]
        if d.is_dir() and d.name != "__pycache__"
    }
    assert directories | {"conductor.templates"} == listed


# Every template with values to render it; run by the wheel's Python, isolated (-I) and from a
# directory outside the checkout, so nothing but the installed package can answer.
TEMPLATE_VALUES = {
    "planner.md.j2": {"goal": "Ship a CLI", "max_sessions": 3},
    "planner-retry.md.j2": {"errors": ["A and B both own src"]},
    "session.md.j2": {
        "workstream": {
            "id": "B",
            "name": "cli",
            "task": "Build the CLI",
            "owns": ["src/cli.py"],
            "interface": "",
        },
        "others": [{"id": "A", "name": "core", "task": "Token types", "interface": "core.Token"}],
        "goal": "Ship a CLI",
        "branch": "conductor/r/B",
    },
    "reviewer.md.j2": {
        "role": "A-review",
        "requester": "A",
        "goal": "Ship a CLI",
        "task": "Token types",
        "commit": "abc123",
        "diff": "+x = 1",
        "review_id": 1,
    },
    "conflict.md.j2": {
        "branch": "conductor/r/A",
        "integration": "conductor/r",
        "conflicts": ["x.py"],
        "foreign": [],
        "check": "pytest -q",
        "check_output": "",
    },
    "claude-md.md.j2": {},
}
RENDER = """
import json, sys
from pathlib import Path
import conductor.templates
from conductor.prompts import Prompts
values, repo = json.loads(sys.argv[1]), Path(sys.argv[2])
packaged = Path(conductor.templates.__file__).parent
names = sorted(p.name for p in packaged.glob("*.j2"))
print(json.dumps({
    "from": str(packaged),
    "names": names,
    "rendered": {n: Prompts().render(n, **values[n]) for n in names if n in values},
    "overridden": Prompts(repo).render("planner.md.j2", **values["planner.md.j2"]),
}))
"""


def test_the_installed_wheel_renders_every_template(venv: Path, tmp_path: Path) -> None:
    override = tmp_path / "repo" / ".conductor" / "templates"
    override.mkdir(parents=True)
    (override / "planner.md.j2").write_text("Ours: {{ goal }}\n")
    shown = json.loads(
        run(
            [
                venv / "bin" / "python",
                "-I",
                "-c",
                RENDER,
                json.dumps(TEMPLATE_VALUES),
                tmp_path / "repo",
            ],
            cwd=tmp_path,
            env=clean_env(),
        )
    )
    assert Path(shown["from"]).is_relative_to(venv)
    in_source = sorted(p.name for p in (SOURCE / "templates").glob("*.j2"))
    assert shown["names"] == in_source == sorted(TEMPLATE_VALUES)
    rendered = shown["rendered"]
    assert "Goal: Ship a CLI" in rendered["planner.md.j2"]
    assert "A and B both own src" in rendered["planner-retry.md.j2"]
    assert "You are session B (cli)" in rendered["session.md.j2"]
    assert "A (core): Token types" in rendered["session.md.j2"]
    assert "You review session A's work" in rendered["reviewer.md.j2"]
    assert "+x = 1" in rendered["reviewer.md.j2"]
    assert "- x.py" in rendered["conflict.md.j2"]
    assert "conductor: begin" in rendered["claude-md.md.j2"]
    assert shown["overridden"] == "Ours: Ship a CLI\n"  # a repository's template wins


def test_the_installed_wheel_runs_the_demo_from_anywhere(venv: Path, tmp_path: Path) -> None:
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
    look = [line.removeprefix("  ") for line in lines[at + 1 : at + 6]]
    assert [line.startswith(f"cd {repo} && {conductor} ") for line in look] == [
        False,
        *[True] * 4,
    ]
    # Pasted, as printed (all but `serve`, which serves until Ctrl-C).
    outputs = [run(["bash", "-c", line], cwd="/", env=env) for line in look[:4]]
    assert "Merge conductor/" in outputs[0]
    assert "finished" in outputs[1]
    assert "You are session B" in outputs[2]
    assert "report" in outputs[3] and ".html" in outputs[3]
    assert look[4].startswith(f"cd {repo} && {conductor} serve")
    remove = lines[at + 6].removeprefix("Remove it with: ")
    run(["bash", "-c", remove], cwd="/", env=env)
    assert not list(tmp.iterdir())
