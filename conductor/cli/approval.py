"""`conductor run --confirm`: the plan and its estimate put to a person before anything runs.

They answer run, edit or quit. Edit opens $VISUAL (or $EDITOR, or vi) on the saved plan
file; the file is then read and checked again (`conductor.plan`), and shown again, or, when
it is no longer a valid plan, why not in one line, and the question again. Quit starts
nothing and keeps the plan on disk (`conductor run --plan FILE` takes it up later).

The questions need a person at a terminal: without a TTY on stdin --confirm is refused before
anything is planned.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import anyio
from rich.console import Console

from conductor import dashboard
from conductor.cli.common import fail
from conductor.cli.estimate import estimate_lines
from conductor.errors import ConductorError, InvalidInput
from conductor.plan import Plan
from conductor.run.launch import Approve, Proposal
from conductor.text import one_line

QUESTION = "run, edit or quit? [r/e/q] "
WHY_LIMIT = 300  # characters of why an edited plan is refused (one line)
ANSWERS = {"r": "run", "run": "run", "e": "edit", "edit": "edit", "q": "quit", "quit": "quit"}


def refuse_without_tty() -> None:
    """--confirm asks a person: refuse it, in one line, when stdin is no terminal."""
    if not sys.stdin.isatty():
        fail(
            "--confirm asks at the terminal, but stdin is not one: run without --confirm,"
            " or with --plan-only and then --plan FILE"
        )


def editor_argv() -> list[str]:
    """The person's editor as a command line: $VISUAL, else $EDITOR, else vi."""
    chosen = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return shlex.split(chosen) or ["vi"]


def approver(console: Console) -> Approve:
    """The questions asked on `console` (answers read from stdin)."""

    async def approve(proposal: Proposal) -> Plan | None:
        return await anyio.to_thread.run_sync(ask, console, proposal)

    return approve


def ask(console: Console, proposal: Proposal) -> Plan | None:
    """The plan to run as the person left it, or None: they quit."""
    plan = proposal.plan
    show(console, proposal, plan)
    while True:
        answer = _answer(console)
        if answer == "run":
            return plan
        if answer == "quit":
            return None
        if answer == "edit":
            try:
                plan = edited(proposal)
            except ConductorError as e:  # PlanInvalid, the editor's failure
                why = one_line(str(e).removeprefix(f"{proposal.path}: "), WHY_LIMIT)
                _say(console, f"not a valid plan: {why}; edit it again, or quit")
                continue
            show(console, proposal, plan)
            continue
        _say(console, "answer r (run), e (edit) or q (quit)")


def edited(proposal: Proposal) -> Plan:
    """The plan file after the person's editor ran on it, read and checked again."""
    argv = [*editor_argv(), str(proposal.path)]
    try:
        ended = subprocess.run(argv, check=False)
    except OSError as e:
        raise InvalidInput(f"could not start the editor {argv[0]}: {e.strerror}") from None
    if ended.returncode != 0:
        raise InvalidInput(f"the editor {argv[0]} exited with status {ended.returncode}")
    return proposal.reread()


def show(console: Console, proposal: Proposal, plan: Plan) -> None:
    console.print(dashboard.plan_table(plan))
    for line in estimate_lines(proposal.estimate(plan)):
        _say(console, line)
    _say(console, f"the plan is in {proposal.path}")


def _answer(console: Console) -> str:
    """The next answer, normalised ("" for one not understood); end of input is quit."""
    console.print(QUESTION, end="", markup=False, highlight=False)
    line = sys.stdin.readline()
    if not line:  # stdin closed: nobody will answer
        console.print()
        return "quit"
    return ANSWERS.get(line.strip().lower(), "")


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)
