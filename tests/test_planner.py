"""The planner: a real, read-only Claude Code session answering with structured output."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import anyio.abc
import pytest
from rich.console import Console
from support import Cli, clean_env, make_repo, one_line_error

from conductor import planner
from conductor.cli import planning
from conductor.costs import Spend
from conductor.credentials import NO_CREDENTIALS
from conductor.plan import PlanInvalid, parse_plan
from conductor.planner import Planned, PlannerFailed, Steps, make_plan
from conductor.session import SessionConfig
from conductor.standin.harness import STANDIN_MODEL, Offline, session_env

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


def config(offline: Offline, **env: str) -> SessionConfig:
    return SessionConfig(
        env={**offline.env, **env},
        config_dir=offline.repo / ".conductor" / "claude",
        model=STANDIN_MODEL,
    )


def retrying(env: dict[str, str]) -> dict[str, str]:
    """A session environment in which the CLI retries as it does for a user (the stand-in's
    sets CLAUDE_CODE_MAX_RETRIES=0, for tests that need no retries)."""
    return {k: v for k, v in env.items() if k != "CLAUDE_CODE_MAX_RETRIES"}


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


# ------------------------------------------------------------------------------ the plan-only hint

WORKERS = {
    ws: [
        [
            {"tool": "Write", "input": {"file_path": f"${{cwd}}/{path}", "content": "x = 1\n"}},
            {"tool": "Bash", "input": {"command": "git add -A && git commit -qm work"}},
            {"tool": "mcp__bus__request_review", "input": {}},
            {"text": "Done."},
        ]
    ]
    for ws, path in (("A", "src/core/token.py"), ("B", "src/cli.py"))
}


async def test_the_plan_only_hint_runs_that_plan_when_pasted(standin: Standin) -> None:
    """`--plan-only` ends saying how to run the plan; pasted into a shell, that line runs it,
    with the options given (a plan saved into the working tree, untracked, is no change)."""
    script = {"roles": {**yaml_roles(PLANNER), **WORKERS}}
    async with standin(script) as offline:
        env = {**clean_env(), **offline.env}
        options = ["--out", "plan.json", "--review", "auto", "--max-parallel", "1"]
        first = await anyio.run_process(
            [sys.executable, "-m", "conductor", "run", "Ship a CLI", "--plan-only", *options],
            cwd=offline.repo,
            env=env,
            check=False,
        )
        assert first.returncode == 0, first.stderr.decode()
        said = "plan saved to plan.json; run it with: "
        (hint,) = [
            line.removeprefix(said)
            for line in first.stdout.decode().splitlines()
            if line.startswith(said)
        ]
        words = shlex.split(hint)
        assert words[words.index("run") + 1] == "Ship a CLI"  # the goal is in it
        assert {"--review", "auto", "--max-parallel", "1"} <= set(words)
        done = await anyio.run_process(
            ["bash", "-c", hint], cwd=offline.repo, env=env, check=False, stderr=subprocess.STDOUT
        )
        assert done.returncode == 0, done.stdout.decode()
        assert "everything merged" in done.stdout.decode()


def yaml_roles(script: str) -> dict[str, object]:
    import yaml

    roles = yaml.safe_load(script)["roles"]
    assert isinstance(roles, dict)
    return roles


# ------------------------------------------------------------------------------ an API that fails


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_api_fails_within_30_seconds_saying_why(tmp_path: Path) -> None:
    """Nothing listens where the API should be: the CLI would retry for three minutes, in
    silence. Planning says it started, shows how long it has taken, and ends within 30 s."""
    repo = make_repo(tmp_path / "repo")
    url = f"http://127.0.0.1:{closed_port()}"
    env = retrying({**clean_env(), **session_env(url, tmp_path / "claude")})
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "conductor", "run", "Ship a CLI", "--plan-only", "--no-live"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - began
    assert done.returncode == 2, done.stdout + done.stderr
    assert took < 30
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith("error: ")
    assert f"no answer from the API at {url}: connection refused" in line
    shown = done.stdout.splitlines()
    assert shown[0].startswith("planning: a read-only Claude Code session reads the repository")
    assert any(
        re.fullmatch(r"planning, 1\d s: connection refused: trying again.*", s) for s in shown
    )


async def test_an_api_that_refuses_fails_at_once_saying_why(standin: Standin) -> None:
    script = {"roles": {"planner": [[{"text": "x", "fault": {"status": 401}}]]}}
    async with standin(script) as offline:
        began = time.monotonic()
        done = await anyio.run_process(
            [sys.executable, "-m", "conductor", "run", "Ship a CLI", "--plan-only"],
            cwd=offline.repo,
            env=retrying({**clean_env(), **offline.env}),
            check=False,
        )
        assert time.monotonic() - began < 15
        assert done.returncode == 2
        (line,) = done.stderr.decode().strip().splitlines()
        assert line == (
            f"error: the API at {offline.server.base_url} refused the planner:"
            " HTTP 401 (authentication_failed)"
        )


async def test_an_overloaded_api_is_given_up_on_before_patience_runs_out(
    standin: Standin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planner, "PATIENCE", 3.0)
    steps: list[str] = []
    script = {"roles": {"planner": [[{"text": "x", "fault": {"status": 529}}]]}}
    async with standin(script) as offline:
        settings = dataclasses.replace(config(offline), env=retrying(offline.env))
        began = time.monotonic()
        with pytest.raises(PlannerFailed) as failed:
            await make_plan("x", offline.repo, settings, max_sessions=3, on_step=steps.append)
        assert time.monotonic() - began < 10
    assert re.fullmatch(
        r"the planner got no answer from the API at \S+: HTTP 529 \(overloaded\)"
        r" \(\d tries in \d s\)",
        str(failed.value),
    )
    assert steps and steps[0].startswith("HTTP 529 (overloaded): trying again in")


async def test_an_api_that_never_answers_is_given_up_on(
    standin: Standin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection taken and never answered: no retry to watch, only the time."""
    monkeypatch.setattr(planner, "PATIENCE", 2.0)

    async def hold(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    script = {"roles": {"planner": [[{"text": "x"}]]}}
    async with standin(script) as offline, listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, hold)
        settings = config(offline, ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port}")
        with pytest.raises(PlannerFailed) as failed:
            await make_plan("x", offline.repo, settings, max_sessions=3)
        tg.cancel_scope.cancel()
    assert str(failed.value) == (
        f"the planner got no answer from the API at http://127.0.0.1:{port} in 2 s:"
        " it accepts connections, but sends nothing back"
    )


# ------------------------------------------------------------------------------ planning, shown


def planned(repo: Path) -> Planned:
    plan = parse_plan(
        {"workstreams": [{"id": "A", "name": "a", "task": "t", "owns": ["a/"]}]}, repo
    )
    return Planned(plan, Spend(3, 0.25))


async def test_planning_shows_a_line_every_tick_without_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "TICK", 0.3)
    text = io.StringIO()
    console = Console(file=text, force_terminal=False, width=200)

    async def plan(on_step: Steps) -> Planned:
        on_step("Read README.md")
        await anyio.sleep(0.4)
        return planned(tmp_path)

    await planning.plan_shown(plan, console=console, live=False, max_sessions=4, model=None)
    assert text.getvalue().splitlines() == [
        "planning: a read-only Claude Code session reads the repository and splits the goal"
        " into at most 4 workstreams",
        "planning, 0 s: Read README.md",
        "planned 1 workstream in 0 s ($0.2500)",
    ]


async def test_planning_shows_a_live_line_on_a_terminal(tmp_path: Path) -> None:
    text = io.StringIO()
    console = Console(file=text, force_terminal=True, width=200)

    async def plan(on_step: Steps) -> Planned:
        await anyio.sleep(0.7)
        on_step("Glob **/*.py")
        await anyio.sleep(1.2)
        return planned(tmp_path)

    await planning.plan_shown(plan, console=console, live=True, max_sessions=4, model="opus")
    shown = text.getvalue()
    assert shown.startswith("planning (opus): a read-only Claude Code session")
    assert "planning, 1 s: Glob **/*.py" in shown  # redrawn in place while it plans
    assert shown.rstrip().endswith("planned 1 workstream in 2 s ($0.2500)")
