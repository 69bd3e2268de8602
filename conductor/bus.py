"""Coordination semantics: sessions, messages, shared context, claims, reviews, the lock.

A `Bus` is bound to one run. It validates and normalises what callers give it (names, closed
sets, paths) and leaves atomicity to the store, whose every call is one transaction. The CLI,
the coordination tools of headless sessions and the supervisor all go through here, so a rule
holds the same whichever of them is asking.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from conductor import paths
from conductor.errors import InvalidInput, LockHeld, UnknownRun
from conductor.models import (
    BROADCAST,
    Claim,
    ContextCategory,
    ContextEntry,
    Event,
    Lease,
    Message,
    Review,
    ReviewStatus,
    Run,
    RunState,
    Session,
    SessionKind,
    SessionStatus,
    SyncResult,
    check_run_id,
    check_session_name,
)
from conductor.store import Store

GIT_LOCK = "git"
# Tokens of the leases this process holds. A lease naming this process's pid with a token not
# in here was taken by an earlier process that had the same pid (a container's pid 1 after a
# restart): its holder is dead, though a process with its pid is alive.
_HELD_HERE: set[str] = set()
RUN_ENV = "CONDUCTOR_RUN"


def _token(nbytes: int) -> str:
    """What `secrets.token_hex` gives (it reads os.urandom too), without importing hashlib
    and hmac into every hand command."""
    return os.urandom(nbytes).hex()


def _host() -> str:
    """This machine's name, as `socket.gethostname()` gives it on POSIX."""
    return os.uname().nodename


def new_run_id(now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(now or time.time(), UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{_token(2)}"


def parse_session_specs(text: str) -> list[tuple[str, str]]:
    """`"A:frontend B:backend"` → [("A", "frontend"), ("B", "backend")] (commas work too)."""
    specs = []
    for item in text.replace(",", " ").split():
        name, _, workstream = item.partition(":")
        specs.append((check_session_name(name), workstream))
    if not specs:
        raise InvalidInput('no sessions given: use --sessions "A:frontend B:backend"')
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise InvalidInput(f"a session id appears twice in {text!r}")
    return specs


async def create_run(
    store: Store,
    *,
    goal: str,
    repo_root: Path | None,
    base_ref: str | None,
    base_commit: str | None,
    sessions: Sequence[tuple[str, str]] = (),
    run_id: str | None = None,
    spec: Mapping[str, Any] | None = None,
) -> Bus:
    run = await store.create_run(
        check_run_id(run_id) if run_id else new_run_id(),
        goal=goal,
        repo_root=str(repo_root or ""),
        base_ref=base_ref,
        base_commit=base_commit,
        spec=spec,
    )
    bus = Bus(store, run)
    if sessions:
        await bus.register(sessions)
    return bus


async def latest_run(store: Store) -> Run | None:
    """The newest run in the store, if any."""
    return await store.latest_run()


async def list_runs(store: Store) -> list[Run]:
    """Every run in the store, oldest first."""
    return await store.list_runs()


def database_path(store: Store) -> Path:
    """Where the store lives: what sessions are told as `CONDUCTOR_DB`."""
    return store.path


async def keep_checkpointed(store: Store) -> None:
    """Run as a task by a long-lived process (the supervisor): see `Store.keep_checkpointed`."""
    await store.keep_checkpointed()


async def open_run(store: Store, run_id: str | None = None) -> Bus:
    """The named run, else `$CONDUCTOR_RUN`, else the newest run."""
    run_id = run_id or os.environ.get(RUN_ENV) or None
    if run_id:
        return Bus(store, await store.get_run(run_id))
    run = await store.latest_run()
    if run is None:
        raise UnknownRun('no run yet: start one with conductor init --sessions "A:frontend B:api"')
    return Bus(store, run)


@dataclass(frozen=True)
class MergeVerdict:
    ok: bool
    reason: str
    review: Review | None


class Bus:
    def __init__(self, store: Store, run: Run) -> None:
        self.store = store
        self.run = run

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def db_path(self) -> Path:
        """Where the store lives: what sessions are told as `CONDUCTOR_DB`."""
        return self.store.path

    def now(self) -> float:
        """The store's clock (injectable in tests): what every stored time is read from."""
        return self.store.clock()

    async def wait_for_change(self, timeout: float) -> None:
        """Until a write through this store commits, or `timeout` passes (a poll of other
        processes' writes)."""
        await self.store.wait_for_change(timeout)

    # --------------------------------------------------------------------------- the run

    async def refresh(self) -> Run:
        """The run as stored now (its state moves while it goes on); kept as `self.run`."""
        self.run = await self.store.get_run(self.run_id)
        return self.run

    async def set_state(self, state: RunState, note: str = "") -> Run:
        """Move the run to `state` (recorded as a `run.state` event, `note` its summary)."""
        self.run = await self.store.set_run_state(self.run_id, state, note)
        return self.run

    async def seen_state(self) -> str:
        """The run's state as a person should read it (see the module's `seen_state`)."""
        return await seen_state(self.store, self.run)

    # --------------------------------------------------------------------------- sessions

    async def register(
        self,
        specs: Sequence[tuple[str, str]],
        *,
        kind: SessionKind = SessionKind.WORKER,
        branch: str | None = None,
    ) -> list[Session]:
        checked = [(check_session_name(n), w, kind, branch) for n, w in specs]
        return await self.store.add_sessions(self.run_id, checked)

    async def session(self, name: str) -> Session:
        return await self.store.get_session(self.run_id, name)

    async def sessions(self) -> list[Session]:
        return await self.store.list_sessions(self.run_id)

    async def update(
        self,
        name: str,
        *,
        status: SessionStatus | str | None = None,
        note: str | None = None,
        branch: str | None = None,
        worktree: str | None = None,
        sdk_session_id: str | None = None,
    ) -> Session:
        parsed = SessionStatus.parse(status) if isinstance(status, str) else status
        return await self.store.update_session(
            self.run_id,
            name,
            status=parsed,
            note=note,
            branch=branch,
            worktree=worktree,
            sdk_session_id=sdk_session_id,
        )

    async def heartbeat(self, name: str) -> None:
        await self.store.heartbeat(self.run_id, name)

    # --------------------------------------------------------------------------- messages

    async def send(self, sender: str | None, to: str | Sequence[str], body: str) -> Message:
        """Send to one session, several, or `all` (every session but the sender)."""
        body = _text(body, "message")
        if isinstance(to, str):
            recipients = None if to.strip().lower() == BROADCAST else [to]
        else:
            recipients = list(to)
            if not recipients:
                raise InvalidInput("a message needs at least one recipient")
        return await self.store.send_message(self.run_id, sender, recipients, body)

    async def inbox(self, name: str, *, include_read: bool = False) -> list[Message]:
        return await self.store.inbox(self.run_id, name, unread_only=not include_read)

    async def message(self, message_id: int) -> Message:
        """One message of this run by its id."""
        return await self.store.get_message(self.run_id, message_id)

    async def reply(self, name: str, message_id: int, body: str) -> Message:
        return await self.store.reply(self.run_id, name, message_id, _text(body, "reply"))

    async def mark_read(self, name: str, message_id: int) -> bool:
        return await self.store.mark_read(self.run_id, name, message_id)

    async def take_unread(self, name: str, *, via: str) -> list[Message]:
        """Every unread message of `name`, marked read: for delivery outside `sync`."""
        return await self.store.take_unread(self.run_id, name, via=via)

    async def take_verdict(self, review_id: int, *, via: str) -> list[int]:
        return await self.store.take_verdict(self.run_id, review_id, via=via)

    async def unread_counts(self) -> dict[str, int]:
        return await self.store.unread_counts(self.run_id)

    async def has_unread(self, name: str) -> bool:
        """Whether `name` has mail, by a read alone: the cheap question before `take_unread`."""
        return await self.store.has_unread(self.run_id, name)

    async def sync(self, name: str) -> SyncResult:
        return await self.store.sync(self.run_id, name)

    # --------------------------------------------------------------------------- context

    async def add_context(
        self, author: str | None, category: ContextCategory | str, body: str
    ) -> ContextEntry:
        if isinstance(category, str):
            category = ContextCategory.parse(category)
        return await self.store.add_context(self.run_id, author, category, _text(body, "context"))

    async def context(self, category: ContextCategory | str | None = None) -> list[ContextEntry]:
        if isinstance(category, str):
            category = ContextCategory.parse(category)
        return await self.store.list_context(self.run_id, category=category)

    # --------------------------------------------------------------------------- claims

    async def claim(self, name: str, path: str, *, root: Path, cwd: Path | None = None) -> Claim:
        normal = paths.normalize(path, root, cwd)
        return await self.store.claim(self.run_id, name, normal, _token(8))

    async def release(self, name: str, path: str, *, root: Path, cwd: Path | None = None) -> Claim:
        normal = paths.normalize(path, root, cwd)
        return await self.store.release_claim(self.run_id, name, normal)

    async def claims(self, session: str | None = None) -> list[Claim]:
        if session is not None:
            await self.session(session)  # an unknown session is an error, not an empty list
        return await self.store.list_claims(self.run_id, session)

    async def claim_blocking(self, name: str, normal_path: str) -> Claim | None:
        """The other session's claim that forbids `name` to write `normal_path`, if any."""
        return await self.store.claim_covering(self.run_id, normal_path, other_than=name)

    # --------------------------------------------------------------------------- reviews

    async def request_review(
        self,
        requester: str,
        *,
        commit: str,
        diff: bytes,
        reviewer: str | None = None,
        base: str | None = None,
        note: str = "",
    ) -> Review:
        if not commit:
            raise InvalidInput("a review must name the commit it reviews")
        return await self.store.request_review(
            self.run_id,
            requester,
            reviewer=reviewer,
            commit=commit,
            base=base,
            diff=diff,
            note=note,
        )

    async def decide(
        self, review_id: int, decider: str, *, approve: bool, comment: str = ""
    ) -> Review:
        return await self.store.decide_review(
            self.run_id, review_id, decider, approve=approve, comment=comment
        )

    async def review(self, review_id: int, *, with_diff: bool = True) -> Review:
        return await self.store.get_review(self.run_id, review_id, with_diff=with_diff)

    async def reviews(
        self, *, status: ReviewStatus | str | None = None, session: str | None = None
    ) -> list[Review]:
        if isinstance(status, str):
            try:
                status = ReviewStatus(status)
            except ValueError:
                allowed = ", ".join(s.value for s in ReviewStatus)
                raise InvalidInput(f"unknown review status {status!r}: use {allowed}") from None
        if session is not None:
            await self.session(session)
        return await self.store.list_reviews(self.run_id, status=status, session=session)

    async def latest_review(self, requester: str) -> Review | None:
        """The newest review `requester` asked for, whatever its status."""
        return await self.store.latest_review(self.run_id, requester)

    async def merge_ok(self, name: str, head: str) -> MergeVerdict:
        """Clear to merge only when the latest review approved exactly the current head."""
        review = await self.latest_review(name)
        if review is None:
            return MergeVerdict(False, f"{name} has no review", None)
        if review.status is not ReviewStatus.APPROVED:
            return MergeVerdict(False, f"review #{review.id} is {review.status.value}", review)
        if review.commit != head:
            return MergeVerdict(
                False,
                f"review #{review.id} approved {review.commit[:12]}, but the head is now"
                f" {head[:12]}: request a new review",
                review,
            )
        who = f" by {review.decided_by}" if review.decided_by else ""
        return MergeVerdict(True, f"review #{review.id} approved {head[:12]}{who}", review)

    # --------------------------------------------------------------------------- the lock

    async def acquire_lock(
        self,
        holder: str,
        *,
        lease_seconds: float = 300.0,
        wait_seconds: float = 0.0,
        name: str = GIT_LOCK,
    ) -> Lease:
        """Take the lock, waiting up to `wait_seconds`. A lease whose holder process is known
        to be dead (same host, no such pid, or this pid in an earlier process) is reclaimed at
        once instead of waited out."""
        token = _token(16)
        deadline = time.monotonic() + wait_seconds
        while True:
            lease = await self.store.acquire_lock(
                name,
                holder=holder,
                token=token,
                pid=os.getpid(),
                host=_host(),
                lease_seconds=lease_seconds,
                run_id=self.run_id,
            )
            if lease is not None:
                _HELD_HERE.add(token)
                return lease
            current = await self.store.get_lock(name)
            if current is not None and _holder_is_dead(current):
                await self.store.release_lock(
                    name, token=current.token, reason="reclaimed", run_id=self.run_id
                )
                continue
            if time.monotonic() >= deadline:
                if current is None:
                    continue  # released between our two statements: try again
                raise LockHeld(name, current.holder, current.expires_at - self.now())
            await anyio.sleep(0.05)

    async def release_lock(self, lease: Lease) -> bool:
        """False when the lease had already ended (expired and taken by someone else)."""
        _HELD_HERE.discard(lease.token)
        released = await self.store.release_lock(lease.name, token=lease.token, run_id=self.run_id)
        return released is not None

    async def lock(self, name: str = GIT_LOCK) -> Lease | None:
        return await self.store.get_lock(name)

    async def force_release_lock(self, name: str = GIT_LOCK) -> Lease | None:
        return await self.store.release_lock(name, token=None, reason="forced", run_id=self.run_id)

    # --------------------------------------------------------------------------- events

    async def record(
        self, session: str | None, kind: str, summary: str, payload: dict[str, Any] | None = None
    ) -> int:
        return await self.store.add_event(self.run_id, session, kind, summary, payload)

    async def events(
        self,
        *,
        after: int = 0,
        session: str | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[Event]:
        """Events after the id `after`, oldest first (a cursor never skips one); `newest`
        takes the last `limit` instead, still oldest first."""
        return await self.store.list_events(
            self.run_id, after=after, session=session, limit=limit, newest=newest
        )

    async def last_event(self, session: str | None = None) -> Event | None:
        """The newest event of the run (or of one session), if any."""
        found = await self.events(session=session, limit=1, newest=True)
        return found[0] if found else None


def _text(body: str, what: str) -> str:
    if not body or not body.strip():
        raise InvalidInput(f"empty {what}")
    return body


SUPERVISOR_GONE = "interrupted (supervisor not running: conductor resume {run})"


async def seen_state(store: Store, run: Run) -> str:
    """A run's state as a person should read it. A supervised run that says `active` while
    its supervisor is gone (killed: it could not say otherwise) reads interrupted, with the
    command that continues it; everything else as stored."""
    if run.state is RunState.ACTIVE and run.spec is not None:
        lease = await store.get_lock(supervisor_lock(run.id))
        if lease is None or _holder_is_dead(lease):
            return SUPERVISOR_GONE.format(run=run.id)
    return run.state.value


def supervisor_lock(run_id: str) -> str:
    """The lock a run's one supervisor holds while it drives the run."""
    return f"supervisor {run_id}"


def _holder_is_dead(lease: Lease) -> bool:
    if lease.pid is None or lease.host != _host():
        return False
    if lease.pid == os.getpid():
        return lease.token not in _HELD_HERE
    return not pid_alive(lease.pid)


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a killed child nobody has reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"
