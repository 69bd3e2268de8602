"""`conductor demo`: a whole `conductor run`, offline, on the example repository.

The same code as a real run (planner, supervisor, sessions, gates); only the environment
differs: the sessions' Messages API is the scripted stand-in on loopback instead of Anthropic.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import STDOUT

import anyio

import conductor
from conductor import gitops
from conductor.config import Config
from conductor.errors import InvalidInput
from conductor.jail import unavailable_reason
from conductor.planner import make_plan
from conductor.standin.harness import GIT_IDENTITY, STANDIN_MODEL, session_env
from conductor.standin.script import load_script
from conductor.standin.server import StandIn
from conductor.store import Store
from conductor.supervisor import RunSummary, Supervisor
from conductor.workspace import DB_NAME, ensure_state_dir

GOAL = "Give textstats words, word counts and a one-line report, each tested"


def demo_assets() -> Path:
    """`examples/demo` of the source tree conductor runs from."""
    assets = Path(conductor.__file__).resolve().parent.parent / "examples" / "demo"
    if not (assets / "script.yaml").is_file():
        raise InvalidInput("the demo's files are not here: run conductor demo from a checkout")
    return assets


@dataclass(frozen=True)
class DemoResult:
    repo: Path
    summary: RunSummary
    tests_output: str
    tests_passed: bool
    sandboxed: bool  # whether its sessions ran in the OS sandbox (see jail.py)


async def _unwatched(supervisor: Supervisor) -> RunSummary:
    return await supervisor.run()


async def run_demo(
    where: Path | None = None,
    *,
    drive: Callable[[Supervisor], Awaitable[RunSummary]] = _unwatched,
) -> DemoResult:
    """The demo run in a new temporary repository; `drive` runs its supervisor (the CLI
    passes one that shows the live view beside it)."""
    assets = demo_assets()
    root = Path(tempfile.mkdtemp(prefix="conductor-demo-", dir=where))
    repo = root / "textstats"
    shutil.copytree(assets / "repo", repo)
    await gitops.git(["init", "-q", "-b", "main"], repo)
    await gitops.git(["add", "-A"], repo)
    await gitops.git(["commit", "-q", "-m", "textstats: the start"], repo, env=GIT_IDENTITY)
    check = f"{sys.executable} -m unittest discover -q -s tests -t ."
    config = Config(
        model=STANDIN_MODEL,
        checks=(check,),
        review="agent",
        max_parallel=3,
        max_sessions=3,
        env=dict(GIT_IDENTITY),
        sandbox=unavailable_reason() is None,  # the demo says which it ran with
    )
    state = ensure_state_dir(repo)
    server = StandIn(load_script(assets / "script.yaml"), log_path=root / "requests.jsonl")
    async with server.running():
        env = session_env(server.base_url, state / "claude")
        planned = await make_plan(
            GOAL, repo, config.session(state, env), max_sessions=config.max_sessions
        )
        async with Store.open(state / DB_NAME) as store:
            supervisor = Supervisor(
                repo,
                store,
                planned.plan,
                goal=GOAL,
                config=config,
                env=env,
                planner=planned.spend,
            )
            summary = await drive(supervisor)
    tree = root / "check"
    await gitops.git(
        ["worktree", "add", "-q", "--detach", str(tree), summary.integration_branch], repo
    )
    done = await anyio.run_process(
        [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-t", "."],
        cwd=tree,
        check=False,
        stderr=STDOUT,
    )
    await gitops.git(["worktree", "remove", "--force", str(tree)], repo)
    output = done.stdout.decode("utf-8", "replace").strip()
    return DemoResult(repo, summary, output, done.returncode == 0, config.sandbox)
