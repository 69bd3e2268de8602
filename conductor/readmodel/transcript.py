"""A session's conversation, rebuilt from its stored events: what it was told, what it said
and called, what came back, what was refused, where each turn ended. Plain lines, control
characters escaped (the model's words and tool output are shown, not acted on)."""

from __future__ import annotations

from collections.abc import Sequence

from conductor.events import (
    EventKind,
    PromptSent,
    SdkAssistant,
    SdkInit,
    ToolDenied,
    parse_all,
)
from conductor.models import Event
from conductor.text import clock, escape_controls, one_line


def transcript_lines(events: Sequence[Event]) -> list[str]:
    """The conversation's lines, each `HH:MM:SS` and a mark: `>` prompt, `→` tool call, `←` its
    result, `✗` a refusal, `■` a turn's end, `●` the conversation's id."""
    return [escape_controls(line) for line in _lines(events)]


def _lines(events: Sequence[Event]) -> list[str]:
    lines = []
    for parsed in parse_all(events):
        e, payload = parsed.event, parsed.payload
        at = clock(e.created_at)
        if isinstance(payload, PromptSent):
            lines.append(f"{at} > {payload.prompt or e.summary}")
        elif isinstance(payload, SdkAssistant):
            for block in payload.content:
                if "text" in block:
                    lines.append(f"{at}   {block['text']}")
                elif "name" in block:
                    args = ", ".join(f"{k}={v!r}" for k, v in (block.get("input") or {}).items())
                    lines.append(f"{at}   → {block['name']}({one_line(args, 160)})")
        elif parsed.kind == EventKind.SDK_TOOL_RESULT:
            lines.append(f"{at}     ← {e.summary}")
        elif isinstance(payload, ToolDenied):
            lines.append(f"{at}     ✗ denied: {payload.reason or e.summary}")
        elif parsed.kind == EventKind.SDK_RESULT:
            lines.append(f"{at}   ■ {e.summary}")
        elif isinstance(payload, SdkInit):
            lines.append(f"{at}   ● session {payload.session_id}")
    return lines
