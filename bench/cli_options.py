"""What the Claude Code CLI itself spends on what conductor gives each session, no conductor
running: the floor under `bench/run_overhead.py`'s ratio.

N bare `ClaudeSDKClient` sessions do the run bench's scripted work (write a file, commit it,
call `mcp__bus__request_review`, finish) at once, in worktrees made by hand, once as they are
and once per variant, interleaved. A variant gives every session one thing a conductor session
has — nothing else of conductor runs:

  tools    conductor's own `bus` MCP server definitions (the tools' handlers are never
           reached except request_review, which fails as the bare side's unknown tool does)
  hooks    a PreToolUse hook on the judged tools and a PostToolUse hook on every tool, both
           answering at once (conductor's hooks do their work in the supervisor)
  prompt   conductor's CLAUDE.md section appended to the system prompt
  options  no setting sources, the tool list, max turns and budget, as conductor passes them
  config   a configuration folder of its own per session
  all      all of the above

CPU is user + system of everything each driver started; wall and CPU medians over the
repeats. Prints numbers; asserts nothing.

    .venv/bin/python bench/cli_options.py [--sessions 4 16] [--repeat 3] [--variants all ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_overhead import fresh_repo, standin_env

from conductor.standin.harness import STANDIN_MODEL

VARIANTS = ("bare", "tools", "hooks", "prompt", "options", "config", "all")

DRIVER = r"""
import os, sys, subprocess
from pathlib import Path
from typing import Any, cast

import anyio
from claude_agent_sdk import (
    ClaudeAgentOptions, ClaudeSDKClient, HookMatcher, ResultMessage, create_sdk_mcp_server,
)

repo, n, variant, env = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], dict(os.environ)
parts = set(sys.argv[4].split(","))


async def answer_at_once(hook_input: Any, tool_use_id: Any, context: Any) -> Any:
    return {}


def options(i: int, tree: Path) -> ClaudeAgentOptions:
    kw: dict[str, Any] = dict(
        cwd=str(tree), env=dict(env), model=env["BENCH_MODEL"],
        permission_mode="bypassPermissions",
    )
    if "tools" in parts:
        from conductor.tools import SERVER_NAME, coordination_tools

        tools = coordination_tools(cast(Any, None), f"W{i}", tree, review_base="main")
        kw["mcp_servers"] = {SERVER_NAME: create_sdk_mcp_server(SERVER_NAME, tools=tools)}
    if "hooks" in parts:
        from conductor.session import JUDGED_TOOLS

        kw["hooks"] = {
            "PreToolUse": [HookMatcher(matcher=JUDGED_TOOLS, hooks=[answer_at_once])],
            "PostToolUse": [HookMatcher(matcher=None, hooks=[answer_at_once])],
        }
    if "prompt" in parts:
        from conductor.prompts import Prompts

        append = Prompts(repo).render("claude-md.md.j2")
        kw["system_prompt"] = {"type": "preset", "preset": "claude_code", "append": append}
    if "options" in parts:
        from conductor.config import Config
        from conductor.enforce import WORKER_TOOLS

        config = Config()
        kw.update(
            setting_sources=[], max_turns=config.max_turns,
            max_budget_usd=config.max_usd_per_session, tools=list(WORKER_TOOLS),
        )
    if "config" in parts:
        kw["env"]["CLAUDE_CONFIG_DIR"] = str(repo.parent / f"config-{i}")
    return ClaudeAgentOptions(**kw)


async def one(i: int) -> None:
    tree = repo.parent / f"tree-{i}"
    add = ["git", "worktree", "add", "-q", "-b", f"tree-{i}", str(tree)]
    subprocess.run(add, cwd=repo, check=True)
    async with ClaudeSDKClient(options(i, tree)) as client:
        await client.query(f"conductor-role: W{i}\nwork")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                assert not message.is_error, message.result


async def main() -> None:
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)


anyio.run(main)
"""

PARTS = {
    "bare": "",
    "all": "tools,hooks,prompt,options,config",
    **{v: v for v in VARIANTS if v not in ("bare", "all")},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["all"], choices=VARIANTS)
    args = parser.parse_args()
    variants = ["bare", *(v for v in args.variants if v != "bare")]
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sessions:
            with standin_env(Path(tmp), n) as env:
                env = {**env, "BENCH_MODEL": STANDIN_MODEL}
                samples: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
                for r in range(args.repeat):  # interleaved
                    for variant in variants:
                        repo = fresh_repo(Path(tmp) / f"{variant}-{n}-{r}", n, False)
                        before, start = os.times(), time.perf_counter()
                        subprocess.run(
                            [
                                sys.executable,
                                "-c",
                                DRIVER,
                                str(repo),
                                str(n),
                                variant,
                                PARTS[variant],
                            ],
                            cwd=repo,
                            env=env,
                            check=True,
                        )
                        after = os.times()
                        cpu = (after.children_user - before.children_user) + (
                            after.children_system - before.children_system
                        )
                        samples[variant].append((time.perf_counter() - start, cpu))
                wall0 = statistics.median(s[0] for s in samples["bare"])
                cpu0 = statistics.median(s[1] for s in samples["bare"])
                for variant, values in samples.items():
                    wall = statistics.median(s[0] for s in values)
                    cpu = statistics.median(s[1] for s in values)
                    print(
                        f"{n:3d} sessions  {variant:<8} {wall:6.2f} s wall {cpu:6.2f} s CPU"
                        f"   {wall / wall0:4.2f}x wall {cpu / cpu0:4.2f}x CPU"
                    )


if __name__ == "__main__":
    main()
