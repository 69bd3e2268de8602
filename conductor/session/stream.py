"""A session's stream, as events: the kind, one-line summary and payload of each SDK message.

Every message the CLI streams is stored as it came (the SDK's dataclass, dumped to JSON), so a
transcript can be rebuilt from the store and a resume finds the conversation's id; the kinds
are the catalogue's `sdk.*` ones.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    RateLimitEvent,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from conductor.events import EventKind, sdk_kind, sdk_system_kind
from conductor.session.config import TurnResult
from conductor.text import one_line


def rejected_until(event: RateLimitEvent) -> float | None:
    """When a usage limit that refused the session resets (epoch seconds); None when the
    event is no refusal or names no reset."""
    info = event.rate_limit_info
    if info.status != "rejected" or not info.resets_at:
        return None
    return float(info.resets_at)


def turn_result(message: ResultMessage, cost: float, resets_at: float | None = None) -> TurnResult:
    """What a turn gave back; `cost`: that turn's own cost (the CLI's figure is a total);
    `resets_at`: a usage limit's reset the turn was told of."""
    return TurnResult(
        resets_at=resets_at,
        session_id=message.session_id,
        is_error=message.is_error,
        num_turns=message.num_turns,
        cost_usd=cost,
        result=message.result,
        api_error_status=message.api_error_status,
        subtype=message.subtype,
    )


def describe(message: Any, cost: float | None = None) -> tuple[str, str]:
    """(event kind, one-line summary) of a streamed SDK message."""
    if isinstance(message, SystemMessage):
        return sdk_system_kind(message.subtype), message.subtype
    if isinstance(message, AssistantMessage):
        parts = []
        for block in message.content:
            if isinstance(block, TextBlock):
                parts.append(one_line(block.text, 80))
            elif isinstance(block, ToolUseBlock):
                parts.append(f"{block.name} {one_line(json.dumps(block.input), 60)}")
        return EventKind.SDK_ASSISTANT, " | ".join(parts) or "(no content)"
    if isinstance(message, UserMessage):
        if isinstance(message.content, list):
            for block in message.content:
                if isinstance(block, ToolResultBlock):
                    text = (
                        block.content
                        if isinstance(block.content, str)
                        else json.dumps(block.content)
                    )
                    flag = "error: " if block.is_error else ""
                    return EventKind.SDK_TOOL_RESULT, flag + one_line(text, 80)
        return EventKind.SDK_USER, one_line(str(message.content), 80)
    if isinstance(message, ResultMessage):
        spent = message.total_cost_usd if cost is None else cost
        state = "error" if message.is_error else "ok"
        return EventKind.SDK_RESULT, f"{state}: {message.num_turns} turns, ${spent or 0.0:.4f}"
    return sdk_kind(type(message).__name__), type(message).__name__


def payload(message: Any) -> dict[str, Any]:
    """The message as stored: its dataclass as JSON, with its type's name."""
    is_record = dataclasses.is_dataclass(message) and not isinstance(message, type)
    data = dataclasses.asdict(message) if is_record else {"raw": message}
    stored: dict[str, Any] = json.loads(json.dumps(data, default=str))
    stored["type"] = type(message).__name__
    return stored
