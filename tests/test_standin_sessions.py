"""The real Claude Code CLI, through the real SDK, against the scripted stand-in.

Every test here starts the CLI bundled with claude-agent-sdk: it sends real Messages API
requests, runs real tools in a real git repository, and gets its answers from a script.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    ResultMessage,
    TextBlock,
    create_sdk_mcp_server,
    tool,
)
from support import git

from conductor.standin.harness import Offline

pytestmark = pytest.mark.anyio

Standin = Callable[[str], AbstractAsyncContextManager[Offline]]


async def run_turn(client: ClaudeSDKClient, prompt: str) -> list[Any]:
    await client.query(prompt)
    return [m async for m in client.receive_response()]


def result_of(messages: list[Any]) -> ResultMessage:
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert len(results) == 1, messages
    return results[0]


def texts(messages: list[Any]) -> list[str]:
    return [
        b.text
        for m in messages
        if isinstance(m, AssistantMessage)
        for b in m.content
        if isinstance(b, TextBlock)
    ]


REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)


def tool_results_seen(standin: Offline) -> list[str]:
    """The tool results the model was sent, as the stand-in received them, less the
    system-reminders the CLI appends."""
    last = standin.server.requests[-1].body
    found = []
    for message in last["messages"]:
        if message["role"] == "user" and isinstance(message["content"], list):
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    content = block["content"]
                    if isinstance(content, list):
                        content = "".join(c.get("text", "") for c in content)
                    found.append(REMINDER.sub("", content).strip())
    return found


WRITE_COMMIT_CALL = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/hello.txt", content: "hello from A\\n"}
      - tool: Bash
        input: {command: "git add hello.txt && git commit -qm 'add hello'"}
      - tool: mcp__bus__record
        input: {value: "from the model"}
      - text: "All three done."
"""


async def test_a_session_writes_commits_and_calls_an_in_process_tool(standin: Standin) -> None:
    recorded: list[str] = []

    @tool("record", "Record a value", {"value": str})
    async def record(args: dict[str, Any]) -> dict[str, Any]:
        recorded.append(args["value"])
        return {"content": [{"type": "text", "text": f"recorded {args['value']}"}]}

    async with standin(WRITE_COMMIT_CALL) as offline:
        bus = create_sdk_mcp_server("bus", tools=[record])
        async with ClaudeSDKClient(offline.options(mcp_servers={"bus": bus})) as client:
            messages = await run_turn(client, "conductor-role: A\nWrite, commit, record.")
        assert (offline.repo / "hello.txt").read_text() == "hello from A\n"
        assert git(offline.repo, "log", "-1", "--format=%s") == "add hello"
        assert git(offline.repo, "status", "--porcelain") == ""
        assert recorded == ["from the model"]
        assert "recorded from the model" in tool_results_seen(offline)
        result = result_of(messages)
        assert (result.is_error, result.num_turns) == (False, 4)
        assert texts(messages) == ["All three done."]


TWO_CHAPTERS = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/first.txt", content: "1\\n"}
      - text: "First prompt answered."
    - - tool: Bash
        input: {command: "cat first.txt"}
      - text: "Second prompt answered."
"""


async def test_a_second_prompt_is_answered_from_the_next_chapter(standin: Standin) -> None:
    async with standin(TWO_CHAPTERS) as offline:
        async with ClaudeSDKClient(offline.options()) as client:
            first = await run_turn(client, "conductor-role: A\nFirst.")
            second = await run_turn(client, "Now the second thing.")
        assert texts(first) == ["First prompt answered."]
        assert texts(second) == ["Second prompt answered."]
        assert result_of(first).session_id == result_of(second).session_id
        answered = [r.answer for r in offline.server.requests]
        assert answered == [
            "A chapter 1 step 1: Write",
            "A chapter 1 step 2: text",
            "A chapter 2 step 1: Bash",
            "A chapter 2 step 2: text",
        ]
        assert tool_results_seen(offline)[-1] == "1"


async def test_a_resumed_session_receives_its_earlier_conversation(standin: Standin) -> None:
    async with standin(TWO_CHAPTERS) as offline:
        async with ClaudeSDKClient(offline.options()) as client:
            first = await run_turn(client, "conductor-role: A\nFirst, before the restart.")
        session_id = result_of(first).session_id
        async with ClaudeSDKClient(offline.options(resume=session_id)) as client:
            second = await run_turn(client, "Continue after the restart.")
        assert texts(second) == ["Second prompt answered."]
        resumed = next(
            r.body for r in offline.server.requests if r.answer.startswith("A chapter 2")
        )
        history = str(resumed["messages"])
        assert "First, before the restart." in history
        assert "toolu_A_c1_r0" in history  # the Write call of chapter 1
        assert "Continue after the restart." in history


FAULTS = """
roles:
  overloaded:
    - - tool: Bash
        input: {command: "true"}
        fault: 529
  slow:
    - - text: "Slow but here."
        delay: 1.0
"""


async def test_a_529_surfaces_as_an_api_error_in_the_result(standin: Standin) -> None:
    async with standin(FAULTS) as offline:
        async with ClaudeSDKClient(offline.options()) as client:
            messages = await run_turn(client, "conductor-role: overloaded\nTry.")
        result = result_of(messages)
        assert result.is_error is True
        assert result.api_error_status == 529
        assert [r.status for r in offline.server.requests] == [529]


async def test_a_delay_step_really_delays(standin: Standin) -> None:
    async with standin(FAULTS) as offline:
        async with ClaudeSDKClient(offline.options()) as client:
            started = time.monotonic()
            messages = await run_turn(client, "conductor-role: slow\nTake your time.")
            elapsed = time.monotonic() - started
        assert texts(messages) == ["Slow but here."]
        assert elapsed >= 1.0


# Each session, once it has written its file, waits in Bash (up to 10 s) for the other's file,
# and says it is done only if it saw it: only sessions that really run at the same time both
# do. Run one after the other, the first waits alone and ends with "ran alone".
TWO_ROLES = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/a.txt", content: "written by A\\n"}
      - tool: Bash
        input:
          command: >-
            for i in $(seq 100); do [ -e ${cwd}/../b/b.txt ] && echo MET-THE-OTHER && exit;
            sleep 0.1; done; echo WAITED-ALONE
        on_result:
          - {contains: "MET-THE-OTHER", goto: met}
      - text: "A ran alone."
      - text: "A is done."
        label: met
  B:
    - - tool: Write
        input: {file_path: "${cwd}/b.txt", content: "written by B\\n"}
      - tool: Bash
        input:
          command: >-
            for i in $(seq 100); do [ -e ${cwd}/../a/a.txt ] && echo MET-THE-OTHER && exit;
            sleep 0.1; done; echo WAITED-ALONE
        on_result:
          - {contains: "MET-THE-OTHER", goto: met}
      - text: "B ran alone."
      - text: "B is done."
        label: met
"""


async def test_two_sessions_with_different_roles_run_at_once_on_one_server(
    standin: Standin, tmp_path: Path
) -> None:
    async with standin(TWO_ROLES) as offline:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        outcome: dict[str, list[Any]] = {}

        async def session(role: str) -> None:
            options = offline.options(cwd=str(tmp_path / role.lower()))
            async with ClaudeSDKClient(options) as client:
                outcome[role] = await run_turn(client, f"conductor-role: {role}\nGo.")

        async with anyio.create_task_group() as tg:
            tg.start_soon(session, "A")
            tg.start_soon(session, "B")
        assert texts(outcome["A"]) == ["A is done."]  # each met the other while it waited
        assert texts(outcome["B"]) == ["B is done."]
        assert (tmp_path / "a" / "a.txt").read_text() == "written by A\n"
        assert (tmp_path / "b" / "b.txt").read_text() == "written by B\n"
        assert not (tmp_path / "a" / "b.txt").exists()
        answered: dict[str, list[float]] = {"A": [], "B": []}
        for logged in offline.server.requests:
            answered[logged.answer.split(" ")[0]].append(logged.at)
        assert [len(answered["A"]), len(answered["B"])] == [3, 3]
        # The stand-in's own record says the same: each was asked before the other's last ask.
        assert min(answered["A"]) < max(answered["B"]) and min(answered["B"]) < max(answered["A"])


USAGE = """
usage: {input_tokens: 100, output_tokens: 10}
roles:
  A:
    - - text: "Counted."
"""


async def test_usage_in_responses_is_what_the_script_says(standin: Standin) -> None:
    async with standin(USAGE) as offline:
        async with ClaudeSDKClient(offline.options()) as client:
            result = result_of(await run_turn(client, "conductor-role: A\nCount."))
        assert result.usage is not None
        assert result.usage["input_tokens"] == 100
        assert result.usage["output_tokens"] == 10
        # Priced by the CLI at the model's list price ($3/M in, $15/M out for Sonnet 4.5).
        assert result.total_cost_usd == pytest.approx(100 * 3e-6 + 10 * 15e-6)


POLL_UNTIL = """
roles:
  B:
    - - tool: mcp__bus__sync
        input: {}
        until: "types exported"
        max: 5
      - tool: Write
        input: {file_path: "${cwd}/uses_types.py", content: "from a import types\\n"}
        on_result:
          - {contains: "File created", goto: report}
      - text: "Never reached: the branch jumps over this."
      - text: "Wrote it once the types were exported."
        label: report
"""


async def test_a_script_reacts_to_what_its_tools_returned(standin: Standin) -> None:
    answers = iter(["nothing new", "nothing new", "MSG from=A: types exported"])
    calls: list[str] = []

    @tool("sync", "New messages", {})
    async def sync(args: dict[str, Any]) -> dict[str, Any]:
        calls.append(next(answers))
        return {"content": [{"type": "text", "text": calls[-1]}]}

    async with standin(POLL_UNTIL) as offline:
        bus = create_sdk_mcp_server("bus", tools=[sync])
        async with ClaudeSDKClient(offline.options(mcp_servers={"bus": bus})) as client:
            messages = await run_turn(client, "conductor-role: B\nWait for A's types.")
        assert len(calls) == 3  # synced until the message came, not once more
        assert (offline.repo / "uses_types.py").exists()
        assert texts(messages) == ["Wrote it once the types were exported."]
