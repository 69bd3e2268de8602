"""The stand-in server over real HTTP on loopback: the wire format, faults, and the log."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import clean_env

from conductor.standin.script import parse_script
from conductor.standin.server import StandIn

pytestmark = pytest.mark.anyio

SCRIPT = """
usage: {input_tokens: 7, output_tokens: 3}
roles:
  A:
    - - tool: Write
        text: "Writing it."
        input: {file_path: "${cwd}/x.py", content: "x = {'a': 1}\\n"}
      - text: "Done."
  flaky:
    - - text: "after two 529s"
        fault: {status: 529, times: 2}
  broken:
    - - text: "never"
        fault: 500
  dropped:
    - - text: "cut off"
        fault: {drop: true}
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[StandIn]:
    async with StandIn(parse_script(SCRIPT), log_path=tmp_path / "log.jsonl").running() as s:
        yield s


def body(role: str, *, stream: bool = False, results: Sequence[str] = ()) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "<system-reminder> - Primary working directory: /w\n</system-reminder>",
                },
                {"type": "text", "text": f"conductor-role: {role}\nplease"},
            ],
        }
    ]
    for n, r in enumerate(results):
        messages.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"t{n}", "name": "X", "input": {}}],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{n}", "content": r}],
            }
        )
    return {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream, "messages": messages}


async def request(
    server: StandIn, method: str, path: str, payload: Any = None
) -> tuple[int, dict[str, str], bytes]:
    def go() -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", int(server.base_url.rsplit(":", 1)[1]))
        try:
            data = json.dumps(payload).encode() if payload is not None else None
            conn.request(method, path, body=data, headers={"x-claude-code-session-id": "s1"})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    return await anyio.to_thread.run_sync(go)


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_it_listens_on_loopback_on_an_ephemeral_port(server: StandIn) -> None:
    host, port = server.base_url.removeprefix("http://").split(":")
    assert host == "127.0.0.1" and int(port) > 0


async def test_anything_but_messages_is_a_json_404_and_is_logged(server: StandIn) -> None:
    status, headers, raw = await request(server, "POST", "/v1/messages/count_tokens", {"x": 1})
    assert status == 404
    assert json.loads(raw)["error"]["type"] == "not_found_error"
    assert headers["content-type"] == "application/json"
    logged = server.requests[-1]
    assert (logged.target, logged.body, logged.status) == (
        "/v1/messages/count_tokens",
        {"x": 1},
        404,
    )


async def test_a_non_streaming_request_gets_one_json_message(server: StandIn) -> None:
    status, _, raw = await request(server, "POST", "/v1/messages", body("A"))
    message = json.loads(raw)
    assert status == 200
    assert message["stop_reason"] == "tool_use"
    text, call = message["content"]
    assert text == {"type": "text", "text": "Writing it."}
    assert call["name"] == "Write"
    assert call["input"] == {"file_path": "/w/x.py", "content": "x = {'a': 1}\n"}
    assert message["usage"]["input_tokens"] == 7 and message["usage"]["output_tokens"] == 3


async def test_a_streaming_request_gets_the_full_event_sequence(server: StandIn) -> None:
    status, headers, raw = await request(
        server, "POST", "/v1/messages?beta=true", body("A", stream=True)
    )
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = sse_events(raw)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    tool_start, tool_delta = events[4][1], events[5][1]
    assert tool_start["content_block"]["type"] == "tool_use"
    assert tool_delta["delta"]["type"] == "input_json_delta"
    assert json.loads(tool_delta["delta"]["partial_json"])["file_path"] == "/w/x.py"
    assert events[7][1]["delta"]["stop_reason"] == "tool_use"
    assert events[7][1]["usage"]["output_tokens"] == 3


async def test_the_step_follows_the_tool_results_in_the_request(server: StandIn) -> None:
    _, _, raw = await request(server, "POST", "/v1/messages", body("A", results=["ok"]))
    assert json.loads(raw)["content"] == [{"type": "text", "text": "Done."}]


async def test_a_retried_request_is_answered_the_same_way(server: StandIn) -> None:
    first = json.loads((await request(server, "POST", "/v1/messages", body("A")))[2])
    again = json.loads((await request(server, "POST", "/v1/messages", body("A")))[2])
    assert first == again


async def test_a_fault_with_times_fails_that_many_answers_then_succeeds(server: StandIn) -> None:
    statuses = [(await request(server, "POST", "/v1/messages", body("flaky")))[0] for _ in range(3)]
    assert statuses == [529, 529, 200]


async def test_a_500_fault_is_a_json_api_error(server: StandIn) -> None:
    status, _, raw = await request(server, "POST", "/v1/messages", body("broken"))
    assert status == 500 and json.loads(raw)["error"]["type"] == "api_error"


async def test_a_drop_fault_cuts_the_stream_after_it_starts(server: StandIn) -> None:
    with pytest.raises(http.client.IncompleteRead):
        await request(server, "POST", "/v1/messages", body("dropped", stream=True))


async def test_a_request_naming_no_scripted_role_is_a_clear_400(server: StandIn) -> None:
    status, _, raw = await request(server, "POST", "/v1/messages", body("nobody"))
    assert status == 400
    assert "conductor-role" in json.loads(raw)["error"]["message"]


async def test_one_connection_serves_several_requests(server: StandIn) -> None:
    def go() -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", int(server.base_url.rsplit(":", 1)[1]))
        statuses = []
        for _ in range(3):
            conn.request("POST", "/v1/messages", body=json.dumps(body("A")).encode())
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    assert await anyio.to_thread.run_sync(go) == [200, 200, 200]


async def test_every_request_is_logged_with_its_body_to_the_log_file(
    server: StandIn, tmp_path: Path
) -> None:
    await request(server, "POST", "/v1/messages", body("A"))
    await request(server, "GET", "/health")
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(entry["method"], entry["status"]) for entry in lines] == [("POST", 200), ("GET", 404)]
    assert lines[0]["body"]["messages"][0]["content"][1]["text"].startswith("conductor-role: A")
    assert lines[0]["answer"] == "A chapter 1 step 1: Write"


def test_model_serve_prints_the_base_url_and_serves_until_interrupted(tmp_path: Path) -> None:
    script = tmp_path / "s.yaml"
    script.write_text("roles: {A: [[{text: served}]]}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conductor", "model", "serve", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().decode().strip()
        assert base_url.startswith("http://127.0.0.1:")
        conn = http.client.HTTPConnection(base_url.removeprefix("http://"))
        conn.request(
            "POST",
            "/v1/messages",
            body=json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(),
        )
        answer = json.loads(conn.getresponse().read())
        conn.close()
        assert answer["content"] == [{"type": "text", "text": "served"}]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) != 0
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_model_serve_with_a_bad_script_is_a_one_line_error(tmp_path: Path) -> None:
    script = tmp_path / "bad.yaml"
    script.write_text("roles: {A: [[{tool: Bash, colour: red}]]}\n")
    done = subprocess.run(
        [sys.executable, "-m", "conductor", "model", "serve", str(script)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "colour" in done.stderr


async def test_a_failure_inside_the_stand_in_fails_one_request_not_the_server(
    server: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(body: Any, headers: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(server, "answer", broken)
    status, _, raw = await request(server, "POST", "/v1/messages", body("A"))
    assert status == 500 and "stand-in failed: KeyError" in json.loads(raw)["error"]["message"]
    monkeypatch.undo()
    assert (await request(server, "POST", "/v1/messages", body("A")))[0] == 200
