"""`conductor serve` with many pages open: the CPU it spends serving idle live pages of one
run, and how long a run page takes to open on a long run, the shared fold (`conductor`: one
`LiveRun` per run, conductor/web/live_runs.py) beside the fold per page (`baseline`: each
stream and each page load with a `Snapshot` of its own, conductor/web/stream.py as it was at
commit 810b2a9), in one run on the same database. Prints numbers; asserts nothing.

The streams are driven as the server drives them (their generators, read to the end), with
no HTTP in between: what is measured is the folding and polling, which is what differs. The
CPU is the process's (`time.process_time`: the event loop and the store's worker threads),
measured once every stream has sent its first state (each baseline stream first folds the
whole run: that is counted apart, as `warm-up`; pages that open at once each fold it on the
shared side too, as `LiveRuns.of` keeps a run's `LiveRun` only once its first fold is done).

The baseline's stream.py comes from `git show 810b2a9:conductor/web/stream.py` into a
temporary module, importing the rest of conductor as it is now. The run is written straight
through the store as bench/report_scale.py writes it.

    .venv/bin/python bench/web_view.py [--clients 1,10,50] [--seconds 20] [--events 10000]
                                       [--page-events 50000]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
from report_scale import build  # the same run writer (bench/ is on the path of its scripts)

from conductor.store import Store
from conductor.web.live_runs import BACKLOG, POLL, LiveRuns
from conductor.web.stream import run_updates

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "810b2a9"


def baseline_stream(commit: str, into: Path) -> ModuleType:
    """conductor/web/stream.py as it was at `commit`, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{commit}:conductor/web/stream.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = into / "stream_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("stream_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def serving(
    store: Store, old: ModuleType | None, run_id: str, clients: int, seconds: float
) -> tuple[float, float]:
    """`clients` idle streams of the run for `seconds` once all have started: the CPU seconds
    their start took (first folds), and the CPU seconds per minute of serving after."""
    runs = LiveRuns()
    started = 0
    all_started = anyio.Event()
    deadline = float("inf")

    async def gone() -> bool:
        return time.monotonic() > deadline

    async def client() -> None:
        nonlocal started
        if old is None:
            updates = run_updates(runs, store, run_id, after=0, gone=gone)
        else:
            updates = old.run_updates(store, run_id, after=0, gone=gone)
        first = True
        async for _ in updates:
            if first:
                first, started = False, started + 1
                if started == clients:
                    all_started.set()

    began = time.process_time()
    async with anyio.create_task_group() as streams:
        for _ in range(clients):
            streams.start_soon(client)
        await all_started.wait()
        warm = time.process_time()
        deadline = time.monotonic() + seconds
        await anyio.sleep(seconds)
        served = time.process_time() - warm
    return warm - began, served / seconds * 60


async def page_loads(
    store: Store, old: ModuleType | None, run_id: str, rounds: int
) -> tuple[float, float]:
    """The run page opened on a server that has not folded the run yet, then again a poll
    later, `rounds` times: the best first open and the median of the second, in seconds (what
    the server does before it renders the page's template)."""
    firsts: list[float] = []
    agains: list[float] = []
    for _ in range(rounds):
        runs = LiveRuns()  # a server that has no page of the run open yet
        for took in (firsts, agains):
            began = time.perf_counter()
            if old is None:
                live = await runs.of(store, run_id)
                live.lines_after(0)[-BACKLOG:]
            else:
                await old.first_page(store, run_id)
            took.append(time.perf_counter() - began)
            await anyio.sleep(POLL)
    return min(firsts), statistics.median(agains)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,10,50", help="idle live pages at once")
    parser.add_argument("--seconds", type=float, default=20.0, help="of serving, per measure")
    parser.add_argument("--events", type=int, default=10000, help="about, in the served run")
    parser.add_argument("--page-events", type=int, default=50000, help="about, page latency")
    parser.add_argument("--rounds", type=int, default=5, help="page loads per measure")
    parser.add_argument("--baseline", default=BASELINE, help="the commit compared against")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conductor-bench-web-") as tmp:
        root = Path(tmp)
        old = baseline_stream(args.baseline, root)
        kinds: list[tuple[str, ModuleType | None]] = [("baseline", old), ("conductor", None)]

        def run_of(events: int) -> tuple[Path, str, int]:
            db = root / f"run{events}" / "conductor.db"
            db.parent.mkdir()
            run_id, written = anyio.run(build, db, max(events * 10 // 23, 1))
            return db, run_id, written

        def in_store(db: Path, work: Callable[..., Awaitable[Any]], *args: Any) -> Any:
            async def opened() -> Any:
                async with Store.open(db, create=False) as store:
                    return await work(store, *args)

            return anyio.run(opened)

        db, run_id, events = run_of(args.events)
        print(f"idle live pages of one run ({events} events), {args.seconds:g} s each")
        header = f"{'pages':>6}  {'fold':<10} {'warm-up CPU':>12} {'CPU s/min':>10}"
        print(header)
        print("-" * len(header))
        for clients in [int(c) for c in args.clients.split(",") if c]:  # "": none
            for label, module in kinds:
                warm, per_minute = in_store(db, serving, module, run_id, clients, args.seconds)
                print(f"{clients:>6}  {label:<10} {warm:>11.2f}s {per_minute:>10.2f}", flush=True)
        db, run_id, events = run_of(args.page_events)
        print(f"\nthe run page opened on a run of {events} events, {args.rounds} times")
        header = f"{'fold':<10} {'first':>8} {'again':>8}"
        print(header)
        print("-" * len(header))
        for label, module in kinds:
            first, again = in_store(db, page_loads, module, run_id, args.rounds)
            print(f"{label:<10} {first:>7.3f}s {again:>7.3f}s", flush=True)
        print(
            "\nwarm-up CPU: until every page has its first state; CPU s/min: CPU seconds per"
            " minute of serving them after (process time: loop and store threads); first: the"
            " page's first load (the best of the rounds); again: the median of a second load, a"
            " poll later."
        )


if __name__ == "__main__":
    main()
