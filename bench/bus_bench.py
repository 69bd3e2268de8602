"""How fast the bus is: messages sent and synced per second, in-process and across processes,
and what one `conductor` command costs. Prints numbers; asserts nothing.

    .venv/bin/python bench/bus_bench.py [--messages 2000] [--sessions 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from conductor.bus import create_run
from conductor.store import Store


async def in_process(db: Path, sessions: int, messages: int) -> None:
    async with Store.open(db) as store:
        names = [f"S{i}" for i in range(sessions)]
        bus = await create_run(
            store,
            goal="bench",
            repo_root=db.parent,
            base_ref=None,
            base_commit=None,
            sessions=[(n, "") for n in names],
        )
        start = time.perf_counter()
        for i in range(messages):
            await bus.send(names[i % sessions], names[(i + 1) % sessions], f"message {i}")
        sent = time.perf_counter() - start
        start = time.perf_counter()
        delivered = 0
        for name in names:
            delivered += len((await bus.sync(name)).messages)
        synced = time.perf_counter() - start
        assert delivered == messages
        print(f"send, one connection:  {messages / sent:8.0f} messages/s")
        print(f"sync of {messages} messages over {sessions} sessions: {synced * 1000:.0f} ms")
        lat = []
        for _ in range(200):
            t = time.perf_counter()
            await bus.sync(names[0])
            lat.append(time.perf_counter() - t)
        print(f"empty sync latency:    {statistics.median(lat) * 1e6:8.0f} µs median")


WRITER = """
import anyio, sys
from pathlib import Path
from conductor.bus import open_run
from conductor.store import Store
async def main():
    async with Store.open(Path(sys.argv[1])) as s:
        bus = await open_run(s)
        for i in range(int(sys.argv[3])):
            await bus.send(sys.argv[2], "S0", f"{sys.argv[2]} {i}")
anyio.run(main)
"""


def across_processes(db: Path, writers: int, each: int) -> None:
    start = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), f"S{w + 1}", str(each)])
        for w in range(writers)
    ]
    for p in procs:
        p.wait()
    elapsed = time.perf_counter() - start
    print(
        f"send, {writers} writer processes: {writers * each / elapsed:8.0f} messages/s "
        f"(including interpreter start-up)"
    )


def cli_latency(db: Path, calls: int) -> None:
    env = {**os.environ, "CONDUCTOR_DB": str(db)}
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "conductor", "sync", "-s", "S1"],
            env=env,
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - t)
    print(f"`conductor sync` as a process: {statistics.median(times) * 1000:.0f} ms median")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        anyio.run(in_process, db, args.sessions, args.messages)
        across_processes(db, writers=min(4, args.sessions - 1), each=250)
        cli_latency(db, calls=10)


if __name__ == "__main__":
    main()
