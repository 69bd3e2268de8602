"""What the scripted model does: roles, chapters and steps, loaded and checked.

A script maps each role (the planner, session A, a reviewer, ...) to chapters; a chapter
answers one prompt and is a list of steps; a step is a tool call or the turn's final text.
Which role, chapter and step a request is at is worked out from the request alone: the role
from what the request tells a model anyway (roles.py), the chapter from how many prompts there
are, the step by replaying the chapter's script over the tool results that came back since its
prompt (playing.py). So a retried request, or one from a resumed session, is answered as the
first one was.

A script is checked whole when it is loaded: each mistake is one line naming the field, as
`script.yaml: roles.A[0][2].delay: expected a number of seconds, 0 or more, got 'soon'`
(chapters and steps counted from 0). The README's stand-in section lists every key.

The YAML form (JSON works too, being YAML):

    usage: {input_tokens: 12, output_tokens: 6}     # optional, per response
    roles:
      A:                        # "You are session A (...)", or "conductor-role: A"
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

from conductor.errors import InvalidInput
from conductor.standin import roles as naming
from conductor.validation import Field, load_yaml

VARIABLES = ("cwd", "role", "chapter")


# What a scripted fault may answer with: an HTTP error status (the CLI retries 429, 529 and
# 5xx itself, then reports them; a 4xx other than 429 fails the turn at once).
FAULT_STATUSES = range(400, 600)


@dataclass(frozen=True)
class Fault:
    """Answer a step with an HTTP error (529, 500, 429, ...) or by dropping the connection.
    `times`: only the first N answers to that step fault (None: every one). `resets_in`:
    a 429 that says when the usage limit resets, this many seconds after the answer (the
    headers the Messages API sends with a usage limit: `anthropic-ratelimit-unified-*`)."""

    status: int | None = None
    drop: bool = False
    times: int | None = None
    resets_in: float | None = None

    def __post_init__(self) -> None:
        # parse_script says which field is wrong; this holds for a Script built in Python
        # too, where a status the server cannot send would drop the connection silently.
        status = self.status
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or status not in FAULT_STATUSES
        ):
            raise InvalidInput(f"a fault's status is from 400 to 599, not {status!r}")
        if (status is None) == (not self.drop):
            raise InvalidInput("a fault has a status or drop: true (one of them)")
        if self.resets_in is not None and status != 429:
            raise InvalidInput("a fault's resets_in goes with status 429 (a usage limit)")


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

    def role_for(self, first_prompt: str, schema: Mapping[str, Any] | None = None) -> str | None:
        """The role a request plays (roles.py says how it is told), None if none fits."""
        return naming.role_for(self.roles, first_prompt, schema)

    def why_no_role(self, first_prompt: str, schema: Mapping[str, Any] | None = None) -> str:
        """What to add to the script, for a request `role_for` finds no role for."""
        return naming.why_no_role(self.roles, first_prompt, schema)


# ------------------------------------------------------------------------------ loading

TOP_KEYS = ("roles", "usage")
STEP_KEYS = (
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
)
FAULT_KEYS = ("status", "drop", "times", "resets_in")
BRANCH_KEYS = ("contains", "goto")
USAGE_KEYS = ("input_tokens", "output_tokens")
ROLE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def load_script(path: Path) -> Script:
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidInput(f"cannot read script {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not a text file (a script is YAML or JSON)") from None
    return parse_script(text, source=str(path))


def parse_script(text: str | Mapping[str, Any], *, source: str = "script") -> Script:
    """Parse and check a script; every mistake is one line naming the field, as
    `source: roles.A[0][2].delay: expected a number of seconds, got 'soon'` (chapters and
    steps are counted from 0)."""
    data = load_yaml(text, source) if isinstance(text, str) else text
    top = Field(source)
    top.mapping(data, "a mapping with a 'roles' mapping (see the README's script format)")
    top.known_keys(data, TOP_KEYS, "top-level key")
    if "roles" not in data:
        top.fail("no 'roles': a script maps each role to its chapters")
    where = top.key("roles")
    given = where.mapping(data["roles"], "a mapping of role names to their chapters")
    if not given:
        where.fail("no roles: add at least one, e.g. roles: {A: [[{text: Done.}]]}")
    roles: dict[str, tuple[tuple[Step, ...], ...]] = {}
    for role, chapters in given.items():
        if not isinstance(role, str) or not ROLE_NAME.match(role):
            where.key(role).fail(
                "a role name is letters, digits, '_', '.' or '-' (what 'conductor-role: NAME'"
                " can name)"
            )
        here = where.key(role)
        listed = here.items(
            chapters, "a non-empty list of chapters (each a list of steps)", non_empty=True
        )
        roles[role] = tuple(_chapter(c, here.index(n)) for n, c in enumerate(listed))
    usage = _usage(data["usage"], top.key("usage")) if "usage" in data else {}
    return Script(roles=roles, usage=Usage(**usage))


def _usage(data: Any, where: Field) -> dict[str, int]:
    where.mapping(data, "a mapping of input_tokens and output_tokens")
    where.known_keys(data, USAGE_KEYS, "key of usage")
    return {
        key: where.key(key).integer(value, "a whole number of tokens", minimum=0)
        for key, value in data.items()
    }


def _chapter(data: Any, where: Field) -> tuple[Step, ...]:
    listed = where.items(
        data,
        "a non-empty list of steps (a chapter answers one prompt)",
        non_empty=True,
    )
    steps = tuple(_step(s, where.index(n)) for n, s in enumerate(listed))
    labels: dict[str, int] = {}
    for n, step in enumerate(steps):
        if step.label is None:
            continue
        if step.label in labels:
            where.index(n).key("label").fail(
                f"{step.label!r} is the label of step [{labels[step.label]}] already"
            )
        labels[step.label] = n
    for n, step in enumerate(steps):
        for b, branch in enumerate(step.on_result):
            if branch.goto not in labels:
                known = ", ".join(labels) or "none"
                where.index(n).key("on_result").index(b).key("goto").fail(
                    f"{branch.goto!r} names no label of this chapter (its labels: {known})"
                )
    reached = _reachable(steps, labels)
    for n, step in enumerate(steps):
        if n not in reached:
            how = (
                f"no reached on_result goes to its label {step.label!r}"
                if step.label
                else "give it a label and goto it from an on_result"
            )
            where.index(n).fail(
                "never reached: the step before it ends the turn (a text without a tool);"
                f" {how}, or move it to a chapter of its own"
            )
    return steps


def _reachable(steps: tuple[Step, ...], labels: Mapping[str, int]) -> set[int]:
    """Steps a chapter can get to from its first: a tool step goes on to the next one and
    to its gotos; a text step (no tool) ends the turn."""
    reached, todo = set(), [0]
    while todo:
        n = todo.pop()
        if n in reached or n >= len(steps):
            continue
        reached.add(n)
        if not steps[n].ends_turn:
            todo.append(n + 1)
            todo.extend(labels[b.goto] for b in steps[n].on_result)
    return reached


def _step(data: Any, where: Field) -> Step:
    where.mapping(data, "a step: a mapping with a tool (and its input) or a text")
    where.known_keys(data, STEP_KEYS, "key of a step")
    if data.get("tool") is None and data.get("text") is None:
        where.fail("a step has a tool (a tool call) or a text (the turn's final answer)")
    tool = (
        where.key("tool").string(data["tool"], "a tool name", non_empty=True)
        if "tool" in data
        else None
    )
    text = where.key("text").string(data["text"], "a string (quote it)") if "text" in data else None
    if tool is None:
        for key in ("input", "until", "max", "on_result"):
            if key in data:
                where.key(key).fail("belongs to a tool step (this step has a text only)")
    tool_input = (
        where.key("input").mapping(data["input"], "a mapping of the tool's arguments")
        if "input" in data
        else {}
    )
    label = (
        where.key("label").string(data["label"], "a label name", non_empty=True)
        if "label" in data
        else None
    )
    until = (
        where.key("until").string(data["until"], "a text to wait for", non_empty=True)
        if "until" in data
        else None
    )
    if "max" in data and until is None:
        where.key("max").fail(
            "belongs with until (it caps the calls made while the result lacks that text)"
        )
    maximum = (
        where.key("max").integer(data["max"], "a whole number of calls", minimum=1)
        if "max" in data
        else (3 if until is not None else 1)
    )
    delay = (
        where.key("delay").number(data["delay"], "a number of seconds", minimum=0)
        if "delay" in data
        else 0.0
    )
    return Step(
        tool=tool,
        input=dict(tool_input),
        text=text,
        label=label,
        until=until,
        max=maximum,
        on_result=_branches(data["on_result"], where.key("on_result"))
        if "on_result" in data
        else (),
        delay=delay,
        fault=_fault(data["fault"], where.key("fault")) if "fault" in data else None,
        usage=_usage(data["usage"], where.key("usage")) if "usage" in data else None,
    )


def _branches(data: Any, where: Field) -> tuple[Branch, ...]:
    listed = where.items(data, "a list of {contains, goto}")
    branches = []
    for n, item in enumerate(listed):
        here = where.index(n)
        here.mapping(item, "a mapping {contains: TEXT, goto: LABEL}")
        here.known_keys(item, BRANCH_KEYS, "key of an on_result branch")
        for key in BRANCH_KEYS:
            if key not in item:
                here.fail(f"no {key}: a branch is {{contains: TEXT, goto: LABEL}}")
        branches.append(
            Branch(
                here.key("contains").string(item["contains"], "a text to look for", non_empty=True),
                here.key("goto").string(item["goto"], "a label of this chapter", non_empty=True),
            )
        )
    return tuple(branches)


def _fault(data: Any, where: Field) -> Fault:
    statuses = f"an HTTP error status from {FAULT_STATUSES.start} to {FAULT_STATUSES.stop - 1}"
    if isinstance(data, int) and not isinstance(data, bool):
        if data not in FAULT_STATUSES:
            where.expected(statuses, data)
        data = {"status": data}
    where.mapping(data, f"{statuses}, or a mapping of status or drop, and times")
    where.known_keys(data, FAULT_KEYS, "key of a fault")
    status = (
        where.key("status").integer(data["status"], statuses)
        if data.get("status") is not None
        else None
    )
    if status is not None and status not in FAULT_STATUSES:
        where.key("status").expected(statuses, status)
    drop = where.key("drop").boolean(data["drop"]) if "drop" in data else False
    if status is None and not drop:
        where.fail(f"a fault has a status ({statuses}) or drop: true")
    if status is not None and drop:
        where.fail("a fault has a status or drop: true, not both")
    times = (
        where.key("times").integer(data["times"], "a whole number of answers", minimum=1)
        if data.get("times") is not None
        else None
    )
    resets_in = (
        where.key("resets_in").number(data["resets_in"], "a number of seconds", minimum=0)
        if data.get("resets_in") is not None
        else None
    )
    if resets_in is not None and status != 429:
        where.key("resets_in").fail("goes with status 429 (a usage limit that resets)")
    return Fault(status=status, drop=drop, times=times, resets_in=resets_in)
