"""The Bus: coordination semantics over the storage interface, bound to one run. It
validates and normalises what callers give it (names, closed sets, paths), chooses the
store's operation a case calls for, and leaves atomicity to the store, whose every call is
one transaction. The CLI, the coordination tools of headless sessions and the supervisor all
go through here, so a rule holds the same whichever of them is asking."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from conductor import paths
from conductor.bus.base import text, token
from conductor.bus.lock import LockDoor
from conductor.bus.reviews import ReviewDoor
from conductor.bus.stopping import StopDoor
from conductor.errors import InvalidInput
from conductor.models import (
    BROADCAST,
    Claim,
    ContextCategory,
    ContextEntry,
    Message,
    Session,
    SessionKind,
    SessionStatus,
    SyncResult,
    check_session_name,
)


class Bus(ReviewDoor, StopDoor, LockDoor):
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
        """Change what is given. A session that ends gives up its claims at once (in the
        same transaction): what it did not merge, nobody keeps others from."""
        parsed = SessionStatus.parse(status) if isinstance(status, str) else status
        return await self.store.update_session(
            self.run_id,
            name,
            status=parsed,
            note=note,
            branch=branch,
            worktree=worktree,
            sdk_session_id=sdk_session_id,
            release_claims=_has_ended,
        )

    async def heartbeat(self, name: str) -> None:
        await self.store.heartbeat(self.run_id, name)

    # --------------------------------------------------------------------------- messages

    async def send(self, sender: str | None, to: str | Sequence[str], body: str) -> Message:
        """Send to one session, several, or `all` (every session but the sender)."""
        body = text(body, "message")
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
        return await self.store.reply(self.run_id, name, message_id, text(body, "reply"))

    async def mark_read(self, name: str, message_id: int) -> bool:
        return await self.store.mark_read(self.run_id, name, message_id)

    async def take_unread(self, name: str, *, via: str) -> list[Message]:
        """Every unread message of `name`, marked read: for delivery outside `sync`."""
        return await self.store.take_unread(self.run_id, name, via=via)

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
        return await self.store.add_context(self.run_id, author, category, text(body, "context"))

    async def context(self, category: ContextCategory | str | None = None) -> list[ContextEntry]:
        if isinstance(category, str):
            category = ContextCategory.parse(category)
        return await self.store.list_context(self.run_id, category=category)

    # --------------------------------------------------------------------------- claims

    async def claim(self, name: str, path: str, *, root: Path, cwd: Path | None = None) -> Claim:
        normal = paths.normalize(path, root, cwd)
        return await self.store.claim(self.run_id, name, normal, token(8))

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


def _has_ended(session: Session) -> bool:
    """Whether a session, as an update left it, gives up its claims: once it has ended, any
    change to it (its status, or a note after the end) takes them with it."""
    return session.status.ended
