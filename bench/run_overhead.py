"""What a whole `conductor run` costs over bare SDK sessions doing the same scripted work.

Both sides run N workstreams against the same stand-in: each session writes its own file,
commits it and finishes. The bare side is a script that makes N git worktrees by hand and runs
N `ClaudeSDKClient` sessions in them at once (no jail, no hooks, no bus, no merge). The
conductor side is `conductor run --plan` (review `auto`, no checks; sandbox as configured
below), which also reviews, merges and records everything. Each side runs as its own process;
wall time, CPU (user + system of the process and its children) and the peak resident memory
of the driving process itself (read from /proc while it runs) are measured per run, the
sides interleaved. Prints numbers; asserts nothing.

    .venv/bin/python bench/run_overhead.py [--counts 1 4 8 16] [--repeat 2] [--sandbox]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conductor.standin.harness import GIT_IDENTITY, STANDIN_MODEL, session_env

BARE = r"""
import os, sys, anyio, subprocess
from pathlib import Path
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage

repo, n, env = Path(sys.argv[1]), int(sys.argv[2]), dict(os.environ)

async def one(i):
    tree = repo.parent / f"bare-{i}"
    add = ["git", "worktree", "add", "-q", "-b", f"bare-{i}", str(tree)]
    subprocess.run(add, cwd=repo, check=True)
    options = ClaudeAgentOptions(
        cwd=str(tree), env=env, model=env["BENCH_MODEL"], permission_mode="bypassPermissions"
    )
    async with ClaudeSDKClient(options) as client:
        await client.query(f"conductor-role: W{i}\nwork")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                assert not message.is_error, message.result

async def main():
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)

anyio.run(main)
"""


def script(n: int) -> str:
    roles = {}
    for i in range(n):
        roles[f"W{i}"] = [
            [
                {"tool": "Write", "input": {"file_path": f"${{cwd}}/w{i}.txt", "content": "x\n"}},
                {"tool": "Bash", "input": {"command": "git add -A && git commit -qm work"}},
                {"tool": "mcp__bus__request_review", "input": {}},
                {"text": "done"},
            ]
        ]
    return json.dumps({"roles": roles})


Sample = tuple[float, float, float, float]


def measured(argv: list[str], cwd: Path, env: dict[str, str]) -> Sample:
    """(wall seconds, CPU seconds of the process and everything it started, CPU seconds and
    peak RSS in MB of the process itself: the supervisor or the bare driver, not the CLIs it
    runs; the last two sampled from /proc every 50 ms until it exits)."""
    start = time.perf_counter()
    before = os.times()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = own = 0.0
    while proc.poll() is None:
        peak = max(peak, _peak_rss_mb(proc.pid))
        own = max(own, _own_cpu(proc.pid))
        time.sleep(0.05)
    after = os.times()
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else proc.returncode
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu, own, peak


def _own_cpu(pid: int) -> float:
    """User + system seconds the process itself has used so far (not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (Linux: VmHWM), 0 if unreadable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def standin_env(tmp: Path, n: int) -> Iterator[dict[str, str]]:
    """The stand-in serving the bench's script for `n` sessions, and the environment a CLI
    needs to reach it. HOME is an empty folder: no shell start-up files (a pyenv rehash in
    ~/.bashrc made concurrent Bash tools queue on its lock, ±40% between runs)."""
    script_path = tmp / f"script-{n}.json"
    script_path.write_text(script(n))
    server = subprocess.Popen(
        [sys.executable, "-m", "conductor", "model", "serve", str(script_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        home = tmp / "home"
        home.mkdir(exist_ok=True)
        yield {
            **os.environ,
            **session_env(base_url, tmp / f"claude-{n}"),
            **GIT_IDENTITY,
            "HOME": str(home),
        }
    finally:
        server.terminate()
        server.wait()


def fresh_repo(root: Path, n: int, sandbox: bool) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    plan = {
        "workstreams": [
            {"id": f"W{i}", "name": f"w{i}", "task": "work", "owns": [f"w{i}.txt"]}
            for i in range(n)
        ]
    }
    (repo / "plan.json").write_text(json.dumps(plan))
    (repo / "conductor.toml").write_text(
        f'model = "{STANDIN_MODEL}"\nreview = "auto"\nmax_parallel = {n}\n'
        f"max_sessions = {n}\nsandbox = {str(sandbox).lower()}\n"
    )
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=repo, check=True)
    return repo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--sandbox", action="store_true", help="conductor's jail on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.counts:
            with standin_env(Path(tmp), n) as env:
                results: dict[str, list[Sample]] = {
                    "bare SDK": [],
                    "conductor": [],
                }
                for r in range(args.repeat):  # interleaved
                    bare_repo = fresh_repo(Path(tmp) / f"bare-{n}-{r}", n, args.sandbox)
                    results["bare SDK"].append(
                        measured(
                            [sys.executable, "-c", BARE, str(bare_repo), str(n)],
                            bare_repo,
                            {**env, "BENCH_MODEL": STANDIN_MODEL},
                        )
                    )
                    ours = fresh_repo(Path(tmp) / f"ours-{n}-{r}", n, args.sandbox)
                    results["conductor"].append(
                        measured(
                            [
                                sys.executable,
                                "-m",
                                "conductor",
                                "run",
                                "bench",
                                "--plan",
                                "plan.json",
                                "--no-live",
                            ],
                            ours,
                            env,
                        )
                    )
                wall = {s: statistics.median(r[0] for r in v) for s, v in results.items()}
                cpu = {s: statistics.median(r[1] for r in v) for s, v in results.items()}
                own = {s: statistics.median(r[2] for r in v) for s, v in results.items()}
                rss = {s: max(r[3] for r in v) for s, v in results.items()}
                bare, ours_ = "bare SDK", "conductor"
                print(
                    f"{n:3d} workstreams  bare {wall[bare]:6.2f} s wall {cpu[bare]:6.2f}"
                    f" s CPU   conductor {wall[ours_]:6.2f} s wall {cpu[ours_]:6.2f}"
                    f" s CPU   ratio {wall['conductor'] / wall['bare SDK']:4.2f}x wall"
                    f" {cpu['conductor'] / cpu['bare SDK']:4.2f}x CPU"
                    f"   own CPU driver {own[bare]:5.2f} s supervisor {own[ours_]:5.2f} s"
                    f"   peak RSS driver {rss[bare]:4.0f} MB supervisor {rss[ours_]:4.0f} MB"
                )


if __name__ == "__main__":
    main()
