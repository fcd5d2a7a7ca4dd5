"""Many rows into one table, in the caller's transaction.

SQLite: one executemany. PostgreSQL: COPY in its binary format, whose rows
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

from sqlalchemy import Table, insert
from sqlalchemy.exc import DBAPIError


def insert_rows(conn, table: Table, rows: list[dict]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` through the
    SQLAlchemy connection ``conn``."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    _copy(conn, table, rows)


def _columns(table: Table, keys) -> list:
    """The given columns, then those the rows leave out that have a
    Python-side default (an INSERT would fill them in)."""
    given = [table.c[k] for k in keys]
    return given + [c for c in table.c if c.key not in keys and python_default(c) is not None]


def _copy(conn, table: Table, rows: list[dict]) -> None:
    dialect = conn.dialect
    keys = list(rows[0])
    cols = _columns(table, keys)
    procs = [c.type._cached_bind_processor(dialect) for c in cols]
    defaults = [python_default(c) for c in cols[len(keys):]]
    quote = dialect.identifier_preparer.quote
    sql = (f"COPY {dialect.identifier_preparer.format_table(table)} ({', '.join(quote(c.name) for c in cols)}) "
           "FROM STDIN (FORMAT BINARY)")
    types = [copy_type(c, dialect) for c in cols]
    cursor = conn.connection.dbapi_connection.cursor()
    # Seen by the engine's listeners as one statement (counts, logging).
    conn.dispatch.before_cursor_execute(conn, cursor, sql, (), None, False)
    try:
        with cursor.copy(sql) as cp:
            cp.set_types(types)
            for r in rows:
                values = [r[k] for k in keys] + [d() for d in defaults]
                cp.write_row([v if p is None else p(v) for v, p in zip(values, procs)])
    except dialect.loaded_dbapi.Error as e:  # as an INSERT's error would be (IntegrityError...)
        raise DBAPIError.instance(sql, None, e, dialect.loaded_dbapi.Error) from e
    finally:
        cursor.close()
    conn.dispatch.after_cursor_execute(conn, cursor, sql, (), None, False)


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
