"""Cost before and during a run (issue 18, point 2) and the plan put to a person first
(point 5): the estimate `--plan-only` prints, `max_cost` read and checked, the ceiling's
watch (a warning at 80 %, the run stopped at 100 %, turns in flight counted at list price),
a resume that raises the ceiling, and `--confirm`'s run / edit / quit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import Cli, one_line_error

from conductor.bus import Bus, create_run
from conductor.cli.plumbing import EXIT_INTERRUPTED
from conductor.config import Config, parse_config
from conductor.costs import Spend, usage_cost
from conductor.errors import InvalidInput
from conductor.events import CostCeiling, EventKind, read
from conductor.models import RunState
from conductor.plan import parse_plan
from conductor.run.ceiling import CostWatch, resumed_config
from conductor.run.control import Control
from conductor.run.estimate import TYPICAL_CALLS, TYPICAL_REVIEW_CALLS, call_cost, estimate
from conductor.standin.harness import STANDIN_MODEL, offline
from conductor.store import Store

TWO = {
    "workstreams": [
        {"id": "A", "name": "a", "task": "do a", "owns": ["a"]},
        {"id": "B", "name": "b", "task": "do b", "owns": ["b"], "depends_on": ["A"]},
    ]
}


def plan_of(data: dict[str, Any], tmp_path: Path) -> Any:
    return parse_plan(data, tmp_path)


# ------------------------------------------------------------------------------ settings


def test_max_cost_is_off_by_default_and_pauses_when_set() -> None:
    assert Config().max_cost == 0 and Config().on_max_cost == "pause"
    read = parse_config({"max_cost": 12.5, "on_max_cost": "stop"})
    assert (read.max_cost, read.on_max_cost) == (12.5, "stop")


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"max_cost": -1}, "max_cost: expected an amount in US dollars (0: no ceiling), 0 or"),
        ({"max_cost": "5"}, "max_cost: expected an amount in US dollars"),
        ({"on_max_cost": "halt"}, "on_max_cost: expected one of pause, stop, got 'halt'"),
    ],
)
def test_a_wrong_ceiling_setting_is_named(data: dict[str, Any], complaint: str) -> None:
    with pytest.raises(InvalidInput, match=r".*") as refused:
        parse_config(data)
    assert complaint in str(refused.value)


# ------------------------------------------------------------------------------ the estimate


def test_the_estimate_is_a_range_from_typical_to_max_turns(tmp_path: Path) -> None:
    config = Config(model="sonnet", review="human", max_turns=100, max_usd_per_session=1000)
    found = estimate(plan_of(TWO, tmp_path), config)
    per_call, priced = call_cost("sonnet")
    assert priced == "sonnet"
    assert found.low == pytest.approx(2 * TYPICAL_CALLS * per_call)
    assert found.high == pytest.approx(2 * 100 * per_call)
    assert (found.calls_low, found.calls_high) == (2 * TYPICAL_CALLS, 200)


def test_the_estimate_says_what_it_assumes(tmp_path: Path) -> None:
    found = estimate(plan_of(TWO, tmp_path), Config(max_turns=77), Spend(3, 0.25))
    said = "\n".join(found.assumptions)
    assert "max_turns (77) calls per session" in said
    assert f"low: {TYPICAL_CALLS} calls per workstream" in said
    assert "planning: $0.25, what the planner spent" in said
    assert "at list price (sonnet $" in said  # an empty model is priced as the CLI's default


def test_agent_reviews_and_a_stronger_model_cost_more(tmp_path: Path) -> None:
    plan = plan_of(TWO, tmp_path)
    by_person = estimate(plan, Config(review="human"))
    by_agent = estimate(plan, Config(review="agent"))
    assert by_agent.low > by_person.low and by_agent.high > by_person.high
    on_opus = dict(
        TWO, workstreams=[dict(TWO["workstreams"][0], model="opus"), TWO["workstreams"][1]]
    )
    assert estimate(plan_of(on_opus, tmp_path), Config(review="human")).low > by_person.low


def test_the_ceiling_caps_the_high_end_and_says_so(tmp_path: Path) -> None:
    found = estimate(plan_of(TWO, tmp_path), Config(max_cost=2.0))
    assert found.high == 2.0 and found.capped_by == "max_cost $2.00"
    assert "the high end is the run's limit, max_cost $2.00" in found.assumptions


def test_plan_only_prints_the_plan_and_its_estimate(cli: Cli, repo: Path) -> None:
    (repo / "plan.json").write_text(json.dumps(TWO))
    printed = cli.ok("run", "goal", "--plan-only", "--plan", "plan.json", "--max-cost", "50").out
    lines = printed.splitlines()
    estimate_line = next(line for line in lines if line.startswith("estimate: $"))
    assert "API calls), assuming:" in estimate_line
    assert any("max_turns (200) calls per session" in line for line in lines)
    assert any("planning: nothing, the plan was given" in line for line in lines)
    assert "--max-cost 50.0" in printed  # the hint to run it keeps the ceiling
    assert not (repo / ".conductor" / "conductor.db").exists()  # nothing started


# ------------------------------------------------------------------------------ the watch


async def _run(tmp_path: Path, store: Store, planner: float = 0.0) -> Bus:
    spec: dict[str, Any] = {"plan": TWO, "config": {}}
    if planner:
        spec["planner"] = Spend(1, planner).to_json()
    bus = await create_run(
        store, goal="g", repo_root=tmp_path, base_ref=None, base_commit=None, spec=spec
    )
    await bus.register([("A", "a"), ("B", "b")])
    return bus


def _response(message_id: str, input_tokens: int) -> dict[str, Any]:
    """An assistant message's payload as the CLI streams it: the response's usage so far."""
    usage = {"input_tokens": input_tokens, "output_tokens": 1}
    return {
        "content": [],
        "model": "claude-sonnet-4-5",
        "usage": usage,
        "message_id": message_id,
    }


async def _kinds(bus: Bus, kind: EventKind) -> list[CostCeiling]:
    return [p for e in await bus.events() if e.kind == kind if (p := read(e, CostCeiling))]


@pytest.mark.anyio
async def test_turns_in_flight_count_warn_at_80_and_stop_the_run_at_100(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "c.db") as store:
        bus = await _run(tmp_path, store, planner=0.05)
        control = Control()
        watch = CostWatch(bus, control, Config(max_cost=1.0))
        await watch.begin()
        call = usage_cost("claude-sonnet-4-5", {"input_tokens": 100_000, "output_tokens": 1})
        assert call is not None and call == pytest.approx(0.300015)
        await bus.record("A", EventKind.SESSION_PROMPT, "go")
        await bus.record("A", EventKind.SDK_ASSISTANT, "x", _response("m1", 100_000))
        await bus.record("A", EventKind.SDK_ASSISTANT, "y", _response("m1", 100_000))  # same one
        assert not await watch.look() and watch.spent == pytest.approx(0.05 + call)
        await bus.record("B", EventKind.SDK_ASSISTANT, "z", _response("m2", 100_000))
        assert not await watch.look()  # 0.65 spent: under 80 %
        assert not await _kinds(bus, EventKind.RUN_COST_WARNING)
        await bus.record("B", EventKind.SDK_ASSISTANT, "z", _response("m3", 100_000))
        assert not await watch.look()  # 0.95 spent: warned, not reached
        warned = await _kinds(bus, EventKind.RUN_COST_WARNING)
        assert len(warned) == 1 and warned[0].max_cost == 1.0
        assert not control.stopping
        await bus.record("A", EventKind.SDK_ASSISTANT, "w", _response("m4", 100_000))
        assert await watch.look()  # at a tool boundary: the run's task then stops the run
        assert not control.stopping
        with anyio.fail_after(10):
            await watch()
        assert control.stopping and control.scope.cancel_called
        assert control.asked_by == "cost ceiling $1.00 reached"
        assert len(await _kinds(bus, EventKind.RUN_COST_WARNING)) == 1  # once
        reached = await _kinds(bus, EventKind.RUN_COST_CEILING)
        assert len(reached) == 1 and reached[0].spent_usd >= 1.0


@pytest.mark.anyio
async def test_a_turns_result_replaces_its_estimate(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "c.db") as store:
        bus = await _run(tmp_path, store)
        watch = CostWatch(bus, Control(), Config(max_cost=10.0))
        await watch.begin()
        await bus.record("A", EventKind.SESSION_PROMPT, "go")
        await bus.record("A", EventKind.SDK_ASSISTANT, "x", _response("m1", 100_000))
        await watch.look()
        result = {"num_turns": 1, "cost_usd": 0.5, "is_error": False, "subtype": "success"}
        await bus.record("A", EventKind.SDK_RESULT, "ok", result)
        await watch.look()
        assert watch.spent == pytest.approx(0.5)


@pytest.mark.anyio
async def test_on_max_cost_stop_ends_the_run_failed_not_interrupted(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "c.db") as store:
        bus = await _run(tmp_path, store, planner=2.0)
        control = Control()
        watch = CostWatch(bus, control, Config(max_cost=1.0, on_max_cost="stop"))
        await watch.begin()
        with anyio.fail_after(10):
            await watch()  # the run's task: it looks, and stops the run
        assert control.stopping
        assert control.ended == "cost ceiling $1.00 reached (on_max_cost = stop)"
        assert not control.interrupted


@pytest.mark.anyio
async def test_a_watch_without_a_ceiling_never_looks(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "c.db") as store:
        bus = await _run(tmp_path, store, planner=50.0)
        control = Control()
        watch = CostWatch(bus, control, Config())
        with anyio.fail_after(5):
            await watch()  # returns at once
        assert not await watch.look() and not control.stopping


# ------------------------------------------------------------------------------ resume


@pytest.mark.anyio
async def test_resume_needs_a_ceiling_above_what_was_spent(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "c.db") as store:
        bus = await _run(tmp_path, store, planner=3.0)
        config = Config(max_cost=2.0)
        with pytest.raises(InvalidInput, match=r"has spent \$3.00, its whole cost ceiling"):
            await resumed_config(bus, config, None)
        with pytest.raises(InvalidInput, match=r"--max-cost \$3.00 is not more than run"):
            await resumed_config(bus, config, 3.0)
        raised = await resumed_config(bus, config, 4.0)
        assert raised.max_cost == 4.0
        # A later resume without --max-cost keeps the ceiling set last.
        assert (await resumed_config(bus, config, None)).max_cost == 4.0
        assert (await resumed_config(bus, config, 0)).max_cost == 0  # 0: no ceiling


# ------------------------------------------------------------------------------ end to end

# Every response of the stand-in costs $0.30 at claude-sonnet-4-5's list price (100k input
# tokens; the CLI prices it the same): a ceiling of $1.00 is crossed by A's fourth call.
CALL_TOKENS = {"input_tokens": 100_000, "output_tokens": 6}
COMMIT = "git add -A && (git diff --cached --quiet || git commit -qm '${role}: work')"
WRITE = {"file_path": "${cwd}/core.py", "content": "def greet():\n    return 'hello'\n"}
E2E_SCRIPT: dict[str, Any] = {
    "usage": CALL_TOKENS,
    "roles": {
        "A": [
            [
                {"tool": "Bash", "input": {"command": "echo one"}},
                {"tool": "Bash", "input": {"command": "echo two"}},
                {"tool": "Bash", "input": {"command": "echo three"}},
                {"tool": "Write", "input": WRITE},  # its call crosses the ceiling
                {"tool": "Bash", "input": {"command": COMMIT}},  # never asked for
                {"tool": "mcp__bus__request_review", "input": {"note": "core"}},
                {"text": "A is done."},
            ],
            [  # resumed with a higher ceiling: the work again, idempotently
                {"tool": "Write", "input": WRITE},
                {"tool": "Bash", "input": {"command": COMMIT}},
                {"tool": "mcp__bus__request_review", "input": {"note": "core"}},
                {"text": "A is done."},
            ],
        ]
    },
}
E2E_PLAN = {"workstreams": [{"id": "A", "name": "core", "task": "core", "owns": ["core.py"]}]}


async def _conductor(off: Any, *args: str, log: str) -> tuple[int, str]:
    """`python -m conductor ARGS` in the repository to its end: (exit status, its output)."""
    from support import clean_env

    with anyio.fail_after(180):
        done = await anyio.run_process(
            [sys.executable, "-m", "conductor", *args],
            cwd=off.repo,
            env=clean_env(**off.env),
            check=False,
            stderr=subprocess.STDOUT,
        )
    said = done.stdout.decode(errors="replace")
    (off.repo.parent / log).write_text(said)
    return done.returncode, said


def run_id_in(said: str) -> str:
    """The run's id, from the summary table's title `Run ID`."""
    return next(line.split()[1] for line in said.splitlines() if line.startswith("Run "))


def _stand_in_cost(off: Any) -> float:
    """What every whole answer of the stand-in costs at list price."""
    return sum(usage_cost(STANDIN_MODEL, r.usage) or 0.0 for r in off.server.requests if r.usage)


@pytest.mark.anyio
async def test_a_run_pauses_at_its_ceiling_and_resumes_with_a_higher_one(tmp_path: Path) -> None:
    from support import git

    async with offline(E2E_SCRIPT, tmp_path / "ceiling") as off:
        (off.repo / "conductor.toml").write_text(
            f'model = "{STANDIN_MODEL}"\nchecks = []\nreview = "auto"\nstall_seconds = 60\n'
        )
        git(off.repo, "add", "conductor.toml")
        git(off.repo, "commit", "-qm", "settings")
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps(E2E_PLAN))
        status, said = await _conductor(
            off, "run", "x", "--plan", str(plan), "--no-live", "--max-cost", "1", log="run.log"
        )
        assert status == EXIT_INTERRUPTED, said
        call = usage_cost(STANDIN_MODEL, CALL_TOKENS)
        assert call is not None
        # Never more than the ceiling and the call in flight (one live session here).
        spent = _stand_in_cost(off)
        assert 1.0 <= spent <= 1.0 + call + 1e-6, (spent, said)
        answered = [r.answer for r in off.server.requests]
        assert not any("A chapter 1 step 5" in a for a in answered), answered
        # Once, at $0.90 as a rule (the third call's response, at a tool boundary of it).
        assert said.count("of the $1.00 ceiling (max_cost)") == 1, said
        assert "cost ceiling reached: $1.20 of $1.00: sessions pause" in said, said
        assert f"resume {run_id_in(said)} --max-cost 2.20  (a ceiling above the $1.20" in said
        async with Store.open(off.repo / ".conductor" / "conductor.db") as store:
            run = await store.latest_run()
            assert run is not None and run.state is RunState.INTERRUPTED
            kinds = [e.kind for e in await store.list_events(run.id)]
        assert kinds.count(EventKind.RUN_COST_WARNING) == 1
        assert kinds.count(EventKind.RUN_COST_CEILING) == 1
        # Not higher than what it spent: refused in one line, nothing resumed.
        status, said = await _conductor(off, "resume", "--max-cost", "0.5", log="low.log")
        assert status == 2 and "--max-cost $0.50 is not more than run" in said, said
        status, said = await _conductor(
            off, "resume", "--no-live", "--max-cost", "10", log="resume.log"
        )
        assert status == 0, said
        assert "everything merged" in said
        files = git(off.repo, "ls-tree", "--name-only", f"conductor/{run.id}").split()
        assert "core.py" in files
        shown = json.loads((await _conductor(off, "show", "--json", log="show.log"))[1])
        assert shown["run"]["max_cost"] == 10.0
        listed = json.loads((await _conductor(off, "runs", "--json", log="runs.log"))[1])
        assert [(r["id"], r["max_cost"]) for r in listed] == [(run.id, 10.0)]


# ------------------------------------------------------------------------------ --confirm

EDITOR = """\
import json, pathlib, sys
plan = pathlib.Path(sys.argv[1])
count = pathlib.Path(sys.argv[0]).with_suffix(".count")
n = int(count.read_text()) if count.exists() else 0
count.write_text(str(n + 1))
data = json.loads(plan.read_text())
if n == 0:  # first edit: a plan that is no plan
    data["workstreams"] = []
else:  # second: a valid plan, one workstream renamed
    data["workstreams"] = [dict(TWO["workstreams"][0], name="renamed by hand")]
plan.write_text(json.dumps(data))
""".replace("TWO", json.dumps(TWO))


def _converse(
    argv: list[str], cwd: Path, env: dict[str, str], steps: list[tuple[str, str]]
) -> tuple[int, str]:
    """Run `argv` on a pseudo-terminal; at each (prompt, answer) step, wait until the output
    shows `prompt` once more, then type `answer`. (exit status, everything it printed)."""
    import os
    import pty
    import select
    import time

    main, child = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=child, stdout=child, stderr=child)
    os.close(child)
    said = b""
    seen = 0
    deadline = time.monotonic() + 120

    def read_some() -> bool:
        nonlocal said
        ready, _, _ = select.select([main], [], [], 0.2)
        if not ready:
            return True
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child side closed: it exited
            return False
        said += chunk
        return bool(chunk)

    try:
        for prompt, answer in steps:
            while said.decode(errors="replace").count(prompt) <= seen:
                assert time.monotonic() < deadline, said.decode(errors="replace")
                assert read_some() or proc.poll() is None, said.decode(errors="replace")
            seen += 1
            os.write(main, answer.encode() + b"\n")
        while proc.poll() is None or read_some():
            assert time.monotonic() < deadline, said.decode(errors="replace")
            if not read_some() and proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(main)
    return proc.returncode, said.decode(errors="replace").replace("\r\n", "\n")


def test_confirm_edits_the_plan_until_it_is_valid_and_quit_starts_nothing(
    repo: Path, tmp_path: Path
) -> None:
    from support import clean_env

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(TWO))
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    env = clean_env(ANTHROPIC_API_KEY="k", EDITOR=f"{sys.executable} {editor}", TERM="dumb")
    env.pop("VISUAL", None)
    argv = [sys.executable, "-m", "conductor", "run", "goal", "--plan", str(plan), "--confirm"]
    question = "run, edit or quit? [r/e/q]"
    status, said = _converse(
        argv,
        repo,
        env,
        [(question, "e"), (question, "e"), (question, "maybe"), (question, "q")],
    )
    assert status == 0, said
    assert "estimate: $" in said  # the plan comes with what it may cost
    assert said.count("not a valid plan: ") == 1, said
    assert "no workstreams; edit it again, or quit" in said
    assert said.count("renamed by hand") >= 1  # shown again, as edited
    assert "answer r (run), e (edit) or q (quit)" in said
    kept = next(line for line in said.splitlines() if line.startswith("nothing started"))
    saved = Path(kept.split("the plan is kept in ")[1].split(";")[0])
    assert json.loads(saved.read_text())["workstreams"][0]["name"] == "renamed by hand"
    assert f"--plan {saved.absolute()}" in kept
    assert not (repo / ".conductor" / "conductor.db").exists()  # no run was made


def test_confirm_needs_a_terminal(cli: Cli, repo: Path) -> None:
    (repo / "plan.json").write_text(json.dumps(TWO))
    line = one_line_error(cli.fails("run", "goal", "--plan", "plan.json", "--confirm"))
    assert line.startswith("error: --confirm asks at the terminal, but stdin is not one")


def test_the_editor_is_visual_then_editor_then_vi(monkeypatch: pytest.MonkeyPatch) -> None:
    from conductor.cli.approval import editor_argv

    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    assert editor_argv() == ["vi"]
    monkeypatch.setenv("EDITOR", "nano -w")
    assert editor_argv() == ["nano", "-w"]
    monkeypatch.setenv("VISUAL", "code --wait")
    assert editor_argv() == ["code", "--wait"]


@pytest.mark.anyio
async def test_the_approved_plan_is_the_one_the_run_gets(repo: Path) -> None:
    """`start_run` with an approval that edits the plan: the supervisor runs the edited one
    (the run itself is stood in for: `drive` sees the supervisor and returns at once)."""
    from conductor.run.launch import Proposal, RunAsked, start_run
    from conductor.supervisor import RunSummary, Supervisor

    plan = repo.parent / "plan.json"
    plan.write_text(json.dumps(TWO))
    asked_about: list[Proposal] = []
    driven: list[Supervisor] = []

    async def approve(proposal: Proposal) -> Any:
        asked_about.append(proposal)
        data = json.loads(proposal.path.read_text())
        data["workstreams"] = data["workstreams"][:1]  # the person keeps A only
        proposal.path.write_text(json.dumps(data))
        return proposal.reread()

    async def drive(supervisor: Supervisor, after: int) -> RunSummary:
        driven.append(supervisor)
        return RunSummary("r", "conductor/r", "0" * 40)

    async def no_planning(*_: Any) -> Any:
        raise AssertionError("a plan was given: nothing is planned")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANTHROPIC_API_KEY", "k")
        launched = await start_run(
            RunAsked("goal", plan_file=plan, max_cost=3.0),
            cwd=repo,
            db=None,
            show_planning=no_planning,
            drive=drive,
            approve=approve,
        )
    assert [w.id for w in asked_about[0].plan.workstreams] == ["A", "B"]
    assert asked_about[0].estimate(asked_about[0].plan).capped_by in ("", "max_cost $3.00")
    assert [w.id for w in driven[0].plan.workstreams] == ["A"]
    assert driven[0].config.max_cost == 3.0
    assert launched.summary is not None and not launched.quit


# ------------------------------------------------------------------------------ the views


@pytest.mark.anyio
async def test_the_live_view_shows_spent_against_the_ceiling(tmp_path: Path) -> None:
    from conductor.dashboard import totals_line
    from conductor.readmodel.snapshot import Snapshot

    async with Store.open(tmp_path / "c.db") as store:
        spec: dict[str, Any] = {"plan": TWO, "config": {"max_cost": 5.0}}
        spec["planner"] = Spend(1, 1.23).to_json()
        bus = await create_run(
            store, goal="g", repo_root=tmp_path, base_ref=None, base_commit=None, spec=spec
        )
        snapshot = Snapshot(run_id=bus.run_id)
        await snapshot.update(store)
        assert totals_line(snapshot).endswith("$1.2300 of $5.00")
        await resumed_config(bus, Config(max_cost=5.0), 8.0)  # conductor resume --max-cost 8
        await snapshot.update(store)
        assert totals_line(snapshot).endswith("$1.2300 of $8.00")
        assert "of $" not in totals_line(Snapshot(run_id=bus.run_id))  # no ceiling: no "of"


@pytest.mark.anyio
async def test_a_workers_watch_holds_at_the_last_ceiling_and_records_nothing(
    tmp_path: Path,
) -> None:
    from conductor.run.ceiling import watch_on_worker

    async with Store.open(tmp_path / "c.db") as store:
        bus = await _run(tmp_path, store, planner=1.5)
        await resumed_config(bus, Config(max_cost=1.0), 2.0)  # resumed with a higher one
        control = Control()
        watch = await watch_on_worker(bus, control, Config(max_cost=1.0))
        assert watch.max_cost == 2.0
        assert await watch.at_tool_boundary("A") is None  # 1.50 of 2.00: go on
        await bus.record("A", EventKind.SESSION_PROMPT, "go")
        await bus.record("A", EventKind.SDK_ASSISTANT, "x", _response("m1", 200_000))
        with anyio.fail_after(5):
            assert await watch.look()  # 2.10: held at its boundary...
        kinds = [e.kind for e in await bus.events()]
        assert EventKind.RUN_COST_WARNING not in kinds and EventKind.RUN_COST_CEILING not in kinds
        assert not control.stopping  # ...while the supervisor stops the run


@pytest.mark.anyio
async def test_a_run_stopped_at_its_ceiling_ends_failed_with_on_max_cost_stop(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    from conductor.run.lifecycle import store_the_end

    async with Store.open(tmp_path / "c.db") as store:
        bus = await _run(tmp_path, store)
        control = Control()
        control.stopping = True
        control.ended = "cost ceiling $1.00 reached (on_max_cost = stop)"
        await store_the_end(SimpleNamespace(bus=bus, control=control), ok=False)  # type: ignore[arg-type]
        run = await bus.refresh()
        assert run.state is RunState.FAILED
        control.ended = ""  # pause: interrupted, resumable
        await store_the_end(SimpleNamespace(bus=bus, control=control), ok=False)  # type: ignore[arg-type]
        assert (await bus.refresh()).state is RunState.INTERRUPTED


@pytest.mark.anyio
async def test_planning_that_spent_the_whole_ceiling_starts_nothing(repo: Path) -> None:
    from conductor.planner import Planned
    from conductor.run.launch import RunAsked, start_run

    async def planning(_: Any, config: Config) -> Planned:  # the planner, stood in for
        return Planned(plan_of(TWO, repo), Spend(9, 2.5))

    async def drive(*_: Any) -> Any:
        raise AssertionError("nothing may start")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANTHROPIC_API_KEY", "k")
        with pytest.raises(InvalidInput, match=r"planning spent \$2.50, the whole of --max-cost"):
            await start_run(
                RunAsked("goal", max_cost=2.0),
                cwd=repo,
                db=None,
                show_planning=planning,
                drive=drive,
            )
    assert list((repo / ".conductor" / "plans").iterdir())  # the plan is kept


def test_cross_review_is_priced_on_the_reviewers_model(tmp_path: Path) -> None:
    one = {"workstreams": [dict(TWO["workstreams"][0], model="opus")]}
    config = Config(model="sonnet", reviewer_model="opus", cross_review=True, review="agent")
    found = estimate(plan_of(one, tmp_path), config)
    opus, sonnet = call_cost("opus")[0], call_cost("sonnet")[0]
    assert found.low == pytest.approx(TYPICAL_CALLS * opus + TYPICAL_REVIEW_CALLS * sonnet)


def test_the_plan_table_names_a_workstreams_own_model_only_when_one_does(tmp_path: Path) -> None:
    from rich.console import Console

    from conductor.dashboard import plan_table

    def shown(data: dict[str, Any]) -> str:
        console = Console(width=200, record=True, color_system=None)
        console.print(plan_table(plan_of(data, tmp_path)))
        return console.export_text()

    assert "Model" not in shown(TWO)
    mixed = shown({"workstreams": [dict(TWO["workstreams"][0], model="opus")]})
    assert "Model" in mixed and "opus" in mixed


@pytest.mark.anyio
async def test_a_new_ceiling_is_not_set_under_a_running_supervisor(tmp_path: Path) -> None:
    from conductor.bus import supervisor_lock

    async with Store.open(tmp_path / "c.db") as store:
        bus = await _run(tmp_path, store, planner=1.0)
        await bus.acquire_lock("pid here", name=supervisor_lock(bus.run_id), lease_seconds=60)
        with pytest.raises(InvalidInput, match="is being supervised already"):
            await resumed_config(bus, Config(max_cost=1.0), 5.0)
        assert not [e for e in await bus.events() if e.kind == EventKind.RUN_MAX_COST]


@pytest.mark.parametrize(("interrupted", "status"), [(True, EXIT_INTERRUPTED), (False, 1)])
def test_a_run_stopped_at_its_ceiling_says_how_to_go_on_with_a_higher_one(
    team: Cli,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    interrupted: bool,
    status: int,
) -> None:
    """pause: interrupted, resumable with a higher ceiling; stop: ended (exit 1), the same."""
    import typer

    from conductor.cli.common import Globals
    from conductor.cli.runs import _report
    from conductor.run.summary import Outcome, RunSummary

    run_id = team.ok("show", "--json").json()["run"]["id"]
    monkeypatch.chdir(repo)
    spent = Outcome("A", state="interrupted", cost_usd=1.2)
    summary = RunSummary(
        run_id, f"conductor/{run_id}", "0" * 40, [spent], interrupted=interrupted, ceiling=1.0
    )
    with pytest.raises(typer.Exit) as ended:
        _report(summary, False, Globals())
    assert ended.value.exit_code == status
    said = capsys.readouterr().out
    assert f"resume {run_id} --max-cost 2.20  (a ceiling above the $1.20 spent)" in said
    first = "interrupted: continue with: " if interrupted else "stopped at its cost ceiling; "
    assert first in said
