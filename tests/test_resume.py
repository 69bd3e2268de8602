"""`conductor resume`: a run whose supervisor was killed (SIGKILL, at any point) or stopped
with Ctrl-C carries on from the store to the same merged result, every message delivered
once. Real `conductor` processes, the real CLI sessions against the stand-in, real git."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from support import Cli, clean_env, fill, git, one_line_error, small_disk

from conductor.bus import create_run, supervisor_lock
from conductor.leftovers import end_leftovers, supervised_pids
from conductor.models import Event, RunState
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

# Each worker's later chapters redo its work idempotently: a session re-attached after its
# supervisor died mid-turn is prompted again (a new chapter) and must end in the same place.
COMMIT = "git add -A && (git diff --cached --quiet || git commit -qm '${role}: work')"
SCRIPT: dict[str, Any] = {
    "roles": {
        "A": [
            [
                {"tool": "mcp__bus__send", "input": {"to": "B", "text": "core.greet() is in"}},
                {
                    "tool": "Write",
                    "input": {
                        "file_path": "${cwd}/core.py",
                        "content": "def greet():\n    return 'hello'\n",
                    },
                    "delay": 1.5,
                },
                {"tool": "Bash", "input": {"command": COMMIT}},
                {"tool": "mcp__bus__request_review", "input": {"note": "core"}},
                {"text": "A is done."},
            ],
            [
                {
                    "tool": "Write",
                    "input": {
                        "file_path": "${cwd}/core.py",
                        "content": "def greet():\n    return 'hello'\n",
                    },
                },
                {"tool": "Bash", "input": {"command": COMMIT}},
                {"tool": "mcp__bus__request_review", "input": {"note": "core"}},
                {"text": "A is done again."},
            ],
        ],
        "C": [
            [
                {
                    "tool": "Write",
                    "input": {
                        "file_path": "${cwd}/util.py",
                        "content": "def shout(s):\n    return s.upper()\n",
                    },
                },
                {"tool": "Bash", "input": {"command": COMMIT}},
                {"tool": "mcp__bus__request_review", "input": {"note": "util"}},
                {"text": "C is done."},
            ]
        ]
        * 3,
        "B": [
            [
                {"tool": "Bash", "input": {"command": "cat core.py"}},
                {
                    "tool": "Write",
                    "input": {
                        "file_path": "${cwd}/cli.py",
                        "content": "from core import greet\n\ndef main():\n    return greet()\n",
                    },
                },
                {"tool": "Bash", "input": {"command": COMMIT}},
                {"tool": "mcp__bus__request_review", "input": {}},
                {"text": "B is done."},
            ],
            [
                {
                    "tool": "Write",
                    "input": {
                        "file_path": "${cwd}/cli.py",
                        "content": "from core import greet\n\ndef main():\n    return greet()\n",
                    },
                },
                {"tool": "Bash", "input": {"command": COMMIT}},
                {"tool": "mcp__bus__request_review", "input": {}},
                {"text": "B is done again."},
            ],
        ],
        **{
            f"{author}-review": [
                [
                    {
                        "tool": "mcp__bus__review_verdict",
                        "input": {"verdict": "approve", "comments": "looks right"},
                        "delay": 1.5 if author == "A" else 0.0,
                    },
                    {"text": "Approved."},
                ]
            ]
            * 2
            for author in ("A", "B", "C")
        },
    }
}

# The check sleeps, so that a kill "in the middle of the merge queue" lands inside a merge.
CHECK = f'{sys.executable} -c "import time; time.sleep(1.0)"'
TOML = f"""
model = "{STANDIN_MODEL}"
checks = [{json.dumps(CHECK)}]
review = "agent"
max_parallel = 3
stall_seconds = 60
"""

Trigger = Callable[[Event], bool]
POINTS: dict[str, Trigger] = {
    "after planning": lambda e: e.kind == "run.created",
    "while sessions start": lambda e: e.kind == "claim.added",
    "while sessions work": lambda e: e.kind == "sdk.tool_result" and e.session == "A",
    # A's turn is over and its reviewer is at work (its verdict is delayed): A's review waits.
    "while a review is pending": lambda e: e.kind == "sdk.system.init" and e.session == "A-review",
    "in the middle of the merge queue": lambda e: e.kind == "merge.queued",
}
_uninterrupted: dict[str, str] = {}  # the tree an uninterrupted run merges, computed once


def _prepare(off: Offline) -> Path:
    (off.repo / "conductor.toml").write_text(TOML)
    plan = off.repo.parent / "plan.json"
    plan.write_text(json.dumps(PLAN))
    git(off.repo, "add", "conductor.toml")
    git(off.repo, "commit", "-qm", "conductor settings")
    return plan


async def _start(
    off: Offline, *args: str, log: str, stdout: str | None = None
) -> anyio.abc.Process:
    """conductor in the background, its output in `log` (stdout in its own file if given)."""
    # The child keeps its own copies of the files; a short blocking open is fine in a test.
    with (
        open(off.repo.parent / log, "ab") as err,  # noqa: ASYNC230
        open(off.repo.parent / (stdout or log), "ab") as out,  # noqa: ASYNC230
    ):
        return await anyio.open_process(
            [sys.executable, "-m", "conductor", *args],
            cwd=off.repo,
            env=clean_env(**off.env),
            stdout=out,
            stderr=err,
        )


def _db(off: Offline) -> Path:
    return off.repo / ".conductor" / "conductor.db"


async def _wait_for(
    off: Offline, trigger: Trigger, proc: anyio.abc.Process, *, after: int = 0
) -> Event:
    """The first event after event id `after` that `trigger` picks."""
    with anyio.fail_after(90):
        while not _db(off).exists():  # noqa: ASYNC110 -- another process creates it
            await anyio.sleep(0.05)
        async with Store.open(_db(off)) as store:
            while True:
                run = await store.latest_run()
                if run is not None:
                    for event in await store.list_events(run.id, after=after):
                        if trigger(event):
                            return event
                        after = event.id
                assert proc.returncode is None, "conductor ended before the trigger"
                await anyio.sleep(0.02)


async def _finish(proc: anyio.abc.Process, timeout: float = 120) -> int:
    """Its exit status; one that does not exit in time fails the test and is killed, not
    left running after it (its jailed sessions die with it)."""
    try:
        with anyio.fail_after(timeout):
            return await proc.wait()
    except TimeoutError:
        proc.kill()
        raise


def _log(off: Offline, name: str) -> str:
    return (off.repo.parent / name).read_text(errors="replace")


def _tree(repo: Path, run_id: str) -> str:
    return git(repo, "rev-parse", f"conductor/{run_id}^{{tree}}")


def _run_id(off: Offline) -> str:
    with sqlite3.connect(_db(off)) as db:
        return str(db.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0])


def _deliveries(
    off: Offline,
) -> tuple[list[tuple[str, str, float | None]], Counter[tuple[str, int]]]:
    """Every delivery (recipient, body, read_at), and how often each was handed over."""
    with sqlite3.connect(_db(off)) as db:
        rows = db.execute(
            "SELECT s.name, m.body, d.read_at FROM deliveries d JOIN messages m ON"
            " m.id = d.message_id JOIN sessions s ON s.id = d.recipient_id"
        ).fetchall()
        reads: Counter[tuple[str, int]] = Counter()
        for name, payload in db.execute(
            "SELECT s.name, e.payload FROM events e JOIN sessions s ON s.id = e.session_id"
            " WHERE e.kind = 'message.read'"
        ):
            for message_id in json.loads(payload)["message_ids"]:
                reads[(name, message_id)] += 1
    return rows, reads


async def _ctrl_c_then_resume(off: Offline, *, presses: int, exits_within: float) -> str:
    """`conductor run` stopped with Ctrl-C pressed `presses` times while sessions work (it must
    exit 130 within `exits_within` seconds), then `conductor resume` to the end: the run id."""
    plan = _prepare(off)
    proc = await _start(off, "run", "x", "--plan", str(plan), "--no-live", log="run.log")
    await _wait_for(off, POINTS["while sessions work"], proc)
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
    assert await _finish(proc, exits_within) == 130, _log(off, "run.log")
    resumed = await _start(off, "resume", "--no-live", log="resume.log")
    assert await _finish(resumed) == 0, _log(off, "resume.log")
    return _run_id(off)


async def _uninterrupted_tree(tmp: Path) -> str:
    if "tree" not in _uninterrupted:
        async with offline(SCRIPT, tmp / "reference") as off:
            plan = _prepare(off)
            proc = await _start(off, "run", "x", "--plan", str(plan), "--no-live", log="run.log")
            assert await _finish(proc) == 0, _log(off, "run.log")
            _uninterrupted["tree"] = _tree(off.repo, _run_id(off))
    return _uninterrupted["tree"]


@pytest.mark.parametrize("point", list(POINTS))
async def test_a_supervisor_killed_at_any_point_resumes_to_the_same_merged_result(
    point: str, tmp_path: Path
) -> None:
    expected = await _uninterrupted_tree(tmp_path)
    async with offline(SCRIPT, tmp_path / "killed") as off:
        plan = _prepare(off)
        proc = await _start(off, "run", "x", "--plan", str(plan), "--no-live", log="run.log")
        await _wait_for(off, POINTS[point], proc)
        proc.send_signal(signal.SIGKILL)
        assert await _finish(proc) == -signal.SIGKILL
        run_id = _run_id(off)

        resumed = await _start(off, "resume", "--json", log="resume.log", stdout="summary.json")
        assert await _finish(resumed) == 0, _log(off, "resume.log")

        assert _tree(off.repo, run_id) == expected
        files = git(off.repo, "ls-tree", "--name-only", f"conductor/{run_id}").split()
        assert {"core.py", "util.py", "cli.py"} <= set(files)
        deliveries, reads = _deliveries(off)
        assert max(reads.values()) == 1  # no message handed over twice
        to_b = [d for d in deliveries if d[0] == "B" and d[1] == "core.greet() is in"]
        assert len(to_b) == 1 and to_b[0][2] is not None  # A's message reached B, once
        async with Store.open(_db(off)) as store:
            assert (await store.get_run(run_id)).state is RunState.FINISHED
        # Never merged twice: one merge commit per session branch on the integration branch.
        merges = git(off.repo, "log", "--merges", "--format=%s", f"conductor/{run_id}")
        assert sorted(line.split()[1][-1] for line in merges.splitlines()) == ["A", "B", "C"]
        # The summary counts what happened before the kill too. A kill between the moving of
        # the integration branch and the event that records it leaves the resumed gate to
        # find the commit there already: "already_merged" is then the truthful word.
        summary = json.loads(_log(off, "summary.json"))
        assert [(o["id"], o["state"], o["review_rounds"]) for o in summary["outcomes"]] == [
            (ws, "merged", 1) for ws in ("A", "C", "B")
        ]
        assert {o["merge"] for o in summary["outcomes"]} <= {"merged", "already_merged"}
        # Each delivered its one commit, whichever supervisor saw it land.
        landed = {o["id"]: o["commits"] for o in summary["outcomes"] if o["merge"] == "merged"}
        assert set(landed.values()) <= {1}, summary["outcomes"]
        assert supervised_pids(run_id) == []  # nothing of the run's sessions is left running
        assert not _lock_held(off, run_id)


def _lock_held(off: Offline, run_id: str) -> bool:
    with sqlite3.connect(_db(off)) as db:
        rows = db.execute("SELECT 1 FROM locks WHERE name = ?", (supervisor_lock(run_id),))
        return rows.fetchone() is not None


async def test_a_supervisor_killed_twice_in_a_row_still_resumes_to_the_same_result(
    tmp_path: Path,
) -> None:
    expected = await _uninterrupted_tree(tmp_path)
    async with offline(SCRIPT, tmp_path / "twice-killed") as off:
        plan = _prepare(off)
        proc = await _start(off, "run", "x", "--plan", str(plan), "--no-live", log="run.log")
        first = await _wait_for(off, POINTS["while sessions work"], proc)
        proc.send_signal(signal.SIGKILL)
        await _finish(proc)
        resumed = await _start(off, "resume", "--no-live", log="resume.log")
        await _wait_for(off, POINTS["in the middle of the merge queue"], resumed, after=first.id)
        resumed.send_signal(signal.SIGKILL)
        await _finish(resumed)
        again = await _start(off, "resume", "--no-live", log="again.log")
        assert await _finish(again) == 0, _log(off, "again.log")
        run_id = _run_id(off)
        assert _tree(off.repo, run_id) == expected
        _, reads = _deliveries(off)
        assert max(reads.values()) == 1
        assert supervised_pids(run_id) == [] and not _lock_held(off, run_id)


async def test_resume_refuses_a_run_that_another_supervisor_is_driving(tmp_path: Path) -> None:
    async with offline(SCRIPT, tmp_path / "twice") as off:
        plan = _prepare(off)
        proc = await _start(off, "run", "x", "--plan", str(plan), "--no-live", log="run.log")
        try:
            await _wait_for(off, POINTS["while sessions work"], proc)
            second = Cli(off.repo, process=True, **off.env)("resume")
            assert second.code == 2
            assert "is being supervised already" in second.err, second.err
        finally:
            proc.send_signal(signal.SIGKILL)
            await _finish(proc)
            await end_leftovers(_run_id(off))  # its sessions' processes: no resume follows


async def test_ctrl_c_interrupts_the_sessions_and_prints_how_to_resume(tmp_path: Path) -> None:
    async with offline(SCRIPT, tmp_path / "ctrl-c") as off:
        plan = _prepare(off)
        proc = await _start(
            off, "run", "x", "--plan", str(plan), "--json", log="run.log", stdout="summary.json"
        )
        await _wait_for(off, POINTS["while sessions work"], proc)
        proc.send_signal(signal.SIGINT)
        assert await _finish(proc, 30) == 130, _log(off, "run.log")
        run_id = _run_id(off)
        said = "interrupted: continue with: "
        lines = _log(off, "run.log").splitlines()
        (hint,) = [line.removeprefix(said) for line in lines if line.startswith(said)]
        assert hint.endswith(f"conductor resume {run_id}")
        summary = json.loads(_log(off, "summary.json"))
        states = {o["id"]: o["state"] for o in summary["outcomes"]}
        assert summary["interrupted"]
        assert states["A"] == states["B"] == "interrupted", summary["outcomes"]
        async with Store.open(_db(off)) as store:
            assert (await store.get_run(run_id)).state is RunState.INTERRUPTED
        with open(off.repo.parent / "resume.log", "wb") as log:  # noqa: ASYNC230
            resumed = await anyio.open_process(  # the hint as printed, pasted into a shell
                ["bash", "-c", hint], cwd=off.repo, env=clean_env(**off.env), stdout=log, stderr=log
            )
        assert await _finish(resumed) == 0, _log(off, "resume.log")
        files = git(off.repo, "ls-tree", "--name-only", f"conductor/{run_id}").split()
        assert {"core.py", "util.py", "cli.py"} <= set(files)


async def test_a_session_cut_short_by_ctrl_c_is_told_so_on_resume(tmp_path: Path) -> None:
    async with offline(SCRIPT, tmp_path / "told") as off:
        run_id = await _ctrl_c_then_resume(off, presses=1, exits_within=30)
        async with Store.open(_db(off)) as store:
            events = await store.list_events(run_id, session="A")
        cut = next(e.id for e in events if e.kind == "session.interrupted")
        after = [e for e in events if e.kind == "session.prompt" and e.id > cut]
        told = str(after[0].payload["prompt"])
        assert "It stopped in the middle of your turn" in told, told
        assert "Write core.greet()" in told  # the task it was given, to carry on with


async def test_ctrl_c_twice_exits_at_once_and_the_run_still_resumes(tmp_path: Path) -> None:
    async with offline(SCRIPT, tmp_path / "ctrl-c-twice") as off:
        run_id = await _ctrl_c_then_resume(off, presses=2, exits_within=10)
        files = git(off.repo, "ls-tree", "--name-only", f"conductor/{run_id}").split()
        assert {"core.py", "util.py", "cli.py"} <= set(files)


def test_resume_without_a_run_says_to_start_it_again_with_run(cli: Cli) -> None:
    result = cli("resume", ANTHROPIC_API_KEY="k")  # no database yet: none is made for it
    assert result.code == 2
    line = one_line_error(result)
    assert line.startswith("error: no run yet") and "conductor run" in line


async def test_resume_of_a_finished_run_exits_0_saying_there_is_nothing_to_do(
    tmp_path: Path,
) -> None:
    async with offline(SCRIPT, tmp_path / "finished") as off:
        plan = _prepare(off)
        proc = await _start(off, "run", "x", "--plan", str(plan), "--no-live", log="run.log")
        assert await _finish(proc) == 0, _log(off, "run.log")
        again = await _start(off, "resume", "--no-live", log="resume.log")
        assert await _finish(again) == 0, _log(off, "resume.log")
        assert "finished: everything merged, nothing to resume" in _log(off, "resume.log")


def test_resume_of_a_hand_run_says_there_is_no_plan(team: Cli) -> None:
    result = team("resume", ANTHROPIC_API_KEY="k")
    assert result.code == 2 and "has no plan" in result.err


def test_resume_of_an_unknown_run_is_a_one_line_error(team: Cli) -> None:
    result = team("resume", "nosuchrun", ANTHROPIC_API_KEY="k")
    assert result.code == 2 and "unknown run" in result.err


async def test_resume_needs_credentials(cli: Cli, repo: Path) -> None:
    async with Store.open(repo / ".conductor" / "conductor.db") as store:
        run = await create_run(
            store,
            goal="x",
            repo_root=repo,
            base_ref="main",
            base_commit=git(repo, "rev-parse", "HEAD"),
            spec={"plan": PLAN, "config": {}},
        )
        await store.set_run_state(run.run_id, RunState.INTERRUPTED, "Ctrl-C")
    env = {k: "" for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")}
    env["HOME"] = str(repo.parent / "home")  # and no Claude Code login
    env["CLAUDE_CONFIG_DIR"] = ""
    result = await anyio.to_thread.run_sync(partial(cli, "resume", **env))
    assert result.code == 2 and "no credentials" in result.err


async def test_a_run_whose_supervisor_was_killed_reads_interrupted_everywhere(
    tmp_path: Path,
) -> None:
    async with offline(SCRIPT, tmp_path / "orphaned") as off:
        plan = _prepare(off)
        proc = await _start(off, "run", "x", "--plan", str(plan), "--no-live", log="run.log")
        await _wait_for(off, POINTS["while sessions work"], proc)
        proc.send_signal(signal.SIGKILL)
        assert await _finish(proc) == -signal.SIGKILL
        run_id = _run_id(off)
        said = f"interrupted (supervisor not running: conductor resume {run_id})"
        env = clean_env(**off.env)

        async def conductor(*args: str) -> str:
            with anyio.fail_after(30):  # logs -f must end by itself
                done = await anyio.run_process(
                    [sys.executable, "-m", "conductor", *args], cwd=off.repo, env=env
                )
            return done.stdout.decode()

        assert said in await conductor("runs")
        assert said in await conductor("show")
        assert said in await conductor("dashboard")
        assert (await conductor("logs", "-f")).rstrip().endswith(f"run {run_id} {said}")
        (row,) = json.loads(await conductor("runs", "--json"))
        assert row["state"] == said
        await end_leftovers(run_id)  # its sessions' processes: no resume follows here


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small disk (tmpfs) needs root")
async def test_a_full_disk_interrupts_the_run_and_resume_finishes_it_once_space_is_back(
    tmp_path: Path,
) -> None:
    expected = await _uninterrupted_tree(tmp_path)
    root = tmp_path / "full"
    async with small_disk(root / "repo"), offline(SCRIPT, root) as off:
        plan = _prepare(off)
        proc = await _start(off, "run", "x", "--plan", str(plan), "--no-live", log="run.log")
        await _wait_for(off, POINTS["while sessions work"], proc)
        filler = off.repo / ".conductor" / "filler"
        await anyio.to_thread.run_sync(fill, filler)
        assert await _finish(proc) == 130, _log(off, "run.log")
        lines = [ln for ln in _log(off, "run.log").splitlines() if ln.startswith("interrupted: ")]
        assert len(lines) == 1 and lines[0].endswith(f"conductor resume {_run_id(off)}")
        assert "everything merged" not in _log(off, "run.log")

        filler.unlink()  # the cause is gone
        resumed = await _start(off, "resume", "--no-live", log="resume.log")
        assert await _finish(resumed) == 0, _log(off, "resume.log")
        assert _tree(off.repo, _run_id(off)) == expected
        _, reads = _deliveries(off)
        assert max(reads.values()) == 1
