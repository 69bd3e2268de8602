"""A model per role: the planner, the sessions, the reviewers, a merge conflict's turn and a
workstream's own model, each checked in the model the stand-in was asked for."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import GIT_IDENTITY, Cli, git, one_line_error

from conductor.config import Config, parse_config
from conductor.errors import InvalidInput
from conductor.plan import PlanInvalid, parse_plan
from conductor.planner import Planned, Planning
from conductor.run.launch import RunAsked, start_run
from conductor.session import (
    author_model,
    refuse_same_review_model,
    reviewer_model,
    role_model,
)
from conductor.standin.harness import STANDIN_MODEL, Offline
from conductor.store import Store
from conductor.supervisor import RunSummary, Supervisor

Standin = Callable[[str], AbstractAsyncContextManager[Offline]]

# Names the CLI takes offline (it checks none against a list: the stand-in answers any).
# (It does rename some: claude-opus-4-1 is asked for as the newest opus.)
PLANNER = "claude-opus-4-6"
REVIEWER = "claude-haiku-4-5"
RESOLVER = "claude-opus-4-5"
WORKER = STANDIN_MODEL

# ------------------------------------------------------------------------------ fast


def test_every_role_is_the_sessions_model_unless_set() -> None:
    plain = Config(model="sonnet")
    assert [role_model(plain, r) for r in ("planner", "reviewer", "resolver")] == ["sonnet"] * 3
    assert role_model(Config(), "planner") is None  # no model at all: the CLI's default
    own = Config(model="sonnet", planner_model="opus", reviewer_model="haiku")
    assert (role_model(own, "planner"), role_model(own, "reviewer")) == ("opus", "haiku")


def test_the_model_settings_are_read_from_conductor_toml() -> None:
    config = parse_config(
        {
            "planner_model": "opus",
            "reviewer_model": "haiku",
            "resolver_model": "opus",
            "cross_review": True,
        }
    )
    assert (config.planner_model, config.reviewer_model, config.resolver_model) == (
        "opus",
        "haiku",
        "opus",
    )
    assert config.cross_review is True
    with pytest.raises(InvalidInput, match="cross_review: expected true or false"):
        parse_config({"cross_review": "yes"})
    with pytest.raises(InvalidInput, match="reviewer_model: expected a model name"):
        parse_config({"reviewer_model": 3})


def test_a_workstreams_own_model_is_its_sessions() -> None:
    config = Config(model="sonnet")
    assert author_model(config, "opus") == "opus"
    assert author_model(config, "") == "sonnet"


def test_cross_review_with_one_model_for_both_is_refused_in_one_line() -> None:
    with pytest.raises(InvalidInput, match="cross_review: the reviewers would run on sonnet"):
        refuse_same_review_model(Config(model="sonnet", cross_review=True))
    with pytest.raises(InvalidInput, match="the CLI's default model"):
        refuse_same_review_model(Config(cross_review=True))
    refuse_same_review_model(Config(model="sonnet", reviewer_model="sonnet"))  # not asked for
    refuse_same_review_model(Config(model="sonnet", reviewer_model="opus", cross_review=True))
    for nobody in ("human", "auto"):  # no agent reviews: nothing to refuse
        refuse_same_review_model(Config(model="sonnet", cross_review=True, review=nobody))


def test_conductor_run_refuses_cross_review_on_one_model_before_planning(
    cli: Cli, repo: Path
) -> None:
    """One line, exit 2, and no planner started (no API is reachable here at all)."""
    (repo / "conductor.toml").write_text('model = "sonnet"\ncross_review = true\n')
    line = one_line_error(cli.fails("run", "a goal"))
    assert line == (
        "error: cross_review: the reviewers would run on sonnet, like the sessions: set"
        " reviewer_model (or --reviewer-model) to another model, or turn cross_review off"
    )
    refused = one_line_error(cli.fails("run", "a goal", "--reviewer-model", "sonnet"))
    assert refused.startswith("error: cross_review: the reviewers would run on sonnet")
    # The flag is over the file: without cross review the run goes on to its next check.
    other = one_line_error(cli.fails("run", "a goal", "--no-cross-review"))
    assert "cross_review" not in other


def test_the_plan_only_hint_runs_the_plan_with_the_same_models(cli: Cli, repo: Path) -> None:
    plan = repo / "plan.json"
    plan.write_text(json.dumps({"workstreams": [{"id": "A", "name": "a", "task": "a"}]}))
    flags = ["--model", "sonnet", "--reviewer-model", "opus", "--resolver-model", "opus"]
    said = cli.ok("run", "a goal", "--plan-only", "--plan", str(plan), *flags, "--cross-review")
    hint = said.out.split("run it with: ", 1)[1]
    assert " ".join([*flags[2:], "--cross-review"]) in hint and "--model sonnet" in hint


def test_cross_review_reviews_an_author_on_the_reviewer_model_on_the_sessions_model() -> None:
    config = Config(model="sonnet", reviewer_model="opus", cross_review=True)
    assert reviewer_model(config, "sonnet") == "opus"
    assert reviewer_model(config, "opus") == "sonnet"  # the workstream named the reviewer's
    same = Config(model="sonnet", reviewer_model="opus")
    assert reviewer_model(same, "opus") == "opus"  # without cross_review: as configured


def test_a_plan_may_name_a_workstreams_model(tmp_path: Path) -> None:
    plan = parse_plan(
        {
            "workstreams": [
                {"id": "A", "name": "a", "task": "a", "owns": ["a"], "model": " opus "},
                {"id": "B", "name": "b", "task": "b", "owns": ["b"]},
            ]
        },
        tmp_path,
    )
    assert [w.model for w in plan.workstreams] == ["opus", ""]
    assert plan.to_json()["workstreams"][0]["model"] == "opus"
    with pytest.raises(PlanInvalid, match=r"workstreams\[0\]\.model: expected a model name"):
        parse_plan({"workstreams": [{"id": "A", "name": "a", "task": "a", "model": 4}]}, tmp_path)


def test_a_stored_run_without_the_new_settings_reads_as_before() -> None:
    """A run stored before these settings (its spec's config lacks them) resumes as it ran."""
    old = {"model": "sonnet", "max_parallel": 2}
    config = parse_config(old)
    assert config.planner_model == config.reviewer_model == config.resolver_model == ""
    assert role_model(config, "reviewer") == "sonnet" and not config.cross_review


# ------------------------------------------------------------------------------ a real run

# Whichever of A and B reaches the merge gate second conflicts in README.md and resolves it in
# its second chapter; its reviewer rejects that, and its third chapter fixes it.
RESOLVE = """
    - - tool: Bash
        input: {command: "git merge -X ours --no-edit \\"$CONDUCTOR_INTEGRATION_BRANCH\\""}
      - tool: mcp__bus__request_review
        input: {}
      - text: "Merged the integration branch in."
"""
FIX = """
    - - tool: Bash
        input: {command: "echo fixed >> README.md && git commit -qam fix"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "Fixed."
"""
REJECT = """
    - - tool: mcp__bus__review_verdict
        input: {verdict: reject, comments: "say it is fixed"}
      - text: "Rejected."
"""
APPROVE = """
    - - tool: mcp__bus__review_verdict
        input: {verdict: approve, comments: "fine"}
      - text: "Approved."
"""
PLAN = {
    "workstreams": [
        # A names the reviewer model as its own: with cross_review its reviewer runs on `model`.
        {"id": "A", "name": "a", "task": "a", "owns": ["a.py"], "model": REVIEWER},
        {"id": "B", "name": "b", "task": "b", "owns": ["b.py"]},
    ]
}
SCRIPT = f"""
roles:
  planner:
    - - tool: StructuredOutput
        input: {json.dumps(PLAN)}
      - text: "Planned."
  A:
    - - tool: Bash
        input:
          command: "echo 'A was here' > README.md && touch a.py && git add -A && git commit -qm a"
      - tool: mcp__bus__request_review
        input: {{}}
      - text: "A asked."
{RESOLVE}
{FIX}
  B:
    - - tool: Bash
        input:
          command: "echo 'B was here' > README.md && touch b.py && git add -A && git commit -qm b"
      - tool: mcp__bus__request_review
        input: {{}}
      - text: "B asked."
{RESOLVE}
{FIX}
  A-review:
{APPROVE}
{REJECT}
{APPROVE}
  B-review:
{APPROVE}
{REJECT}
{APPROVE}
"""


def _models(offline: Offline) -> dict[str, set[str]]:
    """role and chapter (as the stand-in labels its answers) -> the models asked for."""
    asked: dict[str, set[str]] = {}
    for request in offline.server.requests:
        if request.answer == "model check":  # the CLI tries a model it is switched to
            continue
        who = " ".join(request.answer.split(" ")[:3])  # "A chapter 2"
        asked.setdefault(who, set()).add(str(request.body["model"]))
    return asked


@pytest.mark.anyio
async def test_each_role_asks_for_its_own_model(
    standin: Standin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`conductor run` as the command line starts it: the planner, each session (one on
    the plan's own model), each reviewer (cross_review) and the merge conflict's turn."""
    async with standin(SCRIPT) as offline:
        repo = offline.repo
        for name, value in {**offline.env, **GIT_IDENTITY}.items():
            monkeypatch.setenv(name, value)
        (repo / "conductor.toml").write_text('checks = []\nreview = "agent"\n')
        git(repo, "add", "conductor.toml")
        git(repo, "commit", "-qm", "conductor.toml")
        asked = RunAsked(
            "two files and a README",
            model=WORKER,
            planner_model=PLANNER,
            reviewer_model=REVIEWER,
            resolver_model=RESOLVER,
            cross_review=True,
        )

        async def show(planning: Planning, config: Config) -> Planned:
            return await planning(lambda step: None)

        async def drive(supervisor: Supervisor, after: int) -> RunSummary:
            return await supervisor.run()

        with anyio.fail_after(180):
            launched = await start_run(asked, cwd=repo, db=None, show_planning=show, drive=drive)
        summary = launched.summary
        assert summary is not None and summary.ok, summary and summary.outcomes
        models = _models(offline)
        assert models["planner chapter 1"] == {PLANNER}
        assert models["A chapter 1"] == {REVIEWER}  # the plan's own model for A
        assert models["B chapter 1"] == {WORKER}
        assert models["A-review chapter 1"] == {WORKER}  # not its author's model
        assert models["B-review chapter 1"] == {REVIEWER}
        conflicted = [who for who in ("A", "B") if f"{who} chapter 2" in models]
        assert len(conflicted) == 1, models
        who = conflicted[0]
        own = REVIEWER if who == "A" else WORKER
        assert models[f"{who} chapter 2"] == {RESOLVER}  # the conflict's turn
        assert models[f"{who} chapter 3"] == {own}  # and back for the rejection's
        async with Store.open(repo / ".conductor" / "conductor.db") as store:
            events = await store.list_events(summary.run_id, session=who)
        switched = [e.payload["model"] for e in events if e.kind == "session.model"]
        assert switched == [RESOLVER, own]
        spec = await _spec(repo, summary.run_id)  # what a resume rebuilds the run from
        assert (spec["config"]["planner_model"], spec["config"]["resolver_model"]) == (
            PLANNER,
            RESOLVER,
        )
        assert [w["model"] for w in spec["plan"]["workstreams"]] == [REVIEWER, ""]


async def _spec(repo: Path, run_id: str) -> dict[str, Any]:
    """The run as stored: what a resume reads its settings from."""
    async with Store.open(repo / ".conductor" / "conductor.db") as store:
        run = await store.get_run(run_id)
    return dict(run.spec)
