"""What real Claude Code sessions cost against the stand-in: wall time for N sessions at once,
each writing a file, committing it and finishing. Prints numbers; asserts nothing.

    .venv/bin/python bench/standin_sessions.py [--counts 1 4 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio
from claude_agent_sdk import ClaudeSDKClient, ResultMessage

from conductor.standin.harness import init_repo, offline

SCRIPT = """
roles:
  worker:
    - - tool: Write
        input: {file_path: "${cwd}/out.txt", content: "work\\n"}
      - tool: Bash
        input: {command: "git add out.txt && git commit -qm work"}
      - text: "done"
"""


async def one(offline_env, repo: Path, results: list[bool]) -> None:  # type: ignore[no-untyped-def]
    async with ClaudeSDKClient(offline_env.options(cwd=str(repo))) as client:
        await client.query("conductor-role: worker\nwork")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                results.append(not message.is_error and (repo / "out.txt").exists())


async def main(counts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with offline(SCRIPT, Path(tmp)) as env:
            for n in counts:
                repos = [await init_repo(Path(tmp) / f"n{n}" / f"s{i}") for i in range(n)]
                results: list[bool] = []
                started = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for repo in repos:
                        tg.start_soon(one, env, repo, results)
                elapsed = time.perf_counter() - started
                ok = sum(results)
                print(f"{n:3d} sessions at once: {elapsed:5.2f} s wall, {ok}/{n} correct")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 8])
    anyio.run(main, parser.parse_args().counts)
