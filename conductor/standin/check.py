"""`conductor model check`: what a valid script holds, and what `conductor run` would miss.

A script is valid on its own (script.py checks that); whether it can drive a run depends on
the roles conductor will ask for: `planner` (unless the run is given `--plan FILE`), one role
per workstream of the plan the planner answers with, and `<ID>-review` for each workstream's
agent reviewer (`review = "agent"`, the default). The notes here say what is missing or
would be refused, without refusing the script: a test may mean to script a refused plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conductor.plan import REVIEWER_SUFFIX, Plan, PlanInvalid, parse_plan
from conductor.standin.roles import PLANNER_ROLE
from conductor.standin.script import Script, Step

# The tools conductor offers each kind of session (planner.READ_ONLY_TOOLS with the CLI's
# StructuredOutput; a reviewer's read-only tools with its review tools). Spelled out: the
# modules that hold them load the SDK.
PLANNER_TOOLS = ("Read", "Glob", "Grep", "StructuredOutput")
REVIEWER_TOOLS = ("Read", "Glob", "Grep", "mcp__bus__review_show", "mcp__bus__review_verdict")
VERDICT = "mcp__bus__review_verdict"


@dataclass(frozen=True)
class Chapter:
    role: str
    number: int  # from 1, as the stand-in's log counts
    steps: int
    tools: tuple[str, ...]  # in order of first use

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "chapter": self.number,
            "steps": self.steps,
            "tools": list(self.tools),
        }


def chapters(script: Script) -> list[Chapter]:
    return [
        Chapter(role, n, len(steps), tuple(dict.fromkeys(s.tool for s in steps if s.tool)))
        for role, listed in script.roles.items()
        for n, steps in enumerate(listed, 1)
    ]


def notes(script: Script, repo: Path) -> list[str]:
    """What `conductor run` would miss or refuse with this script, one line each."""
    found: list[str] = []
    planner = script.roles.get(PLANNER_ROLE)
    if planner is None:
        found.append(
            "no planner role: `conductor run GOAL` starts a planner (the session asked for the"
            " plan with StructuredOutput); add roles.planner (a chapter that calls"
            " StructuredOutput with the plan), or run with --plan FILE"
        )
    plan: Plan | None = None
    for c, chapter in enumerate(planner or ()):
        for s, step in enumerate(chapter):
            where = f"roles.{PLANNER_ROLE}[{c}][{s}]"
            if step.tool and step.tool not in PLANNER_TOOLS:
                found.append(
                    f"{where}: the planner is offered only {', '.join(PLANNER_TOOLS)};"
                    f" a {step.tool} call is refused"
                )
            if step.tool == "StructuredOutput":
                try:
                    plan = parse_plan(step.input, repo)
                except PlanInvalid as refused:
                    found.append(
                        f"{where}.input: conductor would refuse this plan and send the planner"
                        f" its errors as its next chapter: {'; '.join(refused.errors)}"
                    )
    if planner is not None and plan is None and not any("StructuredOutput" in n for n in found):
        found.append(
            f"roles.{PLANNER_ROLE}: no chapter calls StructuredOutput with a plan, which is"
            " how the planner answers"
        )
    if plan is not None:
        for w in plan.workstreams:
            if w.id not in script.roles:
                found.append(f"the plan's workstream {w.id} has no role: add roles.{w.id}")
            reviewer = w.id + REVIEWER_SUFFIX
            if reviewer not in script.roles:
                found.append(
                    f'no roles.{reviewer}: with review = "agent" (the default), {w.id}\'s'
                    f" work is reviewed by a session whose prompt says 'You review session"
                    f" {w.id}'s work'"
                )
    for role, listed in script.roles.items():
        if role.endswith(REVIEWER_SUFFIX):
            found += _reviewer_notes(role, listed)
    return found


def _reviewer_notes(role: str, listed: tuple[tuple[Step, ...], ...]) -> list[str]:
    found = []
    for c, chapter in enumerate(listed):
        for s, step in enumerate(chapter):
            if step.tool and step.tool not in REVIEWER_TOOLS:
                found.append(
                    f"roles.{role}[{c}][{s}]: a reviewer is offered only"
                    f" {', '.join(REVIEWER_TOOLS)}; a {step.tool} call is refused"
                )
        verdicts = [s for s in chapter if s.tool == VERDICT]
        if not verdicts:
            found.append(
                f"roles.{role}[{c}]: no {VERDICT} call: a reviewer that gives no verdict is"
                " asked once more (its next chapter), then the review counts as rejected"
            )
        for step in verdicts:
            if not _is_verdict(step.input):
                found.append(
                    f"roles.{role}[{c}]: {VERDICT} takes {{verdict: approve}} or"
                    " {verdict: reject, comments: ...}"
                )
    return found


def _is_verdict(given: Mapping[str, Any]) -> bool:
    verdict = str(given.get("verdict", "")).strip().lower()
    if verdict == "reject":
        return bool(str(given.get("comments", "")).strip())
    return verdict == "approve"
