"""What every part of the bus stands on: the storage it goes through and the run it is bound
to, the storage's clock, and the run's own record and events."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from conductor.errors import InvalidInput
from conductor.events import SDK_PREFIX, EventKind, Payload, SdkResult
from conductor.models import Event, Run, RunState
from conductor.store.interface import Storage, without_password

CATALOGUE = frozenset(EventKind)


def token(nbytes: int) -> str:
    """What `secrets.token_hex` gives (it reads os.urandom too), without importing hashlib
    and hmac into every hand command."""
    return os.urandom(nbytes).hex()


def text(body: str, what: str) -> str:
    if not body or not body.strip():
        raise InvalidInput(f"empty {what}")
    return body


class BusBase:
    """A bus bound to one run. `store` is the storage interface, for the bus's parts only:
    everything outside the bus asks the bus."""

    def __init__(self, store: Storage, run: Run) -> None:
        self.store = store
        self.run = run

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def db_location(self) -> str:
        """Where the store lives, a SQLite file's path or a PostgreSQL URL (its password too:
        print `conductor.store.shown` of it)."""
        return self.store.location

    @property
    def session_db(self) -> str:
        """What sessions are told as `CONDUCTOR_DB`: the location, a URL without its
        password. A session's environment is its model's to read (and to print into its
        transcript), and it has no use for the password: its sandbox lets no connection out,
        so it reaches the bus through its tools (without a sandbox, libpq still finds a
        password in PGPASSWORD or ~/.pgpass)."""
        return without_password(self.store.location)

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

    # --------------------------------------------------------------------------- events

    async def record(
        self,
        session: str | None,
        kind: EventKind | str,
        summary: str,
        payload: Payload | Mapping[str, Any] | None = None,
    ) -> int:
        """Record an event of a kind in the catalogue (or a session's stream, `sdk.*`, which
        the SDK names): a kind nobody can read back is refused at its writer, not found
        missing by a reader. A session's turn result (`sdk.result`) also adds its turns and
        cost to the session's, in the same transaction (see `record_turn`)."""
        if not kind.startswith(SDK_PREFIX) and kind not in CATALOGUE:
            raise ValueError(f"event kind {kind!r} is not in conductor.events.EventKind")
        data = payload.to_json() if isinstance(payload, Payload) else payload
        stored = dict(data) if data is not None else None
        if kind == EventKind.SDK_RESULT and session is not None:
            return await self.record_turn(session, summary, stored)
        return await self.store.add_event(self.run_id, session, kind, summary, stored)

    async def record_turn(
        self, session: str, summary: str, payload: dict[str, Any] | None = None
    ) -> int:
        """A turn's `sdk.result` event, its turns and cost (as the catalogue reads the
        payload) added to the session's columns at once: views and budgets read those."""
        result = SdkResult.from_json(payload or {})
        return await self.store.record_turn(
            self.run_id,
            session,
            summary,
            payload,
            turns=result.num_turns,
            cost_usd=result.cost_usd,
        )

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
