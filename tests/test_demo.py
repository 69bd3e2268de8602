"""The offline demo, end to end: real CLI sessions, the stand-in, real git. It must show
every piece of machinery it claims to, and end with the example's tests passing."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import Cli, git, served_cost

from conductor.costs import PLANNER
from conductor.demo import DemoResult, run_demo
from conductor.enforce import WORKER_TOOLS
from conductor.live import Snapshot
from conductor.models import Event
from conductor.store import Store

pytestmark = pytest.mark.anyio


@dataclass
class Demo:
    result: DemoResult
    events: list[Event]
    store: Store
    root: Path
    elsewhere: list[Path]  # what it left in the temporary dir it found

    @property
    def run_id(self) -> str:
        return self.result.summary.run_id


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    """One demo run for the whole module: each test reads a different part of it. It finds
    a temporary dir of its own, to see what the run leaves there."""
    root, tmp = tmp_path_factory.mktemp("demo"), tmp_path_factory.mktemp("tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp))
        patch.setattr(tempfile, "tempdir", str(tmp))
        result = await run_demo(root)
    async with Store.open(result.repo / ".conductor" / "conductor.db") as store:
        events = await store.list_events(result.summary.run_id)
        yield Demo(result, events, store, root, sorted(tmp.iterdir()))


def prompts_of(events: list[Event], session: str) -> list[str]:
    return [
        str((e.payload or {}).get("prompt", ""))
        for e in events
        if e.session == session and e.kind == "session.prompt"
    ]


async def test_the_demo_merges_everything_and_the_example_tests_pass(demo: Demo) -> None:
    result = demo.result
    assert result.summary.ok and result.tests_passed
    assert [o.id for o in result.summary.outcomes] == ["A", "B", "C"]  # planned by the planner
    branch = result.summary.integration_branch
    files = git(result.repo, "ls-tree", "-r", "--name-only", branch).split()
    assert {"textstats/words.py", "textstats/counts.py", "textstats/report.py"} <= set(files)
    readme = git(result.repo, "show", f"{branch}:README.md")
    assert "## report" in readme and "## counts" in readme


async def test_the_demo_leaves_nothing_outside_its_directory(demo: Demo) -> None:
    """What its sessions, their sandboxes and the checks made in a temporary dir went into
    its own, and went with it: removing its directory removes all of the demo."""
    assert demo.elsewhere == []
    assert sorted(p.name for p in demo.root.iterdir()) == ["requests.jsonl", "textstats"]


async def test_the_demo_runs_its_sessions_in_the_sandbox(demo: Demo) -> None:
    assert demo.result.sandboxed
    launcher = demo.result.repo / ".conductor" / "sessions" / demo.run_id / "A" / "cli"
    assert "bwrap --unshare-user" in launcher.read_text()


async def test_the_demo_shows_a_message_between_sessions(demo: Demo) -> None:
    to_b = await demo.store.inbox(demo.run_id, "B", unread_only=False)
    assert any(m.sender == "A" and "words(text)" in m.body and m.read_at for m in to_b)
    to_a = await demo.store.inbox(demo.run_id, "A", unread_only=False)
    assert any(m.sender == "B" and "building count()" in m.body for m in to_a)


async def test_the_demo_shows_a_claim_denial(demo: Demo) -> None:
    denied = [e for e in demo.events if e.kind == "hook.denied" and e.session == "C"]
    assert denied and "claimed by session A" in str(denied[0].payload)


async def test_the_demo_shows_a_review_rejected_then_approved(demo: Demo) -> None:
    reviews = await demo.store.list_reviews(demo.run_id, session="A")
    mine = [r for r in reviews if r.requester == "A"]
    assert [r.status.value for r in mine] == ["superseded", "approved"]
    rejected = [e for e in demo.events if e.kind == "review.rejected"]
    assert "words() needs a docstring" in rejected[0].summary


async def test_the_demo_shows_a_conflict_sent_back_and_resolved(demo: Demo) -> None:
    conflict = [p for p in prompts_of(demo.events, "B") if "Merging it conflicts in" in p]
    assert conflict and "README.md" in conflict[0]


async def test_the_demo_shows_a_failing_check_fixed(demo: Demo) -> None:
    told = [p for p in prompts_of(demo.events, "C") if "The checks failed" in p]
    assert told and "5 characters" in told[0]  # the failing assertion, as the check printed it
    # The merge gate's own event keeps the output too (the report shows it from there).
    (failed,) = [e for e in demo.events if e.kind == "merge.check_failed"]
    assert "5 characters" in (failed.payload or {}).get("output", "")


async def test_the_demos_cost_is_what_was_served_in_every_view(demo: Demo) -> None:
    log = demo.result.repo.parent / "requests.jsonl"
    served = served_cost(json.loads(line) for line in log.read_text().splitlines())
    summary = demo.result.summary
    assert PLANNER in summary.others and "A-review" in summary.others
    assert summary.cost_usd == pytest.approx(served, abs=1e-9)
    snapshot = Snapshot(demo.run_id)
    await snapshot.update(demo.store)
    assert snapshot.cost_usd == pytest.approx(served, abs=1e-9)  # the live header
    cli = Cli(demo.result.repo, process=True)  # this test runs in an event loop already
    (listed,) = cli.ok("runs", "--json").json()
    assert listed["cost_usd"] == pytest.approx(served, abs=1e-9)
    shown = cli.ok("show", "--json").json()
    assert shown["run"]["cost_usd"] == pytest.approx(served, abs=1e-9)
    assert sum(r["cost_usd"] for r in shown["sessions"]) == pytest.approx(served, abs=1e-9)


async def test_a_worker_is_offered_only_tools_the_gates_judge(demo: Demo) -> None:
    log = demo.result.repo.parent / "requests.jsonl"
    offered: set[str] = set()
    for line in log.read_text().splitlines():
        request = json.loads(line)
        if request["answer"].startswith("A chapter"):  # worker A's requests
            offered |= {t["name"] for t in request["body"].get("tools", [])}
    built_in = {name for name in offered if not name.startswith("mcp__")}
    assert {"Write", "Edit", "Bash", "Read"} <= built_in <= set(WORKER_TOOLS)
    assert not {"Monitor", "Workflow", "CronCreate", "EnterWorktree", "Agent"} & offered
