"""What conductor's hooks add to each tool call of a session, against a bare SDK session.

The real CLI against the stand-in runs the same script twice in each configuration: a turn of
SHORT tool calls and a turn of LONG ones. The slope (seconds per extra tool call) cancels what
does not depend on the number of calls (starting the CLI, MCP set-up); the difference of slopes
between a conductor session (its write gate and mail hooks, its coordination tools) and a bare
SDK session is what conductor adds per call. Reads (not gated) and writes (gated) apart; no OS
jail on either side (its cost is per start, not per call). Prints numbers; asserts nothing.

    .venv/bin/python bench/hook_cost.py [--short 5] [--long 45] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import anyio
from claude_agent_sdk import ClaudeSDKClient, ResultMessage

from conductor import actions
from conductor.bus import Bus, create_run
from conductor.session import HeadlessSession, SessionConfig
from conductor.standin.harness import STANDIN_MODEL, Offline, offline
from conductor.store import Store


def script(short: int, long: int) -> str:
    """Roles `Read-short`, `Read-long`, `Write-short`, `Write-long`: that many calls, then done."""

    def step(tool: str, i: int) -> str:
        if tool == "Read":
            return 'tool: Read\n        input: {file_path: "${cwd}/README.md"}'
        return f'tool: Write\n        input: {{file_path: "${{cwd}}/out{i}.txt", content: "x"}}'

    text = "roles:\n"
    for tool in ("Read", "Write"):
        for name, n in (("short", short), ("long", long)):
            items = [step(tool, i) for i in range(n)] + ['text: "done"']
            text += f"  {tool}-{name}:\n    - - " + "\n      - ".join(items) + "\n"
    return text


async def bare(off: Offline, role: str) -> float:
    start = time.perf_counter()
    async with ClaudeSDKClient(off.options()) as client:
        await client.query(f"conductor-role: {role}\ngo")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                assert not message.is_error, message.result
    return time.perf_counter() - start


async def ours(off: Offline, bus: Bus, tree: Path, role: str) -> float:
    config = SessionConfig(
        env=off.env, config_dir=off.repo.parent / "claude-ours", model=STANDIN_MODEL
    )
    start = time.perf_counter()
    async with HeadlessSession(bus, "A", tree, config) as session:
        result = await session.turn(f"conductor-role: {role}\ngo")
        assert not result.is_error, result.result
    return time.perf_counter() - start


async def main(short: int, long: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            offline(script(short, long), Path(tmp)) as off,
            Store.open(Path(tmp) / "bench.db") as store,
        ):
            bus = await create_run(
                store,
                goal="bench",
                repo_root=off.repo,
                base_ref="main",
                base_commit=None,
                sessions=[("A", "bench"), ("B", "other")],
            )
            tree = (await actions.place_session(bus, off.repo, "A", "HEAD")).path
            for tool in ("Read", "Write"):
                slopes = {}
                for side in ("bare SDK", "conductor"):
                    times: dict[str, list[float]] = {"short": [], "long": []}
                    for _ in range(repeat):
                        for size in ("short", "long"):
                            role = f"{tool}-{size}"
                            bared = side == "bare SDK"
                            took = await (bare(off, role) if bared else ours(off, bus, tree, role))
                            times[size].append(took)
                    slope = (
                        statistics.median(times["long"]) - statistics.median(times["short"])
                    ) / (long - short)
                    slopes[side] = slope
                    print(f"{tool:<5} {side:<9} {slope * 1000:6.2f} ms per tool call")
                added = (slopes["conductor"] - slopes["bare SDK"]) * 1000
                print(f"{tool:<5} conductor adds {added:6.2f} ms per tool call")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", type=int, default=5)
    parser.add_argument("--long", type=int, default=45)
    parser.add_argument("--repeat", type=int, default=3)
    a = parser.parse_args()
    anyio.run(main, a.short, a.long, a.repeat)
