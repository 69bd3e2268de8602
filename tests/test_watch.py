"""Looking at runs: `runs`, `show`, `logs [-f]`, read from the store."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable
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
    last = json.loads(team.ok("logs", "--json").out.splitlines()[-1])["id"]
    follower = subprocess.Popen(
        [sys.executable, "-m", "conductor", "logs", "-f"],
        cwd=repo,
        env=clean_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.put(line)
        lines.put(None)

    def until(seen: Callable[[str], bool]) -> list[str]:
        """The follower's lines up to the first `seen` one (20 s at most, not a fixed wait)."""
        got: list[str] = []
        while True:
            line = lines.get(timeout=20)
            assert line is not None, f"the follower ended early: {got}"
            got.append(line)
            if seen(line):
                return got

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # It is following once it has printed what was there: only then is the rest new.
        until(lambda line: re.search(rf"#{last}\b", line) is not None)
        team.ok("message", "B", "sent while following", "--from", "A")
        until(lambda line: "sent while following" in line)  # printed while the run goes on

        async def finish() -> None:
            async with Store.open(repo / ".conductor" / "conductor.db") as store:
                bus = await open_run(store)
                await bus.set_state(RunState.FINISHED)

        anyio.run(finish)
        ended = until(lambda line: "run.state" in line)
        assert follower.wait(timeout=20) == 0  # the run ended: so does following it
    finally:
        follower.kill()
        follower.wait()
        reader.join(timeout=5)
        if follower.stdout is not None:
            follower.stdout.close()
    assert "finished" in ended[-1]
