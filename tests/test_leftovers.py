"""Ending what a killed supervisor left running: only the processes marked for that run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conductor.leftovers import SUPERVISED_ENV, end_leftovers, supervised_pids

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not os.path.isdir("/proc"), reason="finding them needs /proc (Linux)"),
]

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def processes() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    started: dict[str, subprocess.Popen[bytes]] = {}

    def env(run: str | None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k != SUPERVISED_ENV}
        return {**base, SUPERVISED_ENV: run} if run else base

    started["mine"] = subprocess.Popen(SLEEPER, env=env("run-1"))
    started["other run"] = subprocess.Popen(SLEEPER, env=env("run-2"))
    started["a person's"] = subprocess.Popen(SLEEPER, env=env(None))
    yield started
    for proc in started.values():
        proc.kill()
        proc.wait()


async def test_the_processes_of_a_run_are_found_by_their_marker(
    processes: dict[str, subprocess.Popen[bytes]],
) -> None:
    assert supervised_pids("run-1") == [processes["mine"].pid]


async def test_ending_leftovers_kills_the_runs_processes_and_nothing_else(
    processes: dict[str, subprocess.Popen[bytes]],
) -> None:
    assert await end_leftovers("run-1") == [processes["mine"].pid]
    assert processes["mine"].wait(timeout=5) == -9
    assert processes["other run"].poll() is None
    assert processes["a person's"].poll() is None
    assert supervised_pids("run-1") == []
