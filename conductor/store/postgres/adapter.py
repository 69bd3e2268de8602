"""A psycopg connection dressed as the little of sqlite3 the aggregates' queries use, so the
same query modules run on both backends: `execute(sql, params)` returning a cursor with
`fetchall()` and `lastrowid`, `executemany`, rows addressable by column name and by index,
and `?` / `:name` placeholders.

The SQL is SQLite's, rewritten here only where PostgreSQL spells the same thing otherwise
(each rewrite below says what and why); a query that means something else on PostgreSQL is
overridden in `PostgresStore` instead. Parameters are bound on the client (psycopg's
`ClientCursor`, as literals, as sqlite3 binds them): server-side binding would need a type
for every parameter, and `(? IS NULL OR c.category = ?)` gives PostgreSQL none to infer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
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
    names = [c.name for c in cursor.description or ()]
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
            with self.raw.cursor(row_factory=_row_factory) as cur:
                cur.execute(text, params)
                rows = cur.fetchall() if cur.description is not None else []
        except psycopg.errors.IntegrityError as err:
            raise IntegrityViolation(str(err)) from err
        return Cursor(rows, int(rows[0]["id"]) if returns_id else None)

    def executemany(self, sql: str, seq: Iterable[Params]) -> None:
        items = list(seq)
        if not items:
            return
        text = translate(sql, isinstance(items[0], dict))
        try:
            with self.raw.cursor() as cur:
                cur.executemany(text, items)
        except psycopg.errors.IntegrityError as err:
            raise IntegrityViolation(str(err)) from err

    def run(self, sql: str) -> None:
        """Statements of the store's own, without parameters (several at once allowed)."""
        self.raw.execute(sql)  # (no parameters: nothing in it is a placeholder)

    def close(self) -> None:
        self.raw.close()
