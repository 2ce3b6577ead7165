"""An OpenTelemetry span exporter that appends span batches to the DuckDB store."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._internal_errors import INTERNAL_ERRORS
from ._files import StoreLockedError, connect, default_path, spool_dir
from ._rows import spans_to_table, typed_columns_sql

# A span delivered twice (an OTLP exporter retrying after a timeout, a spool file ingested again after a
# crash between COMMIT and its deletion) is stored once: rows whose (trace_id, span_id) is already stored
# are left out, and so are repeats within the batch. The lookup only reads stored rows that started
# within the batch's own start times, a constant range that DuckDB's zone maps use to skip the row groups
# outside it: spans arriving in time order cost a look at the newest row groups only, whatever the store's
# size (a batch mixing spans far apart in time reads every row group between them).
_NEW_ROWS = """WITH _auriko_obs_new AS (
 SELECT * FROM _auriko_obs_batch AS b
 WHERE NOT EXISTS (SELECT 1 FROM spans AS s WHERE s.start_time BETWEEN {low} AND {high}
                   AND s.trace_id = b.trace_id AND s.span_id = b.span_id))
"""
_SELECT_NEW = typed_columns_sql("_auriko_obs_new")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _timestamp_literal(ns: int | None, widen_us: int) -> str:
    # DuckDB keeps microseconds; one more on each side covers how it rounds the batch's nanoseconds.
    if ns is None:
        return "NULL"
    return f"TIMESTAMPTZ '{(_EPOCH + timedelta(microseconds=ns // 1000 + widen_us)).isoformat()}'"


def _first_of_each_span(table: pa.Table) -> pa.Table:
    """Returns the rows of the table with each (trace_id, span_id) once, the first of its repeats."""
    # In Arrow: a window function in the INSERT cost DuckDB several times as much (it moves whole rows).
    ids = table.select(["trace_id", "span_id"]).append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    first = ids.group_by(["trace_id", "span_id"], use_threads=False).aggregate([("_row", "min")])
    if first.num_rows == table.num_rows:
        return table
    rows = first["_row_min"]  # the row number of each span's first occurrence, in no particular order
    return table.take(rows.take(pc.sort_indices(rows)))


def insert_table(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    """Inserts the spans of an Arrow table of raw span rows (``RAW_SCHEMA``) that the store does not hold
    yet, each once; DuckDB fills the typed columns."""
    table = _first_of_each_span(table)
    starts = pc.min_max(table["start_time"].cast(pa.int64()))
    new_rows = _NEW_ROWS.format(
        low=_timestamp_literal(starts["min"].as_py(), -1), high=_timestamp_literal(starts["max"].as_py(), 1)
    )
    con.register("_auriko_obs_batch", table)
    try:
        con.execute(f"INSERT INTO spans BY NAME {new_rows}{_SELECT_NEW}")
    finally:
        con.unregister("_auriko_obs_batch")


def ingest_spool(con: duckdb.DuckDBPyConnection, path: str | os.PathLike[str]) -> int:
    """Returns how many spooled rows were moved into the store (spool files are then deleted)."""
    folder = spool_dir(path)
    if not folder.is_dir():
        return 0
    moved = 0
    for file in sorted(folder.glob("*.parquet")):
        table = pq.read_table(file)
        con.execute("BEGIN TRANSACTION")
        insert_table(con, table)
        con.execute("COMMIT")
        file.unlink()
        moved += table.num_rows
    return moved


class DuckDBSpanExporter(SpanExporter):
    """Exports spans to a DuckDB store file; safe to use from several processes at once.

    Each ``export`` opens the file, ingests any spooled batches, appends its own, and closes. If the
    file stays locked for ``lock_wait_s`` the batch is spooled instead, and counted in ``spooled_spans``.
    If the file cannot be written at all (it is not a DuckDB file, the disk is full…) the batch is
    spooled too, but the export fails: the spans are not in the store. Every such failure is counted in
    ``INTERNAL_ERRORS`` and logged once, not once per batch.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_wait_s: float = 2.0) -> None:
        self.path = os.path.abspath(os.fspath(path or default_path()))
        self.lock_wait_s = lock_wait_s
        self.exported_spans = 0
        self.spooled_spans = 0
        self.failed_spans = 0
        self._spool_seq = 0
        self._lock = threading.Lock()
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            table = spans_to_table(spans)
        except Exception as exc:
            INTERNAL_ERRORS.record("store.rows", exc)
            self.failed_spans += len(spans)
            return SpanExportResult.FAILURE
        return self.export_table(table)

    def export_table(self, table: pa.Table) -> SpanExportResult:
        """Returns SUCCESS once an Arrow table of ``spans`` rows is in the store, or spooled while the file is
        locked; FAILURE when the file cannot be written (the rows then wait in the spool, if they can)."""
        with self._lock:
            try:
                with connect(self.path, read_only=False, wait_s=self.lock_wait_s) as con:
                    ingest_spool(con, self.path)
                    con.execute("BEGIN TRANSACTION")
                    insert_table(con, table)
                    con.execute("COMMIT")
                self.exported_spans += table.num_rows
                return SpanExportResult.SUCCESS
            except StoreLockedError:
                return self._spool(table)
            except (duckdb.Error, OSError, RuntimeError) as exc:  # the file, not our code: a plain warning
                INTERNAL_ERRORS.warn(
                    "store.write",
                    f"cannot write to the store {self.path} "
                    f"({str(exc).splitlines()[0]}); spans wait in {spool_dir(self.path)}. "
                    "Further failures are counted in stats(), not logged.",
                )
            except Exception as exc:
                INTERNAL_ERRORS.record("store.write", exc)
            self._spool(table)
            return SpanExportResult.FAILURE

    def _spool(self, table: pa.Table) -> SpanExportResult:
        folder = spool_dir(self.path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._spool_seq += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._spool_seq:06d}"
            tmp = folder / f"{name}.tmp"
            pq.write_table(table, tmp)
            os.replace(tmp, folder / f"{name}.parquet")  # atomic: ingesters never see half a file
            self.spooled_spans += table.num_rows
            return SpanExportResult.SUCCESS
        except Exception as exc:
            INTERNAL_ERRORS.record("store.spool", exc)
            self.failed_spans += table.num_rows
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
