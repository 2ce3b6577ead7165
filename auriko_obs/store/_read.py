"""Read-only connections to a store, in which ``spans`` and ``llm_calls`` include the spooled rows.

Readers never write: they open the file read-only, so they work on a full disk, on a read-only mount,
and beside writers. The batches that wait in the spool (``<store>.spool/``, written while the file was
locked or could not be written) are read from their Parquet files and shown through temporary views
named ``spans`` and ``llm_calls``, which stand before the stored ones; the next writer moves them into
the file. A spooled span that is stored already (a writer that crashed between COMMIT and deleting the
file) shows once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from .. import fields
from ._files import configure, connect, spool_dir
from ._migrations import ensure_schema
from ._spool import Spool

_SPOOLED = "_auriko_obs_spooled"


@contextmanager
def read_connection(path: str | os.PathLike[str], *, wait_s: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yields a read-only connection to the store whose ``spans`` and ``llm_calls`` also hold the spooled rows.

    Waits up to ``wait_s`` seconds for a writer of another process (then raises StoreLockedError). A store
    whose file does not exist raises FileNotFoundError, unless its spool holds rows: those are then read
    alone. Unreadable spool files are moved to quarantine and skipped.
    """
    path = os.path.abspath(os.fspath(path))
    spool = Spool(spool_dir(path))
    if not os.path.exists(path) and spool.pending():
        con = duckdb.connect(":memory:")
        try:
            configure(con)
            ensure_schema(con)
            _show_spooled(con, spool)
            yield con
        finally:
            con.close()
        return
    with connect(path, read_only=True, wait_s=wait_s) as con:
        # Listed under the store's lock: no writer of ours can be moving these files into the store now.
        if spool.pending():
            _show_spooled(con, spool)
        yield con


def _show_spooled(con: duckdb.DuckDBPyConnection, spool: Spool) -> None:
    import pyarrow as pa

    from ._ingest import not_stored_sql
    from ._rows import RAW_SCHEMA, first_of_each_span, typed_columns_sql

    tables = [table for file in spool.pending() if (table := spool.read(file, RAW_SCHEMA)) is not None]
    if not tables:
        return
    table = first_of_each_span(pa.concat_tables(tables))
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    stored = '"{}".main.spans'.format(database.replace('"', '""'))
    # Each spooled column in the stored column's type (Arrow's nanosecond timestamps would widen the union's).
    columns = ", ".join(f'CAST("{name}" AS {sql_type}) AS "{name}"' for name, sql_type in fields.spans_columns())
    con.register(_SPOOLED, table)
    con.execute(
        f"CREATE TEMP VIEW spans AS SELECT * FROM {stored} UNION ALL BY NAME "
        f"SELECT {columns} FROM ({typed_columns_sql(_SPOOLED)}) AS b WHERE {not_stored_sql(stored, table)}"
    )
    con.execute(
        f"CREATE TEMP VIEW llm_calls AS SELECT {fields.llm_calls_select_list()} FROM spans WHERE operation IS NOT NULL"
    )
