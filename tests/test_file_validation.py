"""Every file conductor reads — stand-in scripts, plans, conductor.toml — is refused, when
malformed, in one line on stderr naming the file and the field, with exit 2 and no
traceback; an unknown key gets the nearest known one, a number out of range the range."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from support import Cli, one_line_error
from test_standin_script import BAD_STEPS, STEP

# ------------------------------------------------------------------------------ scripts


@pytest.mark.parametrize(("step", "complaint"), BAD_STEPS, ids=[s for s, _ in BAD_STEPS])
def test_model_check_names_each_malformed_script_field(
    cli: Cli, repo: Path, step: str, complaint: str
) -> None:
    (repo / "script.yaml").write_text(STEP.format(step=step) + "\n")
    line = one_line_error(cli.fails("model", "check", "script.yaml"))
    assert line.startswith("error: script.yaml: roles.A" + complaint), line


SCRIPT_FILES = [
    ("roles:\n  A:\n    - - tool: Bash\n        until: x\n        max: many\n", "max"),
    ("roles:\n  A:\n    - - tool: Bash\n        delay: soon\n", "delay"),
    ("roles:\n  A:\n    - - tool: Bash\n        label: [a]\n", "label"),
    ("roles:\n  A:\n    - - tool: Bash\n        fault: {status: bad}\n", "fault.status"),
]


@pytest.mark.parametrize(("text", "key"), SCRIPT_FILES, ids=[k for _, k in SCRIPT_FILES])
@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_malformed_script_is_one_line_as_a_process_too(
    process_cli: Cli, repo: Path, text: str, key: str, command: str
) -> None:
    (repo / "script.yaml").write_text(text)
    line = one_line_error(process_cli.fails("model", command, "script.yaml"))
    assert line.startswith(f"error: script.yaml: roles.A[0][0].{key}: expected ")
    assert "Traceback" not in process_cli("model", command, "script.yaml").err


# ------------------------------------------------------------------------------ conductor.toml

CONFIG_CASES = [
    ("max_paralel = 2", "max_paralel: unknown setting; did you mean max_parallel?"),
    ("[enviroment]\nX = '1'", "enviroment: unknown setting (known: model, max_parallel,"),
    ("model = 3", 'model: expected a model name such as "sonnet", got 3'),
    ("max_parallel = 0", "max_parallel: expected a whole number of sessions from 1 to 100, got 0"),
    ("max_parallel = 'two'", "max_parallel: expected a whole number of sessions from 1 to 100"),
    ("max_sessions = 101", "max_sessions: expected a whole number of workstreams from 1 to 100"),
    ("checks = 'pytest'", "checks: expected a list of command lines, got 'pytest'"),
    ("checks = ['']", "checks[0]: expected a command line, got ''"),
    ('checks = ["pytest \'x"]', "checks[0]: cannot be split as a shell would split it"),
    ("review = 'vibes'", "review: expected one of agent, peer, human, auto, got 'vibes'"),
    ("review = 'agnet'", "review: expected one of agent, peer, human, auto, got 'agnet'; did you"),
    ("max_turns = 0", "max_turns: expected a whole number of turns from 1 to 10000, got 0"),
    (
        "max_usd_per_session = 0",
        "max_usd_per_session: expected an amount in US dollars more than 0",
    ),
    ("max_usd_per_run = -1", "max_usd_per_run: expected an amount in US dollars more than 0"),
    ("max_usd_per_run = true", "max_usd_per_run: expected an amount in US dollars more than 0"),
    ("stall_seconds = -5", "stall_seconds: expected a number of seconds from 1 to 86400, got -5"),
    ("stall_seconds = nan", "stall_seconds: expected a number of seconds from 1 to 86400, got nan"),
    ("retries = -1", "retries: expected a whole number of restarts from 0 to 20, got -1"),
    ("retries = 1.5", "retries: expected a whole number of restarts from 0 to 20, got 1.5"),
    (
        "backoff_seconds = 0",
        "backoff_seconds: expected a number of seconds more than 0 and at most",
    ),
    ("backoff_seconds = 601", "backoff_seconds: expected a number of seconds more than 0 and at"),
    ("copy_files = '.env'", "copy_files: expected a list of paths, got '.env'"),
    ("copy_files = ['']", "copy_files[0]: expected a non-empty string, got ''"),
    ("setup = 3", "setup: expected a command line, got 3"),
    ('setup = "npm \'ci"', "setup: cannot be split as a shell would split it"),
    ("sandbox = 'yes'", "sandbox: expected true or false, got 'yes'"),
    ("allowed_domains = 'pypi.org'", "allowed_domains: expected a list of domain names"),
    ("allowed_domains = ['https://pypi.org']", "allowed_domains[0]: expected a domain name"),
    ("env = 3", "env: expected a table of NAME = value, got 3"),
    ("env = {PORT = true}", "env.PORT: expected a string (or a number), got true"),
    ("[env]\n\"A B\" = '1'", "env['A B']: an environment variable's name is letters"),
    ("max_parallel = [", "is not valid TOML: "),
]


@pytest.mark.parametrize(("toml", "complaint"), CONFIG_CASES, ids=[t for t, _ in CONFIG_CASES])
def test_each_bad_setting_of_conductor_toml_is_named(
    cli: Cli, repo: Path, toml: str, complaint: str
) -> None:
    (repo / "conductor.toml").write_text(toml + "\n")
    (repo / "plan.json").write_text(json.dumps(GOOD_PLAN))
    line = one_line_error(cli.fails("run", "goal", "--plan-only", "--plan", "plan.json"))
    assert line.startswith(f"error: {repo / 'conductor.toml'}"), line
    assert complaint in line


def test_a_bad_conductor_toml_is_one_line_as_a_process_too(process_cli: Cli, repo: Path) -> None:
    (repo / "conductor.toml").write_text("stall_seconds = -5\n")
    line = one_line_error(process_cli.fails("run", "goal", "--plan-only"))
    assert line == (
        f"error: {repo / 'conductor.toml'}: stall_seconds: expected a number of seconds"
        " from 1 to 86400, got -5"
    )


# ------------------------------------------------------------------------------ plans

GOOD_PLAN = {"workstreams": [{"id": "A", "name": "a", "task": "do a", "owns": ["a"]}]}
A = "{id: A, name: a, task: do a, owns: [a]}"
B = "{id: B, name: b, task: do b, owns: [b], depends_on: [A]}"

PLAN_CASES = [
    ("[1]", "plan.yaml: expected a plan: a mapping with a 'workstreams' list, got [1]"),
    ("{}", "plan.yaml: no 'workstreams'"),
    ("workstreams: []", "plan.yaml: workstreams: the plan has no workstreams"),
    ("workstream: []", "plan.yaml: workstream: unknown key of a plan; did you mean workstreams?"),
    ("workstreams: {A: 1}", "plan.yaml: workstreams: expected a list of workstreams"),
    ("workstreams: [5]", "plan.yaml: workstreams[0]: expected a workstream: a mapping of id,"),
    (
        f"workstreams: [{A}, {{id: B, name: b, task: t, owns: [b], depends: [A]}}]",
        "plan.yaml: workstreams[1].depends: unknown key of a workstream; did you mean depends_on?",
    ),
    ("workstreams: [{name: a, task: t, owns: [a]}]", "plan.yaml: workstreams[0]: no id"),
    ("workstreams: [{id: 1, name: a, task: t}]", "workstreams[0].id: expected an id such as A"),
    ("workstreams: [{id: 1x, name: a, task: t}]", "workstreams[0].id: bad id '1x'"),
    ("workstreams: [{id: planner, name: a, task: t}]", "workstreams[0].id: the id 'planner' is a"),
    ("workstreams: [{id: A, task: t, owns: [a]}]", "workstreams[0].name: A has no name"),
    ("workstreams: [{id: A, name: a, task: '', owns: [a]}]", "workstreams[0].task: expected a non"),
    (
        "workstreams: [{id: A, name: a, task: t, owns: a}]",
        "workstreams[0].owns: expected a list of",
    ),
    (
        "workstreams: [{id: A, name: a, task: t, owns: [../x]}]",
        "workstreams[0].owns[0]: A owns ../x,",
    ),
    (
        "workstreams: [{id: A, name: a, task: t, interface: 3}]",
        "workstreams[0].interface: expected a",
    ),
    (
        f"workstreams: [{A}, {{id: B, name: b, task: t, owns: [b], depends_on: [Z]}}]",
        "workstreams[1].depends_on[0]: B depends on Z, which is not in the plan (it has A, B)",
    ),
    (
        f"workstreams: [{A}, {{id: B, name: b, task: t, owns: [b], depends_on: [a]}}]",
        "workstreams[1].depends_on[0]: B depends on a, which is not in the plan; did you mean A?",
    ),
    (
        f"workstreams: [{A}, {{id: B, name: b, task: t, owns: [b], depends_on: [B]}}]",
        "workstreams[1].depends_on[0]: B depends on itself",
    ),
    (
        "workstreams: [{id: A, name: a, task: t, depends_on: [B]}, "
        "{id: B, name: b, task: t, depends_on: [A]}]",
        "workstreams: dependency cycle: A -> B -> A",
    ),
    (
        f"workstreams: [{A}, {{id: B, name: b, task: t, owns: [a/x]}}]",
        "workstreams[1].owns[0]: A and B both own a / a/x",
    ),
    (f"workstreams: [{A}, {A}]", "workstreams[1].id: workstream id A is used twice"),
    (
        "workstreams: [" + ", ".join(f"{{id: {w}, name: n, task: t}}" for w in "ABCDE") + "]",
        "workstreams: 5 workstreams, more than the limit of 4 (max_sessions)",
    ),
    ("workstreams: [", "plan.yaml is not valid YAML: line 2, column 1: expected the node"),
]


@pytest.mark.parametrize(("yaml", "complaint"), PLAN_CASES, ids=[y[:60] for y, _ in PLAN_CASES])
def test_each_bad_field_of_a_plan_is_named(cli: Cli, repo: Path, yaml: str, complaint: str) -> None:
    (repo / "plan.yaml").write_text(yaml + "\n")
    line = one_line_error(cli.fails("run", "goal", "--plan-only", "--plan", "plan.yaml"))
    assert line.startswith("error: plan.yaml"), line
    assert complaint in line


def test_a_json_plan_that_does_not_parse_says_where(cli: Cli, repo: Path) -> None:
    (repo / "plan.json").write_text('{"workstreams": [\n  {"id": "A",}]}\n')
    line = one_line_error(cli.fails("run", "goal", "--plan-only", "--plan", "plan.json"))
    assert line.startswith("error: plan.json is not JSON: line 2, column 14: ")


def test_a_yaml_plan_runs_like_a_json_one(cli: Cli, repo: Path) -> None:
    (repo / "plan.yaml").write_text(f"workstreams:\n  - {A}\n  - {B}\n")
    done = cli.ok(
        "run", "goal", "--plan-only", "--plan", "plan.yaml", "--out", "saved.json", "--json"
    )
    assert [w["id"] for w in done.json()["workstreams"]] == ["A", "B"]
    assert json.loads((repo / "saved.json").read_text())["workstreams"][1]["depends_on"] == ["A"]


def test_what_run_plan_only_json_prints_is_a_plan_file(cli: Cli, repo: Path) -> None:
    (repo / "plan.yaml").write_text(f"workstreams:\n  - {A}\n")
    printed = cli.ok("run", "goal", "--plan-only", "--plan", "plan.yaml", "--json").out
    (repo / "again.json").write_text(printed)
    cli.ok("run", "goal", "--plan-only", "--plan", "again.json")


# ------------------------------------------------------------------------------ the goal


@pytest.mark.parametrize("goal", ["", "   "])
def test_an_empty_goal_is_refused(cli: Cli, repo: Path, goal: str) -> None:
    (repo / "plan.json").write_text(json.dumps(GOOD_PLAN))
    line = one_line_error(cli.fails("run", goal, "--plan-only", "--plan", "plan.json"))
    assert line.startswith("error: the goal is empty: say what to build")


# ------------------------------------------------------------------------------ model check

WALKTHROUGH = Path(__file__).parent.parent / "examples" / "standin-walkthrough" / "script.yaml"


def test_model_check_lists_each_roles_chapters_and_their_tools(cli: Cli) -> None:
    out = cli.ok("model", "check", str(WALKTHROUGH)).out.splitlines()
    assert out[0] == f"{WALKTHROUGH}: valid: 5 roles, 7 chapters"
    rows = [line.split() for line in out[1:]]
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("planner", "1", "3"),
        ("A", "1", "5"),
        ("A", "2", "5"),
        ("A-review", "1", "3"),
        ("A-review", "2", "2"),
        ("B", "1", "5"),
        ("B-review", "1", "2"),
    ]
    assert out[2].endswith("Write, Bash, mcp__bus__request_review")
    assert not [line for line in out if line.startswith("note:")]  # ready for conductor run


def test_model_check_notes_what_a_run_would_miss(cli: Cli, repo: Path) -> None:
    (repo / "s.yaml").write_text(
        "roles:\n"
        "  A:\n    - - text: done\n"
        "  B-review:\n    - - tool: Write\n        input: {}\n      - text: no verdict\n"
    )
    done = cli.ok("model", "check", "s.yaml", "--json").json()
    assert done["valid"] and [c["role"] for c in done["chapters"]] == ["A", "B-review"]
    notes = done["notes"]
    assert notes[0].startswith("no planner role: `conductor run GOAL` starts a planner")
    assert any("roles.B-review[0][0]: a reviewer is offered only" in n for n in notes)
    assert any("roles.B-review[0]: no mcp__bus__review_verdict call" in n for n in notes)


def test_model_check_notes_the_plans_missing_roles_and_a_refused_plan(cli: Cli, repo: Path) -> None:
    (repo / "s.yaml").write_text(
        "roles:\n  planner:\n"
        f"    - - tool: StructuredOutput\n        input: {{workstreams: [{A}, {B}]}}\n"
        "      - text: planned\n"
        "    - - tool: StructuredOutput\n        input: {workstreams: []}\n      - text: again\n"
        "  A:\n    - - text: done\n"
    )
    notes = [
        n for n in cli.ok("model", "check", "s.yaml").out.splitlines() if n.startswith("note:")
    ]
    assert "note: the plan's workstream B has no role: add roles.B" in notes
    assert any(n.startswith('note: no roles.A-review: with review = "agent"') for n in notes)
    assert any(
        n.startswith("note: roles.planner[1][0].input: conductor would refuse this plan")
        for n in notes
    )


def test_model_check_of_a_missing_file_is_one_line(cli: Cli) -> None:
    assert "cannot read script" in one_line_error(cli.fails("model", "check", "nope.yaml"))


# ------------------------------------------------------------------------------ serve -- COMMAND


def test_model_serve_runs_a_command_against_the_stand_in_with_its_exit_status(
    process_cli: Cli, repo: Path
) -> None:
    (repo / "s.yaml").write_text("roles: {A: [[{text: served}]]}\n")
    probe = (
        "import json, os, sys, urllib.request;"
        "body = json.dumps({'messages': [{'role': 'user', 'content': 'hi'}]}).encode();"
        "url = os.environ['ANTHROPIC_BASE_URL'] + '/v1/messages';"
        "answer = json.load(urllib.request.urlopen(urllib.request.Request(url, body)));"
        "print(answer['content'][0]['text'], os.environ['ANTHROPIC_API_KEY'],"
        " os.environ['ENABLE_TOOL_SEARCH'], 'CLAUDE_CODE_OAUTH_TOKEN' in os.environ);"
        "sys.exit(3)"
    )
    done = process_cli(
        "model", "serve", "s.yaml", "--", sys.executable, "-c", probe, CLAUDE_CODE_OAUTH_TOKEN="x"
    )
    assert done.code == 3, done.err
    assert done.out.split() == ["served", "stand-in", "false", "False"]
    assert done.err.startswith("serving s.yaml on http://127.0.0.1:")


def test_model_serve_of_a_command_that_is_not_there_is_one_line(
    process_cli: Cli, repo: Path
) -> None:
    (repo / "s.yaml").write_text("roles: {A: [[{text: served}]]}\n")
    done = process_cli.fails("model", "serve", "s.yaml", "--", "no-such-command-here")
    assert done.err.strip().splitlines()[-1] == (
        "error: cannot run no-such-command-here: No such file or directory"
    )
