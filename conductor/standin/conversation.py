"""Reading a Messages API request: its first prompt, how many prompts, the tool results so far.

Pure functions over the request body, so the same request always reads the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_CWD = re.compile(r"(?:Primary working directory|Working directory):\s*(\S[^\n]*)")
STRUCTURED_OUTPUT = "StructuredOutput"  # the tool the CLI offers for an answer in a schema
# Text the CLI itself puts in user messages; none of it is a prompt of ours.
_NOT_A_PROMPT = ("<system-reminder>", "[Request interrupted")


@dataclass(frozen=True)
class Conversation:
    first_prompt: str  # all text of the first user message
    prompts: int  # how many prompts the session has been given (1 for a fresh session)
    results: list[str]  # text of each tool result since the latest prompt, oldest first
    cwd: str | None  # the session's working directory, as the CLI told the model
    # What the session must answer in: the input schema of the StructuredOutput tool the CLI
    # offers when asked for structured output (the planner is asked for the plan's), if any.
    schema: Mapping[str, Any] | None = None


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, Mapping)]
    return []


def _text(content: Any) -> str:
    parts = []
    for block in _blocks(content):
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append(_text(block.get("content", "")))
    return "\n".join(parts)


def _is_prompt(message: Mapping[str, Any]) -> bool:
    if message.get("role") != "user":
        return False
    blocks = _blocks(message.get("content"))
    if any(b.get("type") == "tool_result" for b in blocks):
        return False
    return any(
        b.get("type") == "text" and not str(b.get("text", "")).lstrip().startswith(_NOT_A_PROMPT)
        for b in blocks
    )


def read_conversation(body: Mapping[str, Any]) -> Conversation:
    messages: Sequence[Mapping[str, Any]] = body.get("messages") or []
    users = [m for m in messages if m.get("role") == "user"]
    first = _text(users[0].get("content")) if users else ""
    prompt_at = [i for i, m in enumerate(messages) if _is_prompt(m)]
    results: list[str] = []
    if prompt_at:
        for message in messages[prompt_at[-1] + 1 :]:
            if message.get("role") != "user":
                continue
            for block in _blocks(message.get("content")):
                if block.get("type") == "tool_result":
                    results.append(_text(block.get("content", "")))
    # The CLI states the working directory in its environment block: in the system prompt, a
    # system message or a system-reminder of the first user message, depending on version.
    everything = "\n".join(
        [_text(body.get("system"))] + [_text(m.get("content")) for m in messages]
    )
    found = _CWD.search(everything)
    return Conversation(
        first_prompt=first,
        prompts=len(prompt_at),
        results=results,
        cwd=found.group(1).strip() if found else None,
        schema=_structured_output_schema(body.get("tools")),
    )


def _structured_output_schema(tools: Any) -> Mapping[str, Any] | None:
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, Mapping) and tool.get("name") == STRUCTURED_OUTPUT:
            schema = tool.get("input_schema")
            return schema if isinstance(schema, Mapping) else None
    return None
