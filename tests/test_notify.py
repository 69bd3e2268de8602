"""Notifications of what needs a person: [notify] in conductor.toml, the notification each
event makes, a real command and a real webhook on loopback receiving them once, retries, a
receiver that hangs or fails holding up nothing, a resumed run sending nothing twice, and a
whole `conductor run` under the human policy telling a person, through the real CLI."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import sys
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.console import Console
from support import clean_env, git

from conductor import bus as bus_module
from conductor.bus import Bus
from conductor.cli.supervising import supervise
from conductor.config import (
    NOTIFICATIONS,
    Config,
    Notify,
    load_config,
    load_notify,
    parse_config,
)
from conductor.errors import InvalidInput
from conductor.events import EventKind
from conductor.events.payloads import NotifyDelivered
from conductor.models import RunState, SessionKind, SessionStatus
from conductor.notify.deliver import CommandReceiver, Receiver, WebhookReceiver
from conductor.notify.follow import Follower, Notifier
from conductor.notify.what import Notification, RunFacts
from conductor.standin.harness import STANDIN_MODEL
from conductor.store import Store

pytestmark = pytest.mark.anyio

PLAN = {"workstreams": [{"id": "A", "name": "core"}, {"id": "B", "name": "cli"}]}
SPEC = {"plan": PLAN, "config": {"review": "human"}}
COMMIT = "c0ffee" * 6 + "abcd"


def wording(*words: str) -> str:
    return shlex.join(["conductor", *words])


async def a_run(store: Store, run_id: str = "20261203-000000-ntfy") -> Bus:
    """A run as `conductor run` makes one: its plan and config in the spec, the workstreams'
    sessions, a reviewer session and the `human` a person reviews as."""
    bus = await bus_module.create_run(
        store,
        goal="Build a <b>greeter</b>",
        repo_root=None,
        base_ref="main",
        base_commit=None,
        sessions=[("A", "core"), ("B", "cli")],
        run_id=run_id,
        spec=SPEC,
    )
    await bus.register([("A-review", "reviews A")], kind=SessionKind.REVIEWER)
    await bus.register([("human", "human reviews")], kind=SessionKind.HUMAN)
    return bus


async def human_review(bus: Bus, requester: str = "A") -> int:
    review = await bus.request_review(requester, commit=COMMIT, diff=b"+x\n", reviewer="human")
    return review.id


async def made(bus: Bus, history_end: int = 0) -> list[Notification]:
    """What the follower makes of the run's events so far, in order."""
    follower = Follower(
        RunFacts.of(bus.run), wording, frozenset(NOTIFICATIONS), history_end=history_end
    )
    for event in await bus.events():
        follower.fold(event)
    return follower.pending


# ------------------------------------------------------------------------------ what is sent


async def test_each_event_that_needs_a_person_makes_its_notification(store: Store) -> None:
    bus = await a_run(store)
    review = await human_review(bus)
    await bus.request_review("B", commit=COMMIT, diff=b"+y\n", reviewer="A-review")  # an agent's
    await bus.update("B", status=SessionStatus.BLOCKED, note="waiting for A's API")
    await bus.update("A-review", status=SessionStatus.FAILED, note="a reviewer, not a workstream")
    await bus.update("A", status=SessionStatus.FAILED, note="checks failed")
    await bus.set_state(RunState.INTERRUPTED, "stopped: resumable")
    found = await made(bus)
    assert [(n.kind, n.session) for n in found] == [
        ("review.waiting", "A"),
        ("session.blocked", "B"),
        ("workstream.failed", "A"),
        ("run.interrupted", None),
    ]
    waiting, blocked, failed, interrupted = found
    run = bus.run_id
    assert waiting.answer == f"conductor review approve {review} --from human --run {run}"
    assert waiting.review_id == review
    assert (
        waiting.text == f"review #{review} of A waits for you (run {run}: Build a <b>greeter</b>)"
    )
    assert blocked.text.startswith("B is blocked: waiting for A's API (run ")
    assert blocked.answer == f"conductor message B 'your answer' --from human --run {run}"
    assert failed.text.startswith("workstream A failed: checks failed") and failed.answer is None
    assert interrupted.answer == f"conductor resume {run}"
    assert interrupted.text == f"run {run} interrupted: stopped: resumable ({bus.run.goal})"


async def test_the_json_names_what_it_is_the_run_the_event_and_the_time(store: Store) -> None:
    bus = await a_run(store)
    await bus.set_state(RunState.FINISHED, "everything merged")
    (finished,) = await made(bus)
    event = (await bus.events())[-1]
    sent = json.loads(finished.body())
    assert sent == {
        "kind": "run.finished",
        "text": f"run {bus.run_id} finished: everything merged (Build a <b>greeter</b>)",
        "run_id": bus.run_id,
        "goal": "Build a <b>greeter</b>",
        "session": None,
        "event_id": event.id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.created_at)),
        "answer": None,
        "review_id": None,
    }
    assert finished.body().endswith(b"\n") and finished.body().count(b"\n") == 1


async def test_a_review_asked_of_no_one_waits_on_a_person_in_a_human_run(store: Store) -> None:
    bus = await a_run(store)
    await bus.request_review("A", commit=COMMIT, diff=b"+x\n")  # by hand, to no one
    assert [n.kind for n in await made(bus)] == ["review.waiting"]


async def test_what_was_answered_before_it_went_out_is_not_sent(store: Store) -> None:
    bus = await a_run(store)
    review = await human_review(bus)
    await bus.update("B", status=SessionStatus.BLOCKED, note="waiting")
    await bus.decide(review, "human", approve=True)
    await bus.update("B", status=SessionStatus.WORKING)
    await bus.set_state(RunState.INTERRUPTED, "stopped: resumable")
    await bus.set_state(RunState.ACTIVE, "resumed")
    assert await made(bus) == []


async def test_the_runs_earlier_end_is_not_sent_by_the_supervisor_that_resumes_it(
    store: Store,
) -> None:
    bus = await a_run(store)
    await bus.set_state(RunState.FAILED, "not everything merged")
    await bus.update("A", status=SessionStatus.FAILED, note="checks failed")
    last = (await bus.events())[-1].id
    assert [n.kind for n in await made(bus, history_end=last)] == ["workstream.failed"]


# ------------------------------------------------------------------------------ [notify]


def notify_of(toml: str) -> Any:
    return parse_config(tomllib.loads(toml))


def test_notify_is_checked_with_the_file_and_kept_out_of_the_runs_settings(
    tmp_path: Path,
) -> None:
    (tmp_path / "conductor.toml").write_text(
        'max_parallel = 2\n[notify]\ncommand = ["notify-send", "conductor"]\n'
        'webhook = "https://ntfy.example.com/run"\non = ["review.waiting"]\ntimeout = 2.5\n'
    )
    assert load_notify(tmp_path) == Notify(
        ("notify-send", "conductor"), "https://ntfy.example.com/run", ("review.waiting",), 2.5
    )
    config = load_config(tmp_path)
    assert config == Config(max_parallel=2) and "notify" not in asdict(config)


def test_without_notify_nothing_is_sent(tmp_path: Path) -> None:
    assert not load_notify(tmp_path).enabled
    (tmp_path / "conductor.toml").write_text("max_parallel = 2\n")
    assert load_notify(tmp_path) == Notify() and Notify().on == NOTIFICATIONS


def test_a_command_line_as_a_string_is_split_as_a_shell_would(tmp_path: Path) -> None:
    (tmp_path / "conductor.toml").write_text("[notify]\ncommand = \"./tell 'a person'\"\n")
    assert load_notify(tmp_path).command == ("./tell", "a person")


@pytest.mark.parametrize(
    ("toml", "complaint"),
    [
        ("[notify]\nwebhok = 'https://x.example'", "notify.webhok: unknown key of [notify];"),
        ("[notify]\non = ['review.waiting']", "notify: names no command and no webhook"),
        ("[notify]\nwebhook = 'ftp://x.example'", "notify.webhook: expected an http:// or"),
        ("[notify]\nwebhook = 'https://'", "notify.webhook: expected an http:// or https://"),
        ("[notify]\ncommand = []", "notify.command: expected a program and its arguments"),
        ("[notify]\ncommand = [1]", "notify.command[0]: expected a non-empty string, got 1"),
        ("[notify]\ncommand = 'a \"b'", "notify.command: cannot be split as a shell would"),
        (
            "[notify]\ncommand = 'x'\non = ['review']",
            "notify.on[0]: expected one of review.waiting, session.blocked,",
        ),
        ("[notify]\ncommand = 'x'\non = []", "notify.on: expected a list of notification names"),
        (
            "[notify]\ncommand = 'x'\ntimeout = 0",
            "notify.timeout: expected a number of seconds more than 0 and at most 300, got 0",
        ),
        ("notify = 'x'", "notify: expected a table: [notify] with command and/or webhook"),
    ],
)
def test_a_wrong_notify_is_named_in_one_line(toml: str, complaint: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        notify_of(toml)
    assert complaint in str(caught.value) and "\n" not in str(caught.value)


def test_a_wrong_notify_stops_a_resume_too(tmp_path: Path) -> None:
    (tmp_path / "conductor.toml").write_text("[notify]\nwebhook = 'nowhere'\n")
    with pytest.raises(InvalidInput, match=r"conductor\.toml: notify\.webhook: expected"):
        load_notify(tmp_path)


# ------------------------------------------------------------------------------ receivers


def recorder(tmp_path: Path, *, sleep: float = 0.0, exit_code: int = 0) -> list[str]:
    """A command that appends the JSON it reads on stdin to `got.jsonl` (after `sleep`)."""
    script = tmp_path / "record.py"
    script.write_text(
        "import sys, time\n"
        "data = sys.stdin.read()\n"
        f"time.sleep({sleep})\n"
        f"open({str(tmp_path / 'got.jsonl')!r}, 'a').write(data)\n"
        f"print('recorder says no', file=sys.stderr)\n"
        f"sys.exit({exit_code})\n"
    )
    return [sys.executable, str(script)]


def received(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "got.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@dataclass
class Hook:
    """A webhook receiver on 127.0.0.1: each POST's JSON and when it came; answers with the
    next of `statuses` (then 200), or never while `hang` is set."""

    url: str
    posts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    retry_after: str | None = None  # sent with a 429
    hang: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@contextmanager
def webhook_server() -> Iterator[Hook]:
    hook = Hook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            hook.posts.append((time.monotonic(), json.loads(body)))
            if hook.hang.is_set():
                hook.released.wait(30)
                return
            status = hook.statuses.pop(0) if hook.statuses else 200
            self.send_response(status)
            if status == 429 and hook.retry_after is not None:
                self.send_header("retry-after", hook.retry_after)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.released.set()
        server.shutdown()
        server.server_close()


@asynccontextmanager
async def notifying(
    bus: Bus, receivers: Sequence[Receiver], *, grace: float = 5.0
) -> AsyncIterator[list[str]]:
    """A Notifier on the run beside the body, as the supervising process runs it; the body's
    end is the run's end. Yields what it said."""
    said: list[str] = []
    ended = anyio.Event()
    last = await bus.last_event()
    notifier = Notifier(
        bus.store,
        bus.run_id,
        receivers,
        wording=wording,
        kinds=NOTIFICATIONS,
        history_end=last.id if last is not None else 0,
        say=said.append,
        grace=grace,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(notifier.run, ended)
        try:
            yield said
        finally:
            ended.set()


async def until(condition: Any, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 (another process or thread's doing)
            await anyio.sleep(0.02)


async def delivered(bus: Bus) -> list[NotifyDelivered]:
    kinds = (EventKind.NOTIFY_SENT, EventKind.NOTIFY_FAILED)
    return [
        NotifyDelivered.from_json(e.payload or {}) for e in await bus.events() if e.kind in kinds
    ]


async def test_a_command_reads_each_notification_on_stdin_once(
    store: Store, tmp_path: Path
) -> None:
    bus = await a_run(store)
    command = CommandReceiver(recorder(tmp_path), timeout=10)
    async with notifying(bus, [command]):
        review = await human_review(bus)
        await until(lambda: len(received(tmp_path)) == 1)
        await bus.update("B", status=SessionStatus.BLOCKED, note="waiting for A")
        await bus.set_state(RunState.FINISHED, "everything merged")
    got = received(tmp_path)
    assert [g["kind"] for g in got] == ["review.waiting", "session.blocked", "run.finished"]
    assert got[0]["review_id"] == review and got[0]["run_id"] == bus.run_id
    done = await delivered(bus)
    assert [(d.notification, d.receiver, d.error) for d in done] == [
        ("review.waiting", "command", None),
        ("session.blocked", "command", None),
        ("run.finished", "command", None),
    ]
    assert [d.event_id for d in done] == [g["event_id"] for g in got]


async def test_a_webhook_gets_each_notification_posted(store: Store) -> None:
    bus = await a_run(store)
    with webhook_server() as hook:
        async with notifying(bus, [WebhookReceiver(hook.url, timeout=5)]):
            await human_review(bus)
            await bus.set_state(RunState.FINISHED, "everything merged")
        assert [p["kind"] for _, p in hook.posts] == ["review.waiting", "run.finished"]
    assert [d.receiver for d in await delivered(bus)] == ["webhook", "webhook"]


async def test_a_webhook_is_tried_again_with_back_off_after_a_500(store: Store) -> None:
    bus = await a_run(store)
    with webhook_server() as hook:
        hook.statuses = [500, 503]
        webhook = WebhookReceiver(hook.url, timeout=5, backoff=0.3)
        async with notifying(bus, [webhook]):
            await human_review(bus)
            await until(lambda: len(hook.posts) == 3)
        first, second, third = (at for at, _ in hook.posts)
        assert second - first >= 0.3 and third - second >= 0.6  # doubling
        assert len({p["event_id"] for _, p in hook.posts}) == 1
    (done,) = await delivered(bus)
    assert done.error is None


async def test_a_webhook_that_asks_to_wait_is_tried_again_after_its_retry_after(
    store: Store,
) -> None:
    bus = await a_run(store)
    with webhook_server() as hook:
        hook.statuses = [429]
        hook.retry_after = "0.5"
        async with notifying(bus, [WebhookReceiver(hook.url, timeout=5, backoff=0.01)]):
            await human_review(bus)
            await until(lambda: len(hook.posts) == 2)
        (first, _), (second, _) = hook.posts
        assert second - first >= 0.5
    (done,) = await delivered(bus)
    assert done.error is None


async def test_a_webhook_nobody_listens_on_is_tried_a_bounded_number_of_times(
    store: Store,
) -> None:
    with webhook_server() as hook:
        url = hook.url  # a port that was just free, and is closed again below
    bus = await a_run(store)
    webhook = WebhookReceiver(url, timeout=2, attempts=3, backoff=0.05)
    async with notifying(bus, [webhook]) as said:
        started = time.monotonic()
        await human_review(bus)
        await until(lambda: bool(said))
        assert time.monotonic() - started < 3
    (failed,) = await delivered(bus)
    assert failed.error == "the webhook failed 3 times, last: ConnectError"


async def test_a_webhook_that_refuses_is_not_asked_again_and_the_failure_is_recorded(
    store: Store,
) -> None:
    bus = await a_run(store)
    with webhook_server() as hook:
        hook.statuses = [404]
        async with notifying(bus, [WebhookReceiver(hook.url, timeout=5, backoff=0.1)]) as said:
            await human_review(bus)
            await until(lambda: bool(said))
        assert len(hook.posts) == 1
    (failed,) = await delivered(bus)
    assert (failed.notification, failed.error) == (
        "review.waiting",
        "the webhook answered HTTP 404",
    )
    assert said == [
        f"notification review.waiting (event {failed.event_id}) to the webhook failed:"
        " the webhook answered HTTP 404"
    ]
    assert hook.url not in said[0]


async def test_a_failing_command_is_recorded_with_what_it_said(
    store: Store, tmp_path: Path
) -> None:
    bus = await a_run(store)
    command = CommandReceiver(recorder(tmp_path, exit_code=3), timeout=10)
    async with notifying(bus, [command]) as said:
        await human_review(bus)
        await until(lambda: bool(said))
    (failed,) = await delivered(bus)
    assert failed.error is not None and failed.error.endswith("exited with 3: recorder says no")
    events = [e for e in await bus.events() if e.kind == EventKind.NOTIFY_FAILED]
    assert "exited with 3" in events[0].summary


async def test_a_command_that_is_not_there_is_one_line(store: Store) -> None:
    bus = await a_run(store)
    command = CommandReceiver(["no-such-notifier-here", "x"], timeout=5)
    async with notifying(bus, [command]) as said:
        await human_review(bus)
        await until(lambda: bool(said))
    (failed,) = await delivered(bus)
    assert failed.error == "no-such-notifier-here: No such file or directory"


async def test_a_hanging_command_holds_up_neither_the_webhook_nor_the_run(
    store: Store, tmp_path: Path
) -> None:
    """The command hangs (with a child of its own) past its timeout; the webhook gets each
    notification long before that, the run's writes keep their pace, and at the timeout the
    command's whole process group is killed."""
    bus = await a_run(store)
    pids = tmp_path / "pids"
    hanging = ["sh", "-c", f"sleep 60 & echo $! >> {pids}; cat > /dev/null; wait"]
    with webhook_server() as hook:
        receivers: list[Receiver] = [
            CommandReceiver(hanging, timeout=5),
            WebhookReceiver(hook.url, timeout=5),
        ]
        async with notifying(bus, receivers, grace=0.5) as said:
            started = time.monotonic()
            took: list[float] = []
            for step in (
                human_review(bus),
                bus.update("B", status=SessionStatus.BLOCKED, note="waiting"),
                bus.update("A", status=SessionStatus.FAILED, note="checks failed"),
            ):
                before = time.monotonic()
                await step
                took.append(time.monotonic() - before)
            await until(lambda: len(hook.posts) == 3, timeout=4)
            assert time.monotonic() - started < 4  # the command's first try hangs for 5 s
            assert max(took) < 1.0
            assert said == []
            await until(lambda: bool(said), timeout=8)  # the command's timeout
            child = int(pids.read_text().split()[0])  # the first try's
            await until(lambda: not alive(child), timeout=2)  # its whole group was killed
            assert "review.waiting" in said[0] and "took more than 5s: killed" in said[0]
    assert [d.receiver for d in await delivered(bus)].count("webhook") == 3


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


async def test_a_hanging_webhook_holds_up_neither_the_command_nor_the_run(
    store: Store, tmp_path: Path
) -> None:
    bus = await a_run(store)
    with webhook_server() as hook:
        hook.hang.set()
        receivers: list[Receiver] = [
            WebhookReceiver(hook.url, timeout=30),
            CommandReceiver(recorder(tmp_path), timeout=10),
        ]
        async with notifying(bus, receivers, grace=0.2):
            started = time.monotonic()
            await human_review(bus)
            await bus.update("B", status=SessionStatus.BLOCKED, note="waiting")
            await until(lambda: len(received(tmp_path)) == 2, timeout=5)
            assert time.monotonic() - started < 5  # the webhook's first try hangs for 30 s
            assert len(hook.posts) == 1  # the first, still unanswered


async def test_the_runs_end_waits_for_deliveries_no_longer_than_the_grace(
    store: Store, tmp_path: Path
) -> None:
    bus = await a_run(store)
    command = CommandReceiver(["sleep", "60"], timeout=60)
    async with notifying(bus, [command], grace=0.5) as said:
        await human_review(bus)
        await bus.set_state(RunState.FINISHED, "everything merged")
        ended = time.monotonic()
    assert time.monotonic() - ended < 2
    assert said == ["notifications: 2 not delivered within 0.5s of the end"]


async def test_a_resumed_run_does_not_notify_again(store: Store, tmp_path: Path) -> None:
    """Its first supervisor delivered the review and was killed before it could deliver the
    block; the resumed one delivers the block, and then only what is new."""
    bus = await a_run(store)
    command = CommandReceiver(recorder(tmp_path), timeout=10)
    async with notifying(bus, [command]):
        await human_review(bus)
        await until(lambda: len(received(tmp_path)) == 1)
    await bus.update("B", status=SessionStatus.BLOCKED, note="waiting for A")  # no supervisor
    await bus.set_state(RunState.INTERRUPTED, "stopped: resumable")  # (said by a Ctrl-C)
    await bus.set_state(RunState.ACTIVE, "resumed")
    async with notifying(bus, [command]):
        await until(lambda: len(received(tmp_path)) == 2)
        await bus.update("A", status=SessionStatus.FAILED, note="checks failed")
        await bus.set_state(RunState.FAILED, "not everything merged")
    assert [g["kind"] for g in received(tmp_path)] == [
        "review.waiting",
        "session.blocked",
        "workstream.failed",
        "run.failed",
    ]
    async with notifying(bus, [command]):  # once more: nothing left to send
        await anyio.sleep(0.3)
    assert len(received(tmp_path)) == 4


async def test_the_command_gets_no_credentials(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "pg-secret")
    monkeypatch.setenv("CONDUCTOR_DB", "postgresql://conductor:url-secret@db.internal/c")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "api-secret")
    monkeypatch.setenv("NOTIFY_TEST_MARK", "kept")
    env_file = tmp_path / "env"
    command = CommandReceiver(["sh", "-c", f"env > {env_file}"], timeout=10)
    bus = await a_run(store)
    async with notifying(bus, [command]):
        await human_review(bus)
        await until(env_file.exists)
        await until(lambda: "NOTIFY_TEST_MARK" in env_file.read_text())
    seen = env_file.read_text()
    assert "NOTIFY_TEST_MARK=kept" in seen
    for secret in ("pg-secret", "url-secret", "api-secret", "PGPASSWORD"):
        assert secret not in seen


class _Supervisor:
    """Stands in for a supervisor on a real store: its run asks a person for a review, and
    is then interrupted (the notifications beside it are under test, not the run)."""

    def __init__(self, repo: Path, bus: Bus) -> None:
        self.started = anyio.Event()
        self.run_id: str | None = bus.run_id
        self.repo = repo
        self.store = bus.store
        self.bus = bus
        self.ran = anyio.Event()
        self.ended_at = 0.0

    async def run(self) -> str:
        self.started.set()
        await anyio.sleep(0.5)  # the notifications' first read: the earlier end, unanswered
        await human_review(self.bus)
        await self.bus.set_state(RunState.INTERRUPTED, "stopped: resumable")
        self.ended_at = time.monotonic()
        self.ran.set()
        return "the summary"


async def test_supervise_sends_the_notifications_of_its_run_with_commands_to_paste(
    store: Store, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "conductor.toml").write_text(f"[notify]\ncommand = {json.dumps(recorder(tmp_path))}\n")
    bus = await a_run(store)
    await bus.set_state(RunState.INTERRUPTED, "an earlier supervisor's end")
    after = (await bus.events())[-1].id
    said = io.StringIO()
    console = Console(file=said, width=200)
    summary = await supervise(
        _Supervisor(repo, bus), console=console, live=False, after=after, resumable=False
    )
    assert summary == "the summary"
    waiting, interrupted = received(tmp_path)  # not the earlier end
    db = shlex.quote(bus.db_location)
    assert waiting["answer"].startswith(f"cd {shlex.quote(str(repo))} && ")  # from anywhere
    assert waiting["answer"].endswith(
        f"--db {db} review approve {waiting['review_id']} --from human --run {bus.run_id}"
    )
    assert interrupted["kind"] == "run.interrupted"
    assert interrupted["answer"].endswith(f"--db {db} resume {bus.run_id}")


async def test_a_wrong_notify_stops_supervise_before_the_run(store: Store, tmp_path: Path) -> None:
    (tmp_path / "conductor.toml").write_text("[notify]\ncommand = 'x'\non = ['everything']\n")
    bus = await a_run(store)
    supervisor = _Supervisor(tmp_path, bus)
    with pytest.raises(InvalidInput, match=r"notify\.on\[0\]: expected one of"):
        await supervise(supervisor, console=Console(file=io.StringIO()), live=False)
    assert not supervisor.started.is_set()


async def test_ctrl_c_after_the_run_ends_does_not_wait_for_the_notifications(
    store: Store, tmp_path: Path
) -> None:
    """The run has ended; its end goes to a command that hangs, which gets up to 5 s. A
    Ctrl-C then ends the wait at once (and the command's process group), not the process."""
    (tmp_path / "conductor.toml").write_text("[notify]\ncommand = ['sleep', '60']\n")
    bus = await a_run(store)
    supervisor = _Supervisor(tmp_path, bus)
    said = io.StringIO()
    async with anyio.create_task_group() as tg:

        async def ctrl_c_once_the_run_ended() -> None:
            await supervisor.ran.wait()
            await anyio.sleep(0.5)  # its end is being delivered
            os.kill(os.getpid(), signal.SIGINT)

        tg.start_soon(ctrl_c_once_the_run_ended)
        summary = await supervise(supervisor, console=Console(file=said), live=False)
        ended = time.monotonic()
    assert summary == "the summary"
    assert ended - supervisor.ended_at < 2  # not the 5 s of grace
    assert "not waiting for the notifications still to go" in said.getvalue()


# ------------------------------------------------------------------------------ a whole run

SCRIPT = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'core: greet'"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "Waiting for a person."
"""


@asynccontextmanager
async def running(
    repo: Path, env: dict[str, str], log: Path, argv: list[str]
) -> AsyncIterator[Any]:
    """`argv` as a real process in `repo`, its output into `log`; killed if the body fails
    (a supervisor waiting for a person would wait for ever)."""
    with log.open("ab") as output:
        process = await anyio.open_process(argv, cwd=repo, env=env, stdout=output, stderr=output)
    async with process:
        try:
            yield process
        except BaseException:
            process.kill()
            raise


async def count(repo: Path, kind: str, summary: str = "") -> int:
    """The events of `kind` (whose summary has `summary`) the repository's run recorded."""
    async with Store.open(repo / ".conductor" / "conductor.db") as store:
        bus = await bus_module.open_run(store)
        return sum(e.kind == kind and summary in e.summary for e in await bus.events())


async def eventually(check: Any, timeout: float = 60.0) -> None:
    with anyio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110 (another process's doing)
            await anyio.sleep(0.1)


async def test_a_human_run_tells_a_person_of_the_review_and_of_its_end_once(
    standin: Any, tmp_path: Path
) -> None:
    """`conductor run` as a real process, the real CLI against the stand-in: the notify
    command gets review.waiting. The supervisor is SIGKILLed; `conductor resume` takes the
    run without sending it again. Ctrl-C stops that one: run.interrupted comes, and its
    `answer` pasted resumes the run, again sending nothing twice. The person pastes the
    review's `answer`, and run.finished comes."""
    out = tmp_path / "notes"
    out.mkdir()
    log = tmp_path / "run.log"
    async with standin(SCRIPT) as offline:
        repo = offline.repo
        core = {"id": "A", "name": "core", "task": "core", "owns": ["core.py"]}
        (repo / "plan.json").write_text(json.dumps({"workstreams": [core]}))
        (repo / "conductor.toml").write_text(
            f'review = "human"\nmodel = "{STANDIN_MODEL}"\n'
            f"[notify]\ncommand = {json.dumps(recorder(out))}\n"
        )
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "plan and config")
        env = {**clean_env(), **offline.env}
        conductor = [sys.executable, "-m", "conductor"]

        async def resumed(times: int) -> None:
            """Until the run was resumed `times` times and its notifications caught up."""
            await eventually(lambda: _is(count(repo, EventKind.RUN_STATE, "resumed"), times))
            await anyio.sleep(2)  # (the follower's first read is at once: nothing to send)

        with anyio.fail_after(100):
            run = [*conductor, "run", "core", "--plan", "plan.json"]
            async with running(repo, env, log, run) as first:
                await until(lambda: received(out) or first.returncode is not None, timeout=90)
                await eventually(lambda: _is(count(repo, EventKind.NOTIFY_SENT), 1))
                first.send_signal(signal.SIGKILL)
                assert await first.wait() == -signal.SIGKILL
            async with running(repo, env, log, [*conductor, "resume", "--no-live"]) as second:
                await resumed(1)
                assert [g["kind"] for g in received(out)] == ["review.waiting"]
                second.send_signal(signal.SIGINT)
                assert await second.wait() == 130, log.read_text()
            waiting, interrupted = received(out)
            run_id = waiting["run_id"]
            assert interrupted["kind"] == "run.interrupted"
            assert interrupted["answer"].endswith(f" resume {run_id}")
            pasted = ["sh", "-c", interrupted["answer"]]  # in another directory: it says where
            async with running(tmp_path, env, log, pasted) as third:
                await resumed(2)
                assert len(received(out)) == 2
                answered = await anyio.run_process(
                    ["sh", "-c", waiting["answer"]], cwd=tmp_path, env=env, check=False
                )
                assert answered.returncode == 0, answered.stderr.decode()
                assert await third.wait() == 0, log.read_text()
        got = received(out)
        kinds = [g["kind"] for g in got]
        assert kinds == ["review.waiting", "run.interrupted", "run.finished"], log.read_text()
        assert got[2]["text"] == f"run {run_id} finished: everything merged (core)"
        assert "notification" not in log.read_text()  # nothing failed, nothing left behind


async def _is(counted: Any, expected: int) -> bool:
    return bool(await counted == expected)
