"""The live view at 80 columns, as a person reads it: a store filled the way a supervised
run fills it (the SDK's own message types, recorded by the session's own code), rendered
at width 80, and asserted on the words shown."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import AssistantMessage, ResultMessage, TextBlock, ToolUseBlock
from claude_agent_sdk.types import ContentBlock
from rich.console import Console
from support import Cli

from conductor import bus as bus_module
from conductor.bus import Bus, open_run
from conductor.bus import work as work_queue
from conductor.dashboard import dashboard, events_table, live_view, sessions_table, transcript_lines
from conductor.events import COST_KEY
from conductor.live import Snapshot, notable_line, usage_cost
from conductor.models import Event, SessionKind
from conductor.session import _describe, _payload
from conductor.store import Store

pytestmark = pytest.mark.anyio

WIDTH = 80
COMMIT = "c0ffee" * 6 + "abcd"
MODEL = "claude-sonnet-4-5"  # $3 in, $15 out per million tokens
ESC = "\x1b[31mred\x1b[0m"  # what a note or message could carry to recolour a terminal
PLAN = {
    "workstreams": [
        {"id": "A", "name": "words", "depends_on": []},
        {"id": "B", "name": "counts", "depends_on": ["A"]},
        {"id": "C", "name": "report", "depends_on": []},
    ]
}


async def supervised_run(store: Store, tmp_path: Path) -> Bus:
    """A run as `conductor run` starts one: a plan, the planner's spend, a session per
    workstream, and the `auto` and `human` names reviews are decided under."""
    run = await bus_module.create_run(
        store,
        goal="Give textstats words, word counts and a one-line report, each tested",
        repo_root=tmp_path,
        base_ref="main",
        base_commit=None,
        sessions=[("A", "words"), ("B", "counts"), ("C", "report")],
        spec={
            "plan": PLAN,
            "config": {"review": "agent"},
            "planner": {"num_turns": 3, COST_KEY: 0.009},
        },
    )
    await run.register([("auto", "auto reviews")], kind=SessionKind.REVIEWER)
    await run.register([("human", "human reviews")], kind=SessionKind.HUMAN)
    return run


async def prompt(bus: Bus, name: str, text: str) -> None:
    """A turn starts, as `ClaudeSession.turn` records it."""
    await bus.record(name, "session.prompt", " ".join(text.split())[:80], {"prompt": text})
    await bus.update(name, status="working")


async def says(bus: Bus, name: str, message: Any, cost: float | None = None) -> None:
    """An SDK message, recorded as `ClaudeSession._record` records it."""
    kind, summary = _describe(message, cost)
    payload = _payload(message)
    if cost is not None:
        payload[COST_KEY] = cost
    await bus.record(name, kind, summary, payload)


def assistant(
    message_id: str, *blocks: ContentBlock, input_tokens: int = 1000, output_tokens: int = 1
) -> AssistantMessage:
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    return AssistantMessage(list(blocks), MODEL, usage=usage, message_id=message_id)


def tool(name: str, **args: Any) -> ToolUseBlock:
    return ToolUseBlock(f"toolu_{name}", name, args)


def result(turns: int, cost: float) -> ResultMessage:
    return ResultMessage(
        "success", 900, 150, False, turns, "sid", total_cost_usd=cost, result="Done."
    )


async def frame(bus: Bus, snapshot: Snapshot | None = None) -> str:
    """The live view at 80 columns, as text (the snapshot brought up to date first)."""
    snapshot = snapshot or Snapshot(bus.run_id)
    await snapshot.update(bus)
    console = Console(record=True, width=WIDTH, markup=False, emoji=False, file=io.StringIO())
    console.print(live_view(snapshot, width=WIDTH))
    text = console.export_text()
    assert all(len(line) <= WIDTH for line in text.splitlines()), text
    return text


def row(text: str, name: str) -> str:
    [found] = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return found


def doing(text: str, name: str) -> str:
    """The Doing cell of a session's row: what follows its last number or age."""
    cells = row(text, name).split("  ")
    return [c for c in cells if c.strip()][-1].strip()


def spend(text: str, name: str) -> tuple[str, str]:
    """The Turns and Cost cells of a session's row."""
    _, _, turns, cost, *_ = row(text, name).split()
    return turns, cost


def totals(text: str) -> str:
    return text.splitlines()[2]


# ------------------------------------------------------------------------------ a run, by frames


async def test_a_run_read_at_80_columns(store: Store, tmp_path: Path) -> None:
    run = await supervised_run(store, tmp_path)
    snapshot = Snapshot(run.run_id)

    # Before anything starts: A and C wait to start, B waits for A.
    text = await frame(run, snapshot)
    assert [doing(text, n) for n in ("planner", "A", "B", "C")] == [
        "planned 3 workstreams",
        "waiting to start",
        "waiting for A",
        "waiting to start",
    ]
    assert "pending" in row(text, "B")
    # Only sessions that run are counted: the planner and three workers, not auto or human.
    assert totals(text) == "3 workstreams, 0 merged · 4 sessions · 3 turns · $0.0090"
    assert "auto" not in text and "human" not in text

    # A's first turn: its prompt is not shown, its tool calls are, in words.
    worktree = tmp_path / ".conductor" / "worktrees" / run.run_id / "A"
    await prompt(run, "A", "conductor-role: A\n\nYou are session A (words) of a conductor run.")
    text = await frame(run, snapshot)
    assert doing(text, "A") == "starting"
    await says(run, "A", assistant("msg_1", tool("Write", file_path=f"{worktree}/words.py")))
    text = await frame(run, snapshot)
    assert doing(text, "A") == "Write words.py"
    # The cost moves as soon as an assistant message reports usage: 1000 tokens in and 1
    # out at $3 and $15 a million, marked as counted at list price until the turn ends.
    assert spend(text, "A") == ("1", "~$0.0030")
    assert totals(text) == "3 workstreams, 0 merged · 4 sessions · 4 turns · ~$0.0120"

    await says(
        run, "A", assistant("msg_2", TextBlock("Testing."), tool("Bash", command="pytest -q"))
    )
    await run.record("A", "sdk.tool_result", '[{"type": "text", "text": "3 passed"}]')
    text = await frame(run, snapshot)
    assert doing(text, "A") == "Bash: pytest -q"
    assert spend(text, "A") == ("2", "~$0.0060")
    # The CLI writes one message per content block, each with the response's usage: the
    # same response seen again is not counted again.
    await says(run, "A", assistant("msg_2", tool("Bash", command="pytest -q")))
    await says(run, "A", assistant("msg_3", tool("mcp__bus__send", to="B", text="words() is in")))
    text = await frame(run, snapshot)
    assert doing(text, "A") == "message to B: words() is in"
    assert spend(text, "A") == ("3", "~$0.0090")

    # A asks for review and its turn ends: the CLI's own cost replaces the estimate.
    await run.register([("A-review", "reviews A")], kind=SessionKind.REVIEWER)
    review = await run.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="A-review")
    await says(run, "A", result(3, 0.0135), cost=0.0135)
    await run.update("A", status="idle")
    text = await frame(run, snapshot)
    assert doing(text, "A") == f"in review #{review.id}"
    assert spend(text, "A") == ("3", "$0.0135")
    assert doing(text, "A-review") == f"reviewing #{review.id} of A"
    assert totals(text) == "3 workstreams, 0 merged · 5 sessions · 6 turns · $0.0225"
    lines = text.splitlines()
    assert lines.index(row(text, "A-review")) == lines.index(row(text, "A")) + 1

    # The reviewer rejects; A's next turn says what it is for, never the prompt.
    await prompt(run, "A-review", "conductor-role: A-review\n\nYou review session A's work.")
    verdict = tool("mcp__bus__review_verdict", verdict="reject", comments="needs a docstring")
    await says(run, "A-review", assistant("msg_r1", verdict))
    text = await frame(run, snapshot)
    assert doing(text, "A-review") == "rejecting: needs a docstring"
    await run.decide(review.id, "A-review", approve=False, comment="needs a docstring")
    await says(run, "A-review", result(1, 0.003), cost=0.003)
    await run.update("A-review", status="idle")
    text = await frame(run, snapshot)
    assert doing(text, "A") == f"review #{review.id} rejected"
    assert doing(text, "A-review") == f"rejected #{review.id} of A: needs a docstring"
    await prompt(run, "A", f"Review #{review.id} was rejected by A-review: needs a docstring")
    text = await frame(run, snapshot)
    assert doing(text, "A") == f"fixing review #{review.id}: needs a docstring"

    # C and then A enter the merge queue: each row says where it stands in it.
    second = await run.request_review("A", commit=COMMIT, diff=b"+y\n", reviewer="A-review")
    await says(run, "A", result(1, 0.004), cost=0.004)
    await run.update("A", status="idle")
    await run.decide(second.id, "A-review", approve=True)
    await run.update("C", status="idle")  # its own review, approved, is left out here
    merge = {"branch": f"conductor/{run.run_id}-C", "commit": COMMIT}
    await run.record("C", "merge.queued", "waits for the merge gate", merge)
    await run.record("A", "merge.queued", "waits", {**merge, "branch": f"conductor/{run.run_id}-A"})
    text = await frame(run, snapshot)
    assert (doing(text, "C"), doing(text, "A")) == ("merge queued 1st", "merge queued 2nd")
    assert "merge queue: C, A" in text

    await run.record("C", "merge.merged", "merged", merge)
    await run.update("C", status="done")
    await run.record(
        "A", "merge.merged", "merged", {**merge, "branch": f"conductor/{run.run_id}-A"}
    )
    await run.update("A", status="done")
    text = await frame(run, snapshot)
    assert (doing(text, "A"), doing(text, "C")) == ("merged", "merged")
    assert doing(text, "B") == "waiting to start"  # what it waited for has merged
    await run.claim("B", "textstats/counts.py", root=tmp_path)  # the supervisor sets it up
    text = await frame(run, snapshot)
    assert doing(text, "B") == "starting"
    assert totals(text).startswith("3 workstreams, 2 merged · 5 sessions · ")
    # The tail names a session's own branch by its commit alone, so it fits.
    assert f"merged: {COMMIT[:12]}" in text

    # Nothing in any frame is JSON or prompt text.
    for internal in ('{"', '[{"', "conductor-role", "You are session", "You review"):
        assert internal not in text


async def test_a_dependent_waits_for_each_workstream_not_merged_yet(
    store: Store, tmp_path: Path
) -> None:
    plan = {"workstreams": [*PLAN["workstreams"], {"id": "D", "depends_on": ["A", "C"]}]}
    run = await bus_module.create_run(
        store,
        goal="g",
        repo_root=tmp_path,
        base_ref="main",
        base_commit=None,
        sessions=[("A", "a"), ("B", "b"), ("C", "c"), ("D", "d")],
        spec={"plan": plan, "config": {}},
    )
    assert doing(await frame(run), "D") == "waiting for A, C"
    await run.update("C", status="done")
    assert doing(await frame(run), "D") == "waiting for A"


# ------------------------------------------------------------------------------ cost in a turn


def test_usage_is_priced_at_the_models_list_price() -> None:
    million = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    assert usage_cost("claude-sonnet-4-5-20250929", million) == pytest.approx(18.0)
    assert usage_cost("claude-opus-4-5-20251101", million) == pytest.approx(30.0)
    assert usage_cost("claude-opus-4-1-20250805", million) == pytest.approx(90.0)
    assert usage_cost("claude-opus-4-20250514", million) == pytest.approx(90.0)
    assert usage_cost("claude-haiku-4-5", million) == pytest.approx(6.0)
    assert usage_cost("claude-3-5-haiku-20241022", million) == pytest.approx(4.8)
    cached = {
        "input_tokens": 0,
        "cache_read_input_tokens": 1_000_000,  # a tenth of input
        "cache_creation_input_tokens": 2_000_000,  # 1.25 times input, twice for an hour's
        "cache_creation": {"ephemeral_1h_input_tokens": 1_000_000},
    }
    assert usage_cost("claude-sonnet-4-5", cached) == pytest.approx(3 * (0.1 + 1.25 + 2))
    assert usage_cost("some-other-model", million) is None
    assert usage_cost(MODEL, None) is None


async def test_a_turn_that_ends_without_a_result_stops_counting(bus: Bus) -> None:
    await bus.update("A", status="working")
    await says(bus, "A", assistant("m1", tool("Bash", command="make")))
    text = await frame(bus)
    assert "~$0.0030" in row(text, "A")
    await bus.record("A", "session.died", "the turn ended without a result")
    text = await frame(bus)
    assert "$" not in row(text, "A")  # what `conductor show` and the summary say: nothing
    assert doing(text, "A") == "died: the turn ended without a result"


async def test_a_model_without_a_known_price_moves_turns_not_cost(bus: Bus) -> None:
    await bus.update("A", status="working")
    message = assistant("m1", TextBlock("Looking."))
    message.model = "a-model-of-its-own"
    await says(bus, "A", message)
    text = await frame(bus)
    assert "$" not in row(text, "A") and row(text, "A").split()[2] == "1"
    assert doing(text, "A") == "“Looking.”"


# ------------------------------------------------------------------------------ in words


@pytest.mark.parametrize(
    ("name", "args", "words"),
    [
        ("Read", {"file_path": "src/app.py"}, "Read src/app.py"),
        (
            "Edit",
            {"file_path": "src/app.py", "old_string": "a", "new_string": "b"},
            "Edit src/app.py",
        ),
        ("Grep", {"pattern": "TODO", "path": "src"}, "Grep TODO in src"),
        ("WebFetch", {"url": "https://example.com", "prompt": "x"}, "WebFetch https://example.com"),
        ("Task", {"description": "find the tests", "prompt": "..."}, "Task: find the tests"),
        ("TodoWrite", {"todos": [{"content": "x"}]}, "updating its to-do list"),
        ("mcp__bus__sync", {}, "reading its messages"),
        (
            "mcp__bus__context_add",
            {"category": "interface", "text": "f(x)"},
            "sharing interface: f(x)",
        ),
        ("mcp__bus__claim", {"path": "src/"}, "claiming src/"),
        ("mcp__bus__request_review", {}, "asking for review"),
        (
            "mcp__bus__set_status",
            {"status": "blocked", "reason": "no key"},
            "says it is blocked: no key",
        ),
        ("mcp__other__lookup", {"q": "x"}, "lookup (other)"),
        ("Unknown", {"n": 3, "what": {"a": 1}, "label": "first words"}, "Unknown first words"),
        ("Unknown", {"what": {"a": 1}}, "Unknown"),
    ],
)
async def test_a_tool_call_in_words(bus: Bus, name: str, args: dict[str, Any], words: str) -> None:
    await bus.update("A", status="working")
    await says(bus, "A", assistant("m", tool(name, **args)))
    assert doing(await frame(bus), "A") == words


async def test_a_session_waiting_on_you_says_so(bus: Bus) -> None:
    await bus.register([("human", "human reviews")], kind=SessionKind.HUMAN)
    review = await bus.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="human")
    await bus.update("B", status="blocked", note="needs credentials")
    text = await frame(bus)
    assert doing(text, "A") == f"waiting on you: review #{review.id}"
    assert doing(text, "B") == "blocked: needs credentials"
    assert "3 sessions" in totals(text)


# ------------------------------------------------------------------------------ control characters


async def test_what_sessions_wrote_cannot_drive_the_terminal(bus: Bus) -> None:
    """An ANSI escape in a note, a message, a tool input, a verdict or the goal is shown
    written out, in the live view, the plain lines and the other tables."""
    await bus.update("A", status="blocked", note=f"stuck {ESC}")
    await bus.send("B", "C", f"look {ESC}")
    await bus.update("B", status="working")
    await says(bus, "B", assistant("m", tool("Bash", command=f"echo '{ESC}'")))
    await bus.update("C", status="working")
    await says(bus, "C", assistant("m", TextBlock(f"I say {ESC}")))
    text = await frame(bus)
    assert "\x1b" not in text
    assert "\\x1b[31mred\\x1b[0m" in doing(text, "A")
    assert doing(text, "B") == "Bash: echo '\\x1b[31mred\\x1b[0m'"
    assert doing(text, "C") == "“I say \\x1b[31mred\\x1b[0m”"
    assert "message to C: look \\x1b[31mred" in text

    events = await bus.events()
    lines = [line for e in events if (line := notable_line(e, {}))]
    assert lines and all("\x1b" not in line for line in lines)
    console = Console(record=True, width=200, markup=False, emoji=False, file=io.StringIO())
    console.print(sessions_table(await bus.sessions()))
    console.print(events_table(events))
    shown = console.export_text()
    assert "\x1b" not in shown and "stuck \\x1b[31mred" in shown
    assert all("\x1b" not in line for line in transcript_lines(events))


async def test_the_goal_and_names_are_escaped_too(store: Store, tmp_path: Path) -> None:
    run = await bus_module.create_run(
        store,
        goal=f"a goal {ESC}",
        repo_root=tmp_path,
        base_ref="main",
        base_commit=None,
        sessions=[("A", "a")],
    )
    text = await frame(run)
    assert "\x1b" not in text and "goal: a goal \\x1b[31mred" in text


def test_a_notable_line_escapes_the_summary() -> None:
    event = Event(1, "run", "A", "git.commit", f"abc {ESC}", {}, 0.0)
    line = notable_line(event)
    assert line is not None and "\x1b" not in line and "commit: abc \\x1b[31mred" in line


# ------------------------------------------------------------------------------ conductor runs


def test_runs_counts_the_sessions_that_run(cli: Cli, repo: Path) -> None:
    """Two workstreams reviewed by agents: four sessions, not six with `auto` and `human`."""
    cli.ok("init", "--sessions", "A:words B:counts")

    async def reviewers() -> None:
        async with Store.open(repo / ".conductor" / "conductor.db") as store:
            run = await open_run(store)
            await run.register(
                [("A-review", "reviews A"), ("B-review", "reviews B")], kind=SessionKind.REVIEWER
            )
            await run.register([("auto", "auto reviews")], kind=SessionKind.REVIEWER)
            await run.register([("human", "human reviews")], kind=SessionKind.HUMAN)

    anyio.run(reviewers)
    [listed] = cli.ok("runs", "--json").json()
    assert listed["sessions"] == 4
    assert " 4 sessions " in cli.ok("runs").out


async def test_the_dashboard_has_no_row_for_human_or_auto_unless_written_to(bus: Bus) -> None:
    await bus.register([("auto", "auto reviews")], kind=SessionKind.REVIEWER)
    await bus.register([("human", "human reviews")], kind=SessionKind.HUMAN)

    async def names() -> list[str]:
        run, sessions, unread = bus.run, await bus.sessions(), await bus.unread_counts()
        console = Console(record=True, width=WIDTH, markup=False, emoji=False, file=io.StringIO())
        console.print(dashboard(run, sessions, unread, [], [], None, []))
        lines = console.export_text().splitlines()
        return [line.split()[1] for line in lines if line.startswith("│ ")]

    assert await names() == ["A", "B", "C"]
    await bus.send("A", "human", "a question for you")
    assert await names() == ["A", "B", "C", "human"]


async def test_a_session_on_a_worker_shows_its_host_and_one_here_shows_none(bus: Bus) -> None:
    text = await frame(bus)
    assert "Host" not in text  # a run on one host has no Host column
    await work_queue.queue(bus, "A")
    assert doing(await frame(bus), "A") == "waiting for a worker"
    await work_queue.supervisor_alive(bus)
    await work_queue.take(bus.store, "w1", host="build-7")
    assert doing(await frame(bus), "A") == "starting on worker w1"
    await bus.update("A", status="working")
    text = await frame(bus)
    assert "Host" in text and "w1@build-7" in row(text, "A")
