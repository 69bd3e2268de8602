"""Between an async caller and the worker thread that runs its transaction, and the driver
of a store's coroutines where there is no event loop."""

from __future__ import annotations

import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The caller of a transaction was cancelled: roll back (raised in the worker)."""


class Handoff:
    """Between a cancelled caller and the worker thread meant to run its transaction: either
    the worker begins first (then the caller tells it to stop and waits for its end) or the
    caller gives up first (then the worker never begins), never both."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "waiting"  # -> "begun" (by the worker) or "abandoned" (by the caller)
        self.stop = threading.Event()
        self.ended = threading.Event()
        self.committed: tuple[Any] | tuple[()] = ()  # (the result,) once the body committed

    def begin(self) -> bool:
        with self._lock:
            if self._state == "abandoned":
                return False
            self._state = "begun"
            return True

    def abandon(self) -> bool:
        """Give up; True when the worker had begun (it is told to stop: wait for `ended`)."""
        with self._lock:
            if self._state == "waiting":
                self._state = "abandoned"
                return False
            self.stop.set()
            return True


def without_loop(work: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that awaits nothing but operations of a store opened with
    `Store.open_blocking` (a Bus method over one, say): it ends at its first step, so it
    needs no event loop. Anything that would suspend is a bug here, and an error."""
    try:
        work.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    work.close()
    raise RuntimeError("this needs an event loop: it awaited something besides the store")
