"""A team across hosts: `conductor run --workers` on one, `conductor worker`s on others that
share nothing with it but the database URL (a real PostgreSQL server) and a git remote served
on loopback by `git daemon`. Each worker has its own directory, HOME and Claude config, and
runs the real CLI against the stand-in. A worker SIGKILLed in the middle of a turn has its
workstream taken over by another when its lease runs out, and the run ends merged with the
same tree as a run on one host."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from support import Cli, clean_env, git, make_repo

from conductor.bus import open_run
from conductor.bus import work as work_queue
from conductor.models import RunState
from conductor.standin.harness import STANDIN_MODEL, Offline, offline
from conductor.store import Store

pytestmark = pytest.mark.anyio

PLAN = {
    "workstreams": [
        {"id": "A", "name": "core", "task": "Write core.greet()", "owns": ["core.py"]},
        {"id": "C", "name": "util", "task": "Write util.shout()", "owns": ["util.py"]},
        {
            "id": "B",
            "name": "cli",
            "task": "Write cli.main() using core",
            "owns": ["cli.py"],
            "depends_on": ["A"],
        },
    ]
}
COMMIT = "git add -A && (git diff --cached --quiet || git commit -qm '${role}: work')"


def _chapter(role: str, path: str, content: str) -> list[dict[str, Any]]:
    """Write a file, commit it, ask for review. Idempotent: a session started afresh (taken
    over) or prompted again does it again and ends in the same place."""
    return [
        {"tool": "Write", "input": {"file_path": f"${{cwd}}/{path}", "content": content}},
        {"tool": "Bash", "input": {"command": COMMIT}},
        {"tool": "mcp__bus__request_review", "input": {"note": role}},
        {"text": f"{role} is done."},
    ]


CORE = "def greet():\n    return 'hello'\n"
# A commits its first part and ends its turn (its worker pushes the branch), is nudged for
# a review, and sleeps through its second turn: a worker killed then has pushed A's commit.
# A fresh session (a takeover) starts again at chapter 1, which changes nothing now.
A_FIRST = [
    {"tool": "Write", "input": {"file_path": "${cwd}/core.py", "content": CORE}},
    {"tool": "Bash", "input": {"command": COMMIT}},
    {"text": "First part committed."},
]
A_SLOW = [{"tool": "Bash", "input": {"command": "sleep 5"}}, {"text": "Thought about it."}]


SCRIPT: dict[str, Any] = {
    "roles": {
        "A": [A_FIRST, A_SLOW] + [_chapter("A", "core.py", CORE)] * 3,
        "C": [_chapter("C", "util.py", "def shout(s):\n    return s.upper()\n")] * 3,
        "B": [
            _chapter("B", "cli.py", "from core import greet\n\ndef main():\n    return greet()\n")
        ]
        * 3,
        **{
            f"{author}-review": [
                [
                    {
                        "tool": "mcp__bus__review_verdict",
                        "input": {"verdict": "approve", "comments": "looks right"},
                    },
                    {"text": "Approved."},
                ]
            ]
            * 3
            for author in ("A", "B", "C")
        },
    }
}
TOML = f"""
model = "{STANDIN_MODEL}"
review = "agent"
max_parallel = 3
stall_seconds = 60
"""
QUICK = TOML.replace('review = "agent"', 'review = "auto"')  # no reviewer sessions to wait for
LEASE = "4"  # seconds a silent worker keeps its workstreams, in these tests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def git_daemon(root: Path) -> AsyncIterator[int]:
    """`git daemon` serving the bare repositories under `root` on loopback, pushes allowed."""
    port = _free_port()
    root.mkdir(parents=True, exist_ok=True)
    async with await anyio.open_process(
        [
            "git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
            "--listen=127.0.0.1", f"--port={port}", f"--base-path={root}", str(root),
        ],
    ) as daemon:  # fmt: skip
        with anyio.fail_after(10):
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    await anyio.sleep(0.05)
        try:
            yield port
        finally:
            daemon.terminate()


def _prepare(off: Offline, remote_url: str | None, toml: str = TOML) -> Path:
    (off.repo / "conductor.toml").write_text(toml)
    plan = off.repo.parent / "plan.json"
    plan.write_text(json.dumps(PLAN))
    git(off.repo, "add", "conductor.toml")
    git(off.repo, "commit", "-qm", "conductor settings")
    if remote_url is not None:
        bare = off.repo.parent / "remotes" / "team.git"
        bare.parent.mkdir(exist_ok=True)
        git(off.repo.parent, "clone", "-q", "--bare", str(off.repo), str(bare))
        git(off.repo, "remote", "add", "origin", remote_url)
    return plan


async def _start(
    args: list[str], *, cwd: Path, env: dict[str, str], log: Path
) -> anyio.abc.Process:
    with open(log, "ab") as out:  # noqa: ASYNC230 -- the child keeps its own copy
        return await anyio.open_process(
            [sys.executable, "-m", "conductor", *args],
            cwd=cwd,
            env=clean_env(**env),
            stdout=out,
            stderr=out,
        )


async def _worker(
    off: Offline,
    name: str,
    db: str,
    remote_url: str,
    *,
    place: str | None = None,
    slots: int = 1,
) -> anyio.abc.Process:
    """A worker in a directory of its own (`place`, default its name), with its own HOME
    and Claude config."""
    home = off.repo.parent / (place or name)
    (home / "home").mkdir(parents=True, exist_ok=True)
    (home / "claude").mkdir(exist_ok=True)
    env = {**off.env, "HOME": str(home / "home"), "CLAUDE_CONFIG_DIR": str(home / "claude")}
    return await _start(
        [
            "worker",
            "--db",
            db,
            "--repo",
            remote_url,
            "--id",
            name,
            "--lease",
            LEASE,
            "--slots",
            str(slots),
        ],
        cwd=home,
        env=env,
        log=off.repo.parent / f"{name}.log",
    )


async def _finish(proc: anyio.abc.Process, timeout: float = 180) -> int:
    try:
        with anyio.fail_after(timeout):
            return await proc.wait()
    except TimeoutError:
        proc.kill()
        raise


def _log(off: Offline, name: str) -> str:
    return (off.repo.parent / name).read_text(errors="replace")


async def _stop(proc: anyio.abc.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        with anyio.move_on_after(30):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()


_one_host: dict[str, str] = {}  # the tree a run on one host merges, computed once


async def _one_host_tree(tmp: Path) -> str:
    if "tree" not in _one_host:
        _one_host["tree"] = await _run_on_one_host(tmp)
    return _one_host["tree"]


async def _run_on_one_host(tmp: Path) -> str:
    async with offline(SCRIPT, tmp / "one-host") as off:
        plan = _prepare(off, None)
        proc = await _start(
            ["run", "x", "--plan", str(plan), "--no-live", "--json"],
            cwd=off.repo,
            env=off.env,
            log=off.repo.parent / "run.log",
        )
        assert await _finish(proc) == 0, _log(off, "run.log")
        async with Store.open(off.repo / ".conductor" / "conductor.db") as store:
            ran = await store.latest_run()
            assert ran is not None and ran.state is RunState.FINISHED
        return git(off.repo, "rev-parse", f"conductor/{ran.id}^{{tree}}")


def _first_prompts(off: Offline, containing: str) -> list[str]:
    """The first prompt of each conversation the stand-in served that contains `containing`."""
    found = set()
    for line in (off.repo.parent / "requests.jsonl").read_text().splitlines():
        body = json.loads(line).get("body") or {}
        messages = body.get("messages") or []
        if not messages:
            continue
        first = messages[0].get("content")
        text = first if isinstance(first, str) else json.dumps(first)
        if containing in text:
            found.add(text)
    return sorted(found)


async def _events(db: str) -> list[tuple[str | None, str, str]]:
    async with Store.open(db) as store:
        run = await store.latest_run()
        assert run is not None
        return [(e.session, e.kind, e.summary) for e in await store.list_events(run.id)]


async def _wait_for_event(
    db: str, kind: str, session: str, proc: anyio.abc.Process, *, nth: int = 1
) -> str:
    """The summary of the `nth` `kind` event of `session`."""
    with anyio.fail_after(120):
        while True:
            try:
                found = [s for who, what, s in await _events(db) if (who, what) == (session, kind)]
                if len(found) >= nth:
                    return found[nth - 1]
            except AssertionError:
                pass  # no run yet
            assert proc.returncode is None, "the run ended before the event"
            await anyio.sleep(0.1)


@asynccontextmanager
async def _team(
    tmp: Path, db: str, toml: str = TOML
) -> AsyncIterator[tuple[Offline, str, anyio.abc.Process]]:
    """The repository with its remote on a git daemon, and `conductor run --workers` started
    on it: (the stand-in's set-up, the remote's URL, the supervisor's process)."""
    async with (
        offline(SCRIPT, tmp / "team") as off,
        git_daemon(tmp / "team" / "remotes") as port,
    ):
        url = f"git://127.0.0.1:{port}/team.git"
        plan = _prepare(off, url, toml)
        run = await _start(
            ["--db", db, "run", "x", "--plan", str(plan), "--workers", "--no-live"],
            cwd=off.repo,
            env=off.env,
            log=off.repo.parent / "run.log",
        )
        try:
            yield off, url, run
        finally:
            await _stop(run)


async def _a_sleeps(db: str, run: anyio.abc.Process) -> None:
    """Until A is in its second turn (the nudge for a review, after its first commit was
    pushed), sleeping in Bash."""
    await _wait_for_event(db, "session.prompt", "A", run, nth=2)
    await anyio.sleep(1.5)


async def _merged_tree(off: Offline, db: str) -> str:
    """The tree of the run's integration branch, which must be finished, on the remote
    too."""
    async with Store.open(db) as store:
        finished = await store.latest_run()
        assert finished is not None and finished.state is RunState.FINISHED
        run_id = finished.id
    tree = git(off.repo, "rev-parse", f"conductor/{run_id}^{{tree}}")
    git(off.repo, "fetch", "-q", "origin", f"conductor/{run_id}")
    assert git(off.repo, "rev-parse", "FETCH_HEAD^{tree}") == tree
    return tree


async def test_a_worker_restarted_in_its_directory_resumes_the_conversation(
    tmp_path: Path, postgres_url: str
) -> None:
    expected = await _one_host_tree(tmp_path)
    async with _team(tmp_path, postgres_url) as (off, url, run):
        first = await _worker(off, "w1", postgres_url, url)
        await _a_sleeps(postgres_url, run)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        again = await _worker(off, "w1b", postgres_url, url, place="w1")
        try:
            assert await _finish(run) == 0, _log(off, "run.log") + _log(off, "w1b.log")
        finally:
            await _stop(again)
        events = await _events(postgres_url)
        said = [s for who, k, s in events if who == "A" and k == "session.restarted"]
        assert said and "resumed its conversation" in said[-1], said
        assert not _first_prompts(off, "this is a fresh session")
        assert await _merged_tree(off, postgres_url) == expected


async def test_a_stopped_supervisor_lets_the_workers_go_and_resume_carries_on(
    tmp_path: Path, postgres_url: str
) -> None:
    expected = await _one_host_tree(tmp_path)
    async with _team(tmp_path, postgres_url) as (off, url, run):
        worker = await _worker(off, "w1", postgres_url, url)
        try:
            await _a_sleeps(postgres_url, run)
            run.send_signal(signal.SIGINT)
            assert await _finish(run, 60) == 130, _log(off, "run.log")
            with anyio.fail_after(30):  # the worker sees the run stop, and lets A go
                while "let go" not in _log(off, "w1.log"):  # noqa: ASYNC110 -- its log
                    await anyio.sleep(0.1)
            resumed = await _start(
                ["--db", postgres_url, "resume", "--no-live"],
                cwd=off.repo,
                env=off.env,
                log=off.repo.parent / "resume.log",
            )
            assert await _finish(resumed) == 0, _log(off, "resume.log") + _log(off, "w1.log")
        finally:
            await _stop(worker)
        assert _log(off, "w1.log").count("took A of run") == 2
        assert await _merged_tree(off, postgres_url) == expected


async def test_max_parallel_holds_across_all_workers_and_none_takes_another_repositorys_run(
    tmp_path: Path, postgres_url: str
) -> None:
    one_at_a_time = QUICK.replace("max_parallel = 3", "max_parallel = 1")
    async with _team(tmp_path, postgres_url, one_at_a_time) as (off, url, run):
        other = tmp_path / "team" / "remotes" / "other.git"  # a repository of its own
        git(tmp_path, "clone", "-q", "--bare", str(make_repo(tmp_path / "other")), str(other))
        stranger = await _worker(off, "w0", postgres_url, url.replace("team.git", "other.git"))
        workers = [stranger]
        try:
            with anyio.fail_after(60):
                while "left to other workers" not in _log(off, "w0.log"):  # noqa: ASYNC110
                    await anyio.sleep(0.1)
            workers += [await _worker(off, f"w{i}", postgres_url, url, slots=2) for i in (1, 2)]
            assert await _finish(run) == 0, _log(off, "run.log")
        finally:
            for worker in workers:
                await _stop(worker)
        said = _log(off, "w0.log")
        assert "is not of this worker's repository" in said
        assert said.count("took ") == 1, said  # and never that run again
    held: set[str] = set()  # the workstreams a worker holds, event by event
    most = 0
    for session, kind, _ in await _events(postgres_url):  # in the order they happened
        if kind == "work.taken" and session is not None:
            held.add(session)  # (taken again after w0 let it go: still one)
        elif kind == "work.ended" and session is not None:
            held.discard(session)
        most = max(most, len(held))
    assert most == 1


async def test_a_worker_paused_past_its_lease_finds_it_taken_over_and_stops(
    tmp_path: Path, postgres_url: str
) -> None:
    expected = await _one_host_tree(tmp_path)
    async with _team(tmp_path, postgres_url) as (off, url, run):
        first = await _worker(off, "w1", postgres_url, url)
        second: anyio.abc.Process | None = None
        try:
            await _a_sleeps(postgres_url, run)
            first.send_signal(signal.SIGSTOP)  # a paused VM, a cut network: silent, not dead
            second = await _worker(off, "w2", postgres_url, url)
            await _wait_for_event(postgres_url, "work.taken", "A", run, nth=2)
            first.send_signal(signal.SIGCONT)
            assert await _finish(run) == 0, _log(off, "run.log") + _log(off, "w2.log")
            with anyio.fail_after(30):
                while "lost (another worker took it over)" not in _log(off, "w1.log"):  # noqa: ASYNC110
                    await anyio.sleep(0.1)
        finally:
            first.send_signal(signal.SIGCONT)
            await _stop(first)
            if second is not None:
                await _stop(second)
        ended = [s for who, k, s in await _events(postgres_url) if (who, k) == ("A", "work.ended")]
        assert len(ended) == 1 and "on worker w2" in ended[0], ended  # w1 wrote no end of A
        assert await _merged_tree(off, postgres_url) == expected


async def test_the_runs_budget_holds_across_workers(tmp_path: Path, postgres_url: str) -> None:
    # One workstream at a time, and a budget A's first turn spends: nothing else may start.
    tight = QUICK.replace("max_parallel = 3", "max_parallel = 1") + "max_usd_per_run = 0.0001\n"
    async with _team(tmp_path, postgres_url, tight) as (off, url, run):
        workers = [await _worker(off, f"w{i}", postgres_url, url) for i in (1, 2)]
        try:
            assert await _finish(run) == 1, _log(off, "run.log")
        finally:
            for worker in workers:
                await _stop(worker)
        assert "the run's budget was spent" in _log(off, "run.log")
    taken = [who for who, kind, _ in await _events(postgres_url) if kind == "work.taken"]
    assert taken == ["A"]


async def test_two_workers_finish_a_run_and_one_killed_mid_turn_is_taken_over(
    tmp_path: Path, postgres_url: str
) -> None:
    expected = await _one_host_tree(tmp_path)
    async with (
        offline(SCRIPT, tmp_path / "team") as off,
        git_daemon(tmp_path / "team" / "remotes") as port,
    ):
        url = f"git://127.0.0.1:{port}/team.git"
        plan = _prepare(off, url)
        run = await _start(
            ["--db", postgres_url, "run", "x", "--plan", str(plan), "--workers", "--no-live"],
            cwd=off.repo,
            env=off.env,
            log=off.repo.parent / "run.log",
        )
        first = await _worker(off, "w1", postgres_url, url)
        try:
            # w1 alone takes A; once A's session is mid-turn, w1 dies without a word.
            taken = await _wait_for_event(postgres_url, "work.taken", "A", run)
            assert "by worker w1" in taken
            # A's second prompt (the nudge for a review, after its first commit was pushed):
            # it sleeps in Bash now.
            await _wait_for_event(postgres_url, "session.prompt", "A", run, nth=2)
            await anyio.sleep(1.5)
            first.send_signal(signal.SIGKILL)
            await first.wait()
            second = await _worker(off, "w2", postgres_url, url)
            try:
                assert await _finish(run) == 0, _log(off, "run.log") + _log(off, "w2.log")
            finally:
                await _stop(second)
        finally:
            await _stop(first)
        events = await _events(postgres_url)
        taken_over = [s for who, k, s in events if who == "A" and k == "work.taken"]
        assert len(taken_over) == 2 and "taken over from w1" in taken_over[1], taken_over
        said = [s for who, k, s in events if who == "A" and k == "session.restarted"]
        assert said and "a fresh session starts" in said[-1], said
        # The fresh session was told whose workstream it took over and what its branch holds.
        fresh = _first_prompts(off, "taken over from worker w1")
        assert fresh and all("already holds its commits" in p for p in fresh), fresh
        assert all("A: work" in p for p in fresh)
        async with Store.open(postgres_url) as store:
            finished = await store.latest_run()
            assert finished is not None and finished.state is RunState.FINISHED
            run_id = finished.id
        git(off.repo, "fetch", "-q", "origin", f"conductor/{run_id}")
        assert git(off.repo, "rev-parse", f"conductor/{run_id}^{{tree}}") == expected
        assert git(off.repo, "rev-parse", "FETCH_HEAD^{tree}") == expected
        shutil.rmtree(off.repo.parent / "w1", ignore_errors=True)


# ------------------------------------------------------------------------------ conductor workers


async def _two_workers(db: Path) -> str:
    """w1 (2 slots) runs A; w2 stopped. The run's id."""
    async with Store.open(db) as store:
        bus = await open_run(store)
        await work_queue.queue(bus, "A")
        await work_queue.alive(store, "w1", host="build-1", pid=11, slots=2)
        await work_queue.alive(store, "w2", host="build-2", pid=12, slots=1)
        await work_queue.supervisor_alive(bus)
        await work_queue.take(store, "w1", host="build-1")
        await work_queue.stopped(store, "w2")
        return bus.run_id


def test_workers_lists_each_worker_with_its_heartbeat_slots_and_what_it_runs(
    team: Cli, repo: Path
) -> None:
    run_id = anyio.run(_two_workers, repo / ".conductor" / "conductor.db")
    shown = team.ok("workers").out
    w1 = next(line.strip() for line in shown.splitlines() if line.strip().startswith("w1"))
    assert "build-1" in w1 and "alive" in w1 and " 2 " in w1 and f"A of {run_id}" in w1
    w2 = next(line.strip() for line in shown.splitlines() if line.strip().startswith("w2"))
    assert "stopped" in w2 and w2.rstrip().endswith("-")
    listed = team.ok("workers", "--json").json()
    assert [(w["id"], w["state"], w["runs"]) for w in listed] == [
        ("w1", "alive", [f"A of {run_id}"]),
        ("w2", "stopped", []),
    ]


def test_workers_with_none_says_how_to_start_one(team: Cli) -> None:
    assert "conductor worker --db" in team.ok("workers").out


def test_a_run_with_workers_needs_a_remote_they_can_reach(cli: Cli, repo: Path) -> None:
    (repo.parent / "plan.json").write_text(json.dumps(PLAN))
    failed = cli.fails("run", "x", "--plan", str(repo.parent / "plan.json"), "--workers")
    assert "--workers needs a git remote" in failed.err
