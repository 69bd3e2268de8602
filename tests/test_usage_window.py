"""A 429 that says when the usage limit resets: the session waits until then, says when it
resumes, and the run goes on (no doubling back-off toward a failure)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

import anyio
import pytest
from claude_agent_sdk import RateLimitEvent
from claude_agent_sdk.types import RateLimitInfo
from test_supervisor import supervisor_for

from conductor.bus import Bus
from conductor.errors import InvalidInput
from conductor.events import parse
from conductor.readmodel.words import what_happened
from conductor.run.usage_window import UsageWindow, reset_of, resumes_at, wait_for_window
from conductor.session import TurnResult
from conductor.session.stream import rejected_until
from conductor.standin.harness import Offline
from conductor.standin.script import parse_script
from conductor.store import Store

Standin = Callable[[str], AbstractAsyncContextManager[Offline]]

NOW = 1_764_770_000.0  # 2025-12-03T13:53:20Z


def limited(text: str = "", resets_at: float | None = None, status: int = 429) -> TurnResult:
    return TurnResult(
        session_id="s",
        is_error=True,
        num_turns=1,
        cost_usd=0.0,
        result=f"API Error: Request rejected ({status}) · {text}",
        api_error_status=status,
        resets_at=resets_at,
    )


# ------------------------------------------------------------------------------ fast


@pytest.mark.parametrize(
    "text",
    [
        "usage limit reached · resets at 2025-12-03T14:00:00Z",
        "usage limit reached · resets at 2025-12-03T14:00:00+00:00",
        "usage limit reached · resets at 2025-12-03T14:00",  # no zone: UTC
        "Claude AI usage limit reached|1764770400",
        "limit reached, resets 1764770400",
    ],
)
def test_the_reset_is_read_from_what_the_api_said(text: str) -> None:
    assert reset_of(limited(text)) == 1_764_770_400.0


def test_a_429_that_names_no_reset_and_other_errors_are_no_usage_limit() -> None:
    assert reset_of(limited("rate limited, slow down")) is None
    assert reset_of(limited("resets at 2025-12-03T14:00:00Z", status=529)) is None


def test_the_clis_rate_limit_event_gives_the_reset() -> None:
    assert reset_of(limited("whatever", resets_at=NOW + 60)) == NOW + 60
    rejected = RateLimitEvent(RateLimitInfo(status="rejected", resets_at=1_764_770_400), "u", "s")
    allowed = RateLimitEvent(RateLimitInfo(status="allowed", resets_at=1_764_770_400), "u", "s")
    assert rejected_until(rejected) == 1_764_770_400.0
    assert rejected_until(allowed) is None


def test_sessions_that_hit_the_same_limit_wait_for_the_same_time() -> None:
    window = UsageWindow()
    assert window.reset_for(limited("resets at 2025-12-03T14:00:00Z"), now=NOW) == NOW + 400
    # Another session's 429 names no reset, or an earlier one: it waits as long.
    assert window.reset_for(limited("rate limited"), now=NOW + 10) == NOW + 400
    assert window.reset_for(limited("resets 1764770100"), now=NOW + 10) == NOW + 400
    # Once the window has passed, a plain 429 is backed off as usual.
    assert window.reset_for(limited("rate limited"), now=NOW + 401) is None
    assert window.reset_for(limited("overloaded", status=529), now=NOW) is None


def test_the_resume_time_is_on_this_hosts_clock() -> None:
    soon = time.time() + 30
    assert resumes_at(soon) == datetime.fromtimestamp(soon).astimezone().strftime("%H:%M:%S")
    later = time.time() + 3600
    today = datetime.now().astimezone().date()
    local = datetime.fromtimestamp(later).astimezone()
    assert resumes_at(later) == local.strftime("%H:%M" if local.date() == today else "%b %d %H:%M")
    days = time.time() + 3 * 86_400  # a weekly limit: the day too
    assert resumes_at(days) == datetime.fromtimestamp(days).astimezone().strftime("%b %d %H:%M")


def test_a_scripts_resets_in_goes_with_a_429() -> None:
    step = "{text: hi, fault: {status: 429, resets_in: 3}}"
    fault = parse_script(f"roles: {{A: [[{step}]]}}").roles["A"][0][0].fault
    assert fault is not None and fault.resets_in == 3
    with pytest.raises(InvalidInput, match="resets_in: goes with status 429"):
        parse_script("roles: {A: [[{text: hi, fault: {status: 529, resets_in: 3}}]]}")


# ------------------------------------------------------------------------------ a real run


TWO = {
    "workstreams": [
        {"id": "A", "name": "a", "task": "a", "owns": ["a.py"]},
        {"id": "B", "name": "b", "task": "b", "owns": ["b.py"]},
    ]
}
TWO_LIMITED = """
roles:
  A:
    - - tool: Bash
        input: {command: "touch a.py && git add -A && git commit -qm a"}
        fault: {status: 429, times: 1, resets_in: 6}
      - tool: mcp__bus__request_review
        input: {}
      - text: "A asked."
  B:
    - - tool: Bash
        input: {command: "touch b.py && git add -A && git commit -qm b"}
        fault: {status: 429, times: 1}
        delay: 2.0
      - tool: mcp__bus__request_review
        input: {}
      - text: "B asked."
"""


@pytest.mark.anyio
async def test_a_429_with_a_reset_waits_until_then_and_the_run_finishes(
    standin: Standin,
) -> None:
    """A is refused with the reset 6 s ahead; B, refused 2 s later without being told
    when, waits for the same reset; both go on only then, and the run finishes."""
    async with standin(TWO_LIMITED) as offline:
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            # backoff_seconds as long as the test may take: only the window's reset ends a wait
            supervisor = supervisor_for(offline, store, TWO, checks=(), backoff_seconds=600.0)
            with anyio.fail_after(120):
                summary = await supervisor.run()
            events = await store.list_events(summary.run_id)
        assert summary.ok, summary.outcomes
        paused = {e.session: e for e in events if e.kind == "session.paused"}
        assert len([e for e in events if e.kind == "session.paused"]) == 2
        until = datetime.fromisoformat(paused["A"].payload["until"]).timestamp()
        assert paused["B"].payload["until"] == paused["A"].payload["until"]  # the same reset
        for name in ("A", "B"):
            said = f"waiting for the usage window: resumes at {resumes_at(until)}"
            assert paused[name].summary == said and paused[name].payload["status"] == 429
            asked = [r for r in offline.server.requests if r.answer.startswith(f"{name} ")]
            refused = next(r for r in asked if r.status == 429)
            assert refused.at < until  # refused before the reset...
            after = [r for r in asked if r.at > refused.at]
            assert after and after[0].at >= until  # ...and not asked again before it


@pytest.mark.anyio
async def test_a_reset_later_than_max_usage_wait_is_waited_for_that_long_then_tried(
    bus: Bus,
) -> None:
    until = time.time() + 3 * 3600
    with anyio.fail_after(10):
        prompt = await wait_for_window(bus, "A", until, 0.2)
    assert "waited for it to reset" in prompt
    paused = [e for e in await bus.events(session="A") if e.kind == "session.paused"]
    assert paused[-1].payload["seconds"] == pytest.approx(0.2, abs=0.05)
    assert paused[-1].summary.endswith(
        f"(the limit resets at {resumes_at(until)}, after max_usage_wait: trying then)"
    )


@pytest.mark.anyio
async def test_the_live_view_and_plain_lines_say_when_the_session_resumes(bus: Bus) -> None:
    until = time.time() + 2 * 3600
    waiting = anyio.create_task_group()
    async with waiting:
        waiting.start_soon(wait_for_window, bus, "A", until, 3 * 3600)
        await anyio.sleep(0.3)
        waiting.cancel_scope.cancel()  # (a stop cancels a wait the same way)
    event = [e for e in await bus.events(session="A") if e.kind == "session.paused"][-1]
    parsed = parse(event)
    assert parsed is not None
    assert what_happened(event, parsed.payload, {}) == (
        f"paused: waiting for the usage window: resumes at {resumes_at(until)}"
    )


def test_a_session_about_to_start_a_turn_waits_for_a_window_another_hit() -> None:
    window = UsageWindow()
    assert window.ahead(now=NOW) is None
    window.reset_for(limited("resets at 2025-12-03T14:00:00Z"), now=NOW)
    assert window.ahead(now=NOW + 1) == NOW + 400  # not asked and refused first
    assert window.ahead(waited=NOW + 400, now=NOW + 1) is None  # it waited (capped): it tries
    assert window.ahead(now=NOW + 400) is None  # the window has passed
