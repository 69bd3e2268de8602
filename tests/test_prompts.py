"""Prompt templates: rendered with their values, overridable per repository, loud on holes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.plan import PLAN_SCHEMA, Workstream
from conductor.prompts import Prompts, TemplateFailed
from conductor.standin.roles import named_role

A = Workstream("A", "core", "Build the token types", ("src/core",), (), "core.types.Token")
B = Workstream("B", "cli", "Build the CLI", ("src/cli.py",), ("A",), "")


def test_the_session_prompt_carries_task_ownership_team_and_protocol() -> None:
    text = Prompts().render(
        "session.md.j2", workstream=B, others=[A], goal="Ship it", branch="conductor/r/B"
    )
    assert text.splitlines()[0] == "You are session B (cli) of a conductor run."
    for expected in (
        "Build the CLI",
        "- src/cli.py",
        "A (core): Build the token types",
        "promises: core.types.Token",
        "conductor/r/B",
        "mcp__bus__request_review",
        "Do not `git push`",
    ):
        assert expected in text, expected


def test_the_planner_prompt_states_the_goal_and_the_limit() -> None:
    text = Prompts().render("planner.md.j2", goal="A REST API [with auth]", max_sessions=3)
    assert "Goal: A REST API [with auth]" in text and "3 or fewer" in text


def test_a_repository_template_overrides_the_packaged_one(tmp_path: Path) -> None:
    override = tmp_path / ".conductor" / "templates"
    override.mkdir(parents=True)
    (override / "planner.md.j2").write_text("Ours: {{ goal }}\n")
    assert Prompts(tmp_path).render("planner.md.j2", goal="x", max_sessions=2) == "Ours: x\n"
    assert "Your task" in Prompts(tmp_path).render(
        "session.md.j2", workstream=A, others=[], goal="g", branch="b"
    )  # the others still come from the package


def test_an_undefined_variable_fails_loudly() -> None:
    with pytest.raises(TemplateFailed, match="'max_sessions' is undefined"):
        Prompts().render("planner.md.j2", goal="x")


def test_a_broken_override_names_its_line(tmp_path: Path) -> None:
    override = tmp_path / ".conductor" / "templates"
    override.mkdir(parents=True)
    (override / "conflict.md.j2").write_text("ok\n{% if %}\n")
    with pytest.raises(TemplateFailed, match="line 2"):
        Prompts(tmp_path).render("conflict.md.j2")


@pytest.mark.parametrize(
    ("name", "values"),
    [
        (
            "reviewer.md.j2",
            {
                "role": "reviewer",
                "requester": "A",
                "goal": "g",
                "task": "t",
                "commit": "abc",
                "diff": "+x",
            },
        ),
        (
            "conflict.md.j2",
            {
                "branch": "b",
                "integration": "conductor/r",
                "conflicts": ["x.py"],
                "foreign": [],
                "check": "pytest -q",
                "check_output": "",
            },
        ),
        ("planner-retry.md.j2", {"errors": ["A and B both own src"]}),
        ("claude-md.md.j2", {}),
    ],
)
def test_every_packaged_template_renders(name: str, values: dict[str, object]) -> None:
    assert Prompts().render(name, **values).strip()


REVIEWER = {"requester": "A", "goal": "g", "task": "t", "commit": "abc", "diff": "+x"}


def test_no_prompt_carries_a_line_for_the_stand_in_alone() -> None:
    """What a real model is sent is written for it: the stand-in tells the role otherwise."""
    prompts = Prompts()
    sent = [
        prompts.render("planner.md.j2", goal="g", max_sessions=2),
        prompts.render("session.md.j2", workstream=B, others=[A], goal="g", branch="b"),
        prompts.render("reviewer.md.j2", role="A-review", **REVIEWER),
    ]
    assert not [text for text in sent if "conductor-role" in text]


def test_the_stand_in_tells_each_session_s_role_from_what_the_model_is_told() -> None:
    prompts = Prompts()
    session = prompts.render("session.md.j2", workstream=B, others=[A], goal="g", branch="b")
    reviewer = prompts.render("reviewer.md.j2", role="A-review", **REVIEWER)
    planner = prompts.render("planner.md.j2", goal="g", max_sessions=2)
    assert (named := named_role(session)) is not None and named.role == "B"
    assert (named := named_role(reviewer)) is not None and named.role == "A-review"
    assert (named := named_role(planner, PLAN_SCHEMA)) is not None and named.role == "planner"
    assert named_role(planner) is None  # the planner is the session asked for the plan
