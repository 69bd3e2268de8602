"""A run's plan: workstreams, what each owns and needs, and the checks a plan must pass.

The planner answers with JSON matching `PLAN_SCHEMA` (the CLI's structured output); a person
may write or edit the same plan by hand, in JSON or YAML (`--plan FILE`). Either way it is
validated here before anything is spawned: known keys of the right types, unique ids, known
dependencies without a cycle, owned paths inside the repository that no two workstreams
share; each problem is told with the path of its field.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conductor import paths
from conductor.errors import ConductorError, InvalidInput, PathOutsideRepository
from conductor.models import check_session_name
from conductor.validation import Field, did_you_mean, load_yaml

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "workstreams": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "A, B, C, ..."},
                    "name": {"type": "string"},
                    "task": {"type": "string", "description": "what to build, concretely"},
                    "owns": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "paths only this workstream writes",
                    },
                    "depends_on": {"type": "array", "items": {"type": "string"}},
                    "interface": {
                        "type": "string",
                        "description": "what it promises the others (functions, endpoints)",
                    },
                },
                "required": ["id", "name", "task", "owns"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["workstreams"],
    "additionalProperties": False,
}


# Sessions conductor itself names in a run: the planner, the `auto` and `human` reviewers, and
# `<id>-review`, the agent reviewer of a workstream. A workstream by one of these names would
# share its row, its conversation or its verdicts.
RESERVED_IDS = ("planner", "auto", "human")
REVIEWER_SUFFIX = "-review"

PLAN_KEYS = ("workstreams",)
# What `conductor run --plan-only --json` prints besides the plan: its output is a plan file.
IGNORED_PLAN_KEYS = ("saved_to",)
WORKSTREAM_KEYS = ("id", "name", "task", "owns", "depends_on", "interface")


class PlanInvalid(ConductorError):
    """A plan that fails validation; `errors` lists every problem, each with the path of its
    field, for the planner's retry. `source`: the file it came from, if any."""

    def __init__(self, errors: Sequence[str], *, source: str = "") -> None:
        self.errors = list(errors)
        head = f"{source}: " if source else "the plan is not valid: "
        super().__init__(head + "; ".join(self.errors))


@dataclass(frozen=True)
class Workstream:
    id: str
    name: str
    task: str
    owns: tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    interface: str = ""


@dataclass(frozen=True)
class Plan:
    workstreams: tuple[Workstream, ...]

    def to_json(self) -> dict[str, Any]:
        return {"workstreams": [asdict(w) for w in self.workstreams]}

    def get(self, workstream_id: str) -> Workstream:
        return next(w for w in self.workstreams if w.id == workstream_id)


def parse_plan(data: Any, repo: Path, *, max_sessions: int | None = None, source: str = "") -> Plan:
    """Check a plan (as decoded JSON or YAML) and return it with owned paths normalised.
    Every problem is reported at once, each with the path of its field
    (`workstreams[1].depends_on[0]: ...`), for a person and for the planner's retry."""
    top = Field("")
    try:
        top.mapping(data, "a plan: a mapping with a 'workstreams' list")
        top.known_keys(data, (*PLAN_KEYS, *IGNORED_PLAN_KEYS), "key of a plan")
        if "workstreams" not in data:
            top.fail("no 'workstreams': a plan is {workstreams: [{id, name, task, owns}, ...]}")
        items = top.key("workstreams").items(data["workstreams"], "a list of workstreams")
    except InvalidInput as e:
        raise PlanInvalid([str(e)], source=source) from None
    if not items:
        raise PlanInvalid(["workstreams: the plan has no workstreams"], source=source)
    errors: list[str] = []
    where = top.key("workstreams")
    streams: list[tuple[int, Workstream]] = []
    for n, item in enumerate(items):
        stream = _workstream(item, where.index(n), repo, errors)
        if stream is not None:
            streams.append((n, stream))
    first: dict[str, int] = {}
    for n, w in streams:
        if w.id in first:
            errors.append(
                f"{where.index(n).key('id')}: workstream id {w.id} is used twice"
                f" (workstreams[{first[w.id]}] has it)"
            )
        else:
            first[w.id] = n
    ids = list(first)
    for n, w in streams:
        for d, dep in enumerate(w.depends_on):
            here = where.index(n).key("depends_on").index(d)
            if dep == w.id:
                errors.append(f"{here}: {w.id} depends on itself")
            elif dep not in first:
                guess = did_you_mean(dep, ids)
                errors.append(
                    f"{here}: {w.id} depends on {dep}, which is not in the plan"
                    + (f"; did you mean {guess}?" if guess else f" (it has {', '.join(ids)})")
                )
    plain = [w for _, w in streams]
    cycle = _cycle(plain)
    if cycle:
        errors.append(f"{where}: dependency cycle: " + " -> ".join(cycle))
    errors += _overlaps(streams, where)
    if max_sessions is not None and len(items) > max_sessions:
        errors.append(
            f"{where}: {len(items)} workstreams, more than the limit of {max_sessions}"
            " (max_sessions)"
        )
    if errors:
        raise PlanInvalid(errors, source=source)
    return Plan(tuple(plain))


def _workstream(item: Any, where: Field, repo: Path, errors: list[str]) -> Workstream | None:
    try:
        where.mapping(item, "a workstream: a mapping of id, name, task, owns, ...")
    except InvalidInput as e:
        errors.append(str(e))
        return None
    try:  # an unknown key is told, and the rest of the workstream still checked
        where.known_keys(item, WORKSTREAM_KEYS, "key of a workstream")
    except InvalidInput as e:
        errors.append(str(e))
    try:
        if "id" not in item:
            where.fail("no id (A, B, C, ...)")
        wid = where.key("id").string(item["id"], "an id such as A (quote it)", non_empty=True)
        wid = wid.strip()
        try:
            check_session_name(wid)
        except InvalidInput:
            where.key("id").fail(
                f"bad id {wid!r} (a letter, then up to 31 letters, digits, '-' or '_')"
            )
        if wid.lower() in RESERVED_IDS or wid.lower().endswith(REVIEWER_SUFFIX):
            where.key("id").fail(
                f"the id {wid!r} is a name conductor gives its own sessions"
                f" ({', '.join(RESERVED_IDS)}, ...{REVIEWER_SUFFIX})"
            )
    except InvalidInput as e:
        errors.append(str(e))
        return None

    def take(key: str, read: Any, default: Any) -> Any:
        if item.get(key) is None:
            if default is None:
                errors.append(f"{where.key(key)}: {wid} has no {key}")
            return default
        try:
            return read(where.key(key), item[key])
        except InvalidInput as e:
            errors.append(str(e))
            return default

    def text(field: Field, value: Any) -> str:
        return field.string(value, "a non-empty string", non_empty=True).strip()

    name = take("name", text, None)
    task = take("task", text, None)
    interface = take("interface", lambda f, v: f.string(v, "a string"), "")
    depends_on = take("depends_on", lambda f, v: f.strings(v, "a list of workstream ids"), ())
    owned = take("owns", lambda f, v: f.strings(v, "a list of paths"), ())
    owns = []
    for n, path in enumerate(owned):
        try:
            owns.append(paths.normalize(path, repo))
        except PathOutsideRepository:
            errors.append(
                f"{where.key('owns').index(n)}: {wid} owns {path}, which is outside the repository"
            )
        except InvalidInput as e:
            errors.append(f"{where.key('owns').index(n)}: {wid} owns a bad path: {e}")
    return Workstream(
        id=wid,
        name=name or "",
        task=task or "",
        owns=tuple(dict.fromkeys(owns)),
        depends_on=tuple(d.strip() for d in depends_on),
        interface=interface,
    )


def _cycle(streams: Sequence[Workstream]) -> list[str]:
    """One dependency cycle, as ids from start back to start; [] when there is none."""
    deps = {w.id: [d for d in w.depends_on if d != w.id] for w in streams}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in deps.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep in deps and dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for w in streams:
        if w.id not in state:
            found = visit(w.id)
            if found:
                return found
    return []


def _overlaps(streams: Sequence[tuple[int, Workstream]], where: Field) -> list[str]:
    errors = []
    for i, (_, a) in enumerate(streams):
        for n, b in streams[i + 1 :]:
            for pa in a.owns:
                for k, pb in enumerate(b.owns):
                    if paths.covers(pa, pb) or paths.covers(pb, pa):
                        errors.append(
                            f"{where.index(n).key('owns').index(k)}: {a.id} and {b.id} both own"
                            f" {pa if pa == pb else pa + ' / ' + pb}"
                        )
    return errors


def layers(plan: Plan) -> list[list[str]]:
    """Workstream ids in dependency order: each layer needs only earlier layers."""
    done: set[str] = set()
    order = []
    remaining = {w.id: set(w.depends_on) for w in plan.workstreams}
    while remaining:
        ready = sorted(i for i, deps in remaining.items() if deps <= done)
        order.append(ready)
        done.update(ready)
        for i in ready:
            del remaining[i]
    return order


def load_plan(path: Path, repo: Path, *, max_sessions: int | None = None) -> Plan:
    """A plan file: JSON (`.json`) or YAML (any other name; JSON is YAML too)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidInput(f"cannot read the plan {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not a text file (a plan is JSON or YAML)") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInput(
                f"{path} is not JSON: line {e.lineno}, column {e.colno}: {e.msg}"
            ) from None
    else:
        data = load_yaml(text, str(path))
    return parse_plan(data, repo, max_sessions=max_sessions, source=str(path))


def save_plan(plan: Plan, path: Path) -> None:
    """Write atomically: a temp file in the same folder, then `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".plan-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(plan.to_json(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
