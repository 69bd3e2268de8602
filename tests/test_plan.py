"""A plan is checked before anything is spawned: ids, dependencies, owned paths."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conductor.errors import InvalidInput
from conductor.plan import PlanInvalid, layers, load_plan, parse_plan, save_plan


def stream(wid: str, owns: list[str], deps: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    return {
        "id": wid,
        "name": f"stream {wid}",
        "task": f"build {wid}",
        "owns": owns,
        "depends_on": list(deps),
        **extra,
    }


def errors_of(data: Any, root: Path, **kw: Any) -> list[str]:
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(data, root, **kw)
    return caught.value.errors


def test_a_good_plan_parses_with_owned_paths_normalised(tmp_path: Path) -> None:
    plan = parse_plan(
        {
            "workstreams": [
                stream("A", ["./src/core/", f"{tmp_path}/docs"], interface="core.types.Token"),
                stream("B", ["src/cli.py"], ["A"]),
            ]
        },
        tmp_path,
    )
    assert plan.get("A").owns == ("src/core", "docs")
    assert plan.get("A").interface == "core.types.Token"
    assert plan.get("B").depends_on == ("A",)


def test_ids_must_be_unique(tmp_path: Path) -> None:
    data = {"workstreams": [stream("A", ["a"]), stream("A", ["b"])]}
    assert errors_of(data, tmp_path) == [
        "workstreams[1].id: workstream id A is used twice (workstreams[0] has it)"
    ]


def test_ids_must_be_usable_as_session_names(tmp_path: Path) -> None:
    assert any(
        "bad id '1x'" in e for e in errors_of({"workstreams": [stream("1x", ["a"])]}, tmp_path)
    )


@pytest.mark.parametrize("wid", ["planner", "auto", "Human", "A-review"])
def test_names_conductor_gives_its_own_sessions_are_not_workstream_ids(
    tmp_path: Path, wid: str
) -> None:
    errors = errors_of({"workstreams": [stream(wid, ["a"])]}, tmp_path)
    assert any("a name conductor gives its own sessions" in e for e in errors)


def test_a_dependency_cycle_is_refused_and_named(tmp_path: Path) -> None:
    data = {
        "workstreams": [
            stream("A", ["a"], ["C"]),
            stream("B", ["b"], ["A"]),
            stream("C", ["c"], ["B"]),
        ]
    }
    assert "workstreams: dependency cycle: A -> C -> B -> A" in errors_of(data, tmp_path)


def test_an_unknown_dependency_is_refused(tmp_path: Path) -> None:
    data = {"workstreams": [stream("A", ["a"], ["Z"])]}
    assert errors_of(data, tmp_path) == [
        "workstreams[0].depends_on[0]: A depends on Z, which is not in the plan (it has A)"
    ]


def test_owned_paths_must_stay_inside_the_repository(tmp_path: Path) -> None:
    data = {"workstreams": [stream("A", ["../elsewhere"])]}
    assert errors_of(data, tmp_path) == [
        "workstreams[0].owns[0]: A owns ../elsewhere, which is outside the repository"
    ]


def test_two_workstreams_may_not_own_overlapping_paths(tmp_path: Path) -> None:
    data = {"workstreams": [stream("A", ["src/"]), stream("B", ["src/cli.py"])]}
    assert errors_of(data, tmp_path) == [
        "workstreams[1].owns[0]: A and B both own src / src/cli.py"
    ]


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    data = {
        "workstreams": [
            stream("A", ["x"], ["Q"]),
            stream("B", ["x"]),
            {"id": "C", "name": "", "task": "", "owns": []},
        ]
    }
    assert len(errors_of(data, tmp_path)) == 4  # unknown dep, overlap, no name, no task


def test_max_sessions_caps_the_number_of_workstreams(tmp_path: Path) -> None:
    data = {"workstreams": [stream(w, [w.lower()]) for w in "ABC"]}
    assert errors_of(data, tmp_path, max_sessions=2) == [
        "workstreams: 3 workstreams, more than the limit of 2 (max_sessions)"
    ]


def test_layers_follow_the_dependencies(tmp_path: Path) -> None:
    plan = parse_plan(
        {
            "workstreams": [
                stream("C", ["c"], ["A", "B"]),
                stream("A", ["a"]),
                stream("B", ["b"], ["A"]),
            ]
        },
        tmp_path,
    )
    assert layers(plan) == [["A"], ["B"], ["C"]]


def test_a_plan_round_trips_through_its_file(tmp_path: Path) -> None:
    plan = parse_plan({"workstreams": [stream("A", ["a"]), stream("B", ["b"], ["A"])]}, tmp_path)
    save_plan(plan, tmp_path / "plans" / "plan.json")
    assert load_plan(tmp_path / "plans" / "plan.json", tmp_path) == plan
    assert [p.name for p in (tmp_path / "plans").iterdir()] == ["plan.json"]  # no temp left


def test_a_plan_file_that_does_not_parse_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("{'workstreams': [")
    with pytest.raises(InvalidInput, match=r"plan\.json is not JSON: line 1, column 2: ") as caught:
        load_plan(bad, tmp_path)
    assert "\n" not in str(caught.value)


def test_a_plan_may_be_yaml(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "workstreams:\n"
        "  - {id: A, name: core, task: types, owns: [src/core/]}\n"
        "  - {id: B, name: cli, task: the CLI, owns: [src/cli.py], depends_on: [A]}\n"
    )
    plan = load_plan(path, tmp_path)
    assert plan.get("A").owns == ("src/core",) and plan.get("B").depends_on == ("A",)


def test_a_plan_files_errors_name_the_file_and_each_field(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "workstreams:\n"
        "  - {id: A, name: core, task: types, owns: [src], depnds_on: [B]}\n"
        "  - {id: B, task: '', owns: [src/cli.py]}\n"
    )
    with pytest.raises(PlanInvalid) as caught:
        load_plan(path, tmp_path)
    assert str(caught.value) == (
        f"{path}: workstreams[0].depnds_on: unknown key of a workstream; did you mean"
        " depends_on?; workstreams[1].name: B has no name; workstreams[1].task: expected a"
        " non-empty string, got ''; workstreams[1].owns[0]: A and B both own src / src/cli.py"
    )


def test_the_planners_plan_is_refused_with_every_error_for_its_retry(tmp_path: Path) -> None:
    data = {"workstreams": [stream("A", ["a"], colour="red")]}
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(data, tmp_path)
    assert str(caught.value).startswith("the plan is not valid: workstreams[0].colour: unknown")
    assert caught.value.errors == [
        "workstreams[0].colour: unknown key of a workstream (known: id, name, task, owns,"
        " depends_on, interface, model)",
    ]


def test_the_schema_tells_the_planner_which_keys_there_are() -> None:
    from conductor.plan import PLAN_SCHEMA, WORKSTREAM_KEYS

    item = PLAN_SCHEMA["properties"]["workstreams"]["items"]
    assert set(item["properties"]) == set(WORKSTREAM_KEYS)
    assert item["additionalProperties"] is False and PLAN_SCHEMA["additionalProperties"] is False


def test_a_cycle_is_named_from_its_first_workstream_even_when_the_plan_enters_it_later(
    tmp_path: Path,
) -> None:
    data = {
        "workstreams": [
            stream("A", ["a"], ["B"]),
            stream("B", ["b"], ["C"]),
            stream("C", ["c"], ["D"]),
            stream("D", ["d"], ["B"]),
        ]
    }
    assert errors_of(data, tmp_path) == ["workstreams: dependency cycle: B -> C -> D -> B"]
