"""What a run cost: each turn counted once, the planner and reviewers included, and every view
adding the same numbers. Claude Code reports a running total per CLI process, restored from
the transcript on resume; the real CLI against the stand-in shows both."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import served_cost
from test_session_driver import Standin, session_in_worktree

from conductor import events
from conductor.costs import (
    COST_KEY,
    CostMeter,
    Spend,
    planner_spend,
    restored_total,
    spend_of,
)
from conductor.session import HeadlessSession

pytestmark = pytest.mark.anyio


def test_a_turn_costs_what_the_running_total_rose_by() -> None:
    meter = CostMeter()
    assert [meter.turn(t) for t in (0.25, 0.75, 1.0)] == [0.25, 0.5, 0.25]


def test_a_resumed_cli_starts_from_the_total_it_restored() -> None:
    meter = CostMeter(restored=0.5)
    assert meter.turn(0.625) == 0.125


def test_a_total_below_the_restored_one_is_all_this_processes() -> None:
    meter = CostMeter(restored=0.5)  # it did not restore what we read
    assert meter.turn(0.125) == 0.125


def test_the_restored_total_is_the_transcripts_last_cost_state(tmp_path: Path) -> None:
    transcript = tmp_path / "s.jsonl"
    lines = [
        {"type": "user", "message": "cost-state mentioned in passing"},
        {"type": "cost-state", "sessionId": "s", "totalCostUSD": 0.25},
        {"type": "assistant"},
        {"type": "cost-state", "sessionId": "s", "totalCostUSD": 0.5},
    ]
    transcript.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    assert restored_total(transcript) == 0.5
    assert restored_total(tmp_path / "missing.jsonl") == 0.0


def test_a_run_recorded_before_turn_costs_is_read_by_its_running_totals() -> None:
    old = {"planner": {"num_turns": 2, "total_cost_usd": 0.5}}
    assert planner_spend(old) == Spend(2, 0.5)
    assert planner_spend({"planner": {"total_cost_usd": 0.5, COST_KEY: 0.25}}) == Spend(0, 0.25)


def test_the_planners_spend_comes_from_the_runs_spec() -> None:
    assert planner_spend({"planner": Spend(3, 0.5).to_json()}) == Spend(3, 0.5)
    assert planner_spend({"plan": {}}) is None


async def test_a_session_woken_and_resumed_is_charged_what_was_served_once(
    standin: Standin,
) -> None:
    async with session_in_worktree(standin, "A") as (offline, bus, session):
        first = await session.turn("conductor-role: A\nStart.")
        await session.turn("Wake up: commit your notes.")
        await session.__aexit__(None, None, None)  # a clean exit: it writes its cost-state
        resumed = HeadlessSession(
            bus, "A", session.worktree, session.config, resume=first.session_id
        )
        async with resumed:
            await resumed.turn("Carry on.")
        recorded = [
            result.cost_usd
            for e in await bus.events(session="A")
            if (result := events.read(e, events.SdkResult)) is not None
        ]
        assert len(recorded) == 3
        assert sum(recorded) == pytest.approx(served_cost(offline.server.requests), abs=1e-9)
        kept = await bus.session("A")  # what the views read: added up as each turn was recorded
        assert kept.cost_usd == pytest.approx(sum(recorded), abs=1e-12)
        assert kept.turns > 0
        spent = spend_of(None, await bus.sessions())
        assert spent["A"] == Spend(kept.turns, kept.cost_usd)
        assert set(spent) == {"A"}  # sessions that spent nothing are not listed


def test_a_turn_never_costs_less_than_nothing() -> None:
    meter = CostMeter()  # the CLI restored a negative total a session wrote in its transcript
    assert meter.turn(-5.0) == 0.0


def test_a_transcript_that_is_not_a_regular_file_restores_nothing(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text(json.dumps({"type": "cost-state", "totalCostUSD": 9.0}) + "\n")
    (tmp_path / "link.jsonl").symlink_to(real)
    os.mkfifo(tmp_path / "fifo.jsonl")  # would block a read
    assert restored_total(tmp_path / "link.jsonl") == 0.0
    assert restored_total(tmp_path / "fifo.jsonl") == 0.0
