"""The script format, and how a request finds its role, chapter and step."""

from __future__ import annotations

import pytest

from conductor.errors import InvalidInput
from conductor.standin.conversation import read_conversation
from conductor.standin.script import (
    MissingVariable,
    Position,
    Step,
    parse_script,
    replay,
    substitute,
)

SYNC_UNTIL = """
roles:
  B:
    - - tool: mcp__bus__sync
        input: {}
        until: "types exported"
        max: 3
      - tool: Bash
        input: {command: "git commit -qam x"}
        on_result:
          - {contains: "nothing to commit", goto: report}
      - tool: Write
        input: {file_path: "${cwd}/x", content: "x"}
      - text: "Done."
        label: report
"""


Chapter = tuple[Step, ...]


@pytest.fixture
def chapter() -> Chapter:
    return parse_script(SYNC_UNTIL).roles["B"][0]


def test_a_fresh_chapter_starts_at_its_first_step(chapter: Chapter) -> None:
    assert replay(chapter, []) == Position(0, 1)


def test_until_calls_the_step_again_while_the_result_lacks_the_text(chapter: Chapter) -> None:
    assert replay(chapter, ["nothing new"]) == Position(0, 2)
    assert replay(chapter, ["nothing new", "MSG from=A: types exported"]) == Position(1, 1)


def test_until_gives_up_after_max_calls_and_goes_on(chapter: Chapter) -> None:
    assert replay(chapter, ["no", "no"]) == Position(0, 3)
    assert replay(chapter, ["no", "no", "no"]) == Position(1, 1)


def test_on_result_jumps_to_the_labelled_step(chapter: Chapter) -> None:
    assert replay(chapter, ["types exported", "nothing to commit"]) == Position(3, 1)


def test_without_a_matching_branch_the_next_step_follows(chapter: Chapter) -> None:
    assert replay(chapter, ["types exported", "[main 1a2b] x"]) == Position(2, 1)


def test_past_the_last_step_the_chapter_is_over(chapter: Chapter) -> None:
    position = replay(chapter, ["types exported", "ok", "written", "extra"])
    assert position.step(chapter) is None


def test_the_role_comes_from_the_marker_in_the_first_prompt() -> None:
    script = parse_script("roles: {A: [[{text: a}]], B: [[{text: b}]]}")
    assert script.role_for("<system-reminder>x</system-reminder>\nconductor-role: B\nGo") == "B"
    assert script.role_for("conductor-role: Z") is None
    assert script.role_for("no marker") is None


def test_a_single_role_script_answers_prompts_without_a_marker() -> None:
    assert parse_script("roles: {only: [[{text: a}]]}").role_for("anything") == "only"


def test_a_default_role_answers_prompts_without_a_marker() -> None:
    script = parse_script("roles: {A: [[{text: a}]], default: [[{text: d}]]}")
    assert script.role_for("anything") == "default"


def test_variables_are_substituted_in_every_string_of_the_input() -> None:
    value = {"file_path": "${cwd}/src/x.py", "list": ["${role}", 3], "n": "ch${chapter}"}
    assert substitute(value, {"cwd": "/w", "role": "A", "chapter": "2"}) == {
        "file_path": "/w/src/x.py",
        "list": ["A", 3],
        "n": "ch2",
    }


def test_an_unknown_variable_value_is_refused_not_made_empty() -> None:
    with pytest.raises(MissingVariable):
        substitute({"file_path": "${cwd}/x"}, {"cwd": None})


def test_braces_in_file_contents_are_left_alone() -> None:
    code = "def f():\n    return {'a': 1}  # {not a variable}\n"
    assert substitute({"content": code}, {"cwd": "/w"}) == {"content": code}


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("roles: [", "not valid YAML"),
        ("[1, 2]", "a mapping with a 'roles' mapping"),
        ("roles: {A: []}", "non-empty list of chapters"),
        ("roles: {A: [[]]}", "non-empty list of steps"),
        ("roles: {A: [[{input: {}}]]}", "a tool or a text"),
        ("roles: {A: [[{tool: Bash, colour: red}]]}", "unknown keys ['colour']"),
        ("roles: {A: [[{tool: Bash, on_result: [{contains: x, goto: nowhere}]}]]}", "nowhere"),
        ("roles: {A: [[{text: x, until: y}]]}", "belong to tool steps"),
        ("roles: {A: [[{tool: Bash, fault: {status: 529, when: 1}}]]}", "fault is"),
        ("roles: {A: [[{text: a}]]}\nextra: 1", "unknown top-level keys"),
    ],
)
def test_a_bad_script_is_refused_saying_where(text: str, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=None) as caught:
        parse_script(text, source="s.yaml")
    assert complaint in str(caught.value)
    assert str(caught.value).startswith("s.yaml")
    assert "\n" not in str(caught.value)


def test_a_fault_may_be_given_as_a_bare_status() -> None:
    step = parse_script("roles: {A: [[{tool: Bash, fault: 529}]]}").roles["A"][0][0]
    assert step.fault is not None and step.fault.status == 529 and step.fault.times is None


def test_json_scripts_load_too() -> None:
    script = parse_script('{"roles": {"A": [[{"text": "from JSON"}]]}}')
    assert script.roles["A"][0][0].text == "from JSON"


# ------------------------------------------------------------------------------ reading requests


def user(*blocks: dict[str, object]) -> dict[str, object]:
    return {"role": "user", "content": list(blocks)}


def text(t: str) -> dict[str, object]:
    return {"type": "text", "text": t}


def result(t: str) -> dict[str, object]:
    return {"type": "tool_result", "tool_use_id": "t", "content": t}


ASSISTANT = {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "X"}]}


def test_a_request_reads_as_prompt_count_and_results_since_the_last_prompt() -> None:
    body = {
        "messages": [
            user(
                text("<system-reminder>\n - Primary working directory: /w/a\n</system-reminder>"),
                text("conductor-role: A\nGo"),
            ),
            ASSISTANT,
            user(result("one")),
            {"role": "assistant", "content": [{"type": "text", "text": "done"}]},
            user(text("second prompt")),
            ASSISTANT,
            user(result("two")),
            {"role": "system", "content": "PostToolUse:Write hook additional context: hi"},
            ASSISTANT,
            user(result("three"), text("<system-reminder>x</system-reminder>")),
        ]
    }
    conv = read_conversation(body)
    assert conv.prompts == 2
    assert conv.results == ["two", "three"]
    assert conv.cwd == "/w/a"
    assert "conductor-role: A" in conv.first_prompt


def test_an_interruption_note_is_not_a_prompt() -> None:
    body = {
        "messages": [
            user(text("go")),
            ASSISTANT,
            user(text("[Request interrupted by user for tool use]")),
        ]
    }
    assert read_conversation(body).prompts == 1


def test_the_working_directory_may_come_from_the_system_prompt() -> None:
    body = {
        "system": [{"type": "text", "text": "Working directory: /srv/x"}],
        "messages": [user(text("go"))],
    }
    assert read_conversation(body).cwd == "/srv/x"


def test_the_readme_example_script_is_valid_and_branches_as_described() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", readme, re.DOTALL)
    assert example is not None
    chapter = parse_script(example.group(1), source="README").roles["B"][0]
    denied = ["nothing", "types exported", "Write denied: src/cli.py is claimed by A"]
    assert chapter[replay(chapter, denied).index].label == "give-up"
