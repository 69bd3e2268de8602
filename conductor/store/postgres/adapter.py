"""A psycopg connection dressed as the little of sqlite3 the aggregates' queries use, so the
same query modules run on both backends: `execute(sql, params)` returning a cursor with
`fetchall()` and `lastrowid`, `executemany`, rows addressable by column name and by index,
and `?` / `:name` placeholders.

The SQL is SQLite's, rewritten here only where PostgreSQL spells the same thing otherwise
(each rewrite below says what and why); a query that means something else on PostgreSQL is
overridden in `PostgresStore` instead. Parameters are bound on the client (psycopg's
`ClientCursor`, as literals, as sqlite3 binds them): server-side binding would need a type
for every parameter, and `(? IS NULL OR c.category = ?)` gives PostgreSQL none to infer.

Round trips are what an operation costs on a server across a network, so statements whose
results nobody reads (a transaction's BEGIN and write lock, an UPDATE or DELETE without
RETURNING, `executemany`'s inserts) are not sent alone: they go ahead of the transaction's
next statement or its COMMIT, in the same simple query (a client-bound query may hold
several statements; psycopg reads every result, and the last is the one the caller gets).
An error of theirs is raised there, and rolls the transaction back as it would have.
"""

from __future__ import annotations

import contextlib
import re
import select
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import RowMaker

from conductor.store.rows import IntegrityViolation

Params = Sequence[Any] | dict[str, Any]

# Tables whose rows have a generated `id`: an INSERT into one returns it, for `lastrowid`.
IDENTITY_TABLES = frozenset({"sessions", "messages", "context", "claims", "reviews", "events"})

_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
# Statements that return nothing anyone reads (this Cursor has no rowcount): in a transaction
# they wait for its next statement. Not INSERT: a caller catches a duplicate at its insert.
_NO_RESULT = re.compile(r"^\s*(UPDATE|DELETE)\b", re.IGNORECASE)
# SQLite's query planner hint (`deliveries INDEXED BY deliveries_unread`): PostgreSQL's
# planner takes the partial index of unread deliveries by itself, and has no such hint.
_INDEXED_BY = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.IGNORECASE)
# `a IS NOT ?`: SQLite's null-safe inequality; PostgreSQL's IS NOT takes only NULL/booleans.
_IS_NOT_PARAM = re.compile(r"\bIS\s+NOT\s+\?", re.IGNORECASE)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


STEP = 1.0  # seconds: a jump of this host's clock that makes the server's be measured again


def clock_offset(raw: psycopg.Connection[Any], host_clock: Callable[[], float]) -> float:
    """How far the server's clock is ahead of `host_clock` (behind: negative), as closely as
    a round trip can tell: the server read its clock at some moment between the two host
    readings around the query, so the offset lies between the two differences. The best of
    three round trips, and in it the value nearest zero (two clocks of one machine: zero)."""
    low, high = -float("inf"), float("inf")
    for _ in range(3):
        before = host_clock()
        [(server,)] = raw.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchall()
        after = host_clock()
        if after - before < high - low:
            low, high = server - after, server - before
    return float(min(max(0.0, low), high))


class ServerClock:
    """The server's clock, read on this host with no round trip: this host's clock and the
    offset `measure`d between them. Hosts sharing a database compare the times they write
    (a lease's end), so those times must be one clock's. A step of this host's clock since
    the measurement (NTP setting it, a machine waking from sleep) shows as a change of its
    distance from the monotonic clock: then `stepped`, and it is to be measured again."""

    def __init__(self, host: Callable[[], float]) -> None:
        self.host = host
        self.offset = 0.0
        self._host_less_monotonic = 0.0

    def measure(self, raw: psycopg.Connection[Any]) -> None:
        self.offset = clock_offset(raw, self.host)
        self._host_less_monotonic = self.host() - time.monotonic()

    def stepped(self) -> bool:
        return abs(self.host() - time.monotonic() - self._host_less_monotonic) > STEP

    def __call__(self) -> float:
        return self.host() + self.offset


def translate(sql: str, named: bool) -> str:
    """SQLite's SQL with `?` (or `:name` when `named`) placeholders as psycopg's."""
    sql = _INDEXED_BY.sub("", sql)
    sql = _IS_NOT_PARAM.sub("IS DISTINCT FROM ?", sql)
    sql = sql.replace("%", "%%")
    if named:
        return _NAMED.sub(r"%(\1)s", sql)
    return sql.replace("?", "%s")


class Row:
    """One result row, by column name or by index, as sqlite3.Row."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    # The names from the result itself: `cursor.description` makes a Column object (and
    # looks up its type) per column per result, a tenth of a send's time.
    result = cursor.pgresult
    names = [(result.fname(i) or b"").decode() for i in range(result.nfields)] if result else []
    index = {name: i for i, name in reversed(list(enumerate(names)))}  # the first of a name

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


class Cursor:
    """What `execute` returns: the rows (none for a statement without a result) and the id
    of the row an INSERT made."""

    def __init__(self, rows: list[Row], lastrowid: int | None) -> None:
        self._rows = rows
        self.lastrowid = lastrowid

    def fetchall(self) -> list[Row]:
        return self._rows


Refused = Callable[[psycopg.errors.LockNotAvailable], None]


class Connection:
    """One psycopg connection, in autocommit mode: the store writes BEGIN and COMMIT itself
    (`PostgresStore` says which kind of transaction), through `begin` and `commit`, which
    send them with the transaction's statements, not as round trips of their own."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn
        self._begin: str | None = None  # BEGIN and what goes with it, not sent yet
        self._when_refused: Refused | None = None
        self._pending: list[str] = []  # statements whose results nobody reads, not sent yet
        self._in_transaction = False

    def dropped(self) -> bool:
        """Whether the server has closed this connection since its last statement (a restart,
        a failover, `pg_terminate_backend`), seen without a round trip: an idle connection
        that LISTENs to nothing is sent nothing unasked but that goodbye (an error, then the
        end of the stream), which is read here, so a transaction need not begin on it."""
        raw = self.raw
        for _ in range(3):  # (the goodbye, then the end of the stream; a stray notice)
            if raw.closed:
                return True
            try:
                readable, _, _ = select.select([raw.fileno()], [], [], 0)
                if not readable:
                    break
                raw.pgconn.consume_input()
            except (OSError, ValueError, psycopg.Error):
                return True
        return raw.closed or raw.pgconn.status == psycopg.pq.ConnStatus.BAD

    @property
    def lost(self) -> bool:
        """Whether the connection is gone (found so by a statement that failed): whatever
        transaction was open on it is rolled back by the server, and nothing can be sent."""
        return self.raw.closed or self.raw.broken

    def forget(self) -> None:
        """Drop the transaction (what is not sent) without sending anything: for a
        connection that is `lost`, whose transaction the server has rolled back."""
        self._in_transaction = False
        self._begin, self._when_refused, self._pending = None, None, []

    def replace(self, conn: psycopg.Connection[Any]) -> None:
        """Go on with `conn`, a new connection to the same database, in place of this one's
        (closed): the store and its aggregates keep this object."""
        old, self.raw = self.raw, conn
        self.forget()
        with contextlib.suppress(psycopg.Error):
            old.close()

    def begin(self, sql: str, when_refused: Refused | None = None) -> None:
        """Begin a transaction with the statements `sql` (BEGIN, and for a write its lock):
        they go with its first statement, in that statement's round trip. When they wait
        for a lock past their `lock_timeout`, nothing after them has run: `when_refused`
        is called (to wait on, or raise), then the rest is sent again without them."""
        self._begin, self._when_refused, self._pending = sql, when_refused, []
        self._in_transaction = True

    @property
    def begin_pending(self) -> bool:
        """Whether the transaction's BEGIN is still to be sent."""
        return self._begin is not None

    def commit(self, sql: str) -> None:
        """End the transaction with `sql` (COMMIT), sent with what is still pending; nothing
        at all when it never sent a statement (no transaction began)."""
        self._in_transaction = False
        if self._begin is not None and not self._pending:
            self._begin = self._when_refused = None
            return
        self.run(sql)

    def rollback(self) -> None:
        """Forget what is not sent; ROLLBACK unless no transaction is open (a body that sent
        no statement began none). A connection in doubt is sent one: it says what is wrong."""
        self.forget()
        if self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._send("ROLLBACK", None)

    def flush(self) -> None:
        """Send what is deferred (BEGIN, pending statements) now, alone."""
        if self._begin is not None or self._pending:
            self._send("", None)

    def _send(self, text: str, params: Params | None) -> list[Row] | None:
        """`text` (with what is deferred ahead of it) in one round trip; the last
        statement's rows, None when it returns none."""
        begin, when_refused, pending = self._begin, self._when_refused, self._pending
        self._begin, self._when_refused, self._pending = None, None, []
        ahead = [part for part in (begin, *pending) if part]
        if params is not None:  # (psycopg then reads a bound literal's % as a placeholder)
            ahead = [part.replace("%", "%%") for part in ahead]
        sent = "; ".join([*ahead, text] if text else ahead)
        try:
            with self.raw.cursor(row_factory=_row_factory) as cur:
                cur.execute(sent, params)
                while cur.nextset():  # (the deferred statements' results come first)
                    pass
                result = cur.pgresult
                has_rows = result is not None and result.status == ExecStatus.TUPLES_OK
                return cur.fetchall() if has_rows else None
        except psycopg.errors.IntegrityError as err:
            raise IntegrityViolation(str(err)) from err
        except psycopg.errors.LockNotAvailable as err:
            if begin is None or when_refused is None:
                raise
            when_refused(err)
            self._pending = pending
            return self._send(text, params) if text or pending else None

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        named = isinstance(params, dict)
        text = translate(sql, named)
        table = _INSERT_INTO.match(sql)
        returns_id = (
            table is not None
            and table.group(1).lower() in IDENTITY_TABLES
            and not _RETURNING.search(sql)
        )
        if returns_id:
            text += " RETURNING id"
        elif self._in_transaction and _NO_RESULT.match(sql) and not _RETURNING.search(sql):
            self._pending.append(self._bind(text, params))
            return Cursor([], None)
        rows = self._send(text, params) or []
        return Cursor(rows, int(rows[0]["id"]) if returns_id else None)

    def executemany(self, sql: str, seq: Iterable[Params]) -> None:
        """One statement per item, client-bound. Nothing reads what they return, so in a
        transaction they go with its next statement (or its COMMIT), in the same round trip;
        an error of theirs (a duplicate) is raised there, and rolls the transaction back."""
        items = list(seq)
        if not items:
            return
        text = translate(sql, isinstance(items[0], dict))
        self._pending.extend(self._bind(text, item) for item in items)
        if not self._in_transaction:
            self.flush()

    def _bind(self, text: str, params: Params) -> str:
        """The statement with its parameters as literals, as `_send` would send it."""
        with psycopg.ClientCursor(self.raw) as binder:
            return binder.mogrify(text, params)

    def run(self, sql: str) -> None:
        """Statements of the store's own, without parameters (several at once allowed)."""
        self._send(sql, None)  # (no parameters: nothing in it is a placeholder)

    def close(self) -> None:
        self.raw.close()
