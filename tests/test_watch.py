"""Looking at runs: `runs`, `show`, `logs [-f]`, read from the store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import anyio
from support import Cli, clean_env

from conductor.bus import open_run
from conductor.models import RunState
from conductor.store import Store


def test_runs_lists_every_run_with_its_state_and_sessions(cli: Cli) -> None:
    cli.ok("init", "--sessions", "A:x B:y", "--goal", "first [goal]")
    cli.ok("init", "--sessions", "C:z")
    rows = cli.ok("runs", "--json").json()
    assert [(r["goal"], r["state"], r["sessions"]) for r in rows] == [
        ("first [goal]", "active", 2),
        ("", "active", 1),
    ]
    assert "first [goal]" in cli.ok("runs").out


def test_show_prints_each_sessions_status(team: Cli) -> None:
    team.ok("update", "B", "--status", "blocked", "--note", "needs A")
    shown = team.ok("show", "--json").json()
    assert [(s["session"], s["status"]) for s in shown["sessions"]] == [
        ("A", "pending"),
        ("B", "blocked"),
        ("C", "pending"),
    ]
    assert "needs A" in team.ok("show").out


def test_logs_prints_the_events_and_filters_by_session(team: Cli) -> None:
    team.ok("message", "B", "hello [B]", "--from", "A")
    team.ok("claim", "src/", "--session", "C")
    lines = [json.loads(line) for line in team.ok("logs", "--json").out.splitlines()]
    assert [e["kind"] for e in lines][-2:] == ["message.sent", "claim.added"]
    assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)
    only_c = team.ok("logs", "--session", "C").out.splitlines()
    assert only_c and all(" C " in line for line in only_c)
    assert "hello [B]" in team.ok("logs").out


def test_logs_follow_prints_new_events_until_the_run_ends(team: Cli, repo: Path) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "conductor", "logs", "-f"],
        cwd=repo,
        env=clean_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        team.ok("message", "B", "sent while following", "--from", "A")

        async def finish() -> None:
            async with Store.open(repo / ".conductor" / "conductor.db") as store:
                bus = await open_run(store)
                await store.set_run_state(bus.run_id, RunState.FINISHED)

        time.sleep(0.5)
        anyio.run(finish)
        out, _ = follower.communicate(timeout=20)
    finally:
        follower.kill()
        follower.wait()
        if follower.stdout is not None:
            follower.stdout.close()
    assert follower.returncode == 0
    assert "sent while following" in out and "run.state" in out
