"""Inserting Arrow tables of span rows (``RAW_SCHEMA``) into the store's ``span_rows``, and folding its spool in.

A span delivered twice (an OTLP exporter retrying after a timeout, a spool file ingested again after a
crash between COMMIT and its deletion) is stored once: rows whose (trace_id, span_id) is already stored
are left out, and so are repeats within the batch. The lookup only reads stored rows that started within
the batch's own start times, a constant range that DuckDB's zone maps use to skip the row groups outside
it: spans arriving in time order cost a look at the newest row groups only, whatever the store's size (a
batch mixing spans far apart in time reads every row group between them). Rows that cannot be stored yet
skip the lookup (``fresh``: the instrumentation's own spans on their first write), since it costs DuckDB a
join with those row groups for every batch.

The rows go in as they are: their typed columns were filled when they were encoded (``_rows``), so
DuckDB only appends them. A row that DuckDB refuses (malformed JSON in ``extra_attributes``, a value it
cannot convert) is isolated (``write_isolating``) and set aside in the spool's quarantine; the rest of its
batch is stored.
"""

from __future__ import annotations

import os
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, NamedTuple

import duckdb

from ._files import spool_dir
from ._isolation import write_isolating
from ._rows import conform, first_of_each_span, start_time_range
from ._spool import Spool

if TYPE_CHECKING:
    import pyarrow as pa

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_BATCH = "_auriko_obs_batch"
STORED_TABLE = "span_rows"  # the table behind the `spans` view (see _migrations.m007)
# The errors that belong to a row rather than to the file or the machine.
_ROW_ERRORS = (duckdb.DataError, duckdb.InvalidInputException, duckdb.ConstraintException)


def is_row_error(exc: BaseException) -> bool:
    """Returns whether DuckDB refused an insert because of the rows themselves (not the file, disk or lock)."""
    return isinstance(exc, _ROW_ERRORS) and not isinstance(exc, duckdb.IOException)


def _timestamp_literal(ns: int | None, widen_us: int) -> str:
    # DuckDB keeps microseconds; one more on each side covers how it rounds the batch's nanoseconds.
    if ns is None:
        return "NULL"
    return f"TIMESTAMPTZ '{(_EPOCH + timedelta(microseconds=ns // 1000 + widen_us)).isoformat()}'"


def not_stored_sql(stored: str, table: pa.Table) -> str:
    """Returns the SQL condition on a batch's rows (aliased ``b``) that keeps those whose span is not in
    ``stored`` yet, looking only at stored rows within the start times of ``table`` (the batch's rows)."""
    low, high = start_time_range(table)
    return (
        f"NOT EXISTS (SELECT 1 FROM {stored} AS s WHERE s.start_time BETWEEN {_timestamp_literal(low, -1)} "
        f"AND {_timestamp_literal(high, 1)} AND s.trace_id = b.trace_id AND s.span_id = b.span_id)"
    )


def _insert_sql(table: pa.Table) -> str:
    """Returns the INSERT of the registered batch's rows (``table``, deduplicated) that are not stored yet."""
    return f"INSERT INTO {STORED_TABLE} BY NAME SELECT * FROM {_BATCH} AS b WHERE {not_stored_sql(STORED_TABLE, table)}"


# Rows of spans made just now, never handed to any sink before: nothing stored can be one of them.
_FRESH_INSERT_SQL = f"INSERT INTO {STORED_TABLE} BY NAME SELECT * FROM {_BATCH}"


def insert_table(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    """Inserts the span rows (``RAW_SCHEMA``) of the table that the store does not hold yet, each once. Runs
    in the caller's transaction, if any."""
    table = first_of_each_span(table)
    con.register(_BATCH, table)
    try:
        con.execute(_insert_sql(table))
    finally:
        con.unregister(_BATCH)


def _insert_in_transaction(con: duckdb.DuckDBPyConnection, table: pa.Table, fresh: bool = False) -> None:
    if not fresh:
        table = first_of_each_span(table)
    con.register(_BATCH, table)  # outside the transaction: an aborted one refuses even to unregister
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(_FRESH_INSERT_SQL if fresh else _insert_sql(table))
            con.execute("COMMIT")
        except BaseException:
            with suppress(duckdb.Error):  # a failed COMMIT has ended the transaction already
                con.execute("ROLLBACK")
            raise
    finally:
        con.unregister(_BATCH)


class Ingested(NamedTuple):
    """Rows of an insert: stored (or there already), refused and set aside in quarantine, refused and lost
    (quarantine could not be written)."""

    stored: int = 0
    set_aside: int = 0
    lost: int = 0

    def __add__(self, other: object) -> Ingested:
        if not isinstance(other, Ingested):
            return NotImplemented
        return Ingested(self.stored + other.stored, self.set_aside + other.set_aside, self.lost + other.lost)


def store_rows(con: duckdb.DuckDBPyConnection, table: pa.Table, spool: Spool, *, fresh: bool = False) -> Ingested:
    """Returns what became of the rows after inserting the table, bad rows apart.

    Rows DuckDB refuses are set aside in the spool's quarantine. Errors that are not about rows (a full
    disk, a damaged file) are raised, and may have left some of the rows stored: storing them again later
    adds no duplicates, unless ``fresh`` says that no row of the table can be stored yet (spans made just now,
    on their first write): then each row is inserted as it is, without looking for it among the stored ones
    (which costs a join with the stored rows of the same minutes). Its halves in ``write_isolating`` are
    disjoint, so that stays true while bad rows are isolated."""
    refused = write_isolating(table, lambda part: _insert_in_transaction(con, part, fresh), is_row_error)
    set_aside = lost = 0
    for rows, exc in refused:
        if spool.set_aside(rows, f"{type(exc).__name__}: {str(exc).splitlines()[0]}") is None:
            lost += rows.num_rows
        else:
            set_aside += rows.num_rows
    return Ingested(table.num_rows - set_aside - lost, set_aside, lost)


def fold_spool(con: duckdb.DuckDBPyConnection, spool: Spool) -> Ingested:
    """Returns what became of the spooled rows after ingesting every spool file and deleting it.

    Unreadable files go to quarantine (``Spool.read``). Raises what ``store_rows`` raises, leaving the
    files not yet ingested in place."""
    total = Ingested()
    for file in spool.pending():
        table = spool.read(file, conform)
        if table is None:
            continue
        total += store_rows(con, table, spool)
        spool.remove(file)
    spool.remove_stale_temporaries()
    return total


def ingest_spool(con: duckdb.DuckDBPyConnection, path: str | os.PathLike[str]) -> int:
    """Returns how many spooled rows of the store at ``path`` were moved into it (``fold_spool``)."""
    return fold_spool(con, Spool(spool_dir(path))).stored
