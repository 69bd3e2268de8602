"""Bus operation latency on PostgreSQL against SQLite, side by side in one run: the median and
p95 of each operation a run does most, through the public bus (`conductor.bus`), and the
round trips PostgreSQL's store makes for it; then throughput with N writers at once, each a
process of its own with a connection of its own. Prints numbers; asserts nothing.

It starts a PostgreSQL server of its own as tests/postgres.py does (initdb and pg_ctl in a
temporary directory, as the `postgres` user when run as root, a unix socket only, fsync off)
and removes it afterwards. SQLite's database is a file in a temporary directory.

    .venv/bin/python bench/bus_latency.py [--rounds 300] [--writers 1,4,8] [--each 100]
                                          [--rtt 0.5]

Over a network every round trip costs the hosts' round-trip time: `--rtt` adds it to each of
PostgreSQL's (in the latency table; the `trips` column is what it multiplies).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio

from conductor.bus import Bus, create_run, open_run
from conductor.events import EventKind
from conductor.store import Store
from conductor.store.postgres import PostgresStore

SESSIONS = [f"S{i}" for i in range(8)]
Op = Callable[[int], Awaitable[object]]


# ------------------------------------------------------------------------- the server


def _pg_bin() -> Path:
    """initdb's directory: on PATH, or Debian's newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    return versions[-1].parent


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway server, as the tests' (tests/postgres.py); the URL of its database."""
    bin_dir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="conductor-bench-pg-"))
    data = root / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        subprocess.run(
            _as_server_user(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8", "--no-sync"]
            ),
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_server_user(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
                 "-o", options, "-w", "start"]
            ),
            check=True, capture_output=True,
        )  # fmt: skip
        try:
            yield f"postgresql://postgres@/postgres?host={root}"
        finally:
            subprocess.run(
                _as_server_user(
                    [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
                ),
                check=False, capture_output=True,
            )  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------- the stores


@asynccontextmanager
async def opened(location: str) -> AsyncIterator[Store | PostgresStore]:
    if location.startswith("postgresql://"):
        async with PostgresStore.open(location) as pg:
            yield pg
    else:
        async with Store.open(Path(location)) as lite:
            yield lite


class RoundTrips:
    """Counts the round trips PostgreSQL's store makes: each sends one query (one or several
    statements) through a cursor of its own. With `rtt` (seconds), each also waits that
    long: the network between hosts, which a unix socket on this machine does not have."""

    def __init__(self, store: PostgresStore, rtt: float = 0.0) -> None:
        self.count = 0
        raw = store._pg.raw
        plain_cursor = raw.cursor

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            if rtt:
                time.sleep(rtt)
            return plain_cursor(*args, **kwargs)

        raw.cursor = counted  # type: ignore[method-assign]


def operations(bus: Bus, root: Path) -> dict[str, tuple[Op | None, Op]]:
    """Each operation measured: (what to do before it, untimed, or None; the operation)."""

    async def send(i: int) -> object:
        return await bus.send("S0", "S1", f"message {i}")

    async def broadcast(i: int) -> object:
        return await bus.send("S0", "all", f"to all {i}")

    async def one_in(i: int) -> object:
        return await bus.send("S0", "S2", f"for sync {i}")

    async def sync_one(i: int) -> object:
        return await bus.sync("S2")

    async def sync_empty(i: int) -> object:
        return await bus.sync("S3")

    async def take_one(i: int) -> object:
        return await bus.take_unread("S2", via="bench")

    async def claim_release(i: int) -> object:
        await bus.claim("S4", f"src/file{i}.py", root=root)
        return await bus.release("S4", f"src/file{i}.py", root=root)

    async def record(i: int) -> object:
        return await bus.record("S5", EventKind.SDK_ASSISTANT, f"turn {i}", {"text": "x" * 200})

    async def events(i: int) -> object:
        last = await bus.last_event()
        return await bus.events(after=(last.id if last else 0) - 20)

    async def session(i: int) -> object:
        return await bus.session("S6")

    async def sessions(i: int) -> object:
        return await bus.sessions()

    async def review(i: int) -> object:
        asked = await bus.request_review(
            "S6", commit=f"{i:040x}", diff=b"+line\n" * 50, reviewer="S7", note="bench"
        )
        return await bus.decide(asked.id, "S7", approve=True, comment="ok")

    async def lock(i: int) -> object:
        lease = await bus.acquire_lock("S7", name="bench lock")
        return await bus.release_lock(lease)

    return {
        "send (one recipient)": (None, send),
        "send (broadcast, 7)": (None, broadcast),
        "sync, one new": (one_in, sync_one),
        "sync, nothing new": (None, sync_empty),
        "take_unread, one new": (one_in, take_one),
        "claim + release": (None, claim_release),
        "record (sdk.assistant)": (None, record),
        "last_event + events(after)": (None, events),
        "session": (None, session),
        "sessions (8)": (None, sessions),
        "request_review + decide": (None, review),
        "acquire_lock + release": (None, lock),
    }


Timings = dict[str, tuple[list[float], float]]  # per operation: seconds each, round trips each


async def measure(location: str, root: Path, rounds: int, rtt: float) -> tuple[Timings, str]:
    """Each operation `rounds` times on a fresh run of the store at `location`."""
    async with opened(location) as store:
        bus = await create_run(
            store,
            goal="bench",
            repo_root=root,
            base_ref=None,
            base_commit=None,
            sessions=[(n, "") for n in SESSIONS],
        )
        trips = RoundTrips(store, rtt) if isinstance(store, PostgresStore) else None
        found: Timings = {}
        for name, (before, op) in operations(bus, root).items():
            for i in range(min(20, rounds)):  # warm up
                if before is not None:
                    await before(i)
                await op(i)
            times, counted = [], 0
            for i in range(rounds):
                if before is not None:
                    await before(i)
                start_count = trips.count if trips else 0
                start = time.perf_counter()
                await op(i)
                times.append(time.perf_counter() - start)
                counted += (trips.count - start_count) if trips else 0
            found[name] = (times, counted / rounds)
        return found, bus.run_id


# ------------------------------------------------------------------------- contention


def _writer(location: str, run_id: str, me: int, each: int, go: Any, done: Any) -> None:
    """One writer process: `each` send + claim/release pairs, once every writer is ready."""

    async def work() -> None:
        root = Path("/bench")
        async with opened(location) as store:
            bus = await open_run(store, run_id)
            name = SESSIONS[me % len(SESSIONS)]
            to = SESSIONS[(me + 1) % len(SESSIONS)]
            go.wait()
            for i in range(each):
                await bus.send(name, to, f"{me}/{i}")
                await bus.claim(name, f"w{me}/f{i}.py", root=root)
                await bus.release(name, f"w{me}/f{i}.py", root=root)
        done.put(me)

    anyio.run(work)


def contention(location: str, run_id: str, writers: int, each: int) -> float:
    """Operations per second (a send, a claim, a release: 3 each round) with `writers`
    processes writing at once."""
    ctx = multiprocessing.get_context("spawn")
    go, done = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(location, run_id, w, each, go, done))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0 + 0.3 * writers)  # every process has started and opened its store
    start = time.perf_counter()
    go.set()
    for _ in procs:
        done.get()
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    return writers * each * 3 / elapsed


# ------------------------------------------------------------------------- the table


def ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def report(lite: Timings, pg: Timings) -> None:
    head = (
        f"{'operation':<28} {'sqlite p50':>10} {'p95':>7} {'ops/s':>7}   "
        f"{'postgres p50':>12} {'p95':>7} {'ops/s':>7} {'trips':>5}   {'ratio':>5}"
    )
    print(head)
    print("-" * len(head))
    for name, (a, _) in lite.items():
        b, trips = pg[name]
        print(
            f"{name:<28} {ms(a, 50):10.3f} {ms(a, 95):7.3f} {1 / statistics.mean(a):7.0f}   "
            f"{ms(b, 50):12.3f} {ms(b, 95):7.3f} {1 / statistics.mean(b):7.0f} {trips:5.1f}"
            f"   {ms(b, 50) / ms(a, 50):5.1f}"
        )
    print("(ms; ops/s = 1 / mean latency, one connection; trips = PostgreSQL round trips)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="timed calls per operation")
    parser.add_argument("--writers", default="1,4,8", help="concurrent writer processes")
    parser.add_argument("--each", type=int, default=100, help="rounds per writer process")
    parser.add_argument(
        "--rtt",
        type=float,
        default=0.0,
        help="ms of network to add to each PostgreSQL round trip (latency table only)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as url:
        root = Path(tmp)
        sqlite_db = str(root / "bench.db")
        lite, lite_run = anyio.run(measure, sqlite_db, root, args.rounds, 0.0)
        pg, pg_run = anyio.run(measure, url, root, args.rounds, args.rtt / 1000)
        report(lite, pg)
        print()
        print(f"{'writers':>7} {'sqlite ops/s':>13} {'postgres ops/s':>15}")
        for n in (int(w) for w in args.writers.split(",")):
            a = contention(sqlite_db, lite_run, n, args.each)
            b = contention(url, pg_run, n, args.each)
            print(f"{n:7d} {a:13.0f} {b:15.0f}")
        print("(send + claim + release per round, each writer a process with its own store)")


if __name__ == "__main__":
    main()
