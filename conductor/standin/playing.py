"""Playing a chapter: which step a request is at, and a step's input with its variables.

Pure functions of the chapter and what the request shows (the tool results since its prompt,
the working directory the CLI told the model), so a retried or resumed request gets the same
answer as the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conductor.standin.script import Step


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
