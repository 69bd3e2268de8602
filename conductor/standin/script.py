"""What the scripted model does: roles, chapters, steps, and how a request finds its step.

A script maps each role (the planner, session A, a reviewer, ...) to chapters; a chapter
answers one prompt and is a list of steps; a step is a tool call or the turn's final text.
Which role, chapter and step a request is at is worked out from the request alone: the role
from a marker in the first prompt, the chapter from how many prompts there are, the step by
replaying the chapter's script over the tool results that came back since its prompt. So a
retried request, or one from a resumed session, is answered as the first one was.

The YAML form (JSON works too, being YAML):

    usage: {input_tokens: 12, output_tokens: 6}     # optional, per response
    roles:
      A:                        # the first prompt carries "conductor-role: A"
        - - tool: Write         # chapter 1, step 1
            input: {file_path: "${cwd}/src/x.py", content: "x = 1\\n"}
          - tool: mcp__bus__sync
            input: {}
            until: "types exported"   # call again while the result lacks this text...
            max: 5                    # ...at most 5 calls in all, then go on
            delay: 0.2                # seconds before answering this step
          - tool: Bash
            input: {command: "git add -A && git commit -qm x"}
            on_result:                # jump to a labelled step when the result says so
              - {contains: "nothing to commit", goto: report}
          - text: "Done."             # final text ends the turn
            label: report
        - - text: "Second prompt answered."    # chapter 2
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conductor.errors import InvalidInput

ROLE_MARKER = re.compile(r"conductor-role:\s*([A-Za-z0-9_.-]+)")
VARIABLES = ("cwd", "role", "chapter")


@dataclass(frozen=True)
class Fault:
    """Answer a step with an HTTP error (529, 500, 429, ...) or by dropping the connection.
    `times`: only the first N answers to that step fault (None: every one)."""

    status: int | None = None
    drop: bool = False
    times: int | None = None


@dataclass(frozen=True)
class Branch:
    contains: str
    goto: str


@dataclass(frozen=True)
class Step:
    tool: str | None = None
    input: Mapping[str, Any] = field(default_factory=dict)
    text: str | None = None
    label: str | None = None
    until: str | None = None
    max: int = 1
    on_result: tuple[Branch, ...] = ()
    delay: float = 0.0
    fault: Fault | None = None
    usage: Mapping[str, int] | None = None

    @property
    def ends_turn(self) -> bool:
        return self.tool is None


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 12
    output_tokens: int = 6


@dataclass(frozen=True)
class Script:
    roles: Mapping[str, tuple[tuple[Step, ...], ...]]
    usage: Usage = Usage()

    def role_for(self, first_prompt: str) -> str | None:
        """The role named by the marker in the first prompt; the only role if there is one."""
        found = ROLE_MARKER.search(first_prompt)
        if found:
            return found.group(1) if found.group(1) in self.roles else None
        if len(self.roles) == 1:
            return next(iter(self.roles))
        return "default" if "default" in self.roles else None


# ------------------------------------------------------------------------------ loading


def load_script(path: Path) -> Script:
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidInput(f"cannot read script {path}: {e.strerror}") from None
    return parse_script(text, source=str(path))


def parse_script(text: str | Mapping[str, Any], *, source: str = "script") -> Script:
    """Parse and check a script; every mistake is reported with where it is."""
    if isinstance(text, str):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InvalidInput(f"{source}: not valid YAML: {e}".replace("\n", " ")) from None
    else:
        data = text
    if not isinstance(data, Mapping) or not isinstance(data.get("roles"), Mapping):
        raise InvalidInput(f"{source}: a script is a mapping with a 'roles' mapping")
    unknown = set(data) - {"roles", "usage"}
    if unknown:
        raise InvalidInput(f"{source}: unknown top-level keys {sorted(unknown)}")
    roles = {}
    for role, chapters in data["roles"].items():
        where = f"{source}: role {role}"
        if not isinstance(chapters, list) or not chapters:
            raise InvalidInput(f"{where}: a role is a non-empty list of chapters")
        roles[str(role)] = tuple(
            _chapter(chapter, f"{where}, chapter {n}") for n, chapter in enumerate(chapters, 1)
        )
    usage = data.get("usage") or {}
    return Script(roles=roles, usage=Usage(**_usage(usage, f"{source}: usage")))


def _usage(data: Any, where: str) -> dict[str, int]:
    if not isinstance(data, Mapping) or set(data) - {"input_tokens", "output_tokens"}:
        raise InvalidInput(f"{where}: usage has input_tokens and output_tokens only")
    return {k: int(v) for k, v in data.items()}


STEP_KEYS = {
    "tool",
    "input",
    "text",
    "label",
    "until",
    "max",
    "on_result",
    "delay",
    "fault",
    "usage",
}


def _chapter(data: Any, where: str) -> tuple[Step, ...]:
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"{where}: a chapter is a non-empty list of steps")
    steps = tuple(_step(s, f"{where}, step {n}") for n, s in enumerate(data, 1))
    labels = [s.label for s in steps if s.label]
    if len(labels) != len(set(labels)):
        raise InvalidInput(f"{where}: a label appears twice")
    for n, step in enumerate(steps, 1):
        for branch in step.on_result:
            if branch.goto not in labels:
                raise InvalidInput(f"{where}, step {n}: goto {branch.goto!r} names no label")
    return steps


def _step(data: Any, where: str) -> Step:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: a step is a mapping (tool/input, or text)")
    unknown = set(data) - STEP_KEYS
    if unknown:
        raise InvalidInput(f"{where}: unknown keys {sorted(unknown)}")
    tool, text = data.get("tool"), data.get("text")
    if tool is None and text is None:
        raise InvalidInput(f"{where}: a step has a tool or a text")
    if tool is None and ({"until", "on_result", "input"} & set(data)):
        raise InvalidInput(f"{where}: until, on_result and input belong to tool steps")
    tool_input = data.get("input", {})
    if not isinstance(tool_input, Mapping):
        raise InvalidInput(f"{where}: input is a mapping")
    fault = data.get("fault")
    if isinstance(fault, int):
        fault = {"status": fault}
    if fault is not None and (
        not isinstance(fault, Mapping) or set(fault) - {"status", "drop", "times"}
    ):
        raise InvalidInput(f"{where}: fault is a status code or {{status|drop, times}}")
    branches = data.get("on_result", [])
    if not isinstance(branches, list) or any(
        not isinstance(b, Mapping) or set(b) != {"contains", "goto"} for b in branches
    ):
        raise InvalidInput(f"{where}: on_result is a list of {{contains, goto}}")
    maximum = int(data.get("max", 1 if data.get("until") is None else 3))
    if maximum < 1:
        raise InvalidInput(f"{where}: max is at least 1")
    return Step(
        tool=str(tool) if tool is not None else None,
        input=dict(tool_input),
        text=str(text) if text is not None else None,
        label=data.get("label"),
        until=data.get("until"),
        max=maximum,
        on_result=tuple(Branch(str(b["contains"]), str(b["goto"])) for b in branches),
        delay=float(data.get("delay", 0.0)),
        fault=Fault(**fault) if fault is not None else None,
        usage=_usage(data["usage"], where) if "usage" in data else None,
    )


# ------------------------------------------------------------------------------ positions


@dataclass(frozen=True)
class Position:
    """Where a chapter stands: the step to answer now, and which call of it this is."""

    index: int
    attempt: int

    def step(self, chapter: tuple[Step, ...]) -> Step | None:
        return chapter[self.index] if self.index < len(chapter) else None


def replay(chapter: tuple[Step, ...], results: list[str]) -> Position:
    """Walk the chapter over the tool results seen since its prompt, oldest first."""
    labels = {s.label: i for i, s in enumerate(chapter) if s.label}
    index, attempt = 0, 1
    for result in results:
        if index >= len(chapter):
            break
        step = chapter[index]
        if step.until is not None and step.until not in result and attempt < step.max:
            attempt += 1
            continue
        jump = next((b.goto for b in step.on_result if b.contains in result), None)
        index, attempt = (labels[jump] if jump else index + 1), 1
    return Position(index, attempt)


class MissingVariable(LookupError):
    """A step uses `${name}` but the request did not tell its value."""


def substitute(value: Any, variables: Mapping[str, str | None]) -> Any:
    """Replace `${cwd}`, `${role}`, `${chapter}` in every string of a step's input. A variable
    the request did not reveal raises, rather than becoming "" (a path would become `/x`)."""
    if isinstance(value, str):
        for name, text in variables.items():
            token = "${" + name + "}"
            if token in value:
                if text is None:
                    raise MissingVariable(name)
                value = value.replace(token, text)
        return value
    if isinstance(value, Mapping):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value
