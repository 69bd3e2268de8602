"""The planner: a real, read-only Claude Code session answering with structured output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import pytest
from support import Cli, clean_env, one_line_error

from conductor.credentials import NO_CREDENTIALS
from conductor.plan import PlanInvalid
from conductor.planner import make_plan
from conductor.session import SessionConfig
from conductor.standin.harness import STANDIN_MODEL, Offline

pytestmark = pytest.mark.anyio

Standin = Callable[[str], AbstractAsyncContextManager[Offline]]

GOOD = """{workstreams: [
  {id: A, name: core, task: "Token types", owns: ["src/core/"], interface: "core.Token"},
  {id: B, name: cli, task: "The CLI", owns: ["src/cli.py"], depends_on: [A]}]}"""
OVERLAPPING = """{workstreams: [
  {id: A, name: core, task: "Everything", owns: ["src/"]},
  {id: B, name: cli, task: "The CLI", owns: ["src/cli.py"]}]}"""

PLANNER = f"""
roles:
  planner:
    - - tool: Glob
        input: {{pattern: "**/*"}}
      - tool: Write
        input: {{file_path: "${{cwd}}/planner-was-here.txt", content: "no"}}
      - tool: StructuredOutput
        input: {OVERLAPPING}
      - text: "Planned."
    - - tool: StructuredOutput
        input: {GOOD}
      - text: "Planned again."
"""
STUBBORN = PLANNER.replace(GOOD, OVERLAPPING)


def config(offline: Offline) -> SessionConfig:
    return SessionConfig(
        env=offline.env, config_dir=offline.repo / ".conductor" / "claude", model=STANDIN_MODEL
    )


async def test_a_refused_plan_is_retried_once_with_its_errors(standin: Standin) -> None:
    async with standin(PLANNER) as offline:
        plan = (await make_plan("Ship a CLI", offline.repo, config(offline), max_sessions=3)).plan
        assert [w.id for w in plan.workstreams] == ["A", "B"]
        assert plan.get("A").owns == ("src/core",)
        retry = [r for r in offline.server.requests if r.answer.startswith("planner chapter 2")]
        assert "A and B both own src / src/cli.py" in json.dumps(retry[0].body["messages"])


async def test_the_planner_cannot_write(standin: Standin) -> None:
    async with standin(PLANNER) as offline:
        await make_plan("Ship a CLI", offline.repo, config(offline), max_sessions=3)
        assert not (offline.repo / "planner-was-here.txt").exists()
        first = offline.server.requests[0].body
        assert {t["name"] for t in first["tools"]} >= {"Read", "Glob", "Grep", "StructuredOutput"}
        assert not {"Write", "Edit", "Bash"} & {t["name"] for t in first["tools"]}


async def test_a_second_refusal_stops_with_the_errors(standin: Standin) -> None:
    async with standin(STUBBORN) as offline:
        with pytest.raises(PlanInvalid, match="A and B both own"):
            await make_plan("Ship a CLI", offline.repo, config(offline), max_sessions=3)


async def test_plan_only_prints_the_plan_and_saves_it(standin: Standin) -> None:
    async with standin(PLANNER) as offline:
        out = offline.repo / "plan.json"
        done = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "conductor",
                "run",
                "Ship a CLI",
                "--plan-only",
                "--out",
                str(out),
            ],
            cwd=offline.repo,
            env={**clean_env(), **offline.env},
            check=False,
        )
        printed = done.stdout.decode()
        assert done.returncode == 0, done.stderr.decode()
        assert "src/core" in printed and "core.Token" in printed
        assert f"plan saved to {out}" in printed
        saved = json.loads(out.read_text())
        assert [w["id"] for w in saved["workstreams"]] == ["A", "B"]


def test_a_given_plan_file_is_validated_without_a_planner(cli: Cli, repo: Path) -> None:
    plan = repo / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "workstreams": [
                    {"id": "A", "name": "a", "task": "t", "owns": ["a/"]},
                    {"id": "B", "name": "b", "task": "t", "owns": ["b/"], "depends_on": ["A"]},
                ]
            }
        )
    )
    shown = cli.ok("run", "x", "--plan-only", "--plan", str(plan), "--json").json()
    assert [w["id"] for w in shown["workstreams"]] == ["A", "B"]
    plan.write_text(
        json.dumps(
            {
                "workstreams": [
                    {"id": "A", "name": "a", "task": "t", "owns": ["a/"], "depends_on": ["B"]},
                    {"id": "B", "name": "b", "task": "t", "owns": ["b/"], "depends_on": ["A"]},
                ]
            }
        )
    )
    line = one_line_error(cli.fails("run", "x", "--plan-only", "--plan", str(plan)))
    assert "dependency cycle: A -> B -> A" in line


def test_a_plan_file_that_does_not_parse_is_a_one_line_error(cli: Cli, repo: Path) -> None:
    (repo / "plan.json").write_text("{nope")
    assert "is not JSON" in one_line_error(
        cli.fails("run", "x", "--plan-only", "--plan", "plan.json")
    )


def test_planning_without_any_credentials_is_a_one_line_error(repo: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in clean_env().items() if not k.startswith(("ANTHROPIC", "CLAUDE_"))}
    env["HOME"] = str(tmp_path / "home")  # nobody logged in to Claude Code there either
    done = subprocess.run(
        [sys.executable, "-m", "conductor", "run", "x", "--plan-only"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {NO_CREDENTIALS}"


def test_run_refuses_a_dirty_tree(cli: Cli, repo: Path) -> None:
    (repo / "README.md").write_text("edited, not committed\n")
    line = one_line_error(cli.fails("run", "Build X", ANTHROPIC_API_KEY="k"))
    assert "uncommitted changes" in line
    assert (repo / "README.md").read_text() == "edited, not committed\n"  # nothing lost
