"""Stopping a run: Ctrl-C, a stop asked from elsewhere (`conductor stop`, the browser: see
`stop_watch`), a failing machine, an integration branch moved under the gate.

One `Control` per supervisor, made before the run starts (Ctrl-C may come during setup): it
holds the scope every run task lives in, the sessions live now (to interrupt them), and why
the run is stopping, if it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import anyio

from conductor.session import HeadlessSession

INTERRUPT_WAIT = 5.0  # how long a stop waits for sessions to take their interrupt


class Control:
    def __init__(self) -> None:
        self.scope = anyio.CancelScope()  # the run's tasks: cancelled to stop them
        self.live: dict[str, HeadlessSession] = {}  # name -> a session with a process now
        self.stopping = False  # stop() was called: sessions stay as they are, for resume
        self.asked_by = ""  # who asked for the stop from elsewhere ("stop asked by ..."), if so
        self.tampered = ""  # set when the integration branch moved outside the gate
        self.fault = ""  # set when the machine failed (MachineFault): the run is interrupted
        # Set when the run ends failed, saying why, rather than interrupted: a stop that is
        # the end (the cost ceiling reached, with on_max_cost = "stop").
        self.ended = ""
        self.ceiling = 0.0  # the cost ceiling (max_cost) that stopped the run, if one did
        self._all_ended: anyio.Event | None = None  # a stop that waits for turns to end

    @property
    def interrupted(self) -> bool:
        """The run ends resumable: stopped by a person or by the machine (not `ended`)."""
        return (self.stopping or bool(self.fault)) and not self.ended

    @property
    def stop_note(self) -> str:
        """What the run's `interrupted` state says when it was stopped (not by the machine):
        by whom, when the stop was asked from elsewhere."""
        asked = f" ({self.asked_by})" if self.asked_by else ""
        return f"stopped{asked}: resumable"

    async def stop(self, asked_by: str = "", *, settle: float = 0.0) -> None:
        """Interrupt every session, end the run's tasks, and leave each session's
        conversation and worktree as they are, for resume. `asked_by`: the summary of the
        `run.stop_asked` event that asked for it, when it came from elsewhere. `settle`: up
        to this many seconds for the interrupted turns to end by themselves first, so that
        their results (what they cost) are recorded rather than lost with the turn."""
        self.stopping = True
        self.asked_by = self.asked_by or asked_by
        try:
            with anyio.move_on_after(INTERRUPT_WAIT):
                for session in list(self.live.values()):
                    with contextlib.suppress(Exception):  # one that is dying already is fine
                        await session.interrupt()
            if self.live and settle > 0:
                self._all_ended = anyio.Event()  # set as the last live session ends
                with anyio.move_on_after(settle):
                    await self._all_ended.wait()
        finally:
            self.scope.cancel()

    def tamper(self, why: str) -> None:
        """Nothing more lands on a branch that moved under the gate: the run stops and says
        so, whatever else merged."""
        self.tampered = why
        self.scope.cancel()

    @contextlib.contextmanager
    def living(self, session: HeadlessSession) -> Iterator[None]:
        """`session` is interrupted by a stop while in this block."""
        self.live[session.name] = session
        try:
            yield
        finally:
            self.live.pop(session.name, None)
            if not self.live and self._all_ended is not None:
                self._all_ended.set()
