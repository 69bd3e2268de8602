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

from conductor import actions, gitops
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


async def direct(bus: Bus, tree: Path, config: SessionConfig, calls: int = 2000) -> None:
    """The hooks' own work, without the CLI's round trip to them: what each costs in-process."""
    session = HeadlessSession(bus, "A", tree, config)
    write = {"tool_name": "Write", "tool_input": {"file_path": str(tree / "x.py"), "content": ""}}
    read = {"tool_name": "Read", "tool_input": {"file_path": str(tree / "README.md")}}
    for name, hook, data in (
        ("PreToolUse, a Write (judged)", session._pre_tool_use, write),
        ("PostToolUse, no mail", session._post_tool_use, read),
    ):
        start = time.perf_counter()
        for _ in range(calls):
            await hook(data, None, {"signal": None})  # type: ignore[arg-type]
        took = (time.perf_counter() - start) / calls
        print(f"{name:<30} {took * 1e6:7.0f} µs per call, in-process")


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
            base = await gitops.rev_parse("HEAD", off.repo)
            tree = (await actions.place_session(bus, off.repo, "A", base)).path
            await direct(
                bus, tree, SessionConfig(env=off.env, config_dir=Path(tmp) / "c", model=None)
            )
            for tool in ("Read", "Write"):
                times: dict[tuple[str, str], list[float]] = {
                    (side, size): []
                    for side in ("bare SDK", "conductor")
                    for size in ("short", "long")
                }
                for _ in range(repeat):  # interleaved: the machine's mood hits both alike
                    for side, size in times:
                        role = f"{tool}-{size}"
                        bared = side == "bare SDK"
                        took = await (bare(off, role) if bared else ours(off, bus, tree, role))
                        times[side, size].append(took)
                slopes = {}
                for side in ("bare SDK", "conductor"):
                    long_, short_ = times[side, "long"], times[side, "short"]
                    slopes[side] = (statistics.median(long_) - statistics.median(short_)) / (
                        long - short
                    )
                    print(f"{tool:<5} {side:<9} {slopes[side] * 1000:6.2f} ms per tool call")
                added = (slopes["conductor"] - slopes["bare SDK"]) * 1000
                print(f"{tool:<5} conductor adds {added:6.2f} ms per tool call")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", type=int, default=5)
    parser.add_argument("--long", type=int, default=45)
    parser.add_argument("--repeat", type=int, default=3)
    a = parser.parse_args()
    anyio.run(main, a.short, a.long, a.repeat)
