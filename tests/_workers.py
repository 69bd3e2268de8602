"""Worker processes for the cross-process tests, and the parent-side helper that drives them.

A worker is this file run by `sys.executable` with a command and one JSON argument. It talks
JSON lines: it prints {"ready": true} once set up, waits for a "go <start time>" line on stdin
and then for that instant (the start barrier that makes the workers race), acts, and prints its
result. Workers that must stay alive (a lock holder) wait for stdin to close before exiting.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

WORKER = Path(__file__).resolve()

# --------------------------------------------------------------------------- parent side


class Worker:
    """One worker process seen from the test: send lines to it, read its JSON lines."""

    def __init__(self, process: Process, name: str) -> None:
        self.process = process
        self.name = name
        assert process.stdout is not None
        self._out = BufferedByteReceiveStream(process.stdout)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def read(self, timeout: float = 60) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            try:
                line = await self._out.receive_until(b"\n", 50_000_000)
            except (anyio.EndOfStream, anyio.IncompleteRead):
                code = await self.process.wait()
                raise AssertionError(
                    f"worker {self.name} exited ({code}) without answering"
                ) from None
        return json.loads(line)

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(line.encode() + b"\n")

    async def close_stdin(self) -> None:
        if self.process.stdin is not None:
            await self.process.stdin.aclose()

    async def stop(self) -> None:
        """Let it exit by closing stdin; kill it if it does not within a few seconds."""
        with anyio.CancelScope(shield=True):
            await self.close_stdin()
            with anyio.move_on_after(10):
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            await self.process.aclose()


@asynccontextmanager
async def workers(*jobs: tuple[str, dict[str, Any]]) -> AsyncIterator[list[Worker]]:
    """Start one worker per (command, argument) and wait until every one is ready."""
    async with AsyncExitStack() as stack:
        started = []
        for index, (command, arg) in enumerate(jobs):
            process = await anyio.open_process(
                [sys.executable, str(WORKER), command, json.dumps(arg)], stderr=None
            )
            worker = Worker(process, f"{command}#{index}")
            stack.push_async_callback(worker.stop)
            started.append(worker)
        for worker in started:
            assert await worker.read() == {"ready": True}
        yield started


async def go(started: list[Worker], delay: float = 0.05) -> None:
    """Release the start barrier of every worker: each starts at the same instant, `delay`
    seconds from now, so that they really race rather than start in the order told."""
    start_at = time.time() + delay
    for worker in started:
        await worker.send(f"go {start_at!r}")


# --------------------------------------------------------------------------- worker side


def _say(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


async def _line() -> str:
    return await anyio.to_thread.run_sync(sys.stdin.readline)


async def _go() -> bool:
    """Wait for a "go <start time>" line, then for that instant; False at end of input."""
    line = await _line()
    if not line:
        return False
    word, _, start_at = line.partition(" ")
    if word != "go":
        raise SystemExit(f"expected go, got {line!r}")
    start = float(start_at)
    await anyio.sleep(max(0.0, start - time.time() - 0.005))
    while time.time() < start:  # spin the last few ms: a sleep wakes up too unevenly
        pass
    return True


async def _wait_for_go() -> None:
    _say({"ready": True})
    if not await _go():
        raise SystemExit("no go")


def location(store: Any) -> str:
    """Where a worker opens the test's store: a PostgreSQL store's URL, or SQLite's file."""
    return str(getattr(store, "url", store.path))


@asynccontextmanager
async def _bus(arg: dict[str, Any]) -> AsyncIterator[Any]:
    from conductor.bus import open_run
    from conductor.store import Store

    if arg["db"].startswith("postgresql:"):
        from conductor.store.postgres import PostgresStore

        async with PostgresStore.open(arg["db"]) as pg:
            yield await open_run(pg, arg["run"])
        return
    async with Store.open(Path(arg["db"])) as store:
        yield await open_run(store, arg["run"])


async def _open(arg: dict[str, Any]) -> None:
    """Open each fresh database path in turn, each round started by its own "go"."""
    from conductor.store import Store

    _say({"ready": True})
    for db in arg["paths"]:
        if not await _go():
            return
        try:
            async with Store.open(Path(db)) as store:
                version = await store.pragma("user_version")
                schema = await store.schema()
            _say({"version": version, "schema": schema})
        except Exception as err:
            _say({"error": f"{type(err).__name__}: {err}"})


async def _write(arg: dict[str, Any]) -> None:
    """Send `count` messages to `to` and add `count` context entries, interleaved."""
    async with _bus(arg) as bus:
        await _wait_for_go()
        sender, messages, context = arg["sender"], [], []
        for i in range(arg["count"]):
            messages.append((await bus.send(sender, arg["to"], f"{sender} message {i}")).id)
            context.append((await bus.add_context(sender, "discovery", f"{sender} note {i}")).id)
        _say({"messages": messages, "context": context})


async def _sync(arg: dict[str, Any]) -> None:
    """Sync one session until the writers are done and a sync finds nothing new.

    In "mixed" mode every other call is `take_unread` instead of `sync`, so the two delivery
    paths interleave. The loop ends only on a full `sync` that started after the done flag
    appeared and returned nothing: by then every write has committed and been delivered.
    """
    done_flag = Path(arg["done_flag"])
    async with _bus(arg) as bus:
        await _wait_for_go()
        messages: list[int] = []
        context: list[int] = []
        calls = 0
        while True:
            calls += 1
            writers_done = done_flag.exists()
            if arg["mode"] == "mixed" and calls % 2 == 0:
                messages += [m.id for m in await bus.take_unread(arg["name"], via="tool")]
                continue
            result = await bus.sync(arg["name"])
            messages += [m.id for m in result.messages]
            context += [c.id for c in result.context]
            if writers_done and result.empty:
                break
            await anyio.sleep(0.001)  # pacing: SQLite's busy wait is not fair to writers
        _say({"messages": messages, "context": context, "calls": calls})


async def _claim(arg: dict[str, Any]) -> None:
    from conductor.errors import ClaimConflict

    async with _bus(arg) as bus:
        await _wait_for_go()
        try:
            claim = await bus.claim(arg["name"], arg["path"], root=Path(arg["root"]))
        except ClaimConflict as err:
            _say({"won": False, "owner": err.owner, "owned_path": err.owned_path})
        else:
            _say({"won": True, "session": claim.session, "path": claim.path})


async def _lock(arg: dict[str, Any]) -> None:
    """Try to take the lock once; then stay alive (holding it, if won) until stdin closes."""
    from conductor.errors import LockHeld

    async with _bus(arg) as bus:
        await _wait_for_go()
        try:
            lease = await bus.acquire_lock(arg["holder"], lease_seconds=arg["lease"])
        except LockHeld as err:
            _say({"won": False, "holder": err.holder})
        else:
            _say({"won": True, "holder": lease.holder, "pid": lease.pid})
        while await _line():
            pass


async def _hold_lock(arg: dict[str, Any]) -> None:
    """Take the lock at once, report it, and hold it until killed."""
    async with _bus(arg) as bus:
        await _wait_for_go()
        lease = await bus.acquire_lock(arg["holder"], lease_seconds=arg["lease"])
        _say({"holder": lease.holder, "pid": lease.pid, "own_pid": os.getpid()})
        while await _line():
            pass


COMMANDS = {
    "open": _open,
    "write": _write,
    "sync": _sync,
    "claim": _claim,
    "lock": _lock,
    "hold_lock": _hold_lock,
}

if __name__ == "__main__":
    command, raw = sys.argv[1], sys.argv[2]
    anyio.run(COMMANDS[command], json.loads(raw), backend="asyncio")
