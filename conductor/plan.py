"""A run's plan: workstreams, what each owns and needs, and the checks a plan must pass.

The planner answers with JSON matching `PLAN_SCHEMA` (the CLI's structured output); a person
may write or edit the same plan by hand, in JSON or YAML (`--plan FILE`). Either way it is
validated here before anything is spawned: known keys of the right types, unique ids, known
dependencies without a cycle, owned paths inside the repository that no two workstreams
share; each problem is told with the path of its field.
"""

from __future__ import annotations

import graphlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

from conductor import paths
from conductor.errors import ConductorError, InvalidInput, PathOutsideRepository
from conductor.models import check_session_name
from conductor.validation import (
    READ,
    Field,
    declared,
    did_you_mean,
    json_schema,
    load_yaml,
    readers,
    shape,
)

# Sessions conductor itself names in a run: the planner, the `auto` and `human` reviewers, and
# `<id>-review`, the agent reviewer of a workstream. A workstream by one of these names would
# share its row, its conversation or its verdicts.
RESERVED_IDS = ("planner", "auto", "human")
REVIEWER_SUFFIX = "-review"


class PlanInvalid(ConductorError):
    """A plan that fails validation; `errors` lists every problem, each with the path of its
    field, for the planner's retry. `source`: the file it came from, if any."""

    def __init__(self, errors: Sequence[str], *, source: str = "") -> None:
        self.errors = list(errors)
        head = f"{source}: " if source else "the plan is not valid: "
        super().__init__(head + "; ".join(self.errors))


def _id(field: Field, value: Any) -> str:
    """A workstream's id: a session's name, and none of the names conductor gives its own."""
    wid = field.string(value, "an id such as A (quote it)", non_empty=True).strip()
    try:
        check_session_name(wid)
    except InvalidInput:
        field.fail(f"bad id {wid!r} (a letter, then up to 31 letters, digits, '-' or '_')")
    if wid.lower() in RESERVED_IDS or wid.lower().endswith(REVIEWER_SUFFIX):
        field.fail(
            f"the id {wid!r} is a name conductor gives its own sessions"
            f" ({', '.join(RESERVED_IDS)}, ...{REVIEWER_SUFFIX})"
        )
    return wid


def _text(field: Field, value: Any) -> str:
    return field.string(value, "a non-empty string", non_empty=True).strip()


def _ids(field: Field, value: Any) -> tuple[str, ...]:
    return tuple(d.strip() for d in field.strings(value, "a list of workstream ids"))


# The one description of a plan: what the planner is asked for (PLAN_SCHEMA, its structured
# output) and what a plan file is read and checked by are both read from these fields. A
# person may leave `owns` out (a workstream owning nothing); the planner is asked for it.
@shape
class Workstream:
    id: str = declared(_id, description="A, B, C, ...")
    name: str = declared(_text)
    task: str = declared(_text, description="what to build, concretely")
    owns: tuple[str, ...] = declared(
        lambda f, v: f.strings(v, "a list of paths"),
        default=(),
        required=True,
        description="paths only this workstream writes",
    )
    depends_on: tuple[str, ...] = declared(_ids, default=())
    interface: str = declared(
        lambda f, v: f.string(v, "a string"),
        default="",
        description="what it promises the others (functions, endpoints)",
    )
    # The model its session runs on, when not the run's `model` (conductor.toml, --model):
    # a stronger one for the hard part, a cheaper one for the routine. Empty: the run's.
    model: str = declared(
        lambda f, v: f.string(v, 'a model name such as "opus" (quote it)').strip(),
        default="",
        description="leave it out unless the goal names a model for this part; empty: the run's",
    )


@shape
class Plan:
    workstreams: tuple[Workstream, ...] = declared(
        lambda f, v: f.items(v, "a list of workstreams"), minItems=1
    )

    def to_json(self) -> dict[str, Any]:
        return {"workstreams": [asdict(w) for w in self.workstreams]}

    def get(self, workstream_id: str) -> Workstream:
        return next(w for w in self.workstreams if w.id == workstream_id)


PLAN_SCHEMA: dict[str, Any] = json_schema(Plan)
PLAN_KEYS = tuple(f.name for f in fields(Plan))
WORKSTREAM_KEYS = tuple(f.name for f in fields(Workstream))
# What `conductor run --plan-only --json` prints besides the plan: its output is a plan file.
IGNORED_PLAN_KEYS = ("saved_to",)


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
        items = readers(Plan)["workstreams"](top.key("workstreams"), data["workstreams"])
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
    errors += _references(streams, where)
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


def _references(streams: Sequence[tuple[int, Workstream]], where: Field) -> list[str]:
    """Ids used twice, and dependencies on itself or on no workstream of the plan."""
    errors: list[str] = []
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
    return errors


def _workstream(item: Any, where: Field, repo: Path, errors: list[str]) -> Workstream | None:
    """One workstream, read field by field as declared; every problem is added to `errors`
    (None: no id to tell it by)."""
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
        wid = readers(Workstream)["id"](where.key("id"), item["id"])
    except InvalidInput as e:
        errors.append(str(e))
        return None
    values: dict[str, Any] = {}
    for f in fields(Workstream)[1:]:
        here = where.key(f.name)
        fallback = "" if f.default is MISSING else f.default
        if item.get(f.name) is None:
            if f.default is MISSING:
                errors.append(f"{here}: {wid} has no {f.name}")
            values[f.name] = fallback
            continue
        try:
            values[f.name] = f.metadata[READ](here, item[f.name])
        except InvalidInput as e:
            errors.append(str(e))
            values[f.name] = fallback
    owns = []
    for n, path in enumerate(values.pop("owns")):
        try:
            owns.append(paths.normalize(path, repo))
        except PathOutsideRepository:
            errors.append(
                f"{where.key('owns').index(n)}: {wid} owns {path}, which is outside the repository"
            )
        except InvalidInput as e:
            errors.append(f"{where.key('owns').index(n)}: {wid} owns a bad path: {e}")
    return Workstream(id=wid, owns=tuple(dict.fromkeys(owns)), **values)


def _cycle(streams: Sequence[Workstream]) -> list[str]:
    """One dependency cycle, as ids from the first of them in the plan back to it, each
    depending on the next; [] when there is none. (Unknown and self dependencies are told
    on their own.)"""
    ids = {w.id for w in streams}
    graph = {w.id: [d for d in w.depends_on if d != w.id and d in ids] for w in streams}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as found:
        # graphlib names it as each node a dependency of the next: turn it round.
        ring = list(reversed(found.args[1]))[:-1]
        order = [w.id for w in streams]
        start = ring.index(min(ring, key=order.index))
        ring = ring[start:] + ring[:start]
        return [*ring, ring[0]]
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
    sorter = graphlib.TopologicalSorter({w.id: w.depends_on for w in plan.workstreams})
    sorter.prepare()
    order = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.append(ready)
        sorter.done(*ready)
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
