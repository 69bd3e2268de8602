"""`conductor report` on long runs: render time, peak memory and the file's size for runs of
1,000 to 50,000 messages, the report as it is (`conductor`) beside the report as it was at
commit 8c8dbb0 (`baseline`: every message an arrow and a table row, every phase a bar), in
one run on the same databases. Prints numbers; asserts nothing.

Each run is written straight through the store in one transaction (the bus would take minutes
to send fifty thousand messages one by one): two sessions, A sends B a message (a long one,
with markup in it, as the attack on the report used), B reads every other one, and each of
them takes a turn every fifth message. Each measurement is a process of its own: its peak
resident memory is its own (VmHWM, the interpreter included), its Python allocations' peak
is measured in another pass under tracemalloc (which slows it, so it is not timed). The time
is the best of a few renders: the machine may be busy with other things.

The baseline's modules come from `git show 8c8dbb0:conductor/report/...` into a temporary
package (its imports renamed), importing the rest of conductor as it is now.

    .venv/bin/python bench/report_scale.py [--sizes 1000,10000,50000] [--baseline 8c8dbb0]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import anyio

from conductor.bus import create_run, open_run
from conductor.events import EventKind, MessagesRead, PromptSent, SdkResult
from conductor.store import Store
from conductor.store.messages import insert_message
from conductor.store.rows import Db
from conductor.store.shared import insert_event, session_id

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "8c8dbb0"
BASELINE_PACKAGE = "report_before"
PACKAGE = "conductor.report"
TEXT = (
    'look at this <img src=x onerror=alert(1)> and "that" </script> & the rest of a long'
    " message a session wrote to another about the interface they share, " * 2
)
TURN_EVERY = 5  # messages between turns
STEP = 0.2  # seconds between writes on the run's clock


# ------------------------------------------------------------------------- the runs


def fill(store: Store, db: Db, run_id: str, messages: int, start: float) -> None:
    """`messages` messages A -> B, every other one read, turns of A and B in between."""
    a, b = session_id(db, run_id, "A"), session_id(db, run_id, "B")
    at = start
    for i in range(messages):
        at += STEP
        mid = insert_message(db, at, run_id, a, [b], f"#{i} {TEXT}", None)
        if i % 2:
            at += STEP
            insert_event(db, at, run_id, b, EventKind.MESSAGE_READ, "read", MessagesRead([mid]))
        if i % TURN_EVERY == 0:
            for sid, name in ((a, "A"), (b, "B")):
                at += STEP
                prompt = PromptSent(f"turn {i} of {name}: {TEXT}")
                insert_event(db, at, run_id, sid, EventKind.SESSION_PROMPT, "prompt", prompt)
                at += STEP
                done = SdkResult(num_turns=1, cost_usd=0.01, subtype="success", result="Done.")
                insert_event(db, at, run_id, sid, EventKind.SDK_RESULT, "result", done)


async def build(path: Path, messages: int) -> tuple[str, int]:
    """A run of `messages` messages in a new database at `path`: its id and its events."""
    async with Store.open(path) as store:
        bus = await create_run(
            store,
            goal="bench: a long run",
            repo_root=path.parent,
            base_ref="main",
            base_commit=None,
            sessions=[("A", "frontend"), ("B", "backend")],
        )
        start = bus.run.created_at
        await store._in_worker(True, fill, (bus.run_id, messages, start), {})
        run_id = bus.run_id
    with sqlite3.connect(path) as db:  # counted here: this process stays small (see `peak`)
        (events,) = db.execute("SELECT count(*) FROM events WHERE run_id = ?", (run_id,)).fetchone()
    return run_id, int(events)


# ------------------------------------------------------------------------- the two reports


def baseline_package(commit: str, into: Path) -> None:
    """conductor/report as it was at `commit`, as the package `report_before` in `into`."""
    package = into / BASELINE_PACKAGE
    package.mkdir()
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{commit}:conductor/report"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    for name in names:
        if name.endswith(".py"):
            source = subprocess.run(
                ["git", "show", f"{commit}:conductor/report/{name}"],
                cwd=ROOT, check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            source = source.replace("conductor.report", BASELINE_PACKAGE)
            (package / name).write_text(source)


async def render(package: str, db: Path, run_id: str) -> str:
    report: Any = importlib.import_module(package)
    async with Store.open(db, create=False) as store:
        bus = await open_run(store, run_id)
        html: str = await report.render_report(bus)
        return html


def peak() -> int:
    """This process's peak resident memory, in bytes: Linux's VmHWM, which starts afresh with
    the program (`ru_maxrss` does not: it keeps the forking parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def one(package: str, db: Path, run_id: str, traced: bool) -> dict[str, float]:
    """In a process of its own: one render of the run's report, timed (or traced)."""
    importlib.import_module(package)  # imports are not the render's cost
    before = peak()
    if traced:
        tracemalloc.start()
    began = time.perf_counter()
    html = anyio.run(render, package, db, run_id)
    took = time.perf_counter() - began
    allocated = tracemalloc.get_traced_memory()[1] if traced else 0
    return {
        "seconds": took,
        "size": len(html.encode()),
        "rss": peak(),
        "rss_before": before,
        "traced": allocated,
    }


def measured(package: str, db: Path, run_id: str, extra: Path, traced: bool) -> dict[str, float]:
    argv = [sys.executable, __file__, "--one", package, str(db), run_id]
    argv += ["--traced"] if traced else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(extra), str(ROOT)])}
    out = subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout
    found: dict[str, float] = json.loads(out)
    return found


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000", help="messages per run")
    parser.add_argument("--baseline", default=BASELINE, help="the commit compared against")
    parser.add_argument("--one", nargs=3, metavar=("PACKAGE", "DB", "RUN"), help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3, help="timed renders each: the best")
    args = parser.parse_args()
    if args.one:
        package, db, run_id = args.one
        print(json.dumps(one(package, Path(db), run_id, args.traced)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="conductor-bench-report-") as tmp:
        root = Path(tmp)
        baseline_package(args.baseline, root)
        header = (
            f"{'messages':>9} {'events':>7}  {'report':<10} {'render':>8} {'peak RSS':>10}"
            f" {'py peak':>10} {'file':>10}"
        )
        print(f"conductor report, this tree against {args.baseline} (baseline)")
        print(header)
        print("-" * len(header))
        for size in sizes:
            db = root / f"run{size}" / "conductor.db"
            db.parent.mkdir()
            run_id, events = anyio.run(build, db, size)
            for label, package in (
                ("baseline", BASELINE_PACKAGE),
                ("conductor", "conductor.report"),
            ):
                timed = [
                    measured(package, db, run_id, root, traced=False) for _ in range(args.repeat)
                ]
                traced = measured(package, db, run_id, root, traced=True)
                best = min(t["seconds"] for t in timed)
                rss = max(t["rss"] for t in timed)
                print(
                    f"{size:>9} {events:>7}  {label:<10} {best:>7.2f}s {mb(rss):>10}"
                    f" {mb(traced['traced']):>10} {mb(timed[0]['size']):>10}",
                    flush=True,
                )
        print(
            f"\nrender: read, fold and page, seconds, the best of {args.repeat}; peak RSS: the"
            " process's (interpreter and imports included); py peak: Python allocations during"
            " the render (tracemalloc); file: the HTML's bytes."
        )


if __name__ == "__main__":
    main()
