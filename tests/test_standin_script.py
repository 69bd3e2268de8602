"""The script format, and how a request finds its role, chapter and step."""

from __future__ import annotations

import pytest

from conductor.errors import InvalidInput
from conductor.plan import PLAN_SCHEMA
from conductor.standin.conversation import read_conversation
from conductor.standin.playing import MissingVariable, Position, replay, substitute
from conductor.standin.script import Fault, Step, parse_script

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


def test_a_marker_quoted_inside_a_prompt_does_not_decide_the_role() -> None:
    """A goal, a task, a diff under review or a CLAUDE.md may quote the marker (conductor's own
    tests do): only a prompt that begins with it names its role by it."""
    script = parse_script("roles: {planner: [[{text: p}]], A: [[{text: a}]], B: [[{text: b}]]}")
    task = "You are session B (cli) of a conductor run.\nTask: make 'conductor-role: A' work"
    assert script.role_for(task) == "B"
    assert script.role_for("Goal: support conductor-role: A lines", PLAN_SCHEMA) == "planner"
    reminder = "<system-reminder>conductor-role: A</system-reminder>\n"
    assert script.role_for(reminder + "You are session B (cli) of a conductor run.") == "B"


def test_a_session_s_role_comes_from_the_sentence_that_tells_the_model_who_it_is() -> None:
    script = parse_script("roles: {A: [[{text: a}]], B: [[{text: b}]], B-review: [[{text: r}]]}")
    told = "<system-reminder>\nYou are session A (x) of a conductor run.\n</system-reminder>\n"
    assert script.role_for(told + "You are session B (cli) of a conductor run.\nGoal: g") == "B"
    assert script.role_for("You review session B's work for the conductor run") == "B-review"
    assert script.role_for("Please, You are session B (cli) of a conductor run.") is None
    assert script.role_for(told) is None  # a reminder (a CLAUDE.md, say) tells no role
    assert script.role_for("conductor-role: A\nYou are session B (cli) of a conductor run.") == "A"


def test_the_planner_is_the_request_asked_for_the_plan() -> None:
    script = parse_script("roles: {planner: [[{text: p}]], A: [[{text: a}]]}")
    assert script.role_for("Plan this.", PLAN_SCHEMA) == "planner"
    assert script.role_for("Plan this.", {"properties": {"answer": {}}}) is None
    assert script.role_for("conductor-role: A\nPlan this.", PLAN_SCHEMA) == "A"  # named wins


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
        ("roles: [", "s.yaml is not valid YAML: line 1, column 9: expected the node content"),
        ("[1, 2]", "s.yaml: expected a mapping with a 'roles' mapping"),
        ("usage: {}", "s.yaml: no 'roles'"),
        ("roles: {}", "s.yaml: roles: no roles"),
        ("roles: {A: []}", "s.yaml: roles.A: expected a non-empty list of chapters"),
        ("roles: {A: [[]]}", "s.yaml: roles.A[0]: expected a non-empty list of steps"),
        ("roles: {A: [[{input: {}}]]}", "s.yaml: roles.A[0][0]: a step has a tool"),
        (
            "roles: {A: [[{tool: Bash, colour: red}]]}",
            "roles.A[0][0].colour: unknown key of a step",
        ),
        ("roles: {A: [[{tool: Bash, on_result: [{contains: x, goto: nowhere}]}]]}", "'nowhere'"),
        ("roles: {A: [[{text: x, until: y}]]}", "roles.A[0][0].until: belongs to a tool step"),
        ("roles: {A: [[{tool: Bash, fault: {status: 529, when: 1}}]]}", "fault.when: unknown key"),
        ("roles: {A: [[{text: a}]]}\nextra: 1", "s.yaml: extra: unknown top-level key"),
        ("roles: {A: [[{text: a}]], A: [[{text: b}]]}", "the key 'A' appears twice"),
    ],
)
def test_a_bad_script_is_refused_saying_where(text: str, complaint: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_script(text, source="s.yaml")
    assert complaint in str(caught.value)
    assert str(caught.value).startswith("s.yaml")
    assert "\n" not in str(caught.value)


# Each malformed field of a step, and the one line that names it (steps counted from 0).
STEP = "roles: {{A: [[{{tool: Bash}}, {step}, {{text: done}}]]}}"
BAD_STEPS = [
    (
        "{tool: Bash, until: x, max: many}",
        "[0][1].max: expected a whole number of calls, 1 or more, got 'many'",
    ),
    (
        "{tool: Bash, until: x, max: 0}",
        "[0][1].max: expected a whole number of calls, 1 or more, got 0",
    ),
    ("{tool: Bash, max: 3}", "[0][1].max: belongs with until"),
    (
        "{tool: Bash, delay: soon}",
        "[0][1].delay: expected a number of seconds, 0 or more, got 'soon'",
    ),
    ("{tool: Bash, delay: -1}", "[0][1].delay: expected a number of seconds, 0 or more, got -1"),
    ("{tool: Bash, delay: .inf}", "[0][1].delay: expected a number of seconds, 0 or more, got inf"),
    (
        "{tool: Bash, delay: true}",
        "[0][1].delay: expected a number of seconds, 0 or more, got true",
    ),
    ("{tool: Bash, label: [a]}", "[0][1].label: expected a label name, got ['a']"),
    ("{tool: Bash, until: [x]}", "[0][1].until: expected a text to wait for, got ['x']"),
    (
        "{tool: Bash, fault: {status: bad}}",
        "[0][1].fault.status: expected an HTTP error status from 400 to 599, got 'bad'",
    ),
    (
        "{tool: Bash, fault: {status: 200}}",
        "[0][1].fault.status: expected an HTTP error status from 400 to 599, got 200",
    ),
    (
        "{tool: Bash, fault: 700}",
        "[0][1].fault: expected an HTTP error status from 400 to 599, got 700",
    ),
    (
        "{tool: Bash, fault: oops}",
        "[0][1].fault: expected an HTTP error status from 400 to 599, or a mapping",
    ),
    ("{tool: Bash, fault: {}}", "[0][1].fault: a fault has a status"),
    ("{tool: Bash, fault: {times: 2}}", "[0][1].fault: a fault has a status"),
    (
        "{tool: Bash, fault: {status: 529, drop: true}}",
        "[0][1].fault: a fault has a status or drop: true, not both",
    ),
    ("{tool: Bash, fault: {drop: 1}}", "[0][1].fault.drop: expected true or false, got 1"),
    (
        "{tool: Bash, fault: {status: 529, times: 0}}",
        "[0][1].fault.times: expected a whole number of answers, 1 or more, got 0",
    ),
    (
        "{tool: Bash, fault: {stauts: 529}}",
        "[0][1].fault.stauts: unknown key of a fault; did you mean status?",
    ),
    (
        "{tool: Bash, usage: {input_tokens: -1}}",
        "[0][1].usage.input_tokens: expected a whole number of tokens, 0 or more, got -1",
    ),
    (
        "{tool: Bash, usage: {output_tokens: lots}}",
        "[0][1].usage.output_tokens: expected a whole number of tokens",
    ),
    (
        "{tool: Bash, usage: {inptu_tokens: 1}}",
        "[0][1].usage.inptu_tokens: unknown key of usage; did you mean input_tokens?",
    ),
    (
        "{tool: Bash, usage: 5}",
        "[0][1].usage: expected a mapping of input_tokens and output_tokens, got 5",
    ),
    ("{tool: 5}", "[0][1].tool: expected a tool name, got 5"),
    ("{tool: ''}", "[0][1].tool: expected a tool name, got ''"),
    ("{text: 42}", "[0][1].text: expected a string (quote it), got 42"),
    (
        "{tool: Bash, input: ls}",
        "[0][1].input: expected a mapping of the tool's arguments, got 'ls'",
    ),
    ("{text: x, input: {}}", "[0][1].input: belongs to a tool step"),
    ("{text: x, on_result: []}", "[0][1].on_result: belongs to a tool step"),
    ("{tool: Bash, untill: x}", "[0][1].untill: unknown key of a step; did you mean until?"),
    (
        "{tool: Bash, on_result: {contains: x, goto: y}}",
        "[0][1].on_result: expected a list of {contains, goto}",
    ),
    ("{tool: Bash, on_result: [{contains: x}]}", "[0][1].on_result[0]: no goto"),
    (
        "{tool: Bash, on_result: [x]}",
        "[0][1].on_result[0]: expected a mapping {contains: TEXT, goto: LABEL}",
    ),
    (
        "{tool: Bash, on_result: [{contains: '', goto: y}]}",
        "[0][1].on_result[0].contains: expected a text to look for",
    ),
    (
        "{tool: Bash, on_result: [{contains: x, go: y}]}",
        "[0][1].on_result[0].go: unknown key of an on_result branch; did you mean goto?",
    ),
    (
        "{tool: Bash, on_result: [{contains: x, goto: y}]}",
        "[0][1].on_result[0].goto: 'y' names no label of this chapter",
    ),
    ("5", "[0][1]: expected a step: a mapping with a tool (and its input) or a text, got 5"),
]


@pytest.mark.parametrize(("step", "complaint"), BAD_STEPS, ids=[s for s, _ in BAD_STEPS])
def test_each_malformed_step_field_is_named_with_its_path(step: str, complaint: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_script(STEP.format(step=step), source="script.yaml")
    assert str(caught.value).startswith("script.yaml: roles.A" + complaint)
    assert "\n" not in str(caught.value)


def test_a_label_used_twice_is_named_where_it_repeats() -> None:
    text = "roles: {A: [[{tool: Bash, label: x}, {tool: Bash, label: x}]]}"
    with pytest.raises(
        InvalidInput, match=r"roles\.A\[0\]\[1\]\.label: 'x' is the label of step \[0\]"
    ):
        parse_script(text)


def test_a_step_no_path_reaches_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"roles\.A\[0\]\[1\]: never reached"):
        parse_script("roles: {A: [[{text: done}, {text: never}]]}")
    # a goto reaches it: valid
    parse_script(
        "roles: {A: [[{tool: Bash, on_result: [{contains: x, goto: b}]}, {text: a},"
        " {text: b, label: b}]]}"
    )


@pytest.mark.parametrize(
    ("name", "shown"), [("my role", "roles['my role']"), ("a/b", "roles['a/b']")]
)
def test_a_role_name_the_marker_cannot_name_is_refused(name: str, shown: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_script({"roles": {name: [[{"text": "x"}]]}}, source="s")
    assert str(caught.value).startswith(f"s: {shown}: a role name is letters")


def test_a_request_for_a_missing_role_says_what_to_add() -> None:
    script = parse_script("roles: {A: [[{text: a}]], A-review: [[{text: r}]]}")
    planner = script.why_no_role("conductor-role: planner\n\nYou are planning")
    assert "add roles.planner" in planner and "StructuredOutput" in planner
    assert "it has A, A-review" in planner and "--plan FILE" in planner
    reviewer = script.why_no_role("conductor-role: B-review\n")
    assert "add roles.B-review" in reviewer and "mcp__bus__review_verdict" in reviewer
    worker = script.why_no_role("conductor-role: C\n")
    assert "add roles.C, a workstream of the plan" in worker
    unmarked = script.why_no_role("hello")
    assert "does not begin with 'conductor-role: NAME'" in unmarked and "named default" in unmarked
    told = script.why_no_role("You are session C (x) of a conductor run.\n")
    assert "says 'You are session C (x) of a conductor run'" in told and "add roles.C," in told
    reviews = script.why_no_role("You review session C's work for the conductor run")
    assert "add roles.C-review, the agent reviewer of C" in reviews
    planning = script.why_no_role("Plan.", PLAN_SCHEMA)
    assert "it asks for the plan" in planning and "add roles.planner" in planning


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
    assert conv.schema is None


def test_a_request_offering_structured_output_reads_its_schema() -> None:
    tools = [
        {"name": "Read", "input_schema": {}},
        {"name": "StructuredOutput", "input_schema": PLAN_SCHEMA},
    ]
    conv = read_conversation({"messages": [user(text("Plan."))], "tools": tools})
    assert conv.schema == PLAN_SCHEMA


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


@pytest.mark.parametrize(
    "kw", [{"status": "bad"}, {"status": 200}, {}, {"status": 529, "drop": True}]
)
def test_a_fault_built_in_python_is_checked_too(kw: dict[str, object]) -> None:
    """A status the server could not send would drop the connection without a word."""
    with pytest.raises(InvalidInput, match="a fault"):
        Fault(**kw)  # type: ignore[arg-type]
