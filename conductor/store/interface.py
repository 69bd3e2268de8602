"""The storage interface the bus works through: every operation one transaction, atomic
against other tasks and other processes. SQLite (`conductor.store.Store`) implements it; a
second backend (PostgreSQL, for a team across hosts) implements the same and passes the same
conformance suite (tests/test_storage_conformance.py).

It knows records and atomic operations, not coordination rules: names come checked, paths
normalised, message texts composed, and which operation a case calls for chosen by the bus.
Each aggregate is a protocol of its own; `Storage` is all of them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from conductor.errors import StoreError
from conductor.models import (
    Assignment,
    Claim,
    ContextCategory,
    ContextEntry,
    Event,
    Lease,
    MergeRequest,
    Message,
    Review,
    ReviewStatus,
    Run,
    RunState,
    Session,
    SessionKind,
    SessionStatus,
    SyncResult,
    WorkerInfo,
)


class RunStorage(Protocol):
    def create_run(
        self,
        run_id: str,
        *,
        goal: str,
        repo_root: str,
        base_ref: str | None,
        base_commit: str | None,
        spec: Mapping[str, Any] | None = None,
    ) -> Awaitable[Run]: ...
    def get_run(self, run_id: str) -> Awaitable[Run]: ...
    def latest_run(self) -> Awaitable[Run | None]: ...
    def list_runs(self) -> Awaitable[list[Run]]: ...
    def set_run_state(self, run_id: str, state: RunState, note: str = "") -> Awaitable[Run]: ...


class SessionStorage(Protocol):
    def add_sessions(
        self, run_id: str, specs: Sequence[tuple[str, str, SessionKind, str | None]]
    ) -> Awaitable[list[Session]]: ...
    def get_session(self, run_id: str, name: str) -> Awaitable[Session]: ...
    def list_sessions(self, run_id: str) -> Awaitable[list[Session]]: ...
    def update_session(
        self,
        run_id: str,
        name: str,
        *,
        status: SessionStatus | None = None,
        note: str | None = None,
        branch: str | None = None,
        worktree: str | None = None,
        sdk_session_id: str | None = None,
        release_claims: Callable[[Session], bool] | None = None,
    ) -> Awaitable[Session]: ...
    def heartbeat(self, run_id: str, name: str) -> Awaitable[None]: ...
    def record_turn(
        self,
        run_id: str,
        name: str,
        summary: str,
        payload: dict[str, Any] | None,
        *,
        turns: int,
        cost_usd: float,
    ) -> Awaitable[int]: ...


class MessageStorage(Protocol):
    def send_message(
        self,
        run_id: str,
        sender: str | None,
        recipients: Sequence[str] | None,
        body: str,
        reply_to: int | None = None,
    ) -> Awaitable[Message]: ...
    def get_message(self, run_id: str, message_id: int) -> Awaitable[Message]: ...
    def inbox(
        self, run_id: str, name: str, *, unread_only: bool = True
    ) -> Awaitable[list[Message]]: ...
    def unread_counts(self, run_id: str) -> Awaitable[dict[str, int]]: ...
    def has_unread(self, run_id: str, name: str) -> Awaitable[bool]: ...
    def mark_read(self, run_id: str, name: str, message_id: int) -> Awaitable[bool]: ...
    def reply(self, run_id: str, name: str, message_id: int, body: str) -> Awaitable[Message]: ...
    def take_unread(self, run_id: str, name: str, *, via: str) -> Awaitable[list[Message]]: ...


class ContextStorage(Protocol):
    def add_context(
        self, run_id: str, author: str | None, category: ContextCategory, body: str
    ) -> Awaitable[ContextEntry]: ...
    def list_context(
        self, run_id: str, *, category: ContextCategory | None = None, after: int = 0
    ) -> Awaitable[list[ContextEntry]]: ...
    def sync(self, run_id: str, name: str) -> Awaitable[SyncResult]: ...


class ClaimStorage(Protocol):
    def claim(self, run_id: str, name: str, path: str, token: str) -> Awaitable[Claim]: ...
    def release_claim(self, run_id: str, name: str, path: str) -> Awaitable[Claim]: ...
    def list_claims(self, run_id: str, session: str | None = None) -> Awaitable[list[Claim]]: ...
    def claim_covering(
        self, run_id: str, path: str, *, other_than: str
    ) -> Awaitable[Claim | None]: ...


class ReviewStorage(Protocol):
    def request_review(
        self,
        run_id: str,
        requester: str,
        *,
        reviewer: str | None,
        commit: str,
        base: str | None,
        diff: bytes,
        note: str,
        notice: Callable[[int], str] | None = None,
    ) -> Awaitable[Review]: ...
    def decide_review(
        self,
        run_id: str,
        review_id: int,
        decider: str,
        *,
        approve: bool,
        comment: str,
        verdict: str,
    ) -> Awaitable[Review]: ...
    def take_verdict(self, run_id: str, review_id: int, *, via: str) -> Awaitable[list[int]]: ...
    def get_review(
        self, run_id: str, review_id: int, *, with_diff: bool = True
    ) -> Awaitable[Review]: ...
    def list_reviews(
        self, run_id: str, *, status: ReviewStatus | None = None, session: str | None = None
    ) -> Awaitable[list[Review]]: ...
    def latest_review(self, run_id: str, requester: str) -> Awaitable[Review | None]: ...


class LockStorage(Protocol):
    def acquire_lock(
        self,
        name: str,
        *,
        holder: str,
        token: str,
        pid: int | None,
        host: str | None,
        lease_seconds: float,
        run_id: str | None = None,
    ) -> Awaitable[Lease | None]: ...
    def get_lock(self, name: str) -> Awaitable[Lease | None]: ...
    def release_lock(
        self,
        name: str,
        *,
        token: str | None,
        reason: str = "released",
        run_id: str | None = None,
    ) -> Awaitable[Lease | None]: ...


class EventStorage(Protocol):
    def add_event(
        self,
        run_id: str | None,
        session: str | None,
        kind: str,
        summary: str,
        payload: dict[str, Any] | None = None,
    ) -> Awaitable[int]: ...
    def list_events(
        self,
        run_id: str | None,
        *,
        after: int = 0,
        session: str | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> Awaitable[list[Event]]: ...
    def first_event(self, run_id: str, kind: str, *, after: int = 0) -> Awaitable[Event | None]: ...


class WorkStorage(Protocol):
    """Work handed to workers on other hosts (see `store/work.py`)."""

    def worker_alive(self, worker: str, *, host: str, pid: int, slots: int) -> Awaitable[None]: ...
    def worker_stopped(self, worker: str) -> Awaitable[None]: ...
    def workers(self) -> Awaitable[list[WorkerInfo]]: ...
    def supervisor_alive(self, run_id: str) -> Awaitable[None]: ...
    def supervisor_seen(self, run_id: str) -> Awaitable[float | None]: ...
    def queue_assignment(self, run_id: str, session: str) -> Awaitable[Assignment]: ...
    def take_assignment(
        self, worker: str, *, host: str, lease_seconds: float, skip_runs: Sequence[str] = ()
    ) -> Awaitable[Assignment | None]: ...
    def takeable_assignment(self, *, skip_runs: Sequence[str] = ()) -> Awaitable[bool]: ...
    def renew_assignment(
        self, run_id: str, session: str, worker: str, *, attempt: int, lease_seconds: float
    ) -> Awaitable[bool]: ...
    def end_assignment(
        self, run_id: str, session: str, worker: str, *, attempt: int, state: str, outcome: str
    ) -> Awaitable[bool]: ...
    def assignment(self, run_id: str, session: str) -> Awaitable[Assignment | None]: ...
    def assignments(self, run_id: str | None = None) -> Awaitable[list[Assignment]]: ...
    def request_merge(
        self,
        run_id: str,
        session: str,
        *,
        branch: str,
        commit: str,
        owners: str,
        worker: str | None,
    ) -> Awaitable[int]: ...
    def pending_merge_requests(self, run_id: str) -> Awaitable[list[MergeRequest]]: ...
    def answer_merge_request(self, request_id: int, result: str) -> Awaitable[None]: ...
    def merge_request(self, request_id: int) -> Awaitable[MergeRequest | None]: ...


class Storage(
    RunStorage,
    SessionStorage,
    MessageStorage,
    ContextStorage,
    ClaimStorage,
    ReviewStorage,
    LockStorage,
    EventStorage,
    WorkStorage,
    Protocol,
):
    """Everything the bus needs of a backend, and the clock every stored time is read from
    (replaceable, so tests move time instead of waiting for it)."""

    clock: Callable[[], float]
    # Where it lives: a SQLite file's path or a PostgreSQL URL (see `is_url`), what sessions
    # are told as CONDUCTOR_DB. A URL may hold a password: print `shown(location)` instead.
    location: str

    async def wait_for_change(self, timeout: float) -> None:
        """Until a write through this storage commits, or `timeout` passes."""
        ...

    async def keep_checkpointed(self) -> None:
        """A long-lived process's housekeeping task (SQLite: checkpoint the WAL)."""
        ...


# ------------------------------------------------------------------------------ locations

URL_SCHEMES = ("postgresql://", "postgres://")  # what libpq itself takes as a URL


def is_url(location: str) -> bool:
    """Whether a store's location is a PostgreSQL URL (else it is a SQLite file's path)."""
    return location.startswith(URL_SCHEMES)


def shown(location: str) -> str:
    """The location as a message or a log may print it: a URL without its password (both
    `user:password@host` and `?password=`)."""
    if not is_url(location):
        return location
    location = re.sub(r"(://[^:/@?]*):[^@/?]*@", r"\1:***@", location)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", location)


def without_password(location: str) -> str:
    """The location with no password in it at all, for a command printed to be pasted
    (`--db URL` in a hint): libpq then reads the password from PGPASSWORD or ~/.pgpass."""
    if not is_url(location):
        return location
    location = re.sub(r"(://[^:/@?]*):[^@/?]*@", r"\1@", location)
    # password=, and libpq's other secrets in a URL: sslpassword= (a client key's passphrase)
    while True:
        cut = re.sub(r"([?&])(ssl)?password=[^&]*(&|$)", r"\1", location)
        if cut == location:
            return location.rstrip("?&")
        location = cut


def server_of(url: str) -> str:
    """`host[:port]/dbname` of a PostgreSQL URL as written, no user or password: what a
    one-line failure and `conductor doctor` name. A unix socket's folder (`?host=/run/x`) is
    its host; no host at all is libpq's default, the local socket."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.netloc.rpartition("@")[2] or query.get("host", [""])[0] or "localhost"
    if "port" in query and ":" not in host:
        host = f"{host}:{query['port'][0]}"
    name = parts.path.lstrip("/") or query.get("dbname", [""])[0]
    return f"{host}/{name}"


class Unreachable(StoreError):
    """No connection to the PostgreSQL server (down, a bad URL, a refused login, or a
    sandbox that lets no connection out): what a command may say more about."""

    def __init__(self, url: str, err: BaseException) -> None:
        self.server = server_of(url)
        super().__init__(unreachable(url, err))


def unreachable(url: str, err: BaseException) -> str:
    """A connection that failed (no server there, a bad URL, a refused login) in one line
    naming the server, never the password: what a command ends with instead of a
    traceback. libpq's own words say which it was; it never repeats a password."""
    reason = " ".join(str(err).split()) or type(err).__name__
    return f"cannot reach the PostgreSQL database {server_of(url)}: {reason}"
