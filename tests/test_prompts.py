"""Prompt templates: rendered with their values, overridable per repository, loud on holes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.plan import Workstream
from conductor.prompts import Prompts, TemplateFailed

A = Workstream("A", "core", "Build the token types", ("src/core",), (), "core.types.Token")
B = Workstream("B", "cli", "Build the CLI", ("src/cli.py",), ("A",), "")


def test_the_session_prompt_carries_task_ownership_team_and_protocol() -> None:
    text = Prompts().render(
        "session.md.j2", workstream=B, others=[A], goal="Ship it", branch="conductor/r/B"
    )
    assert text.splitlines()[0] == "conductor-role: B"
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
    assert text.startswith("conductor-role: planner")
    assert "Goal: A REST API [with auth]" in text and "3 or fewer" in text


def test_a_repository_template_overrides_the_packaged_one(tmp_path: Path) -> None:
    override = tmp_path / ".conductor" / "templates"
    override.mkdir(parents=True)
    (override / "planner.md.j2").write_text("conductor-role: planner\nOurs: {{ goal }}\n")
    assert Prompts(tmp_path).render("planner.md.j2", goal="x", max_sessions=2) == (
        "conductor-role: planner\nOurs: x\n"
    )
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
