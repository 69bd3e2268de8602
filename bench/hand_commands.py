"""What one hand command costs as a whole process, conductor beside claude-swarm.

Sessions call these between tasks (`sync` most of all), so each is a process start, imports,
one transaction and exit. The sides run interleaved in one repository each, on this machine,
in the same run: `conductor` (the command as installed: hand commands take the light door,
cli/hand.py), `conductor-full` (the same command through the full typer app, which is what
every command cost before), and claude-swarm when its command is on PATH or in the venv
given (`pip install claude-swarm` into a venv of its own). Both tools run with their
bytecode cached, as an installed package has it (PYTHONDONTWRITEBYTECODE is dropped and
conductor is compiled first). Prints numbers; asserts nothing.

    .venv/bin/python bench/hand_commands.py [--rounds 30] [--swarm /path/to/venv/bin/claude-swarm]
        [--installed /path/to/venv/bin/conductor]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "sync": ["sync", "--session", "A"],
    "status": ["status"],
    "message": ["message", "B", "hello", "--from", "A"],
}


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def repo(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--swarm", default=shutil.which("claude-swarm"))
    parser.add_argument(
        "--installed",
        help="also a conductor installed from a wheel: the `conductor` command of that venv"
        " (python -m venv V && V/bin/pip install .), without this checkout's editable hook",
    )
    args = parser.parse_args()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CONDUCTOR_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    package = Path(__file__).resolve().parent.parent / "conductor"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    conductor = [sys.executable, "-m", "conductor"]
    full = [sys.executable, "-c", "from conductor.cli import app; app(prog_name='conductor')"]
    with tempfile.TemporaryDirectory() as tmp:
        ours = repo(Path(tmp), "conductor")
        sides = {"conductor": (conductor, ours), "conductor-full": (full, ours)}
        if args.installed:
            sides["conductor-wheel"] = ([args.installed], ours)
        subprocess.run([*conductor, "init", "--sessions", "A:x B:y"], cwd=ours, env=env, check=True)
        if args.swarm:
            theirs = repo(Path(tmp), "swarm")
            sides["claude-swarm"] = ([args.swarm], theirs)
            subprocess.run(
                [args.swarm, "init", "--sessions", "A:x B:y"], cwd=theirs, env=env, check=True
            )
        else:
            print("claude-swarm: not installed (pass --swarm PATH to measure it side by side)")
        for name, tail in COMMANDS.items():
            times: dict[str, list[float]] = {side: [] for side in sides}
            for argv, cwd in sides.values():  # a first call warms the file cache
                timed([*argv, *tail], cwd, env)
            for _ in range(args.rounds):  # interleaved: the machine's mood hits both alike
                for side, (argv, cwd) in sides.items():
                    times[side].append(timed([*argv, *tail], cwd, env))
            for side, values in times.items():
                print(
                    f"{name:<8} {side:<16} median {statistics.median(values) * 1000:6.0f} ms"
                    f"   min {min(values) * 1000:6.0f} ms"
                )


if __name__ == "__main__":
    main()
