"""Many rows into one table, in the caller's transaction.

SQLite: one executemany on the DBAPI cursor, of an INSERT written once per
table and set of columns, with the values bound here as for COPY below
(SQLAlchemy's executemany builds a parameter dict per row through the
compiled statement: writing the mix benchmark's rows took about a tenth
longer that way). PostgreSQL: COPY in its binary format, whose rows
psycopg formats in C and the server reads without planning a statement per
row; on the mix benchmark an executemany of a batch's audit, thread-link and
in-flight rows cost the processing process about 45 µs per row, most of it
waiting for the server, and COPY about half of that. (COPY's text format
would carry a mail's bytes in hex, twice their size: the outbox's rows took
twice as long that way.) Each column's type is named to psycopg as the
dialect compiles it (``timestamp with time zone``, ``json``, ``bytea``...).
What an INSERT would have applied is applied here: the columns'
bind processing (UTC times, JSON, the store-safe text checks) and their
Python-side defaults; server-side defaults (serial ids) come from the
server, as for an INSERT that leaves the column out.
"""
from __future__ import annotations

import functools

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError


def insert_rows(conn, table: Table, rows: list[dict]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` through the
    SQLAlchemy connection ``conn``."""
    if rows:
        keys = tuple(rows[0])
        insert_values(conn, table, keys, [[r[k] for k in keys] for r in rows])


def insert_values(conn, table: Table, keys: tuple[str, ...], rows: list[list]) -> None:
    """``insert_rows`` for rows given as lists of values, in the order of
    the columns ``keys`` (no dict made per row)."""
    if not rows:
        return
    plan = _plan(table, keys, conn.dialect)
    values = map(plan.values, rows)
    dialect = conn.dialect
    cursor = conn.connection.dbapi_connection.cursor()
    # Seen by the engine's listeners as one statement (counts, logging).
    conn.dispatch.before_cursor_execute(conn, cursor, plan.sql, (), None, True)
    try:
        if dialect.name == "postgresql":
            with cursor.copy(plan.sql) as cp:
                cp.set_types(plan.types)
                for v in values:
                    cp.write_row(v)
        else:
            cursor.executemany(plan.sql, values)
    except dialect.loaded_dbapi.Error as e:  # as an INSERT's error would be (IntegrityError...)
        raise DBAPIError.instance(plan.sql, None, e, dialect.loaded_dbapi.Error) from e
    finally:
        cursor.close()
    conn.dispatch.after_cursor_execute(conn, cursor, plan.sql, (), None, True)


class _Plan:
    """How rows with the columns ``keys`` go into ``table``: the statement,
    and each column's bind processing and Python-side default."""

    def __init__(self, table: Table, keys: tuple[str, ...], dialect):
        self.keys = keys
        cols = _columns(table, keys)
        self.procs = [c.type._cached_bind_processor(dialect) for c in cols]
        self.defaults = [python_default(c) for c in cols[len(keys):]]
        quote = dialect.identifier_preparer.quote
        names = ", ".join(quote(c.name) for c in cols)
        target = dialect.identifier_preparer.format_table(table)
        if dialect.name == "postgresql":
            self.sql = f"COPY {target} ({names}) FROM STDIN (FORMAT BINARY)"
            self.types = [copy_type(c, dialect) for c in cols]
        else:
            self.sql = f"INSERT INTO {target} ({names}) VALUES ({', '.join('?' * len(cols))})"

    def values(self, row: list) -> list:
        if self.defaults:
            row = row + [d() for d in self.defaults]
        return [v if p is None else p(v) for v, p in zip(row, self.procs)]


@functools.lru_cache(maxsize=256)
def _plan(table: Table, keys: tuple[str, ...], dialect) -> _Plan:
    return _Plan(table, keys, dialect)


def _columns(table: Table, keys) -> list:
    """The given columns, then those the rows leave out that have a
    Python-side default (an INSERT would fill them in)."""
    given = [table.c[k] for k in keys]
    return given + [c for c in table.c if c.key not in keys and python_default(c) is not None]


def copy_type(col, dialect) -> str:
    """The column's type as psycopg names it: ``varchar``, ``json``..."""
    return col.type.compile(dialect=dialect).split("(")[0].lower()


def python_default(col):
    """A function giving the value an INSERT would give ``col`` when it is
    left out (its Python-side default); None when it has none (or the
    server gives it: a sequence)."""
    d = col.default
    if d is None or d.is_sequence:
        return None
    if d.is_clause_element:  # an SQL expression: not used by these tables
        raise ValueError(f"{col}: an SQL default cannot be copied")
    if d.is_callable:
        return lambda: d.arg(None)
    return lambda: d.arg
