"""A stand-in for the Anthropic Messages API on loopback, answering from a script.

Speaks what the Claude Code CLI uses: `POST /v1/messages`, streamed as server-sent events
(message_start, content blocks for text and tool_use, message_delta with stop_reason and
usage, message_stop) or as one JSON object. Anything else gets a JSON 404. Every request is
logged with its body, so a new CLI version's changes are easy to see.

HTTP is h11 over anyio sockets: small, and in full control of the faults a script can ask
for (an error status, a delay, a connection dropped in the middle of a stream).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import h11
from anyio.abc import SocketAttribute, SocketStream

from conductor.standin.conversation import Conversation, read_conversation
from conductor.standin.playing import MissingVariable, replay, substitute
from conductor.standin.script import Fault, Script, Step, Usage

MAX_BODY = 64 * 1024 * 1024
ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Reply:
    """What to answer: a message (content blocks), an HTTP error, or a dropped connection."""

    status: int = 200
    content: tuple[Mapping[str, Any], ...] = ()
    stop_reason: str = "end_turn"
    usage: Usage = field(default_factory=Usage)
    error: str = ""
    drop: bool = False
    delay: float = 0.0
    label: str = ""  # role/chapter/step, for the log
    resets_at: float | None = None  # a 429's usage limit resets then (epoch seconds)


@dataclass
class LoggedRequest:
    at: float
    method: str
    target: str
    headers: dict[str, str]
    body: Any
    status: int
    answer: str
    # The tokens a whole reply reported (None: an error, or a stream cut off): what the CLI
    # prices a turn from, so a test can check what conductor says a run cost.
    usage: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class StandIn:
    """The server. `async with StandIn(script).running() as server:` then `server.base_url`."""

    script: Script
    port: int = 0
    log_path: Path | None = None
    requests: list[LoggedRequest] = field(default_factory=list)
    _faults: Counter[tuple[Any, ...]] = field(default_factory=Counter)
    _bound_port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._bound_port}"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[StandIn]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self._bound_port = listener.extra(SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, self._connection)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    # ------------------------------------------------------------------------ http

    async def _connection(self, stream: SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
        async with stream:
            try:
                while True:
                    request, body = await _read_request(conn, stream)
                    if request is None:
                        return
                    await self._respond(conn, stream, request, body)
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
            except (anyio.EndOfStream, anyio.BrokenResourceError, h11.ProtocolError, OSError):
                return

    async def _respond(
        self, conn: h11.Connection, stream: SocketStream, request: h11.Request, raw: bytes
    ) -> None:
        method, target = request.method.decode(), request.target.decode()
        headers = {k.decode(): v.decode() for k, v in request.headers}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        if method != "POST" or target.split("?")[0] != "/v1/messages":
            reply = Reply(status=404, error=f"the stand-in model does not serve {method} {target}")
        elif not isinstance(body, dict):
            reply = Reply(status=400, error="the request body is not a JSON object")
        else:
            try:
                reply = self.answer(body, headers)
            except Exception as e:  # a bug here must fail one request, not the whole server
                reply = Reply(status=500, error=f"stand-in failed: {type(e).__name__}: {e}")
        self._log(method, target, headers, body, reply)
        if reply.delay:
            await anyio.sleep(reply.delay)
        if reply.status != 200:
            await _send_json(conn, stream, reply.status, _error_body(reply), _limit(reply))
        elif isinstance(body, dict) and body.get("stream"):
            await self._stream(conn, stream, body, reply)
        else:
            await _send_json(conn, stream, 200, _message(body or {}, reply))

    async def _stream(
        self, conn: h11.Connection, stream: SocketStream, body: Mapping[str, Any], reply: Reply
    ) -> None:
        headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
        await stream.send(conn.send(h11.Response(status_code=200, headers=headers)))
        for event in _events(body, reply):
            await stream.send(conn.send(h11.Data(data=event)))
            if reply.drop:  # after message_start: the connection dies mid-stream
                await stream.aclose()
                return
        await stream.send(conn.send(h11.EndOfMessage()))

    def _log(
        self, method: str, target: str, headers: dict[str, str], body: Any, reply: Reply
    ) -> None:
        answer = reply.label or reply.error
        whole = reply.status == 200 and not reply.drop
        entry = LoggedRequest(
            time.time(),
            method,
            target,
            headers,
            body,
            reply.status,
            answer,
            _usage(reply.usage) if whole else None,
        )
        self.requests.append(entry)
        if self.log_path is not None:
            with self.log_path.open("a") as log:
                log.write(json.dumps(entry.to_json()) + "\n")

    # ------------------------------------------------------------------------ the script

    def answer(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> Reply:
        """The reply a request gets, from the request alone (and, for `times` faults, how often
        this very step was answered with its fault before)."""
        if _model_check(body):
            return Reply(content=({"type": "text", "text": "Hi"},), label="model check")
        conv = read_conversation(body)
        role = self.script.role_for(conv.first_prompt, conv.schema)
        if role is None:
            return Reply(status=400, error=self.script.why_no_role(conv.first_prompt, conv.schema))
        chapters = self.script.roles[role]
        chapter_no = max(conv.prompts, 1)
        where = f"{role} chapter {chapter_no}"
        if chapter_no > len(chapters):
            return self._final(f"[stand-in] role {role} has no chapter {chapter_no}.", where)
        chapter = chapters[chapter_no - 1]
        position = replay(chapter, conv.results)
        step = position.step(chapter)
        where += f" step {position.index + 1}"
        if step is None:
            return self._final(f"[stand-in] {where}: the chapter's script is over.", where)
        if position.attempt > 1:
            where += f" (call {position.attempt})"
        session = headers.get("x-claude-code-session-id", "")
        fault = self._fault(step.fault, (session, role, chapter_no, len(conv.results)))
        usage = Usage(**step.usage) if step.usage else self.script.usage
        if fault is not None and fault.status:
            resets = None if fault.resets_in is None else time.time() + fault.resets_in
            return Reply(
                status=fault.status,
                error=f"scripted {fault.status} at {where}" + _resets(resets),
                delay=step.delay,
                label=f"{where}: fault {fault.status}",
                resets_at=resets,
            )
        try:
            content = _content(step, role, chapter_no, len(conv.results), conv)
        except MissingVariable as missing:
            return Reply(
                status=400,
                label=f"{where}: no ${{{missing}}}",
                error=f"{where} uses ${{{missing}}}, which this request does not reveal",
            )
        return Reply(
            content=content,
            stop_reason="end_turn" if step.ends_turn else "tool_use",
            usage=usage,
            drop=fault is not None and fault.drop,
            delay=step.delay,
            label=f"{where}: {step.tool or 'text'}" + (" (dropped)" if fault else ""),
        )

    def _final(self, text: str, where: str) -> Reply:
        return Reply(
            content=({"type": "text", "text": text},),
            usage=self.script.usage,
            label=f"{where}: out of script",
        )

    def _fault(self, fault: Fault | None, key: tuple[Any, ...]) -> Fault | None:
        if fault is None:
            return None
        self._faults[key] += 1
        return fault if fault.times is None or self._faults[key] <= fault.times else None


def _model_check(body: Mapping[str, Any]) -> bool:
    """The one-token "Hi" the CLI sends to try a model it was switched to (`set_model`):
    answered as the API would, whatever the script's roles."""
    messages = body.get("messages")
    if body.get("max_tokens") != 1 or not isinstance(messages, list) or len(messages) != 1:
        return False
    content = messages[0].get("content") if isinstance(messages[0], dict) else None
    texts = (
        [b.get("text") for b in content if isinstance(b, dict)]
        if isinstance(content, list)
        else [content]
    )
    return texts == ["Hi"]


def _content(
    step: Step, role: str, chapter: int, results: int, conv: Conversation
) -> tuple[Mapping[str, Any], ...]:
    blocks: list[Mapping[str, Any]] = []
    variables = {"cwd": conv.cwd, "role": role, "chapter": str(chapter)}
    if step.text is not None:
        blocks.append({"type": "text", "text": substitute(step.text, variables)})
    if step.tool is not None:
        safe_role = "".join(c if c.isalnum() else "_" for c in role)
        blocks.append(
            {
                "type": "tool_use",
                # Unique within the conversation and the same on every retry of this request.
                "id": f"toolu_{safe_role}_c{chapter}_r{results}",
                "name": step.tool,
                "input": substitute(dict(step.input), variables),
            }
        )
    return tuple(blocks)


# ------------------------------------------------------------------------------ wire format


def _message_id(reply: Reply) -> str:
    return "msg_" + "".join(c if c.isalnum() else "_" for c in reply.label)[:48]


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _message(body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
    return {
        "id": _message_id(reply),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "stand-in"),
        "content": list(reply.content),
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": _usage(reply.usage),
    }


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _events(body: Mapping[str, Any], reply: Reply) -> list[bytes]:
    start = {**_message(body, reply), "content": [], "stop_reason": None}
    start["usage"] = {**_usage(reply.usage), "output_tokens": 1}
    events = [_sse("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(reply.content):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            delta: dict[str, Any] = {"type": "text_delta", "text": block["text"]}
        else:
            opening = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            ),
            _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            ),
            _sse("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    events += [
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.usage.output_tokens},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    return events


def _error_body(reply: Reply) -> dict[str, Any]:
    kind = ERROR_TYPES.get(reply.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": reply.error}}


async def _read_request(
    conn: h11.Connection, stream: SocketStream
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                conn.receive_data(await stream.receive(65536))
            except anyio.EndOfStream:
                conn.receive_data(b"")
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


def _resets(at: float | None) -> str:
    """What a usage limit's error says of its reset (the CLI passes the API's message on)."""
    if at is None:
        return ""
    stamp = datetime.fromtimestamp(round(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f": usage limit reached · resets at {stamp}"


def _limit(reply: Reply) -> list[tuple[str, str]]:
    """The headers of a usage limit that resets at `reply.resets_at`, as the Messages API
    sends them with a 429 (none without a reset)."""
    if reply.resets_at is None:
        return []
    seconds = max(1, round(reply.resets_at - time.time()))
    return [
        ("retry-after", str(seconds)),
        ("anthropic-ratelimit-unified-status", "rejected"),
        ("anthropic-ratelimit-unified-reset", str(round(reply.resets_at))),
        ("anthropic-ratelimit-unified-representative-claim", "five_hour"),
    ]


async def _send_json(
    conn: h11.Connection,
    stream: SocketStream,
    status: int,
    data: Mapping[str, Any],
    extra: list[tuple[str, str]] | None = None,
) -> None:
    payload = json.dumps(data).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(payload)))]
    if extra:
        headers += extra
    elif status == 429:
        headers.append(("retry-after", "1"))
    await stream.send(conn.send(h11.Response(status_code=status, headers=headers)))
    await stream.send(conn.send(h11.Data(data=payload)))
    await stream.send(conn.send(h11.EndOfMessage()))
