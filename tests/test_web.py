"""`conductor serve` as a real process, asked over real HTTP: who may reach it, what its
actions accept, and that what sessions wrote is text on every page.

(The whole view against a live run, in a real browser, is tests/test_browser.py.)
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from browser import Serving, serving
from support import clean_env, make_repo

from conductor.bus import Bus, create_run, supervisor_lock
from conductor.errors import InvalidInput
from conductor.models import HUMAN_REVIEWER, ReviewStatus, RunState
from conductor.store import Store
from conductor.web import actions
from conductor.web.access import host_name, is_loopback

pytestmark = pytest.mark.anyio

HOSTILE = '<img src=x onerror="window.pwned=1">'
ESCAPED = "&lt;img src=x onerror="
FILE = "a<b onmouseover=alert(1)>.py"
DIFF = (
    f"diff --git a/{FILE} b/{FILE}\nnew file mode 100644\n--- /dev/null\n+++ b/{FILE}\n"
    f"@@ -0,0 +1 @@\n+print('{HOSTILE}')\n"
).encode()
SPEC = {
    "plan": {"workstreams": [{"id": "A", "name": "a", "task": "a"}]},
    "config": {"review": "human"},
}


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode()


def page_token(page: str) -> str:
    return page.split('name="conductor-token" content="', 1)[1].split('"', 1)[0]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Served:
    """A running `conductor serve`: its pages' root, its sign-in address, the scripts' token,
    and the action token its pages carry."""

    def __init__(self, server: Serving) -> None:
        self.base, self.url, self.api = server.base, server.url, server.api
        self.process = server.process
        self.action = page_token(self.ask().text)

    def ask(self, path: str = "", **kw: Any) -> Answer:
        """A request with the scripts' token."""
        headers = {"Authorization": f"Bearer {self.api}", **kw.pop("headers", {})}
        return ask(self.base + path, headers=headers, **kw)

    def act(self, path: str, **kw: Any) -> Answer:
        """An action, as the page sends it: the page's token in its header too."""
        headers = {"X-Conductor-Token": self.action, **kw.pop("headers", {})}
        return self.ask(path, method="POST", body=kw.pop("body", {}), headers=headers, **kw)


def ask(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> Answer:
    """One HTTP request, its answer whatever the status (no redirect followed)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as e:
        return Answer(e.code, e.headers, e.read())


def first_events(served: Served, path: str, kinds: set[str]) -> tuple[Any, dict[str, Any]]:
    """Read a server-sent stream until an event of each kind came: its headers and, per
    kind, the first event's data."""
    events: dict[str, Any] = {}
    request = urllib.request.Request(
        served.base + path, headers={"Authorization": f"Bearer {served.api}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        kind = ""
        while not kinds <= events.keys():
            line = response.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind not in events:
                events[kind] = json.loads(line.removeprefix("data: "))
        return response.headers, events


async def hostile_run(repo: Path) -> tuple[Path, str, int, int]:
    """A run whose goal, session note, message, prompt and review all carry HTML: its
    database, its id, a review waiting on a person and one assigned to a peer."""
    db = repo / ".conductor" / "conductor.db"
    async with Store.open(db) as store:
        bus = await create_run(
            store,
            goal=f"ship {HOSTILE}",
            repo_root=repo,
            base_ref="main",
            base_commit=None,
            sessions=[("A", "a"), ("B", "b"), (HUMAN_REVIEWER, "a person")],
            spec=SPEC,
        )
        await bus.update("A", status="blocked", note=f"stuck on {HOSTILE}")
        await bus.send("A", "B", f"look at {HOSTILE}")
        await bus.record("A", "session.prompt", "prompt", {"prompt": f"do {HOSTILE}"})
        mine = await bus.request_review(
            "A", commit="a" * 40, diff=DIFF, reviewer=HUMAN_REVIEWER, note=HOSTILE
        )
        peers = await bus.request_review("B", commit="b" * 40, diff=DIFF, reviewer="A")
        return db, bus.run_id, mine.id, peers.id


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@contextmanager
def served(repo: Path, host: str | None = None) -> Iterator[Served]:
    with serving(repo, clean_env(), host=host) as server:
        yield Served(server)


@pytest.fixture
def loopback(repo: Path) -> Iterator[Served]:
    with served(repo) as server:
        yield server


async def test_every_page_shows_what_sessions_wrote_as_text(repo: Path) -> None:
    _, run_id, review, _ = await hostile_run(repo)
    with served(repo) as server:
        pages = {
            "runs": server.ask(),
            "run": server.ask(f"runs/{run_id}"),
            "session": server.ask(f"runs/{run_id}/sessions/A"),
            "review": server.ask(f"runs/{run_id}/reviews/{review}"),
        }
    for name, page in pages.items():
        assert page.status == 200, name
        assert "<img" not in page.text and "<b onmouseover" not in page.text, name
        assert ESCAPED in page.text, name
    assert "&lt;b onmouseover=alert(1)&gt;.py" in pages["review"].text


async def test_the_stream_sends_the_runs_data_as_json_text(repo: Path) -> None:
    _, run_id, _, _ = await hostile_run(repo)
    with served(repo) as server:
        headers, events = first_events(server, f"runs/{run_id}/stream?after=0", {"state", "lines"})
    assert headers["content-type"].startswith("text/event-stream")
    assert events["state"]["goal"] == f"ship {HOSTILE}"
    a = next(s for s in events["state"]["sessions"] if s["name"] == "A")
    assert a["status"] == "blocked" and a["waiting"]
    assert any(HOSTILE in line["text"] for line in events["lines"])


async def test_every_request_needs_a_sign_in_on_loopback_too(repo: Path) -> None:
    """Code a session wrote runs on this host (a merge check has the network): a loopback
    port is open to it, so loopback is no proof of being the person."""
    _, run_id, review, _ = await hostile_run(repo)
    with served(repo) as server:
        for path in ("", "static/page.js", f"runs/{run_id}", f"runs/{run_id}/stream", "x"):
            refused = ask(server.base + path)
            assert refused.status == 401 and "sign in" in refused.text, path
        wrong = ask(server.base, headers={"Authorization": "Bearer wrong"})
        action_as_bearer = ask(server.base, headers={"Authorization": f"Bearer {server.action}"})
        assert wrong.status == action_as_bearer.status == 401
        approve = ask(
            f"{server.base}runs/{run_id}/reviews/{review}/approve",
            method="POST",
            body={},
            headers={"X-Conductor-Token": server.action},
        )
        assert approve.status == 401
        assert server.ask().status == 200


async def test_the_pages_live_under_a_secret_prefix(loopback: Served) -> None:
    root = loopback.base.split("/", 3)
    outside = f"{root[0]}//{root[2]}/"
    auth = {"Authorization": f"Bearer {loopback.api}"}
    assert ask(outside, headers=auth).status == 404
    assert ask(outside + "runs/x", headers=auth).status == 404
    assert loopback.ask().status == 200


async def test_the_printed_address_signs_one_browser_in_once(loopback: Served) -> None:
    """The sign-in link a browser keeps in its history opens nothing once used."""
    signed = ask(loopback.url)
    prefix = "/" + loopback.base.split("/", 3)[3]
    assert signed.status == 303 and signed.headers["location"] == prefix  # the token dropped
    set_cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert f"Path={prefix}" in set_cookie  # never sent to another port's pages
    port = loopback.base.split("/")[2].rsplit(":", 1)[1]
    name, _, value = set_cookie.split(";", 1)[0].partition("=")
    assert name == f"conductor_{port}"
    assert ask(loopback.base, headers={"Cookie": f"{name}={value}"}).status == 200
    assert ask(loopback.base, headers={"Cookie": f"{name}=guess"}).status == 401
    again = ask(loopback.url)
    assert again.status == 401 and "used already" in again.text
    login = loopback.url.split("?login=", 1)[1]
    assert ask(loopback.base, headers={"Authorization": f"Bearer {login}"}).status == 401


async def test_every_answer_forbids_framing_and_the_pages_run_only_their_own_script(
    loopback: Served,
) -> None:
    page = loopback.ask()
    refused = ask(loopback.base)
    for answer in (page, refused):
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


async def test_loopback_answers_only_a_loopback_host(loopback: Served) -> None:
    """DNS rebinding: a page of evil.example resolved to 127.0.0.1 would be same-origin."""
    port = loopback.base.rstrip("/").rsplit(":", 1)[1]
    assert loopback.ask(headers={"Host": f"localhost:{port}"}).status == 200
    refused = loopback.ask(headers={"Host": f"evil.example:{port}"})
    assert refused.status == 403 and "loopback Host" in refused.text


async def test_an_action_needs_the_pages_token_header_and_no_foreign_origin(repo: Path) -> None:
    """CSRF: another site's form posts with the browser's cookie, but cannot read the
    page's token or send a header; its Origin gives it away too."""
    db, run_id, review, _ = await hostile_run(repo)
    approve = f"runs/{run_id}/reviews/{review}/approve"
    with served(repo) as server:
        bare = server.ask(approve, method="POST", body={})  # the cookie or bearer alone
        wrong = server.act(approve, headers={"X-Conductor-Token": "nope"})
        foreign = server.act(approve, headers={"Origin": "http://evil.example"})
        assert [bare.status, wrong.status, foreign.status] == [403, 403, 403]
        async with Store.open(db) as store:
            assert (await store.get_review(run_id, review)).status is ReviewStatus.PENDING
        done = server.act(approve, body={"comment": "ok"})
        assert done.status == 200, done.text
    async with Store.open(db) as store:
        decided = await store.get_review(run_id, review)
    assert decided.status is ReviewStatus.APPROVED and decided.decided_by == HUMAN_REVIEWER


async def test_another_bind_is_served_with_a_sign_in_and_any_host(repo: Path) -> None:
    await hostile_run(repo)
    with serving(repo, clean_env(), host="0.0.0.0") as server:
        _, _, hostport, prefix = server.base.split("/", 3)
        port = hostport.rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}/{prefix}"
        assert ask(base).status == 401
        named = ask(
            base, headers={"Host": f"box.example:{port}", "Authorization": f"Bearer {server.api}"}
        )
        assert named.status == 200


async def test_the_browser_decides_only_a_review_waiting_on_a_person(repo: Path) -> None:
    _, run_id, _, peers = await hostile_run(repo)
    with served(repo) as server:
        refused = server.act(f"runs/{run_id}/reviews/{peers}/approve")
        page = server.ask(f"runs/{run_id}/reviews/{peers}")
    assert refused.status == 409 and "not waiting on a person" in refused.text
    assert 'id="approve"' not in page.text  # no buttons where the person has no say


async def test_stop_from_the_browser_asks_the_runs_supervisor(repo: Path) -> None:
    db, run_id, _, _ = await hostile_run(repo)
    with served(repo) as server:
        nobody = server.act(f"runs/{run_id}/stop")
        assert nobody.status == 409 and "no supervisor running" in nobody.text
        async with Store.open(db) as store:
            bus = Bus(store, await store.get_run(run_id))
            lease = await bus.acquire_lock(
                "the test's supervisor", name=supervisor_lock(run_id), lease_seconds=600
            )
            asked = server.act(f"runs/{run_id}/stop")
            assert asked.status == 200, asked.text
            event = await bus.stop_asked(after=0)
            await bus.release_lock(lease)
    assert event is not None and "browser" in event.summary


async def test_resume_from_the_browser_is_refused_for_a_finished_run(repo: Path) -> None:
    db, run_id, _, _ = await hostile_run(repo)
    async with Store.open(db) as store:
        await store.set_run_state(run_id, RunState.FINISHED)
    with served(repo) as server:
        page = server.ask(f"runs/{run_id}")
        refused = server.act(f"runs/{run_id}/resume")
    assert 'id="resume" data-action="resume" hidden' in page.text
    assert refused.status == 409 and "nothing to resume" in refused.text


async def test_an_unknown_run_is_a_404_of_one_line(loopback: Served) -> None:
    missing = loopback.ask("runs/nope")
    assert missing.status == 404 and missing.text.count("\n") == 1


def test_serve_is_refused_inside_a_supervised_session(repo: Path) -> None:

    done = subprocess.run(
        [sys.executable, "-m", "conductor", "serve", "--port", "0"],
        cwd=repo,
        env=clean_env(CONDUCTOR_SUPERVISED="r-1", CONDUCTOR_SESSION="A"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "you may not run" in done.stderr


def test_a_port_in_use_is_one_line(repo: Path) -> None:

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "conductor",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=repo,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 2 and done.stderr.startswith(
        f"error: cannot listen on 127.0.0.1:{port}"
    )


async def test_by_default_it_listens_on_a_loopback_address_of_its_own(
    loopback: Served,
) -> None:
    """Not 127.0.0.1, where any program may serve a page the browser would send the cookie."""
    host = loopback.base.split("/")[2].rsplit(":", 1)[0]
    assert host.startswith("127.") and host != "127.0.0.1" and is_loopback(host)


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.3.4.5", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("evil.example", False),
    ],
)
def test_which_binds_are_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_a_host_headers_name_drops_its_port() -> None:
    assert host_name("[::1]:8080") == "::1"
    assert host_name("LocalHost:80") == "localhost"
    assert host_name("127.0.0.1") == "127.0.0.1"


def test_ctrl_c_stops_the_server_at_once_with_live_pages_open(repo: Path) -> None:
    _, run_id, _, _ = anyio.run(hostile_run, repo)
    with serving(repo, clean_env()) as started:
        server, process = Served(started), started.process
        first_events(server, f"runs/{run_id}/stream", {"state"})  # one page has come and gone
        request = urllib.request.Request(
            f"{server.base}runs/{run_id}/stream",
            headers={"Authorization": f"Bearer {server.api}"},
        )
        with urllib.request.urlopen(request, timeout=10) as live:  # and one is open
            live.readline()
            began = time.monotonic()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)
            took = time.monotonic() - began
        assert process.stdout is not None
        said = process.stdout.read()
    assert took < 4, took
    assert "Traceback" not in said and "ERROR" not in said, said


TROJAN = 'if access != "user\u202e \u2066// admin?\u2069 \u2066" {'


async def test_bidi_and_zero_width_characters_are_written_out_on_pages_and_in_the_stream(
    repo: Path,
) -> None:
    """A diff that reads otherwise than it is (Trojan Source) is shown as it is."""
    db = repo / ".conductor" / "conductor.db"
    async with Store.open(db) as store:
        bus = await create_run(
            store,
            goal=f"goal {TROJAN}",
            repo_root=repo,
            base_ref="main",
            base_commit=None,
            sessions=[("A", "a"), (HUMAN_REVIEWER, "a person")],
            spec=SPEC,
        )
        diff = f"+++ b/x.py\n+{TROJAN}\n+zero\u200bwidth\n".encode()
        review = await bus.request_review(
            "A", commit="a" * 40, diff=diff, reviewer=HUMAN_REVIEWER, note=TROJAN
        )
        run_id = bus.run_id
    with served(repo) as server:
        page = server.ask(f"runs/{run_id}/reviews/{review.id}").text
        _, events = first_events(server, f"runs/{run_id}/stream", {"state"})
    for hidden in ("\u202e", "\u2066", "\u2069", "\u200b"):
        assert hidden not in page and hidden not in events["state"]["goal"]
    assert "\\u202e" in page and "zero\\u200bwidth" in page
    assert events["state"]["goal"].startswith('goal if access != "user\\u202e')


async def test_odd_ids_and_cursors_are_answered_not_crashed_on(repo: Path) -> None:
    _, run_id, _, _ = await hostile_run(repo)
    with served(repo) as server:
        huge = server.ask(f"runs/{run_id}/reviews/99999999999999999999999")
        assert huge.status == 404 and huge.text.count("\n") == 1
        odd = first_events(server, f"runs/{run_id}/stream?after=%C2%B2", {"state"})[1]
        assert odd["state"]["run"] == run_id  # "²" is no cursor: from the start


async def test_a_second_resume_is_refused_while_the_first_is_on_its_way(repo: Path) -> None:
    """Two tabs, two clicks at once: one `conductor resume`, and the other click says so."""
    db, run_id, _, _ = await hostile_run(repo)
    async with Store.open(db) as store:
        await store.set_run_state(run_id, RunState.INTERRUPTED)
        bus = Bus(store, await store.get_run(run_id))
        pending: dict[str, subprocess.Popen[Any] | None] = {}
        answers: list[str] = []

        async def click() -> None:
            try:
                started = await actions.resume(
                    bus, repo=repo, location=str(db), env=clean_env(), pending=pending
                )
                answers.append(f"started {started.pid}")
            except InvalidInput as e:
                answers.append(str(e))

        async with anyio.create_task_group() as tg:
            tg.start_soon(click)
            tg.start_soon(click)
        for process in pending.values():  # whatever the one resume does, it ends here
            if process is not None:
                process.kill()
                process.wait()
    refused = [a for a in answers if "being resumed already" in a]
    assert len(refused) == 1, answers


async def test_a_cookie_of_the_same_name_from_elsewhere_locks_nobody_out(
    loopback: Served,
) -> None:
    """Cookie tossing: a page on this host sets `conductor_PORT=junk` for `/`; the browser
    then sends both values, and the real one still counts."""
    signed = ask(loopback.url)
    name, _, value = signed.headers["set-cookie"].split(";", 1)[0].partition("=")
    both = ask(loopback.base, headers={"Cookie": f"{name}={value}; {name}=junk"})
    tossed_first = ask(loopback.base, headers={"Cookie": f"{name}=junk; {name}={value}"})
    assert both.status == tossed_first.status == 200


async def test_only_a_get_uses_the_sign_in_link_and_a_signed_in_browser_keeps_it(
    loopback: Served,
) -> None:
    previewed = ask(loopback.url, method="HEAD")  # a link previewer
    assert previewed.status == 401
    signed = ask(loopback.url)
    assert signed.status == 303
    cookie = signed.headers["set-cookie"].split(";", 1)[0]
    restored = ask(loopback.url, headers={"Cookie": cookie})  # a restored tab: sent on
    assert restored.status == 303 and "set-cookie" not in restored.headers
    assert ask(loopback.url).status == 401  # and the link is still used up for others


async def test_blank_letters_and_tag_characters_are_written_out_too(repo: Path) -> None:
    db = repo / ".conductor" / "conductor.db"
    hidden = "const { timeout,\u3164} = q; // \U000e0072\U000e006d and\u00adso"
    async with Store.open(db) as store:
        bus = await create_run(
            store, goal=hidden, repo_root=repo, base_ref="main", base_commit=None, spec=SPEC
        )
        run_id = bus.run_id
    with served(repo) as server:
        page = server.ask(f"runs/{run_id}").text
    for char in ("\u3164", "\U000e0072", "\u00ad"):
        assert char not in page
    assert "\\u3164" in page and "\\U000e0072" in page and "\\u00ad" in page


async def test_the_run_page_shows_spent_against_the_runs_ceiling(repo: Path) -> None:
    db = repo / ".conductor" / "conductor.db"
    async with Store.open(db) as store:
        bus = await create_run(
            store,
            goal="capped",
            repo_root=repo,
            base_ref="main",
            base_commit=None,
            sessions=[("A", "a")],
            spec={**SPEC, "config": {**SPEC["config"], "max_cost": 5.0}},
        )
        run_id = bus.run_id
    with served(repo) as server:
        page = server.ask(f"runs/{run_id}").text
        _, events = first_events(server, f"runs/{run_id}/stream", {"state"})
    assert "$0.0000 of $5.00" in page
    assert events["state"]["cost"] == "$0.0000 of $5.00"
