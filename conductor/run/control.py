"""Stopping a run: Ctrl-C, a failing machine, an integration branch moved under the gate.

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
        self.tampered = ""  # set when the integration branch moved outside the gate
        self.fault = ""  # set when the machine failed (MachineFault): the run is interrupted

    @property
    def interrupted(self) -> bool:
        """The run ends resumable: stopped by a person or by the machine."""
        return self.stopping or bool(self.fault)

    async def stop(self) -> None:
        """Interrupt every session, end the run's tasks, and leave each session's
        conversation and worktree as they are, for resume."""
        self.stopping = True
        try:
            with anyio.move_on_after(INTERRUPT_WAIT):
                for session in list(self.live.values()):
                    with contextlib.suppress(Exception):  # one that is dying already is fine
                        await session.interrupt()
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
