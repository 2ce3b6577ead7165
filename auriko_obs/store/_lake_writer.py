"""Writing span rows into a lake: zstd Parquet files, one folder per UTC date, published whole.

``LakeWriter.write(table)`` takes an Arrow table of span rows (``RAW_SCHEMA``, as the pipeline and
``encode_spans`` build them, typed when encoded; the legacy layout the OTLP receiver builds is typed by
DuckDB with the store's own SQL) and turns it into the lake's rows: the ``spans`` columns of ``fields.py``, with
``attributes`` merged back from the typed columns and ``extra_attributes`` (``attributes_sql``), so that a value
out of its column's type is NULL there and stays as sent in ``attributes``. Rows that even that refuses
(``extra_attributes`` that is not JSON) are isolated (``write_isolating``) and set aside under
``_auriko_obs/quarantine/`` in the lake; the rest
of the batch goes on.

Rows wait in memory, per date, until ``flush_bytes`` of them wait or the oldest has waited
``flush_interval_s``; then each date's rows become one file (``part-<time>-<host>-<pid>-<random>-<n>.parquet``,
a name no other writer uses, so that any number of writers on any number of hosts share a lake without
talking to each other). A file that cannot be published (S3 unreachable, a full disk) is held in memory, up
to ``max_held_bytes`` (``$AURIKO_OBS_MAX_HELD_MB``, as the store's writer), and published again from a thread
with backoff; what does not fit is lost and counted. ``flush()`` publishes everything now and returns False
when anything written since the previous flush is not in the lake; ``stats()`` counts every row.

Configuration: ``$AURIKO_OBS_LAKE_FLUSH_MB`` (64) and ``$AURIKO_OBS_LAKE_FLUSH_S`` (60).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

# pyarrow.fs is loaded before our exit handler is registered, so that the handler runs before pyarrow's S3 shutdown.
import pyarrow.fs

from .. import fields
from .._internal_errors import INTERNAL_ERRORS, positive_setting
from ._isolation import HeldBatches, write_isolating
from ._lake_location import FileNames, LakeLocation
from ._layout import attributes_sql
from ._rows import conform, encode_spans, first_of_each_span
from ._writer import WriteOutcome, max_held_bytes_from_env

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("auriko_obs")

FLUSH_MB_ENV = "AURIKO_OBS_LAKE_FLUSH_MB"
FLUSH_S_ENV = "AURIKO_OBS_LAKE_FLUSH_S"
DEFAULT_FLUSH_MB = 64.0
DEFAULT_FLUSH_S = 60.0
QUARANTINE_FOLDER = "_auriko_obs/quarantine"
# zstd level 1: faster than 3 and, on our rows, no larger (benchmarks/lake.py).
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 1, "row_group_size": 1 << 20}
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 30.0
_BATCH = "_auriko_obs_lake_batch"

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR[]": pa.list_(pa.string()),
}


# What DuckDB computes for a lake row: `attributes` with every attribute (span rows keep the ones no column holds
# verbatim in `extra_attributes`: store/_rows.py), and the times in microseconds.
_FROM_DUCKDB_NAMES = {"attributes", "start_time", "end_time"}
_FROM_DUCKDB = [
    'CAST("start_time" AS TIMESTAMPTZ) AS "start_time"',
    'CAST("end_time" AS TIMESTAMPTZ) AS "end_time"',
    f"({attributes_sql('b')})::VARCHAR AS attributes",
]


def lake_schema() -> pa.Schema:
    """Returns the Arrow schema of a lake file: the ``spans`` columns of ``fields.py``, JSON as text, timestamps
    in UTC microseconds (what DuckDB writes for the store's types, and Spark reads)."""
    return pa.schema([(name, _ARROW_TYPES[sql_type]) for name, sql_type in fields.spans_columns()])


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def dates_of(table: pa.Table) -> pa.Array:
    """Returns each row's partition: the UTC date of its start time (1970-01-01 for a row without one)."""
    start = table["start_time"].cast(pa.timestamp("us", tz="UTC"))
    return pc.fill_null(pc.cast(start, pa.date32()), pa.scalar(0, pa.date32()))


def split_by_date(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """Returns the rows of each date (``YYYY-MM-DD``), in the order the dates first appear."""
    dates = dates_of(table)
    unique = pc.unique(dates)
    if len(unique) == 1:
        return [(unique[0].as_py().isoformat(), table)]
    return [(day.as_py().isoformat(), table.filter(pc.equal(dates, day))) for day in unique]


@dataclass
class _Part:
    """Rows of one date waiting to be published, and the callbacks of the writes they came from."""

    table: pa.Table
    receipts: list[_Receipt] = field(default_factory=list)


class _Receipt:
    """Calls ``on_published`` once every part of one write is in the lake."""

    __slots__ = ("on_published", "parts")

    def __init__(self, parts: int, on_published: Callable[[], None]) -> None:
        self.parts = parts
        self.on_published = on_published

    def part_done(self) -> None:
        self.parts -= 1
        if self.parts == 0:
            try:
                self.on_published()
            except Exception as exc:
                INTERNAL_ERRORS.record("lake.on_published", exc)


class LakeWriter:
    """Writes Arrow tables of raw span rows (``RAW_SCHEMA``) into a lake (module docstring); safe to use from
    several threads, and from any number of processes and hosts at once. ``write`` never raises."""

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        flush_bytes: int | None = None,
        flush_interval_s: float | None = None,
        max_held_bytes: int | None = None,
    ) -> None:
        self.location = LakeLocation(location)
        self.root = self.location.root
        self.flush_bytes = (
            int(positive_setting(FLUSH_MB_ENV, DEFAULT_FLUSH_MB, "lake") * (1 << 20))
            if flush_bytes is None
            else flush_bytes
        )
        self.flush_interval_s = (
            positive_setting(FLUSH_S_ENV, DEFAULT_FLUSH_S, "lake") if flush_interval_s is None else flush_interval_s
        )
        self.held = HeldBatches(max_held_bytes_from_env() if max_held_bytes is None else max_held_bytes)
        self._held_receipts: deque[list[_Receipt]] = deque()  # beside each held table, in the same order
        self._names = FileNames("part")
        self._quarantine_names = FileNames("rejected")
        self._schema = lake_schema()
        # counters, in rows of spans unless named otherwise
        self.published_spans = 0
        self.published_files = 0
        self.published_bytes = 0
        self.refused_spans = 0  # set aside under _auriko_obs/quarantine/
        self.lost_spans = 0
        self.failed_publishes = 0
        self._failed_since_flush = 0
        # rows waiting for their file
        self._parts: dict[str, _Part] = {}
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._oldest: float | None = None
        self._lock = threading.Lock()  # the buffer and the counters
        self._publish_lock = threading.Lock()  # one publisher at a time: held files go before newer ones
        self._convert_lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._retry_delay = _RETRY_FIRST_S
        self._closed = False
        _WRITERS.add(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"

    def stats(self) -> dict[str, Any]:
        """Returns the writer's counters (rows of spans, files, bytes), including what waits in memory now."""
        with self._lock:
            return {
                "lake": self.root,
                "published_spans": self.published_spans,
                "published_files": self.published_files,
                "published_bytes": self.published_bytes,
                "buffered_spans": self._buffered_rows,
                "buffered_bytes": self._buffered_bytes,
                "held_spans": self.held.rows,
                "held_bytes": self.held.nbytes,
                "max_held_bytes": self.held.max_bytes,
                "refused_spans": self.refused_spans,
                "lost_spans": self.lost_spans,
                "failed_publishes": self.failed_publishes,
            }

    # ------------------------------------------------------------------ writing

    def write(self, table: pa.Table, *, on_published: Callable[[], None] | None = None) -> WriteOutcome:
        """Returns what became of the table's rows: buffered for the next file (``stored``: they are on their way
        to the lake unless ``flush``/``stats`` say otherwise), refused (set aside in quarantine) or lost.

        ``on_published`` is called, from whichever thread publishes, once every row of the table is in a
        published file or in quarantine; never when any row is lost."""
        outcome = WriteOutcome(rows=table.num_rows)
        if not table.num_rows:
            if on_published is not None:
                on_published()
            return outcome
        try:
            typed, refused = self._typed(table)
        except Exception as exc:  # not the rows' fault: DuckDB itself failed
            INTERNAL_ERRORS.record("lake.convert", exc)
            self._count_lost(table.num_rows)
            outcome.lost = table.num_rows
            return outcome
        for rows, error in refused:
            if self._set_aside(rows, error):
                outcome.refused += rows.num_rows
            else:
                outcome.lost += rows.num_rows
        outcome.stored = typed.num_rows
        full = self._buffer(typed, on_published)
        if full:
            self.flush_buffer()
        return outcome

    def flush(self) -> bool:
        """Returns True once every row written so far is in the lake, and none written since the previous flush
        was lost or refused; False when some could not be published (they are held in memory, or lost)."""
        self.flush_buffer()
        with self._publish_lock:
            self._publish_held()
        with self._lock:
            failed, self._failed_since_flush = self._failed_since_flush, 0
            return not failed and not len(self.held) and not self._buffered_rows

    def flush_buffer(self) -> None:
        """Publishes the rows waiting in memory, one file per date (those that cannot be published are held)."""
        with self._publish_lock:
            if len(self.held):
                self._publish_held()
            with self._lock:
                parts, self._parts = self._parts, {}
                self._buffered_rows = self._buffered_bytes = 0
                self._oldest = None
            for date, part in parts.items():
                self._publish_part(date, part)

    def close(self) -> None:
        """Publishes what waits, stops the background thread; rows still held in memory are counted lost."""
        self.flush()
        self._closed = True
        self._wake.set()
        with self._publish_lock, self._lock:
            self._drop_held("the lake writer was closed")
        with self._convert_lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    # ------------------------------------------------------------------ conversion

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            import duckdb

            con = duckdb.connect()
            con.execute("SET TimeZone = 'UTC'")
            self._con = con
        return self._con

    def _typed(self, table: pa.Table) -> tuple[pa.Table, list[tuple[pa.Table, BaseException]]]:
        """Returns (the lake rows of every raw row DuckDB takes, each refused raw row with its error)."""
        from ._ingest import is_row_error

        table = conform(table)  # span rows (RAW_SCHEMA); a legacy table is typed by DuckDB first
        converted: list[pa.Table] = []
        with self._convert_lock:
            con = self._connection()
            # DuckDB merges the attributes back into one JSON object (the store's own SQL), and converts the
            # times (microseconds, rounded as the store's INSERT rounds nanoseconds); the other columns, typed
            # when the rows were encoded, are taken from the rows as they are, without a copy through DuckDB.
            sql = f"SELECT {', '.join(_FROM_DUCKDB)} FROM {_BATCH} AS b"

            def convert(rows: pa.Table) -> None:
                con.register(_BATCH, rows)
                try:
                    relation = con.sql(sql)
                    derived = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
                finally:
                    con.unregister(_BATCH)
                columns = [derived[name] if name in _FROM_DUCKDB_NAMES else rows[name] for name in self._schema.names]
                converted.append(pa.Table.from_arrays(columns, names=self._schema.names))

            refused = write_isolating(table, convert, is_row_error)
        if not converted:
            return self._schema.empty_table(), refused
        typed = pa.concat_tables(converted) if len(converted) > 1 else converted[0]
        return typed.cast(self._schema), refused

    def _set_aside(self, rows: pa.Table, exc: BaseException) -> bool:
        """Returns True once refused raw rows are in the lake's quarantine; False (and counted lost) if not."""
        reason = f"{type(exc).__name__}: {_first_line(exc)}"
        try:
            self.location.write_table(QUARANTINE_FOLDER, self._quarantine_names.next(), rows, compression="zstd")
        except Exception as write_error:
            log.warning("auriko_obs: %d rows refused by the lake (%s) are lost: %s", rows.num_rows, reason, write_error)
            self._count_lost(rows.num_rows)
            return False
        with self._lock:
            self.refused_spans += rows.num_rows
            self._failed_since_flush += rows.num_rows
        log.warning(
            "auriko_obs: %d rows refused by the lake (%s) are kept in %s",
            rows.num_rows,
            reason,
            self.location.uri(self.location.path(QUARANTINE_FOLDER)),
        )
        return True

    # ------------------------------------------------------------------ buffering

    def _buffer(self, typed: pa.Table, on_published: Callable[[], None] | None) -> bool:
        """Returns True when the buffer is full (the caller publishes it) after adding the rows to it."""
        by_date = split_by_date(typed) if typed.num_rows else []
        receipt = _Receipt(len(by_date), on_published) if on_published is not None and by_date else None
        with self._lock:
            for date, rows in by_date:
                part = self._parts.get(date)
                if part is None:
                    self._parts[date] = part = _Part(rows)
                else:
                    part.table = pa.concat_tables([part.table, rows])
                if receipt is not None:
                    part.receipts.append(receipt)
            self._buffered_rows += typed.num_rows
            self._buffered_bytes += typed.nbytes
            if self._oldest is None and typed.num_rows:
                self._oldest = time.monotonic()
            full = self._buffered_bytes >= self.flush_bytes
        if on_published is not None and not by_date:
            on_published()  # every row was refused and set aside
        self._ensure_thread()
        return full

    # ------------------------------------------------------------------ publishing (with _publish_lock held)

    def _publish_part(self, date: str, part: _Part) -> None:
        if self._publish(date, part.table):
            for receipt in part.receipts:
                receipt.part_done()
        else:
            self._hold(part)

    def _publish(self, date: str, table: pa.Table) -> bool:
        """Returns True once the rows are in a new file of the date's partition."""
        table = first_of_each_span(table)  # not sorted: that cost as much as writing it (compaction sorts)
        try:
            size = self.location.write_table(f"date={date}", self._names.next(), table, **PARQUET_OPTIONS)
        except Exception as exc:
            with self._lock:
                self.failed_publishes += 1
            INTERNAL_ERRORS.warn(
                "lake.publish",
                f"cannot write to the lake {self.root} ({_first_line(exc)}); files wait in memory (up to "
                f"{self.held.max_bytes >> 20} MiB, AURIKO_OBS_MAX_HELD_MB) and are written again. "
                "Further failures are counted in stats(), not logged.",
            )
            return False
        with self._lock:
            self.published_spans += table.num_rows
            self.published_files += 1
            self.published_bytes += size
            self._retry_delay = _RETRY_FIRST_S
        return True

    def _publish_held(self) -> bool:
        """Returns True once no file waits in memory, after publishing the held ones, oldest first."""
        while len(self.held):
            table = self.held.take(1)[0]
            date = split_by_date(table)[0][0]  # a held table is one date's rows
            if not self._publish(date, table):
                return False
            with self._lock:
                self.held.drop_oldest(1)
                receipts = self._held_receipts.popleft()
            for receipt in receipts:
                receipt.part_done()
        return True

    def _hold(self, part: _Part) -> None:
        with self._lock:
            if not self._closed and self.held.add(part.table):
                self._held_receipts.append(part.receipts)
                return
            self.lost_spans += part.table.num_rows
            self._failed_since_flush += part.table.num_rows
        INTERNAL_ERRORS.warn(
            "lake.lost",
            f"spans lost: the lake {self.root} cannot be written, and more than {self.held.max_bytes >> 20} MiB of "
            "files wait in memory (AURIKO_OBS_MAX_HELD_MB). Every lost span is counted in stats().",
        )

    def _drop_held(self, why: str) -> None:
        """Forgets the held files, counting their rows lost (with ``_lock`` held)."""
        lost = self.held.clear()
        self._held_receipts.clear()
        if lost:
            self.lost_spans += lost
            self._failed_since_flush += lost
            log.warning("auriko_obs: %d spans waiting in memory for the lake %s are lost: %s", lost, self.root, why)

    def _count_lost(self, rows: int) -> None:
        with self._lock:
            self.lost_spans += rows
            self._failed_since_flush += rows

    # ------------------------------------------------------------------ background thread

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="auriko-obs-lake-flush", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        """Publishes the buffer when its oldest rows have waited ``flush_interval_s``, and held files with backoff."""
        while not self._closed:
            with self._lock:
                due = None if self._oldest is None else self._oldest + self.flush_interval_s
                retry = self._retry_delay if len(self.held) else None
            waits = [w for w in (None if due is None else due - time.monotonic(), retry) if w is not None]
            self._wake.wait(max(0.0, min(waits)) if waits else self.flush_interval_s)
            self._wake.clear()
            if self._closed:
                return
            try:
                with self._lock:
                    due_now = self._oldest is not None and time.monotonic() >= self._oldest + self.flush_interval_s
                if due_now:
                    self.flush_buffer()
                elif len(self.held):
                    with self._publish_lock:
                        if not self._publish_held():
                            with self._lock:
                                self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX_S)
            except Exception as exc:  # the thread must outlive any bug of ours
                INTERNAL_ERRORS.record("lake.flush", exc)


class LakeSpanExporter(LakeWriter):
    """An OpenTelemetry ``SpanExporter`` into a lake (the ``LakeWriter`` of ``instrument(lake=…)``).

    ``export`` returns SUCCESS once the spans are buffered for the next file; ``force_flush`` publishes them and
    says whether everything exported so far is in the lake. A span that cannot be encoded as a row is counted
    lost (``store.rows`` in ``INTERNAL_ERRORS``); the rest of its batch is written.
    """

    def export_counting_failures(self, spans: Sequence[Any]) -> int:
        """Returns how many of the spans are not on their way to the lake (lost or refused)."""
        table, failures = encode_spans(spans)
        for _, exc in failures:
            INTERNAL_ERRORS.record("store.rows", exc)
        if failures:
            self._count_lost(len(failures))
        outcome = self.write(table)
        return outcome.refused + outcome.lost + len(failures)

    def export_rows(self, table: pa.Table, unencodable: int = 0) -> int:
        """Returns how many spans are not on their way to the lake (refused or lost) after writing the span rows
        (``RAW_SCHEMA``); ``unencodable``: spans of the batch that could not be encoded as rows, counted lost."""
        if unencodable:
            self._count_lost(unencodable)
        outcome = self.write(table)
        return outcome.refused + outcome.lost + unencodable

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        if not spans:
            return SpanExportResult.SUCCESS
        return SpanExportResult.FAILURE if self.export_counting_failures(spans) else SpanExportResult.SUCCESS

    def export_table(self, table: pa.Table, *, on_published: Callable[[], None] | None = None) -> Any:
        """Returns SUCCESS once a table of raw span rows is buffered for the lake; FAILURE when rows were refused
        or lost. ``on_published`` as in ``LakeWriter.write``."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        outcome = self.write(table, on_published=on_published)
        return SpanExportResult.FAILURE if outcome.refused or outcome.lost else SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.flush()

    def shutdown(self) -> None:
        self.close()


_WRITERS: weakref.WeakSet[LakeWriter] = weakref.WeakSet()
# DuckDB connections a forked child inherited from its parent's writers: kept, never used nor closed.
_INHERITED_CONNECTIONS: list[Any] = []


def _flush_at_exit() -> None:
    for writer in list(_WRITERS):
        try:
            if not writer._closed:
                writer.flush()
                with writer._lock:
                    writer._drop_held("the process exited while the lake could not be written")
        except Exception:
            pass


def _after_fork_in_child() -> None:
    # The rows in memory belong to the parent, which publishes them; the locks may have been held by threads
    # that do not exist in the child, and DuckDB connections do not survive fork.
    for writer in list(_WRITERS):
        writer._lock = threading.Lock()
        writer._publish_lock = threading.Lock()
        writer._convert_lock = threading.Lock()
        if writer._con is not None:  # never closed here: closing DuckDB in a forked child can crash it
            _INHERITED_CONNECTIONS.append(writer._con)
            writer._con = None
        writer._thread = None
        writer._parts = {}
        writer._buffered_rows = writer._buffered_bytes = 0
        writer._oldest = None
        writer.held.clear()
        writer._held_receipts.clear()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
