"""Showing the integration branch's tip to the sessions, inside their own repositories.

A session merges the integration branch in after a conflict, and a session in the middle of a
turn may be waiting for a teammate's work to land: each session's repository has a branch of
the integration branch's name at the tip the gate last wrote (its objects are borrowed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import anyio

from conductor import worktrees
from conductor.errors import ConductorError
from conductor.gates import MergeGate


class IntegrationShare:
    """What each session tree was shown, and which trees are in the middle of a turn."""

    def __init__(self, gate: MergeGate) -> None:
        self.gate = gate
        self._shown: dict[Path, str] = {}  # session tree -> integration tip it was shown
        self._showing: dict[Path, anyio.Lock] = {}  # one showing per tree at a time
        self._in_turn: set[Path] = set()  # trees whose session is in the middle of a turn
        self._sharing = False  # a pass of share() is under way
        self._share_again = False  # the tip moved during that pass

    def forget(self, tree: Path) -> None:
        """A tree made anew has been shown nothing."""
        self._shown.pop(tree, None)

    @contextlib.contextmanager
    def in_turn(self, tree: Path) -> Iterator[None]:
        """The session of `tree` is in a turn: every new tip is shown to it at once. Entered
        before the tip is first shown, so no tip is missed."""
        self._in_turn.add(tree)
        try:
            yield
        finally:
            self._in_turn.discard(tree)

    async def show(self, tree: Path) -> None:
        """The integration branch's tip, as a branch of that name in the session's own
        repository."""
        async with self._showing.setdefault(tree, anyio.Lock()):  # no older tip written last
            head = await self.gate.tip()
            if self._shown.get(tree) == head:  # shown since it last moved: no jailed git again
                return
            await worktrees.share_ref(tree, self.gate.branch, head)
            self._shown[tree] = head

    async def share(self) -> None:
        """A new integration tip, shown at once to every session in the middle of a turn; any
        other is shown it before its next turn, the only time its CLI acts. Merges that land
        while a pass is under way are shown by one more pass, at the newest tip: a burst of
        merges costs a pass or two, not a jailed git per merge per session (which grew with
        the square of the workstreams)."""
        if self._sharing:
            self._share_again = True
            return
        self._sharing = True
        try:
            again = True
            while again:
                self._share_again = False
                for tree in list(self._in_turn):
                    if (tree / ".git").is_dir():
                        with contextlib.suppress(ConductorError):  # one being removed
                            await self.show(tree)
                again = self._share_again
        finally:
            self._sharing = False
