"""A run's plan: workstreams, what each owns and needs, and the checks a plan must pass.

The planner answers with JSON matching `PLAN_SCHEMA` (the CLI's structured output); a person
may write or edit the same JSON by hand (`--plan FILE`). Either way it is validated here
before anything is spawned: unique ids, known dependencies without a cycle, owned paths inside
the repository that no two workstreams share.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conductor import paths
from conductor.errors import ConductorError, InvalidInput, PathOutsideRepository
from conductor.models import check_session_name

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
            },
        }
    },
    "required": ["workstreams"],
}


# Sessions conductor itself names in a run: the planner, the `auto` and `human` reviewers, and
# `<id>-review`, the agent reviewer of a workstream. A workstream by one of these names would
# share its row, its conversation or its verdicts.
RESERVED_IDS = ("planner", "auto", "human")
REVIEWER_SUFFIX = "-review"


class PlanInvalid(ConductorError):
    """A plan that fails validation; `errors` lists every problem, for the planner's retry."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("the plan is not valid: " + "; ".join(self.errors))


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


def parse_plan(data: Any, repo: Path, *, max_sessions: int | None = None) -> Plan:
    """Check a plan (as decoded JSON) and return it with owned paths normalised."""
    errors: list[str] = []
    if not isinstance(data, Mapping) or not isinstance(data.get("workstreams"), list):
        raise PlanInvalid(["a plan is an object with a 'workstreams' list"])
    items = data["workstreams"]
    if not items:
        raise PlanInvalid(["the plan has no workstreams"])
    streams = []
    for n, item in enumerate(items, 1):
        stream = _workstream(item, n, repo, errors)
        if stream is not None:
            streams.append(stream)
    ids = [w.id for w in streams]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        errors.append(f"workstream id {dup} is used twice")
    for w in streams:
        for dep in w.depends_on:
            if dep not in ids:
                errors.append(f"{w.id} depends on {dep}, which is not in the plan")
            elif dep == w.id:
                errors.append(f"{w.id} depends on itself")
    cycle = _cycle(streams)
    if cycle:
        errors.append("dependency cycle: " + " -> ".join(cycle))
    errors += _overlaps(streams)
    if max_sessions is not None and len(streams) > max_sessions:
        errors.append(f"{len(streams)} workstreams, more than the limit of {max_sessions}")
    if errors:
        raise PlanInvalid(errors)
    return Plan(tuple(streams))


def _workstream(item: Any, n: int, repo: Path, errors: list[str]) -> Workstream | None:
    if not isinstance(item, Mapping):
        errors.append(f"workstream {n} is not an object")
        return None
    wid = str(item.get("id", "")).strip()
    try:
        check_session_name(wid)
    except InvalidInput:
        errors.append(f"workstream {n} has a bad id {wid!r} (a letter, then letters/digits/-/_)")
        return None
    if wid.lower() in RESERVED_IDS or wid.lower().endswith(REVIEWER_SUFFIX):
        errors.append(
            f"workstream {n} has the id {wid!r}, a name conductor gives its own sessions"
            f" ({', '.join(RESERVED_IDS)}, ...{REVIEWER_SUFFIX})"
        )
        return None
    for key in ("name", "task"):
        if not str(item.get(key, "")).strip():
            errors.append(f"{wid} has no {key}")
    owns_raw = item.get("owns", [])
    deps_raw = item.get("depends_on", []) or []
    if not isinstance(owns_raw, list) or not isinstance(deps_raw, list):
        errors.append(f"{wid}: owns and depends_on are lists")
        return None
    owns = []
    for path in owns_raw:
        try:
            owns.append(paths.normalize(str(path), repo))
        except PathOutsideRepository:
            errors.append(f"{wid} owns {path}, which is outside the repository")
        except InvalidInput as e:
            errors.append(f"{wid} owns a bad path: {e}")
    return Workstream(
        id=wid,
        name=str(item.get("name", "")).strip(),
        task=str(item.get("task", "")).strip(),
        owns=tuple(dict.fromkeys(owns)),
        depends_on=tuple(str(d) for d in deps_raw),
        interface=str(item.get("interface", "") or ""),
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


def _overlaps(streams: Sequence[Workstream]) -> list[str]:
    errors = []
    for i, a in enumerate(streams):
        for b in streams[i + 1 :]:
            for pa in a.owns:
                for pb in b.owns:
                    if paths.covers(pa, pb) or paths.covers(pb, pa):
                        errors.append(
                            f"{a.id} and {b.id} both own {pa if pa == pb else pa + ' / ' + pb}"
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
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise InvalidInput(f"cannot read the plan {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise InvalidInput(f"the plan {path} is not JSON: {e}") from None
    return parse_plan(data, repo, max_sessions=max_sessions)


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
