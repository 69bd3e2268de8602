"""`conductor demo`: a whole `conductor run`, offline, on the example repository.

The same code as a real run (planner, supervisor, sessions, gates); only the environment
differs: the sessions' Messages API is the scripted stand-in on loopback instead of Anthropic.
Its files (the stand-in's script, the example repository) are package data, in `demo_files/`,
so an installed conductor has them too.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import STDOUT

import anyio

from conductor import gitops
from conductor.config import Config
from conductor.errors import InvalidInput
from conductor.jail import unavailable_reason
from conductor.planner import Planned, Planning, make_plan
from conductor.session import worker_config
from conductor.standin.harness import GIT_IDENTITY, STANDIN_MODEL, session_env
from conductor.standin.script import load_script
from conductor.standin.server import StandIn
from conductor.store import Store
from conductor.supervisor import RunSummary, Supervisor
from conductor.workspace import DB_NAME, ensure_state_dir

GOAL = "Give textstats words, word counts and a one-line report, each tested"
FILES = Path(__file__).resolve().parent / "demo_files"
REPO_NAME = "textstats"
WORKSTREAMS = 3  # what its planner plans, all at once
# The longest temporary dir the run's own may be put in: sessions' sandboxes make unix sockets
# at most 61 characters below it (conductor-<16 hex>/claude-http-<16 hex>.sock, see
# jail.short_tmp), and a socket's path may not exceed 107 bytes.
TMP_AT_MOST = 44
SHORT_TMP = Path("/tmp")


def demo_assets() -> Path:
    """The demo's files, installed with the package."""
    if not (FILES / "script.yaml").is_file():
        raise InvalidInput(f"the demo's files are missing from {FILES}: reinstall conductor")
    return FILES


@dataclass(frozen=True)
class DemoResult:
    repo: Path
    summary: RunSummary
    tests_output: str
    tests_passed: bool
    sandboxed: bool  # whether its sessions ran in the OS sandbox (see jail.py)


async def _unwatched(supervisor: Supervisor) -> RunSummary:
    return await supervisor.run()


async def _unshown(planning: Planning) -> Planned:
    return await planning(lambda step: None)


async def run_demo(
    root: Path,
    *,
    drive: Callable[[Supervisor], Awaitable[RunSummary]] = _unwatched,
    plan: Callable[[Planning], Awaitable[Planned]] = _unshown,
) -> DemoResult:
    """The demo run in `root`, an empty directory: the repository is `root/textstats`, the
    stand-in's request log `root/requests.jsonl`. `drive` runs its supervisor and `plan` its
    planning (the CLI passes ones that show them). Everything else the run and its sessions
    make in a temporary dir (the CLI's, the sandbox's, the checks') goes into `root/tmp` (or,
    when that path is too long for the sandbox's sockets, a new dir in /tmp), removed at the
    end: removing `root` leaves nothing of the demo behind."""
    tmp = root / "tmp"
    if len(str(tmp)) <= TMP_AT_MOST or not SHORT_TMP.is_dir():
        tmp.mkdir()
    else:
        tmp = Path(tempfile.mkdtemp(prefix="conductor-demo-", dir=SHORT_TMP))
    try:
        with _temporary_files_in(tmp):
            return await _run(root, drive, plan)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _temporary_files_in(tmp: Path) -> Iterator[None]:
    """`tmp` as this process's temporary dir and its children's (TMPDIR), for a while."""
    before = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = str(tmp), str(tmp)
    try:
        yield
    finally:
        tempfile.tempdir = before[0]
        if before[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before[1]


async def _run(
    root: Path,
    drive: Callable[[Supervisor], Awaitable[RunSummary]],
    plan: Callable[[Planning], Awaitable[Planned]],
) -> DemoResult:
    assets = demo_assets()
    repo = root / REPO_NAME
    shutil.copytree(assets / "repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    await gitops.git(["init", "-q", "-b", "main"], repo)
    await gitops.git(["add", "-A"], repo)
    await gitops.git(["commit", "-q", "-m", "textstats: the start"], repo, env=GIT_IDENTITY)
    check = f"{sys.executable} -m unittest discover -q -s tests -t ."
    config = Config(
        model=STANDIN_MODEL,
        checks=(check,),
        review="agent",
        max_parallel=WORKSTREAMS,
        max_sessions=WORKSTREAMS,
        env=dict(GIT_IDENTITY),
        sandbox=unavailable_reason() is None,  # the demo says which it ran with
    )
    state = ensure_state_dir(repo)
    server = StandIn(load_script(assets / "script.yaml"), log_path=root / "requests.jsonl")
    async with server.running():
        env = session_env(server.base_url, state / "claude")
        planned = await plan(
            lambda on_step: make_plan(
                GOAL,
                repo,
                worker_config(config, state, env),
                max_sessions=config.max_sessions,
                on_step=on_step,
            )
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
