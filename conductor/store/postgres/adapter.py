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
results nobody reads (a transaction's BEGIN, its write lock) are not sent alone: `defer`
keeps them to go ahead of the next statement, in the same simple query (a client-bound
query may hold several statements; psycopg reads every result, and the last is the one the
caller gets).
"""

from __future__ import annotations

import re
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
# SQLite's query planner hint (`deliveries INDEXED BY deliveries_unread`): PostgreSQL's
# planner takes the partial index of unread deliveries by itself, and has no such hint.
_INDEXED_BY = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.IGNORECASE)
# `a IS NOT ?`: SQLite's null-safe inequality; PostgreSQL's IS NOT takes only NULL/booleans.
_IS_NOT_PARAM = re.compile(r"\bIS\s+NOT\s+\?", re.IGNORECASE)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


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


class Connection:
    """One psycopg connection, in autocommit mode: the store writes BEGIN and COMMIT itself
    (`PostgresStore` says which kind of transaction)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn
        self.deferred: str | None = None  # statements the next one sends first (`defer`)
        self._when_refused: Callable[[psycopg.errors.LockNotAvailable], None] | None = None

    def defer(
        self,
        sql: str,
        when_refused: Callable[[psycopg.errors.LockNotAvailable], None] | None = None,
    ) -> None:
        """Send the statements `sql` (no parameters, no result read) ahead of the next
        statement, in its round trip, not one of their own. When they wait for a lock past
        their `lock_timeout`, the statement after them has not run: `when_refused` is
        called (to wait on, or raise), then the statement runs alone."""
        self.deferred, self._when_refused = sql, when_refused

    def drop_deferred(self) -> bool:
        """Forget what was deferred and not sent; whether there was any."""
        pending, self.deferred, self._when_refused = self.deferred is not None, None, None
        return pending

    def flush(self) -> None:
        """Send what is deferred now, alone."""
        if self.deferred is not None:
            self._send("", None)

    def _send(self, text: str, params: Params | None) -> list[Row] | None:
        """`text` (with what is deferred ahead of it) in one round trip; the last
        statement's rows, None when it returns none."""
        deferred, when_refused = self.deferred, self._when_refused
        self.deferred = self._when_refused = None
        sent = f"{deferred}; {text}" if deferred is not None and text else deferred or text
        try:
            with self.raw.cursor(row_factory=_row_factory) as cur:
                cur.execute(sent, params)
                while cur.nextset():  # (the deferred statements' results come first)
                    pass
                result = cur.pgresult
                has_rows = result is not None and result.status == ExecStatus.TUPLES_OK
                return cur.fetchall() if has_rows else None
        except psycopg.errors.LockNotAvailable as err:
            if deferred is None or when_refused is None:
                raise
            when_refused(err)
            return self._send(text, params) if text else None

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
        try:
            rows = self._send(text, params) or []
        except psycopg.errors.IntegrityError as err:
            raise IntegrityViolation(str(err)) from err
        return Cursor(rows, int(rows[0]["id"]) if returns_id else None)

    def executemany(self, sql: str, seq: Iterable[Params]) -> None:
        items = list(seq)
        if not items:
            return
        text = translate(sql, isinstance(items[0], dict))
        # One statement per item, all in one simple query (and one round trip), instead of
        # psycopg's executemany: its pipeline costs a send three single statements' time.
        with psycopg.ClientCursor(self.raw) as binder:
            bound = "; ".join(binder.mogrify(text, item) for item in items)
        try:
            self._send(bound, None)
        except psycopg.errors.IntegrityError as err:
            raise IntegrityViolation(str(err)) from err

    def run(self, sql: str) -> None:
        """Statements of the store's own, without parameters (several at once allowed)."""
        self._send(sql, None)  # (no parameters: nothing in it is a placeholder)

    def rollback(self) -> None:
        """Forget what is deferred; ROLLBACK unless no transaction is open (a body that sent
        no statement began none). A connection in doubt is sent one: it says what is wrong."""
        self.drop_deferred()
        if self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.run("ROLLBACK")

    def close(self) -> None:
        self.raw.close()
