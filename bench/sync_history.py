"""Sync latency against the size of a session's message history. Prints numbers; asserts
nothing.

A session's sync marks its unread deliveries read. Done through the deliveries' primary key,
that statement visits every message the session was ever sent; through the partial index of
unread deliveries, only the unread ones. Each history size is measured both ways in the same
run on the same database: `baseline` forces the primary key (the plan SQLite picked before),
`conductor` is the statement the store runs now. Both run with the store kept as `conductor
run` keeps it: its commits leave checkpointing the WAL to a connection of its own.

    .venv/bin/python bench/sync_history.py [--sizes 0,100000,1000000] [--rounds 300]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from conductor.bus import create_run
from conductor.store import Store

BASELINE_INDEX = "sqlite_autoindex_deliveries_1"  # the primary key: SQLite's own pick


def fill(db: Path, run_id: str, reader: int, sender: int, history: int) -> None:
    """`history` messages from `sender` to `reader`, all read long ago (straight SQL: the bus
    would take minutes to send a million)."""
    with sqlite3.connect(db) as con:
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO messages (run_id, sender_id, body, created_at) VALUES (?, ?, ?, 0)",
            ((run_id, sender, f"old {i}") for i in range(history)),
        )
        con.execute(
            "INSERT INTO deliveries (message_id, recipient_id, read_at, read_via)"
            " SELECT id, ?, 1.0, 'sync' FROM messages WHERE run_id = ?",
            (reader, run_id),
        )
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the history is old: in the database


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


async def measure(db: Path, history: int, rounds: int) -> None:
    async with Store.open(db) as store, anyio.create_task_group() as upkeep:
        upkeep.start_soon(store.keep_checkpointed)  # as `conductor run` keeps its store
        bus = await create_run(
            store,
            goal="bench",
            repo_root=db.parent,
            base_ref=None,
            base_commit=None,
            sessions=[("A", ""), ("B", "")],
        )
        ids = {s.name: s.id for s in await bus.sessions()}
        await anyio.to_thread.run_sync(fill, db, bus.run_id, ids["A"], ids["B"], history)
        for side in ("baseline", "conductor"):
            store.unread_index = BASELINE_INDEX if side == "baseline" else Store.unread_index
            empty, one = [], []
            for _ in range(rounds):
                start = time.perf_counter()
                await bus.sync("A")
                empty.append(time.perf_counter() - start)
                await bus.send("B", "A", "new")
                start = time.perf_counter()
                got = await bus.sync("A")
                one.append(time.perf_counter() - start)
                assert len(got.messages) == 1
            print(
                f"{history:>9} history  {side:<9}  empty sync p50 {p(empty, 50):6.2f} ms"
                f" p99 {p(empty, 99):6.2f} ms   one new p50 {p(one, 50):6.2f} ms"
                f" p99 {p(one, 99):6.2f} ms"
            )
        upkeep.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0,100000,1000000")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(measure, Path(tmp) / "bench.db", size, args.rounds)


if __name__ == "__main__":
    main()
