"""Which role a request plays, told by what the request says anyway.

Nothing conductor sends a model exists only for the stand-in: its prompts carry no marker.
The stand-in reads the role from what a real model needs to know just as much:

- the planner is the session asked for the plan: the request offers the CLI's
  `StructuredOutput` tool with the plan's schema (a `workstreams` list);
- a workstream's session is told which it is: "You are session A (name) of a conductor run.";
- an agent reviewer is told whose work it reviews: "You review session A's work ..." is the
  role `A-review`.

A person driving the stand-in by hand (or a test) may still name the role outright: a prompt
that begins with `conductor-role: NAME` plays NAME, whatever else it says. Only at its very
beginning: a goal, a task, a diff under review or a repository's own text may quote the marker
(conductor's own tests and README do), and a quote must not decide the role. Everything is read
outside the CLI's own `<system-reminder>` texts (where a repository's CLAUDE.md could say
anything); sentences are looked for at the start of a line.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from conductor.plan import REVIEWER_SUFFIX

MARKER = re.compile(r"conductor-role:[ \t]*([A-Za-z0-9_.-]+)")
PLANNER_ROLE = "planner"  # the role of `conductor run`'s planner session
PLAN_KEY = "workstreams"  # what the plan's schema asks for, and no other schema of conductor's
_SESSION = re.compile(r"^You are session (\S+) .*of a conductor run", re.MULTILINE)
_REVIEWER = re.compile(r"^You review session (\S+)'s work", re.MULTILINE)
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)


@dataclass(frozen=True)
class Named:
    """A role a request names, and how it named it (for a message that says what to add)."""

    role: str
    by: str


def named_role(first_prompt: str, output_schema: Mapping[str, Any] | None = None) -> Named | None:
    """The role the request names: by the explicit marker, by asking for the plan, or by the
    sentence of its first prompt that tells the model who it is."""
    prompt = _REMINDER.sub("", first_prompt)
    marked = MARKER.match(prompt.lstrip())
    if marked:
        return Named(marked.group(1), f"its first prompt says 'conductor-role: {marked.group(1)}'")
    if output_schema is not None and PLAN_KEY in (output_schema.get("properties") or {}):
        return Named(PLANNER_ROLE, "it asks for the plan (StructuredOutput with its schema)")
    told: list[tuple[int, Named]] = []  # where in the prompt, and the role; the first counts
    if session := _SESSION.search(prompt):
        told.append((session.start(), Named(session.group(1), _says(session))))
    if reviewer := _REVIEWER.search(prompt):
        told.append((reviewer.start(), Named(reviewer.group(1) + REVIEWER_SUFFIX, _says(reviewer))))
    return min(told, key=lambda found: found[0])[1] if told else None


def _says(found: re.Match[str]) -> str:
    return f"its first prompt says '{found.group(0)}'"


def role_for(
    roles: Collection[str], first_prompt: str, output_schema: Mapping[str, Any] | None = None
) -> str | None:
    """The scripted role a request plays: the one it names (None if the script lacks it), else
    the script's only role, else its role named `default`."""
    named = named_role(first_prompt, output_schema)
    if named is not None:
        return named.role if named.role in roles else None
    if len(roles) == 1:
        return next(iter(roles))
    return "default" if "default" in roles else None


def why_no_role(
    roles: Collection[str], first_prompt: str, output_schema: Mapping[str, Any] | None = None
) -> str:
    """What to add to the script, for a request `role_for` finds no role for."""
    have = ", ".join(roles)
    named = named_role(first_prompt, output_schema)
    if named is None:
        return (
            "no script for this request: it names no role (its first prompt does not begin"
            " with 'conductor-role: NAME', and it is none of conductor's sessions: not the"
            " planner, no 'You are session ID', no 'You review session ID's work'), and the"
            f" script has several roles ({have}), none named default: begin the prompt with"
            " the marker, or"
            " add a role named default"
        )
    role = named.role
    if role == PLANNER_ROLE:
        what = (
            "the planner of `conductor run`: a chapter that calls StructuredOutput with the"
            " plan, {workstreams: [{id, name, task, owns, depends_on}]}, then ends with a"
            " text (or run with --plan FILE, which needs no planner)"
        )
    elif role.endswith(REVIEWER_SUFFIX):
        what = (
            f"the agent reviewer of {role.removesuffix(REVIEWER_SUFFIX)}: a chapter per"
            " review round that calls mcp__bus__review_verdict with {verdict: approve}"
            " or {verdict: reject, comments: ...}"
        )
    else:
        what = "a workstream of the plan: its first chapter answers its task"
    return (
        f"no script for this request: {named.by} and the script has no role {role}"
        f" (it has {have}); add roles.{role}, {what}"
    )
