"""A lake's lifecycle: merging a day's small files (compaction), dropping old days (retention), and moving a
store file into a lake (export).

**Compaction** merges the small files of each date (under ``target_bytes`` each) into a few large ones, sorted
by start time, with each span once. It is safe while writers append and readers query:

- writers only ever add files under new names, and compaction reads only the files it listed;
- a merged file is published whole before anything else happens, so from then on every row is in it *and* in
  the files it replaces: readers, which keep one row per (date, trace_id, span_id), count each once;
- the replaced files are not deleted then: they are recorded in ``_auriko_obs/compaction/replaced-*.json``
  and deleted by a later run once ``grace_s`` has passed (an hour by default). A reader that listed a folder
  before the merged file existed therefore still finds every file it listed, however slowly it lists, as long
  as its query takes less than the grace period; and no listing can miss both a merged file and the files it
  replaces. Files that wait for deletion are not merged again. (A query that opens a listed file after it was
  deleted fails rather than answer wrongly; DuckDB's lake reader runs it again, ``_engines``.)

Each run then records, per date, the files that together hold each span once (``_lake_unique``): readers read
such a date without grouping its rows while its folder holds exactly those files (and files they replaced),
unchanged; any other file, or a file gone or rewritten, and the date is grouped again until the next run.

A compaction that stops half-way (a crash, an S3 outage) leaves merged files beside the files they copy:
duplicates that readers count once and the next run merges away. Two compactions of one lake at once lose
nothing either, but may leave duplicates for the next run: run one (a cron job) per lake.

**Retention** (``prune``) deletes every file of the dates before the cut-off: those days are gone for readers.

**Export** writes a store file's spans (the rows waiting in its spool included) into a lake, one file per date
(more for days over ``rows_per_file``), as the lake writer would have written them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .. import fields
from ._lake_location import DATE_PREFIX, FileNames, LakeFile, LakeLocation
from ._lake_unique import UniqueDay, read_unique, state_of, write_unique

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

COMPACTION_FOLDER = "_auriko_obs/compaction"
DEFAULT_TARGET_BYTES = 128 << 20
DEFAULT_GRACE_S = 3600.0
DEFAULT_ROWS_PER_FILE = 4_000_000
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Returns the seconds of a duration like ``90s``, ``10m``, ``1h``, ``400d`` or ``2w``; raises ValueError."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use a number and s, m, h, d or w, like 1h or 400d)")
    return float(match.group(1)) * _SECONDS[match.group(2)]


@dataclass
class DayCompaction:
    """What compaction did to one date's partition."""

    date: str
    files_in: int = 0
    rows_in: int = 0
    bytes_in: int = 0
    files_out: int = 0
    rows_out: int = 0
    bytes_out: int = 0


@dataclass
class CompactionReport:
    """What one ``compact`` run did: the days merged, replaced files deleted, days dropped by retention."""

    lake: str
    days: list[DayCompaction] = field(default_factory=list)
    deleted_files: int = 0  # replaced by an earlier run, past the grace period
    waiting_files: int = 0  # replaced, waiting for the grace period to pass
    pruned_dates: list[str] = field(default_factory=list)
    pruned_files: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- reading


def _connection(lake: LakeLocation) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")  # the ORDER BY says what order the files need
    if lake.remote:
        from ._lake_location import fsspec_s3_filesystem

        con.register_filesystem(fsspec_s3_filesystem())
    return con


def _columns_sql(present: set[str]) -> str:
    """Returns the SELECT list of a lake file's columns, each in its type (NULL where an older file lacks it)."""
    out = []
    for name, sql_type in fields.spans_columns():
        stored = "VARCHAR" if sql_type == "JSON" else sql_type
        out.append(f'CAST("{name}" AS {stored}) AS "{name}"' if name in present else f'NULL::{stored} AS "{name}"')
    return ", ".join(out)


def _sql_list(lake: LakeLocation, files: list[LakeFile]) -> str:
    return "[" + ", ".join("'" + lake.uri(f.path).replace("'", "''") + "'" for f in files) + "]"


def _batches(con: duckdb.DuckDBPyConnection, sql: str, batch_rows: int = 200_000) -> Iterator[pa.RecordBatch]:
    relation: Any = con.sql(sql)  # DuckDB 2 streams Arrow with to_arrow_reader, 1.x with record_batch
    yield from (
        relation.to_arrow_reader(batch_rows)
        if hasattr(relation, "to_arrow_reader")
        else relation.record_batch(batch_rows)
    )


def _write_stream(
    lake: LakeLocation,
    folder: str,
    names: FileNames,
    batches: Iterator[pa.RecordBatch],
    rows_per_file: int,
    row_group_rows: int | None = None,
) -> list[tuple[str, int, int]]:
    """Returns (path, rows, bytes) of each file published from the batches, at most ``rows_per_file`` rows each.

    Rows are written a row group at a time (``row_group_rows``, the lake writer's 1Mi by default) as the batches
    arrive, so that memory holds one row group, not a file: exporting 100M calls (3.3M a date) held each date
    in memory before and peaked at 16 GB of RSS."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ._lake_writer import PARQUET_OPTIONS, lake_schema

    schema = lake_schema()
    group = row_group_rows or PARQUET_OPTIONS["row_group_size"]
    options = {k: v for k, v in PARQUET_OPTIONS.items() if k != "row_group_size"}
    published: list[tuple[str, int, int]] = []
    source = iter(batches)
    carry: pa.RecordBatch | None = None

    def next_batch() -> pa.RecordBatch | None:
        nonlocal carry
        batch, carry = carry, None
        while batch is None or not batch.num_rows:
            batch = next(source, None)
            if batch is None:
                return None
        return batch

    while (carry := next_batch()) is not None:
        written = 0
        started = False

        def write(out: Any) -> None:
            nonlocal carry, written, started
            if started:  # the batches it took are gone: writing again would publish a file without them
                raise OSError(f"the lake folder {folder} changed while a file was written into it")
            started = True
            pending: list[pa.RecordBatch] = []
            flushed = 0  # rows of this file already in row groups
            with pq.ParquetWriter(out, schema, **options) as parquet:
                while written < rows_per_file and (batch := next_batch()) is not None:
                    take = min(batch.num_rows, rows_per_file - written)
                    if take < batch.num_rows:
                        carry = batch.slice(take)
                    pending.append(batch.slice(0, take))
                    written += take
                    if written - flushed >= group or written >= rows_per_file:
                        parquet.write_table(pa.Table.from_batches(pending).cast(schema), row_group_size=group)
                        pending, flushed = [], written
                if pending:
                    parquet.write_table(pa.Table.from_batches(pending).cast(schema), row_group_size=group)

        name = names.next()
        size = lake.publish(folder, name, write)
        published.append((lake.path(folder, name), written, size))
    return published


# ---------------------------------------------------------------------------------------------- compaction


def _records(lake: LakeLocation) -> list[tuple[LakeFile, dict[str, Any]]]:
    """Returns the compaction records (replaced files waiting for deletion) with their content."""
    out = []
    for record in lake.list_relative(COMPACTION_FOLDER):
        if not (record.name.startswith("replaced-") and record.name.endswith(".json")):
            continue
        raw = lake.read_bytes(f"{COMPACTION_FOLDER}/{record.name}")
        if raw is None:
            continue
        try:
            out.append((record, json.loads(raw)))
        except ValueError:
            continue  # not ours, or cut short: its files stay (duplicates that readers count once)
    return out


def _delete_replaced(lake: LakeLocation, grace_s: float, now_s: float, report: CompactionReport) -> set[str]:
    """Deletes the files that earlier runs replaced more than ``grace_s`` ago; returns the paths that still wait."""
    waiting: set[str] = set()
    for record, content in _records(lake):
        files = [lake.path(relative) for relative in content.get("files", [])]
        if now_s - float(content.get("replaced_at_s", now_s)) < grace_s:
            waiting.update(files)
            continue
        if all(lake.delete(path) for path in files):
            report.deleted_files += len(files)
            lake.delete(record.path)
        else:
            waiting.update(files)
    report.waiting_files = len(waiting)
    return waiting


def _compact_day(
    lake: LakeLocation,
    day: str,
    files: list[LakeFile],
    con: duckdb.DuckDBPyConnection,
    rows_per_file: int,
    kept: list[LakeFile],
) -> tuple[DayCompaction, list[str]]:
    """Returns what merging ``files`` did and the names of the files written: each span once, none of the spans
    already in the ``kept`` files of the date, oldest first."""
    result = DayCompaction(day, files_in=len(files), bytes_in=sum(f.size for f in files))
    sources = _sql_list(lake, files)
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({sources}, union_by_name = true)").fetchall()
    present = {row[0] for row in described}
    result.rows_in = _rows(con, lake, files)
    merged = f"read_parquet({sources}, union_by_name = true)"
    if kept:  # the date's large files stay: their spans must not be written again
        merged = (
            f"(SELECT * FROM {merged} AS m ANTI JOIN (SELECT trace_id, span_id FROM read_parquet("
            f"{_sql_list(lake, kept)}, union_by_name = true)) AS k USING (trace_id, span_id))"
        )
    # Each span once (copies of a span are alike: any one of them), oldest first.
    sql = (
        f"SELECT {_columns_sql(present)} FROM (SELECT DISTINCT ON (trace_id, span_id) * "
        f"FROM {merged}) ORDER BY start_time, trace_id, span_id"
    )
    published = _write_stream(lake, f"{DATE_PREFIX}{day}", FileNames("compacted"), _batches(con, sql), rows_per_file)
    result.files_out = len(published)
    result.rows_out = sum(rows for _, rows, _ in published)
    result.bytes_out = sum(size for _, _, size in published)
    return result, [path.rsplit("/", 1)[-1] for path, _, _ in published]


def _holds_each_span_once(con: duckdb.DuckDBPyConnection, lake: LakeLocation, files: list[LakeFile]) -> bool:
    """Returns whether no span is in the files twice."""
    [(repeated,)] = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM read_parquet({_sql_list(lake, files)}, union_by_name = true) "
        "GROUP BY trace_id, span_id HAVING count(*) > 1)"
    ).fetchall()
    return int(repeated) == 0


def _record_replaced(lake: LakeLocation, files: list[LakeFile], now_s: float) -> None:
    base = lake.path("")
    relative = [f.path[len(base) :] for f in files]
    content = json.dumps({"replaced_at_s": now_s, "files": relative}).encode()
    name = FileNames("replaced").next().removesuffix(".parquet") + ".json"
    lake.publish(COMPACTION_FOLDER, name, lambda out: out.write(content))


def compact(
    location: str | os.PathLike[str],
    *,
    dates: list[str] | None = None,
    target_bytes: int = DEFAULT_TARGET_BYTES,
    grace_s: float = DEFAULT_GRACE_S,
    keep_s: float | None = None,
    now: datetime | None = None,
) -> CompactionReport:
    """Returns what was done after compacting the lake (module docstring): files replaced more than ``grace_s``
    ago deleted, each date's (or each of ``dates``') files under ``target_bytes`` merged into files of about
    that size, and with ``keep_s``, the dates older than that dropped (``prune``)."""
    lake = LakeLocation(location)
    now_s = (now or datetime.now(timezone.utc)).timestamp()
    report = CompactionReport(lake.root)
    if keep_s is not None:
        pruned = prune(lake, keep_s, now=now)
        report.pruned_dates, report.pruned_files = pruned
    waiting = _delete_replaced(lake, grace_s, now_s, report)
    unique = read_unique(lake)
    con = _connection(lake)
    try:
        for day in dates if dates is not None else lake.dates():
            claim = _compact_date(lake, day, con, target_bytes, waiting, unique.get(day), now_s, report)
            if claim is not None:
                unique[day] = claim
    finally:
        con.close()
        existing = set(lake.dates())
        write_unique(lake, {day: claim for day, claim in unique.items() if day in existing})
    if grace_s <= 0:  # nothing to wait for: delete what this run replaced now
        report.waiting_files = 0
        _delete_replaced(lake, 0.0, now_s + 1, report)
    return report


def _compact_date(
    lake: LakeLocation,
    day: str,
    con: duckdb.DuckDBPyConnection,
    target_bytes: int,
    waiting: set[str],
    claim: UniqueDay | None,
    now_s: float,
    report: CompactionReport,
) -> UniqueDay | None:
    """Returns the date's claim for ``unique.json`` after merging its small files (``_lake_unique``), or None
    when nothing was learnt: the files left hold each span once, and every row of the files merged (or still
    waiting for deletion) is in them."""
    listing = lake.files(day)
    gone = [f for f in listing if f.path in waiting]
    live = [f for f in listing if f.path not in waiting]
    small = [f for f in live if f.size < target_bytes]
    merge = small if len(small) >= 2 else []
    kept = [f for f in live if f not in merge]
    if not merge and claim is not None and claim.split(listing)[1]:
        return None  # as the last compaction left it
    known = claim.files if claim is not None else {}
    unknown = any(known.get(f.name) != (f.size, f.mtime_s) for f in kept)
    if kept and unknown and not _holds_each_span_once(con, lake, kept):
        merge, kept = live, []  # a span twice among the large files (exported twice, say): all of them anew
    written: list[LakeFile] = []
    if merge:
        bytes_per_row = max(1, sum(f.size for f in merge)) / max(1, _rows(con, lake, merge))
        rows_per_file = max(1, int(target_bytes / bytes_per_row))
        result, names = _compact_day(lake, day, merge, con, rows_per_file, kept)
        _record_replaced(lake, merge, now_s)
        report.days.append(result)
        report.waiting_files += len(merge)
        for stale in lake.stale_temporaries(day):
            lake.delete(stale.path)
        now_listed = {f.name: f for f in lake.files(day)}  # their size and time as readers will list them
        if not all(name in now_listed for name in names):
            return None
        written = [now_listed[name] for name in names]
    return UniqueDay(state_of([*kept, *written]), state_of([*gone, *merge]))


def _rows(con: duckdb.DuckDBPyConnection, lake: LakeLocation, files: list[LakeFile]) -> int:
    metadata = f"parquet_file_metadata({_sql_list(lake, files)})"
    [(rows,)] = con.execute(
        f"SELECT sum(num_rows) FROM (SELECT DISTINCT file_name, num_rows FROM {metadata})"
    ).fetchall()
    return int(rows or 0)


# ---------------------------------------------------------------------------------------------- retention


def prune(
    location: str | os.PathLike[str] | LakeLocation, keep_s: float, *, now: datetime | None = None
) -> tuple[list[str], int]:
    """Returns (the dates dropped, how many files were deleted) after deleting every file of the dates that end
    more than ``keep_s`` seconds before ``now``."""
    lake = location if isinstance(location, LakeLocation) else LakeLocation(location)
    cutoff = ((now or datetime.now(timezone.utc)) - timedelta(seconds=keep_s)).date()
    dropped, deleted = [], 0
    for day in lake.dates():
        if date.fromisoformat(day) >= cutoff:
            continue
        for stale in lake.stale_temporaries(day, older_than_s=0):
            lake.delete(stale.path)
        for f in lake.files(day):
            deleted += lake.delete(f.path)
        lake.remove_empty_date(day)
        dropped.append(day)
    return dropped, deleted


# ---------------------------------------------------------------------------------------------- export


_EXPORT_MEMORY = "1GB"


def export_store(
    db: str | os.PathLike[str], location: str | os.PathLike[str], *, rows_per_file: int = DEFAULT_ROWS_PER_FILE
) -> tuple[int, int]:
    """Returns (rows, files) written after exporting the spans of the store at ``db`` into the lake at
    ``location``, one date at a time. Exporting twice writes every span twice: readers count each once, and
    compaction drops the copies."""
    from ._read import read_connection

    lake = LakeLocation(location)
    names = FileNames("exported")
    columns = ", ".join(
        f'CAST("{n}" AS VARCHAR) AS "{n}"' if t == "JSON" else f'"{n}"' for n, t in fields.spans_columns()
    )
    rows = files = 0
    with tempfile.TemporaryDirectory(prefix="auriko-obs-export-") as spill, read_connection(db) as con:
        con.execute("SET TimeZone = 'UTC'")
        # Each date is sorted by time: beyond this, DuckDB sorts on disk. Without a limit, one date of 3.3M calls
        # took 7.9 GB of RSS (up to 80% of the machine's memory may be taken); with it 3.2 GB, 53 instead of 91 s.
        con.execute(f"SET temp_directory = '{spill.replace(chr(39), chr(39) * 2)}'")
        con.execute(f"SET memory_limit = '{_EXPORT_MEMORY}'")
        day_sql = "coalesce(CAST(start_time AS DATE), DATE '1970-01-01')"
        days = [row[0] for row in con.execute(f"SELECT DISTINCT {day_sql} FROM spans ORDER BY 1").fetchall()]
        for day in days:
            # A range on start_time itself, so that DuckDB skips the row groups of other days.
            window = (
                f"start_time >= TIMESTAMPTZ '{day.isoformat()} 00:00:00+00' "
                f"AND start_time < TIMESTAMPTZ '{(day + timedelta(days=1)).isoformat()} 00:00:00+00'"
            )
            if day == date(1970, 1, 1):
                window = f"({window} OR start_time IS NULL)"
            sql = f"SELECT {columns} FROM spans WHERE {window} ORDER BY start_time"
            published = _write_stream(lake, f"{DATE_PREFIX}{day.isoformat()}", names, _batches(con, sql), rows_per_file)
            rows += sum(n for _, n, _ in published)
            files += len(published)
        _export_prices(con, lake)
    return rows, files


def _export_prices(con: duckdb.DuckDBPyConnection, lake: LakeLocation) -> None:
    """Copies the store's cached provider prices (``refresh_prices``) into the lake's price file, so that
    ``routing_savings`` reads the same prices there; a store with none leaves the lake's file as it is."""
    from ._lake import PRICES_COLUMNS, PRICES_FILE

    names = ", ".join(f'"{name}"' for name, _ in PRICES_COLUMNS)
    relation: Any = con.sql(f"SELECT {names} FROM provider_prices ORDER BY model, position")
    table = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()  # DuckDB 2 / 1.x
    if table.num_rows:
        folder, name = PRICES_FILE.rsplit("/", 1)
        lake.write_table(folder, name, table, compression="zstd")
