"""The supervisor's merge desk (`conductor run --workers`): a worker's merge request goes
through the one gate only when the run itself holds it to be right: the session's own branch,
its approved reviewed head, as the remote has it, from the worker that holds the workstream.
Anything else is refused in the answer, and nothing in a request stops the desk.

Real git (a repository and a bare remote), a real store, the real gate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import commit_file, git

from conductor.bus import Bus, create_run
from conductor.bus import work as work_queue
from conductor.config import Config
from conductor.errors import GitError
from conductor.gates import MergeGate
from conductor.models import SessionKind
from conductor.plan import parse_plan
from conductor.prompts import Prompts
from conductor.run.accounting import Ledger
from conductor.run.control import Control
from conductor.run.desk import MergeDesk
from conductor.run.started import StartedRun
from conductor.run.summary import Outcome
from conductor.store import Store
from conductor.worktrees import session_branch

pytestmark = pytest.mark.anyio

PLAN = {"workstreams": [{"id": "A", "name": "a", "task": "a", "owns": ["a.py"]}]}


@pytest.fixture
async def desk(repo: Path, tmp_path: Path) -> AsyncIterator[MergeDesk]:
    """A run of workstream A on workers: its remote, its gate, A taken by worker w1."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    async with Store.open(tmp_path / "c.db") as store:
        bus = await create_run(
            store,
            goal="g",
            repo_root=repo,
            base_ref="main",
            base_commit=git(repo, "rev-parse", "main"),
            sessions=[("A", "a")],
            spec={"plan": PLAN},
        )
        await bus.register([("auto", "auto reviews")], kind=SessionKind.REVIEWER)
        gate = MergeGate(
            repo, bus.run_id, base_commit=bus.run.base_commit or "", push=(bus, "origin")
        )
        await gate.prepare()
        plan = parse_plan(PLAN, repo)
        run = StartedRun(
            repo=repo,
            plan=plan,
            goal="g",
            config=Config(),
            env={},
            prompts=Prompts(repo),
            bus=bus,
            gate=gate,
            control=Control(),
            ledger=Ledger(10.0),
            outcomes={"A": Outcome("A")},
            remote="origin",
            on_workers=True,
        )
        await work_queue.queue(bus, "A")
        await work_queue.supervisor_alive(bus)
        await work_queue.take(store, "w1", host="h")
        yield MergeDesk(run)


def _pushed_work(repo: Path, bus: Bus) -> tuple[str, str]:
    """A's branch with a commit, pushed to the remote: (branch, commit)."""
    branch = session_branch(bus.run_id, "A")
    git(repo, "checkout", "-q", "-b", branch)
    head = commit_file(repo, "a.py", "A = 1\n")
    git(repo, "checkout", "-q", "main")
    git(repo, "push", "-q", "origin", branch)
    return branch, head


async def _approved(bus: Bus, commit: str) -> None:
    review = await bus.request_review("A", commit=commit, diff=b"d", reviewer="auto")
    await bus.decide(review.id, "auto", approve=True)


async def _answer(desk: MergeDesk, **asked: Any) -> dict[str, Any]:
    bus = desk.run.bus
    fields = {"branch": "", "commit": "", "owners": {}, "worker": "w1", **asked}
    request_id = await work_queue.request_merge(bus, "A", **fields)
    [request] = [r for r in await work_queue.pending_merges(bus) if r.id == request_id]
    await desk.answer(request)
    answer = await work_queue.merge_answer(bus, request_id)
    assert answer is not None
    return answer


async def test_an_approved_head_from_the_holder_is_merged_and_its_dependents_start(
    desk: MergeDesk, repo: Path
) -> None:
    bus = desk.run.bus
    branch, head = _pushed_work(repo, bus)
    await _approved(bus, head)
    answer = await _answer(desk, branch=branch, commit=head)
    assert answer["status"] == "merged"
    assert desk.run.finished["A"].is_set() and desk.run.outcomes["A"].state == "merged"
    remote_tip = git(repo, "ls-remote", "origin", f"refs/heads/{desk.run.gate.branch}")
    assert remote_tip.split()[0] == answer["integration_head"]  # pushed for the workers


async def test_a_commit_no_review_approved_is_refused(desk: MergeDesk, repo: Path) -> None:
    branch, head = _pushed_work(repo, desk.run.bus)
    answer = await _answer(desk, branch=branch, commit=head)
    assert answer["retry"] is False and "reviewed head" in answer["refused"]


async def test_another_branch_than_the_sessions_is_refused(desk: MergeDesk, repo: Path) -> None:
    bus = desk.run.bus
    _, head = _pushed_work(repo, bus)
    await _approved(bus, head)
    answer = await _answer(desk, branch="main", commit=head)
    assert answer["retry"] is False and "not A's branch" in answer["refused"]


async def test_a_worker_that_does_not_hold_the_workstream_is_refused(
    desk: MergeDesk, repo: Path
) -> None:
    bus = desk.run.bus
    branch, head = _pushed_work(repo, bus)
    await _approved(bus, head)
    answer = await _answer(desk, branch=branch, commit=head, worker="w9")
    assert answer["retry"] is False and "no longer holds A" in answer["refused"]


async def test_what_others_own_is_the_runs_word_not_the_requests(
    desk: MergeDesk, repo: Path
) -> None:
    bus = desk.run.bus
    await bus.register([("B", "b")])
    await bus.claim("B", "a.py", root=repo)
    branch, head = _pushed_work(repo, bus)
    await _approved(bus, head)
    answer = await _answer(desk, branch=branch, commit=head, owners={})  # it says: nobody's
    assert answer["status"] == "foreign_paths" and answer["foreign"] == {"a.py": "B"}


async def test_a_commit_the_remote_does_not_have_is_refused_for_a_retry_and_the_desk_goes_on(
    desk: MergeDesk, repo: Path
) -> None:
    bus = desk.run.bus
    branch, head = _pushed_work(repo, bus)
    missing = "1" * 40
    await bus.request_review("A", commit=missing, diff=b"d", reviewer="auto")
    review = await bus.latest_review("A")
    assert review is not None
    await bus.decide(review.id, "auto", approve=True)
    answer = await _answer(desk, branch=branch, commit=missing)
    assert answer["retry"] is True and "is not on" in answer["refused"]
    await _approved(bus, head)  # the desk still answers the next one
    assert (await _answer(desk, branch=branch, commit=head))["status"] == "merged"


async def test_a_gate_failure_is_answered_not_raised(desk: MergeDesk, repo: Path) -> None:
    bus = desk.run.bus
    branch, head = _pushed_work(repo, bus)
    await _approved(bus, head)

    async def broken(*args: Any, **kwargs: Any) -> Any:  # as a gate whose git failed
        raise GitError(["merge-tree", head], 128, "fatal: not something we can merge")

    desk.run.gate.merge = broken  # type: ignore[method-assign]
    answer = await _answer(desk, branch=branch, commit=head)
    assert answer["retry"] is True and "could not take it" in answer["refused"]
