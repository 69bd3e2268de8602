"""The browser view as a starlette app: a repository's runs, a run's live page, a session's
transcript, a review's diff with approve and reject, stop and resume, the run's report.

Everything is read through the bus, as the terminal commands read it, from one store the app
opens when the database exists (a repository with no runs yet gets a page that says so, and
no database is made by looking). `access.Gate` sits in front of every route.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route

from conductor.bus import Bus, open_run
from conductor.errors import (
    ConductorError,
    InvalidInput,
    UnknownReview,
    UnknownRun,
    UnknownSession,
)
from conductor.readmodel import cost_text, transcript_lines
from conductor.readmodel.runs import run_lines
from conductor.report import read_report, render_page
from conductor.store import NoDatabase, Store
from conductor.store.interface import without_password
from conductor.text import clock
from conductor.web import actions, pages
from conductor.web.access import Access, Gate
from conductor.web.live_runs import BACKLOG, LiveRuns
from conductor.web.stream import run_updates

UNKNOWN = (UnknownRun, UnknownSession, UnknownReview)
COMMENT_LIMIT = 20_000  # characters of a verdict's comment
BIGGEST_ID = 2**62  # an id past this names nothing (and would overflow the database's integers)
# The pages load only their own script and stylesheet, talk only to this server, and are
# framed by nobody; the report, which has no script, gets its inline stylesheet alone.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
REPORT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none';"
    " form-action 'none'; frame-ancestors 'none'"
)


@dataclass
class Served:
    """What every request shares: the database (opened once it exists), the repository, the
    server's access rules and the environment a resumed run starts with."""

    location: str
    repo: Path
    access: Access
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # Whether the server is stopping (Ctrl-C): open live pages end their streams then, so
    # the server stops at once instead of waiting for them.
    stopping: Callable[[], bool] = lambda: False
    live: LiveRuns = field(default_factory=LiveRuns)  # the runs pages are open on
    # run id -> the `conductor resume` this server started (None while it starts)
    resuming: dict[str, subprocess.Popen[Any] | None] = field(default_factory=dict)
    _store: Store | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    _opening: anyio.Lock = field(default_factory=anyio.Lock)

    async def store(self) -> Store | None:
        """The store, or None while there is no database yet."""
        async with self._opening:
            if self._store is None:
                try:
                    self._store = await self._stack.enter_async_context(
                        Store.open(self.location, create=False)
                    )
                except NoDatabase:
                    return None
            return self._store

    async def bus(self, run_id: str) -> Bus:
        store = await self.store()
        if store is None:
            raise UnknownRun(f"unknown run {run_id!r}: there are no runs here yet")
        return await open_run(store, run_id)

    async def close(self) -> None:
        await self._stack.aclose()


def make_app(served: Served) -> Gate:
    """The app behind its gate. The store is closed when the server stops."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await served.close()

    routes = [
        Route("/", _runs_page),
        Route("/static/{name}", _static),
        Route("/runs/{run_id}", _run_page),
        Route("/runs/{run_id}/stream", _stream),
        Route("/runs/{run_id}/report", _report),
        Route("/runs/{run_id}/sessions/{name}", _session_page),
        Route("/runs/{run_id}/reviews/{review_id:int}", _review_page),
        Route("/runs/{run_id}/reviews/{review_id:int}/{verdict}", _decide, methods=["POST"]),
        Route("/runs/{run_id}/stop", _stop, methods=["POST"]),
        Route("/runs/{run_id}/resume", _resume, methods=["POST"]),
    ]
    app = Starlette(
        routes=[Mount(served.access.base, routes=routes)],
        lifespan=lifespan,
        exception_handlers={ConductorError: _refused},
    )
    app.state.served = served
    return Gate(app, served.access)


def _served(request: Request) -> Served:
    served: Served = request.app.state.served
    return served


def _page(request: Request, template: str, **values: Any) -> HTMLResponse:
    served = _served(request)
    return HTMLResponse(
        pages.render(
            template,
            token=served.access.action,
            base=served.access.base,
            where=f"{served.repo} · {without_password(served.location)}",
            **values,
        ),
        headers={"cache-control": "no-store", "content-security-policy": PAGE_POLICY},
    )


def _id(request: Request, name: str) -> int:
    """A whole-number path parameter, or UnknownReview (404) past any real id."""
    value: int = request.path_params[name]
    if value > BIGGEST_ID:
        raise UnknownReview(f"unknown review #{value}")
    return value


async def _refused(request: Request, error: Exception) -> Response:
    """A domain error in one line: 404 for what does not exist, 409 for what is refused."""
    status = 404 if isinstance(error, UNKNOWN) else 409
    if request.method == "POST":
        return JSONResponse({"error": str(error)}, status_code=status)
    return PlainTextResponse(str(error) + "\n", status_code=status)


async def _static(request: Request) -> Response:
    found = pages.static(request.path_params["name"])
    if found is None:
        return PlainTextResponse("not found\n", status_code=404)
    body, kind = found
    return Response(body, media_type=kind)


async def _runs_page(request: Request) -> Response:
    store = await _served(request).store()
    rows = [
        {
            "id": line.run.id,
            "goal": line.run.goal,
            "state": line.state,
            "sessions": line.sessions,
            "cost": cost_text(line.cost_usd),
            "started": clock(line.run.created_at),
        }
        for line in (await run_lines(store) if store is not None else [])
    ]
    rows.reverse()  # the newest first
    return _page(request, "runs.html", runs=rows)


async def _run_page(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    served = _served(request)
    bus = await served.bus(run_id)
    live = await served.live.of(bus.store, run_id)  # type: ignore[arg-type]
    lines = live.lines_after(0)[-BACKLOG:]
    after = lines[-1]["id"] if lines else 0
    return _page(request, "run.html", state=live.state, lines=lines, after=after)


async def _stream(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    served = _served(request)
    bus = await served.bus(run_id)  # an unknown run: 404 before the stream opens
    given = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    after = int(given) if given.isascii() and given.isdecimal() and len(given) < 19 else 0

    async def gone() -> bool:
        return served.stopping() or await request.is_disconnected()

    updates = run_updates(
        served.live,
        bus.store,  # type: ignore[arg-type]
        run_id,
        after=after,
        gone=gone,
    )
    return StreamingResponse(
        updates,
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _session_page(request: Request) -> Response:
    run_id, name = request.path_params["run_id"], request.path_params["name"]
    bus = await _served(request).bus(run_id)
    session = await bus.session(name)
    lines = transcript_lines(await bus.events(session=name))
    return _page(request, "session.html", run_id=run_id, name=name, session=session, lines=lines)


async def _review_page(request: Request) -> Response:
    run_id, review_id = request.path_params["run_id"], _id(request, "review_id")
    bus = await _served(request).bus(run_id)
    review = await bus.review(review_id)
    return _page(
        request,
        "review.html",
        run_id=run_id,
        review=review,
        diff=pages.diff_lines(review.diff),
        decidable=actions.waits_on_person(review, actions.review_policy(bus)),
    )


async def _decide(request: Request) -> Response:
    run_id, review_id = request.path_params["run_id"], _id(request, "review_id")
    verdict = request.path_params["verdict"]
    if verdict not in ("approve", "reject"):
        return JSONResponse({"error": f"no such verdict {verdict!r}"}, status_code=404)
    body = await _json_body(request)
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > COMMENT_LIMIT:
        return JSONResponse({"error": "comment must be text"}, status_code=400)
    bus = await _served(request).bus(run_id)
    review = await actions.decide(bus, review_id, approve=verdict == "approve", comment=comment)
    status = review.status.value
    return JSONResponse(
        {"message": f"review #{review.id} {status} by {review.decided_by}", "status": status}
    )


async def _stop(request: Request) -> Response:
    bus = await _served(request).bus(request.path_params["run_id"])
    return JSONResponse({"message": await actions.stop(bus)})


async def _resume(request: Request) -> Response:
    served = _served(request)
    bus = await served.bus(request.path_params["run_id"])
    resuming = await actions.resume(
        bus, repo=served.repo, location=served.location, env=served.env, pending=served.resuming
    )
    said = f"resuming run {bus.run_id} (pid {resuming.pid}; its output: {resuming.log})"
    return JSONResponse(
        {
            "message": said,
            "pid": resuming.pid,
            "log": str(resuming.log),
        }
    )


async def _report(request: Request) -> Response:
    bus = await _served(request).bus(request.path_params["run_id"])
    report = await read_report(bus)
    # A long run's page takes seconds to draw: in a thread, so live pages do not wait.
    html = await anyio.to_thread.run_sync(render_page, report)
    return HTMLResponse(
        html, headers={"cache-control": "no-store", "content-security-policy": REPORT_POLICY}
    )


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ClientDisconnect:  # the page went before it said what: nothing is done
        raise InvalidInput("the request was cut short") from None
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
