"""`conductor report`: a run as one self-contained HTML file with an SVG timeline.

The fold is tested on events recorded through a real store and bus as conductor records them
(the bus's own review and message doors, the session's own recording of SDK messages), on a
clock that ticks a second per write, so every phase's bounds are known. The page is parsed
back with the standard library's HTML parser: what a session wrote must come out as text,
never as an element. One end-to-end test runs `conductor run` through the stand-in.
"""

from __future__ import annotations

import itertools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import typer
from claude_agent_sdk import ResultMessage
from support import Cli, clean_env, git, one_line_error
from test_sandbox_mode import SCRIPT, Standin, conductor_run, prepare

from conductor import bus as bus_module
from conductor.bus import Bus, open_run
from conductor.bus import work as work_queue
from conductor.cli.plumbing import Globals
from conductor.cli.report import run_report
from conductor.cli.runs import _report
from conductor.events import (
    COST_KEY,
    MERGE_OUTCOMES,
    EventKind,
    MergeGateOutcome,
    MergeQueued,
    MessagesRead,
    PromptSent,
    SdkResult,
    parse,
)
from conductor.models import Event, RunState, SessionKind, SessionStatus
from conductor.report import (
    coarse,
    read,
    recent,
    render_page,
    render_report,
    report_path,
    write_report,
)
from conductor.report import page as page_module
from conductor.report import timeline as timeline_module
from conductor.report.gate import GateFold, quoted_output
from conductor.report.parts import Phase
from conductor.report.svg import timeline_svg
from conductor.report.timeline import Timeline, TimelineFold, fold
from conductor.run.summary import RunSummary
from conductor.session import _describe, _payload
from conductor.store import Store
from conductor.store.messages import insert_message
from conductor.store.rows import Db
from conductor.store.shared import insert_event, session_id

pytestmark = pytest.mark.anyio

COMMIT = "c0ffee" * 6 + "abcd"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


# ------------------------------------------------------------------------------ recording


def tick(store: Store) -> None:
    """The store's clock: 1000.0, 1001.0, ... one second each time it is read."""
    seconds = itertools.count(1000)
    store.clock = lambda: float(next(seconds))


async def times(bus: Bus, kind: str, session: str | None = None) -> list[float]:
    """When events of `kind` (of `session`) were recorded, in order."""
    return [
        e.created_at
        for e in await bus.events()
        if e.kind == kind and (session is None or e.session == session)
    ]


async def prompt(bus: Bus, name: str, text: str = "do the work") -> None:
    """A turn starts, as `ClaudeSession.turn` records it."""
    await bus.record(name, EventKind.SESSION_PROMPT, text[:80], PromptSent(text))
    await bus.update(name, status="working")


async def result(bus: Bus, name: str, said: str = "Done.", cost: float = 0.01) -> None:
    """A turn's end, as `ClaudeSession._record` records the SDK's result message."""
    message = ResultMessage("success", 900, 150, False, 2, "sid", total_cost_usd=cost, result=said)
    kind, summary = _describe(message, cost)
    payload = _payload(message)
    payload[COST_KEY] = cost
    await bus.record(name, kind, summary, payload)
    await bus.update(name, status="idle")


async def merge(bus: Bus, name: str, outcome: str, **given: Any) -> None:
    """The merge gate's outcome, as `AfterTurn._merge` records it."""
    branch = f"conductor/{bus.run_id}-{name}"
    await bus.record(name, EventKind.MERGE_QUEUED, "queued", MergeQueued(branch, COMMIT))
    summary = f"{branch} ({COMMIT[:12]}): {outcome.replace('_', ' ')}"
    payload = MergeGateOutcome(branch=branch, commit=COMMIT, **given).to_json()
    await bus.record(name, EventKind.merge_outcome(outcome), summary, payload)


async def events_of(bus: Bus) -> Timeline:
    names = {s.id: s.name for s in await bus.sessions()}
    return fold(await bus.events(), names, start=bus.run.created_at)


def phases(timeline: Timeline, name: str) -> list[tuple[str, float, float]]:
    return [(p.kind, p.start, p.end) for p in timeline.lanes[name].phases]


@pytest.fixture
async def ticking(store: Store, tmp_path: Path) -> Bus:
    """A run of A, B and C on a clock that ticks a second at each read."""
    tick(store)
    return await bus_module.create_run(
        store,
        goal="test",
        repo_root=tmp_path,
        base_ref="main",
        base_commit=None,
        sessions=[("A", "frontend"), ("B", "backend"), ("C", "infra")],
    )


# ------------------------------------------------------------------------------ the fold


async def test_every_session_that_works_has_a_lane_and_human_and_auto_none(ticking: Bus) -> None:
    await ticking.register([("auto", "auto reviews")], kind=SessionKind.REVIEWER)
    await ticking.register([("human", "human reviews")], kind=SessionKind.HUMAN)
    review = await ticking.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="human")
    await ticking.decide(review.id, "human", approve=True)
    timeline = await events_of(ticking)
    assert list(timeline.lanes) == ["A", "B", "C"]


async def test_a_turn_is_a_working_phase_from_its_prompt_to_its_result(ticking: Bus) -> None:
    await prompt(ticking, "A", "build words()")
    await result(ticking, "A", "words() is ready")
    await prompt(ticking, "A")
    await ticking.record("A", EventKind.SESSION_DIED, "its CLI died", {"error": "exit 1"})
    timeline = await events_of(ticking)
    starts = await times(ticking, EventKind.SESSION_PROMPT)
    ends = await times(ticking, EventKind.SDK_RESULT) + await times(ticking, "session.died")
    working = [p for p in timeline.lanes["A"].phases if p.kind == "working"]
    assert [(p.start, p.end) for p in working] == list(zip(starts, ends, strict=True))
    assert "build words()" in working[0].what and "words() is ready" in working[0].what
    assert "died: exit 1" in working[1].what
    (registered,) = await times(ticking, EventKind.SESSION_REGISTERED, "A")
    assert phases(timeline, "A")[0] == ("waiting", registered, starts[0])  # not started yet
    assert [m.kind for m in timeline.marks] == ["died"]


async def test_a_review_from_its_request_to_its_verdict_is_a_review_phase(ticking: Bus) -> None:
    await prompt(ticking, "A")
    await result(ticking, "A")
    review = await ticking.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="B")
    await ticking.decide(review.id, "B", approve=False, comment="needs a test")
    timeline = await events_of(ticking)
    (shown,) = [p for p in timeline.lanes["A"].phases if p.kind == "review"]
    (asked,) = await times(ticking, EventKind.REVIEW_REQUESTED)
    (decided,) = await times(ticking, EventKind.REVIEW_REJECTED)
    assert (shown.start, shown.end) == (asked, decided)
    assert f"review #{review.id}" in shown.what and "needs a test" in shown.what
    (mark,) = timeline.marks
    assert (mark.session, mark.kind, mark.at) == ("A", "rejected", decided)
    assert timeline.verdicts == {review.id: "rejected"}


async def test_a_review_asked_within_a_turn_begins_when_the_turn_ends(ticking: Bus) -> None:
    await prompt(ticking, "A")  # 1003
    await ticking.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="B")
    await result(ticking, "A")
    kinds = [k for k, _, _ in phases(await events_of(ticking), "A")]
    assert kinds == ["waiting", "working", "review"]


async def test_a_message_is_an_arrow_from_when_it_was_sent_to_when_it_was_read(
    ticking: Bus,
) -> None:
    await ticking.send("A", "B", "words() is in words.py")
    await ticking.send("A", "C", "never read")
    await ticking.take_unread("B", via="sync")
    timeline = await events_of(ticking)
    sent = await times(ticking, EventKind.MESSAGE_SENT)
    (read_at,) = await times(ticking, EventKind.MESSAGE_READ)
    first, second = timeline.arrows
    assert (first.sender, first.recipient, first.text) == ("A", "B", "words() is in words.py")
    assert (first.sent_at, first.read_at) == (sent[0], read_at)
    assert (second.recipient, second.sent_at, second.read_at) == ("C", sent[1], None)
    assert not first.review


async def test_a_review_carried_as_a_message_is_an_arrow_marked_as_a_review(ticking: Bus) -> None:
    await ticking.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="B")
    (arrow,) = (await events_of(ticking)).arrows
    assert (arrow.sender, arrow.recipient, arrow.review) == ("A", "B", True)


async def test_the_merge_gate_is_a_merge_phase_and_its_outcomes_marks(ticking: Bus) -> None:
    await merge(ticking, "A", "check_failed", check="pytest -q")
    await merge(ticking, "A", "conflict", conflicts=["README.md"])
    await merge(ticking, "A", "merged")
    await ticking.update("A", status=SessionStatus.DONE)  # its lane ends
    await ticking.set_state(RunState.FINISHED, "everything merged")
    timeline = await events_of(ticking)
    queued = await times(ticking, EventKind.MERGE_QUEUED)
    out = [e for e in await ticking.events() if e.kind in MERGE_OUTCOMES]
    merges = [(s, e) for k, s, e in phases(timeline, "A") if k == "merge"]
    assert merges == list(zip(queued, [e.created_at for e in out], strict=True))
    assert [(m.kind, m.at) for m in timeline.marks] == list(
        zip(["check-failed", "conflict", "merged"], [e.created_at for e in out], strict=True)
    )
    (done,) = [e.created_at for e in await ticking.events() if e.summary == "status=done"]
    assert phases(timeline, "A")[-1][2] == done  # nothing after its work ended
    assert timeline.ended_at == timeline.end


async def test_a_workstream_not_started_waits_for_those_it_depends_on(ticking: Bus) -> None:
    await prompt(ticking, "A")
    names = {s.id: s.name for s in await ticking.sessions()}
    timeline = fold(await ticking.events(), names, depends={"B": ["A"], "C": []})
    assert timeline.lanes["B"].phases[0].what == "waiting for A"
    assert timeline.lanes["C"].phases[0].what == "waiting to start"


async def test_on_workers_a_workstream_waits_for_one_then_says_which_took_it(
    ticking: Bus,
) -> None:
    await work_queue.queue(ticking, "A")
    await work_queue.supervisor_alive(ticking)
    await work_queue.take(ticking.store, "w1", host="build-7")
    await prompt(ticking, "A")
    words = [p.what for p in (await events_of(ticking)).lanes["A"].phases]
    assert words[-3:-1] == ["waiting for a worker", "taken by worker w1 on build-7"]


async def test_the_runs_state_changes_are_moments_drawn_across_the_lanes(ticking: Bus) -> None:
    await ticking.set_state(RunState.INTERRUPTED, "Ctrl-C")
    await ticking.set_state(RunState.ACTIVE, "resumed")
    await ticking.set_state(RunState.FINISHED, "everything merged")
    timeline = await events_of(ticking)
    assert [m.state for m in timeline.moments] == ["interrupted", "active", "finished"]
    assert timeline.moments[0].what == "run interrupted: Ctrl-C"
    svg = timeline_svg(timeline, ["A", "B", "C"])
    classes = [a.get("class") for _, a in elements(svg).tags]
    assert classes.count("run-state interrupted") == 1
    assert classes.count("run-state finished") == 1


async def test_a_failed_checks_output_comes_from_the_prompt_that_quoted_it(ticking: Bus) -> None:
    await merge(ticking, "A", "check_failed", check="pytest -q")
    told = "The checks failed on the merged result (`pytest -q`):\n\n```\nFAILED x\n```\nFix it."
    await prompt(ticking, "A", told)
    gate = GateFold()
    for event in await ticking.events():
        gate.apply(event)
    (failed,) = gate.failed_checks()
    assert (failed.check, failed.output) == ("pytest -q", "FAILED x")


async def test_a_failed_checks_output_kept_in_its_event_is_taken_from_there(ticking: Bus) -> None:
    payload = {**MergeGateOutcome(branch="b", commit=COMMIT, check="make").to_json()}
    await ticking.record("A", EventKind.MERGE_CHECK_FAILED, "failed", {**payload, "output": "E1"})
    await prompt(ticking, "A", "```\nsomething else\n```")
    gate = GateFold()
    for event in await ticking.events():
        gate.apply(event)
    assert [o.output for o in gate.failed_checks()] == ["E1"]


def test_output_with_fences_of_its_own_is_kept_whole() -> None:
    told = "failed (`t`):\n\n```\na\n```inner```\nb\n```\nFix it."
    assert quoted_output(told, "t") == "a\n```inner```\nb"
    assert quoted_output("no fence here", "t") == "no fence here"


async def test_a_long_run_is_read_in_pages_and_every_event_folded(
    ticking: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "PAGE", 3)
    for _ in range(4):
        await prompt(ticking, "B")
        await result(ticking, "B")
    report = await read.read_report(ticking)
    assert report.events == len(await ticking.events())
    assert [p.kind for p in report.timeline.lanes["B"].phases].count("working") == 4


# ------------------------------------------------------------------------------ the page


class Elements(HTMLParser):
    """The elements of a page and the text inside each `<title>`."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.titles: list[str] = []
        self.text: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.titles.append(data)


def elements(html: str) -> Elements:
    parsed = Elements()
    parsed.feed(html)
    parsed.close()
    return parsed


async def written_run(store: Store, tmp_path: Path, said: str = HOSTILE) -> Bus:
    """A run with every kind of text a session or a person writes, each ending in `said`."""
    bus = await bus_module.create_run(
        store,
        goal=f"Goal {said}",
        repo_root=tmp_path,
        base_ref="main",
        base_commit=None,
        sessions=[("A", "words"), ("B", "counts")],
        spec={"plan": {"workstreams": [{"id": "A", "name": f"w {said}"}, {"id": "B"}]}},
    )
    await bus.update("A", status="blocked", note=f"note {said}")
    await prompt(bus, "A")
    await bus.send("A", "B", f"body {said}")
    await result(bus, "A")
    review = await bus.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="B")
    await bus.decide(review.id, "B", approve=False, comment=f"comment {said}")
    await merge(bus, "A", "conflict", conflicts=[f"<u>{said}.py"])
    await merge(bus, "A", "check_failed", check=f"check {said}")
    await prompt(bus, "A", f"(`check {said}`):\n```\noutput {said}\n```\n")
    return bus


async def test_the_page_refers_to_nothing_outside_itself(store: Store, tmp_path: Path) -> None:
    html = await render_report(await written_run(store, tmp_path, "plain words"))
    assert not re.search(r"https?:|src=|href=|<link|<script|@import|url\((?!#)", html)
    tags = {tag for tag, _ in elements(html).tags}
    assert {"svg", "rect", "path", "line", "title", "style"} <= tags
    assert not tags & {"script", "img", "link", "iframe", "object", "embed", "image"}


async def test_what_sessions_wrote_comes_out_as_text_in_the_page_and_its_svg(
    store: Store, tmp_path: Path
) -> None:
    html = await render_report(await written_run(store, tmp_path))
    assert "<script" not in html and "<img" not in html and "<u>" not in html
    page = elements(html)
    assert not {tag for tag, _ in page.tags} & {"script", "img", "u"}
    text = "".join(page.text)
    for said in ("Goal", "note", "body", "comment", "output", "check", "<u>"):
        assert f"{said} {HOSTILE}" in text or f"{said}{HOSTILE}" in text, said
    titles = "\n".join(page.titles)
    assert f"body {HOSTILE}" in titles  # the message's arrow
    assert f"comment {HOSTILE}" in titles  # the review's phase, and its rejection's mark
    assert f"<u>{HOSTILE}.py" in titles  # the conflict's mark


async def test_the_page_shows_costs_reviews_and_the_failed_checks_output(
    store: Store, tmp_path: Path
) -> None:
    bus = await written_run(store, tmp_path)
    report = await read.read_report(bus)
    assert [(c.name, c.role, c.turns) for c in report.costs] == [("A", "workers", 2)]
    assert report.roles["workers"].cost_usd == pytest.approx(0.01)
    (rounds,) = report.reviews.values()
    assert [(r.reviewer, r.comment) for r in rounds] == [("B", f"comment {HOSTILE}")]
    (failed,) = [o for o in report.gate if o.check_failed]
    assert failed.output == f"output {HOSTILE}"
    assert [(w.name, w.outcome) for w in report.workstreams] == [("A", "working"), ("B", "pending")]
    page = elements(await render_report(bus))
    lanes = [a["data-session"] for tag, a in page.tags if a.get("class") == "lane"]
    assert lanes == ["A", "B"]
    classes = {a.get("class") for _, a in page.tags}
    assert {"phase working", "phase waiting", "phase review", "phase merge"} <= classes
    assert {"message unread", "mark rejected", "mark conflict", "mark check-failed"} <= classes


async def test_write_report_writes_the_file_whole(store: Store, tmp_path: Path) -> None:
    bus = await written_run(store, tmp_path)
    path = await write_report(bus, report_path(tmp_path, bus.run_id))
    assert path == tmp_path / ".conductor" / "reports" / f"{bus.run_id}.html"
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


# ------------------------------------------------------------------------------ a long run


LONG = 5000  # messages in a long run
SAID = "a message with <b>markup</b> & words enough to be read as a real one would be, " * 2


def _flood(
    store: Store,
    db: Db,
    run_id: str,
    start: float,
    messages: int,
    turns: int,
    review_id: int | None,
) -> None:
    """`messages` from A to B (B reads the even ones), then `turns` turns of A, a second each,
    and a review's message from B to A: straight through the store, in one transaction."""
    a, b = session_id(db, run_id, "A"), session_id(db, run_id, "B")
    at = start
    for i in range(messages):
        at += 1
        mid = insert_message(db, at, run_id, a, [b], f"#{i} {SAID}", None)
        if i % 2 == 0:
            insert_event(db, at + 0.5, run_id, b, EventKind.MESSAGE_READ, "r", MessagesRead([mid]))
    for i in range(turns):
        at += 1
        insert_event(db, at, run_id, a, EventKind.SESSION_PROMPT, "p", PromptSent(f"turn {i}"))
        insert_event(db, at + 0.5, run_id, a, EventKind.SDK_RESULT, "r", SdkResult(result="ok"))
    if review_id is not None:
        insert_message(db, at + 1, run_id, b, [a], "approved", None, review_id)


async def long_run(store: Store, messages: int, turns: int = 0, review: bool = False) -> Bus:
    bus = await bus_module.create_run(
        store,
        goal="a long run",
        repo_root=Path("."),
        base_ref="main",
        base_commit=None,
        sessions=[("A", "frontend"), ("B", "backend")],
    )
    asked = await bus.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="B")
    args = (bus.run_id, asked.created_at + 1, messages, turns, asked.id if review else None)
    await store._in_worker(True, _flood, args, {})
    return bus


def said_text(html: str) -> str:
    """The page's text, its white space as one space each."""
    return " ".join("".join(elements(html).text).split())


async def test_a_long_runs_report_shows_its_last_messages_and_says_how_many_more(
    store: Store,
) -> None:
    bus = await long_run(store, LONG)
    html = await render_report(bus)
    shown = recent.MESSAGES_SHOWN
    text = said_text(html)
    hidden = LONG - shown
    assert f"{hidden} more messages not shown: conductor logs {bus.run_id} has them" in text
    assert f"{LONG} between sessions, besides reviews (the last {shown} shown)" in text
    page = elements(html)
    kinds = [set((a.get("class") or "").split()) for tag, a in page.tags if tag == "g"]
    assert sum(1 for k in kinds if "message" in k and "review" not in k) == shown
    assert f"#{LONG - 1} " in text and f"#{hidden} " in text and f"#{hidden - 1} " not in text


async def test_a_long_runs_messages_keep_when_they_were_read(store: Store) -> None:
    report = await read.read_report(await long_run(store, LONG))
    arrows = [a for a in report.timeline.arrows if not a.review]  # #4500 on, even ones read
    assert [a.read_at is not None for a in arrows[:4]] == [True, False, True, False]
    assert arrows[0].read_at == arrows[0].sent_at + 0.5


async def test_a_flood_of_messages_does_not_push_a_reviews_arrow_out(store: Store) -> None:
    report = await read.read_report(await long_run(store, LONG, review=True))
    reviews = [a for a in report.timeline.arrows if a.review]
    assert [(a.sender, a.recipient) for a in reviews] == [("A", "B"), ("B", "A")]  # asked first


async def test_a_long_runs_report_is_bounded_in_size(store: Store) -> None:
    html = await render_report(await long_run(store, LONG, turns=3000))
    assert len(html.encode()) < 1_500_000  # before the bounds: 3.6 MB for 5,000 messages


async def test_a_lane_of_thousands_of_turns_is_drawn_in_a_bounded_number_of_bars(
    store: Store,
) -> None:
    turns = 3000
    report = await read.read_report(await long_run(store, 0, turns=turns))
    phases = report.timeline.lanes["A"].phases
    assert len(phases) <= 2 * coarse.PHASES_SHOWN
    assert sum(p.merged for p in phases) >= 2 * turns - 1  # every phase drawn, in some bar
    assert report.timeline.phases_merged == sum(p.merged for p in phases) - len(phases)
    text = said_text(render_page(report))
    assert f"{report.timeline.phases_merged} phases too short to draw apart" in text
    assert "phases, each too short to draw apart: working" in text


async def test_the_fold_holds_no_more_than_it_shows(store: Store) -> None:
    bus = await long_run(store, LONG, turns=3000)
    names = {s.id: s.name for s in await bus.sessions()}
    folding = TimelineFold(names, start=bus.run.created_at)
    most = 0
    for event in await bus.events():
        folding.apply(event)
        most = max(most, len(folding.states["A"].lane.phases) if "A" in folding.states else 0)
    assert len(folding.messages.plain.kept) == recent.MESSAGES_SHOWN
    assert most <= coarse.SLACK * coarse.PHASES_SHOWN + 1


async def test_the_fold_parses_only_the_events_it_draws(
    ticking: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []

    def counted(event: Any) -> Any:
        parsed.append(event.kind)
        return parse(event)

    monkeypatch.setattr(timeline_module, "parse", counted)
    await prompt(ticking, "A")
    for said in ("one", "two"):
        await ticking.record("A", EventKind.SDK_ASSISTANT, said, {"content": [{"text": said}]})
    await ticking.record("C", EventKind.SDK_ASSISTANT, "alone", {"content": []})
    await result(ticking, "A")
    folded = await events_of(ticking)
    assert EventKind.SDK_ASSISTANT not in parsed and EventKind.SESSION_PROMPT in parsed
    assert phases(folded, "A")[-2][0] == "working"
    assert "C" in folded.lanes  # a session seen only in events not drawn still has its lane


def _attempts(store: Store, db: Db, run_id: str, start: float, conflicts: int, red: int) -> None:
    """`conflicts` merge conflicts of A, then `red` failed checks, a second apart."""
    a = session_id(db, run_id, "A")
    for i in range(conflicts + red):
        outcome = "conflict" if i < conflicts else "check_failed"
        given = MergeGateOutcome(branch="b", commit=COMMIT, check="pytest", output=f"out {i}")
        kind = EventKind.merge_outcome(outcome)
        insert_event(db, start + i, run_id, a, kind, f"{outcome} {i}", given)


async def test_a_long_runs_merge_attempts_list_their_last_and_say_how_many_more(
    store: Store,
) -> None:
    bus = await long_run(store, 0)
    conflicts, red = 300, 30
    args = (bus.run_id, bus.run.created_at + 10, conflicts, red)
    await store._in_worker(True, _attempts, args, {})
    html = await render_report(bus)
    text = said_text(html)
    hidden = conflicts + red - page_module.GATE_LISTED
    assert f"{hidden} earlier merge attempts not shown: conductor logs {bus.run_id}" in text
    assert f"{conflicts + red} ({red} with a failed check)" in text  # the summary counts all
    cells = [a for tag, a in elements(html).tags if (a.get("class") or "").startswith("outcome-")]
    assert len(cells) == page_module.GATE_LISTED
    assert f"{red - page_module.CHECKS_LISTED} earlier failed checks not shown" in text
    assert html.count('class="check-failure"') == page_module.CHECKS_LISTED
    first = conflicts + red - page_module.CHECKS_LISTED  # the first failed check listed
    assert f"<pre>out {first}</pre>" in html and f"<pre>out {first - 1}</pre>" not in html


async def test_a_workstreams_many_review_rounds_list_their_last(store: Store) -> None:
    bus = await long_run(store, 0)  # A asked once already
    for _ in range(page_module.ROUNDS_LISTED + 4):
        await bus.request_review("A", commit=COMMIT, diff=b"+x\n", reviewer="B")
    html = await render_report(bus)
    text = said_text(html)
    listed = f"conductor review list --run {bus.run_id} -s A"
    assert f"5 earlier review rounds not shown: {listed} has them" in text
    assert html.count('class="round"') == page_module.ROUNDS_LISTED


def test_a_lanes_phases_stay_bounded_whatever_the_clock_said() -> None:
    """Events stamped before the run's start (another host's clock): the fold still merges."""
    folding = TimelineFold({}, start=1e9)
    events = itertools.count(1)
    for i in range(6000):
        for kind, payload in (
            (EventKind.SESSION_PROMPT, PromptSent(f"turn {i}").to_json()),
            (EventKind.SDK_RESULT, SdkResult(result="ok").to_json()),
        ):
            at = 1000.0 + i + (0.5 if kind == EventKind.SDK_RESULT else 0.0)
            folding.apply(Event(next(events), "r", "A", kind, "x", payload, at))
        assert len(folding.states["A"].lane.phases) <= coarse.SLACK * coarse.PHASES_SHOWN + 1
    phases = folding.finish().lanes["A"].phases
    assert len(phases) <= 3 * coarse.PHASES_SHOWN


def test_short_phases_merge_into_one_coloured_by_where_most_time_went() -> None:
    phases = [
        Phase("working", 0.0, 0.3, "t1"),
        Phase("waiting", 0.3, 0.4, "w1"),
        Phase("working", 0.4, 1.2, "t2"),  # the stretch is a second long: it ends here
        Phase("waiting", 1.2, 1.5, "w2"),
        Phase("review", 1.5, 9.0, "r"),  # long enough to stay as it is
    ]
    first, second, third = coarse.merge_short(phases, grain=1.0)
    assert (first.kind, first.start, first.end, first.merged) == ("working", 0.0, 1.2, 3)
    assert first.what.startswith("3 phases, each too short to draw apart: working")
    assert second == phases[3] and third == phases[4]
    again = coarse.merge_short([first, second], grain=2.0)[0]
    assert again.merged == 4 and dict(again.times)["waiting"] == pytest.approx(0.4)


def test_a_run_with_few_phases_is_drawn_as_it_is() -> None:
    phases = [Phase("working", float(i), i + 0.001, f"t{i}") for i in range(100)]
    assert coarse.final(phases, 0.0, 1000.0) == phases


# ------------------------------------------------------------------------------ the command


def test_a_bad_run_id_is_one_line_and_exit_2(team: Cli) -> None:
    line = one_line_error(team.fails("report", "no-such-run"))
    assert line == "error: unknown run 'no-such-run'"


def test_the_report_goes_to_the_state_folder_and_its_path_is_printed(team: Cli, repo: Path) -> None:
    run_id = team.ok("show", "--json").json()["run"]["id"]
    printed = team.ok("report").out.strip()
    path = repo / ".conductor" / "reports" / f"{run_id}.html"
    assert printed == str(path)
    assert 'data-session="A"' in path.read_text()
    assert git(repo, "status", "--porcelain") == ""  # ignored, with the rest of .conductor


def test_out_writes_where_asked_and_dash_to_stdout(team: Cli, repo: Path) -> None:
    assert team.ok("report", "--out", "r.html").out.strip() == "r.html"
    assert '<svg id="timeline"' in (repo / "r.html").read_text()
    printed = team.ok("report", "--out", "-").out
    assert printed.startswith("<!DOCTYPE html>") and 'data-session="C"' in printed


def test_a_report_that_cannot_be_written_is_one_line_and_exit_2(team: Cli, repo: Path) -> None:
    (repo / "file").write_text("")
    line = one_line_error(team.fails("report", "--out", "file/r.html"))
    assert line.startswith(f"error: cannot write the report to file{'/'}r.html")


def test_at_the_end_of_a_run_a_report_not_written_is_said_not_raised(
    team: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = team.ok("show", "--json").json()["run"]["id"]
    (repo / ".conductor" / "reports").write_text("in the way")
    monkeypatch.chdir(repo)
    path, why = run_report(run_id, None)
    assert path is None and why
    (repo / ".conductor" / "reports").unlink()
    path, why = run_report(run_id, None)
    assert path == repo / ".conductor" / "reports" / f"{run_id}.html" and why == ""


def summary_printed(
    run_id: str, json_: bool, capsys: pytest.CaptureFixture[str]
) -> tuple[str, str]:
    """What `conductor run` prints at its end for a run that merged everything."""
    with pytest.raises(typer.Exit) as ended:
        _report(RunSummary(run_id, f"conductor/{run_id}", "0" * 40), json_, Globals())
    assert ended.value.exit_code == 0
    printed = capsys.readouterr()
    return printed.out, printed.err


def test_the_runs_summary_ends_with_where_its_report_is(
    team: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = team.ok("show", "--json").json()["run"]["id"]
    monkeypatch.chdir(repo)
    out, _ = summary_printed(run_id, False, capsys)
    path = repo / ".conductor" / "reports" / f"{run_id}.html"
    assert out.splitlines()[-2:] == ["everything merged", f"report: {path}"]
    out, _ = summary_printed(run_id, True, capsys)
    assert json.loads(out)["report"] == str(path)


def test_a_report_not_written_is_one_line_and_the_json_stays_json(
    team: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = team.ok("show", "--json").json()["run"]["id"]
    (repo / ".conductor" / "reports").write_text("in the way")
    monkeypatch.chdir(repo)
    out, _ = summary_printed(run_id, False, capsys)
    assert out.splitlines()[-1].startswith("report: not written: ")
    out, err = summary_printed(run_id, True, capsys)
    assert json.loads(out)["report"] is None
    assert err.startswith("report: not written: ") and len(err.splitlines()) == 1


# ------------------------------------------------------------------------------ end to end


async def test_a_run_ends_by_saying_where_its_report_is(standin: Standin) -> None:
    async with standin(SCRIPT) as offline:
        prepare(offline.repo, "sandbox = false\n")
        code, out, err = await conductor_run(offline.repo, {**clean_env(), **offline.env})
        assert code == 0, out + err
        (line,) = [line for line in out.splitlines() if line.startswith("report: ")]
        path = Path(line.removeprefix("report: "))
        async with Store.open(offline.repo / ".conductor" / "conductor.db") as store:
            run_id = (await open_run(store)).run_id
        assert path == offline.repo / ".conductor" / "reports" / f"{run_id}.html"
        page = elements(path.read_text())
        lanes = [a["data-session"] for _, a in page.tags if a.get("class") == "lane"]
        assert lanes == ["A"]
        classes = {a.get("class") for _, a in page.tags}
        assert {"phase working", "phase merge", "mark merged"} <= classes
