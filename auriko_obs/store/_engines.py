"""The engines that read a store: DuckDB over the store file, DuckDB over a lake, and Apache Spark over a lake.

Each engine, once opened, offers the same relations under the same names:

- ``spans`` and ``llm_calls`` as in the DuckDB store (on a lake, a span stored twice appears once),
- ``provider_prices`` (empty when no prices were fetched),
- ``auriko_obs_calls``, which the analyses read: ``llm_calls`` plus the helper columns of ``HELPER_COLUMNS``
  (the UTC hour of the start as an integer, and the few span attributes the analyses need, read from the
  ``attributes`` JSON) and, on a lake, the ``date`` partition column.

The helper columns are the only SQL written per dialect: Ibis, which writes every analysis once for all
engines, reads JSON keys that contain dots wrongly (``$.error.type``) and does it through Python UDFs on
Spark, and its epoch-of-a-TIMESTAMPTZ goes through DuckDB's ICU calendar on every row (6× slower than
``epoch_us``). Each is a plain column here, computed only for the rows a query touches.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from .. import fields
from . import _lake

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

CALLS_VIEW = "auriko_obs_calls"

# Helper columns of auriko_obs_calls: name → (the span attribute it reads, or None; its DuckDB type).
HELPER_COLUMNS: dict[str, tuple[str | None, str]] = {
    "start_hour": (None, "BIGINT"),  # hours since 1970-01-01 00:00 UTC of start_time
    "has_warnings": (None, "BOOLEAN"),  # routing warnings is a non-empty list
    # failed calls without an Auriko error type or code: errors() reads it only where one of those is missing
    "otel_error_type": (fields.ERROR_TYPE, "VARCHAR"),
    "warning_types": ("auriko.routing.warning_types", "VARCHAR[]"),  # calls with routing warnings only
    **{
        f"budget_{period}_{what}_usd": (f"auriko.budget.{period}.{what}_usd", "DOUBLE")
        for period in ("daily", "weekly", "monthly")
        for what in ("spend", "limit")
    },
    # what the notebook report groups and filters by
    "experiment": ("auriko.experiment", "VARCHAR"),
    "notebook_path": ("auriko.notebook.path", "VARCHAR"),
    "notebook_session": ("auriko.notebook.session", "VARCHAR"),
}


# The JSON of the two columns read per call is parsed only for the calls that can have the attribute: a
# projection that DuckDB evaluates before a filter otherwise parses every call's JSON (10 s on 10M calls).
# error.type is only a fallback for a failed call's Auriko error type and code, so calls that have both skip it
# (errors() over 10M calls: 0.12-0.16 of 0.9-1.1 CPU seconds, 200k failed calls' JSON).
_OTEL_ERROR_GUARD = "status = 'error' AND (error_type IS NULL OR error_code IS NULL)"
_GUARDS = {
    "otel_error_type": {"duckdb": _OTEL_ERROR_GUARD, "spark": _OTEL_ERROR_GUARD},
    "warning_types": {"duckdb": "len(warnings) > 0", "spark": "size(warnings) > 0"},
}


def _guarded(name: str, sql: str, engine: str) -> str:
    guard = _GUARDS.get(name, {}).get(engine)
    return f"CASE WHEN {guard} THEN {sql} END" if guard else sql


# The helper columns computed from other columns. has_warnings: Ibis writes a list's length as DuckDB's
# array_length, which DuckDB does not move below a view's projection, so that a filter on it made the view
# read every call's attributes (errors(): 10M calls read for 48k with warnings); len() it moves.
_COMPUTED = {
    "start_hour": {
        "duckdb": "epoch_us(start_time) // 3600000000",
        "spark": "CAST(floor(unix_micros(start_time) / 3600000000) AS BIGINT)",
    },
    "has_warnings": {"duckdb": "coalesce(len(warnings) > 0, false)", "spark": "coalesce(size(warnings) > 0, false)"},
}


def _duckdb_helper(name: str, json_column: str = "attributes") -> str:
    # A store file's `spans` also has `extra_attributes`, which holds these attributes (none has a column of its
    # own) without the merge that its `attributes` costs every row (store/_layout.py).
    attribute, sql_type = HELPER_COLUMNS[name]
    if attribute is None:
        return _COMPUTED[name]["duckdb"]
    path = f"'$.\"{attribute}\"'"
    if sql_type == "VARCHAR[]":
        return _guarded(name, f"from_json(json_extract({json_column}, {path}), '[\"VARCHAR\"]')", "duckdb")
    text = f"json_extract_string({json_column}, {path})"
    return _guarded(name, text if sql_type == "VARCHAR" else f"TRY_CAST({text} AS {sql_type})", "duckdb")


_SPARK_TYPES = {
    "VARCHAR": "string",
    "TIMESTAMPTZ": "timestamp",
    "DOUBLE": "double",
    "BIGINT": "bigint",
    "INTEGER": "int",
    "BOOLEAN": "boolean",
    "VARCHAR[]": "array<string>",
    "JSON": "string",
    "DATE": "date",
}


def _spark_helper(name: str) -> str:
    attribute, sql_type = HELPER_COLUMNS[name]
    if attribute is None:
        return _COMPUTED[name]["spark"]
    text = f"get_json_object(attributes, '$[\\'{attribute}\\']')"
    if sql_type == "VARCHAR[]":
        return _guarded(name, f"from_json({text}, 'array<string>')", "spark")
    return _guarded(name, text if sql_type == "VARCHAR" else f"try_cast({text} AS {_SPARK_TYPES[sql_type]})", "spark")


def _calls_view_sql(
    helper: Any, spans: str, extra: str = "", present: set[str] | None = None, *, json_as_text: bool = False
) -> str:
    """Returns the SELECT of auriko_obs_calls over the relation ``spans``, with ``extra`` columns; a column not
    ``present`` (a store file written before it existed, opened read-only) reads as NULL. With
    ``json_as_text``, the JSON columns of ``spans`` are text, made JSON only where a query selects them."""

    def column(c: fields.Column) -> str:
        if present is not None and c.name not in present:
            return f"CAST(NULL AS {c.sql_type}) AS {c.name}"
        return f"CAST({c.name} AS JSON) AS {c.name}" if json_as_text and c.sql_type == "JSON" else c.name

    columns = ", ".join(column(c) for c in fields.LLM_CALL_COLUMNS)
    helpers = ", ".join(f"{helper(name)} AS {name}" for name in HELPER_COLUMNS)
    return f"SELECT {columns}{extra}, {helpers} FROM {spans} WHERE operation IS NOT NULL"


_converters = threading.local()


def arrow_to_pandas(table: pa.Table, con: Any = None) -> pd.DataFrame:
    """Returns an Arrow table as DuckDB's ``.df()`` makes it (the dtypes every analysis has always returned:
    nullable integers only where a NULL is, ``str`` text, UTC datetimes), whichever engine made the table.

    ``con`` is a DuckDB connection set to UTC to convert with; without one, this thread's own in-memory one
    (opening a DuckDB database costs tens of milliseconds, so it is kept)."""
    import pandas  # noqa: F401  (DuckDB's .df() needs it)

    if con is None:
        con = getattr(_converters, "con", None)
        if con is None:
            import duckdb

            con = _converters.con = duckdb.connect()
            con.execute("SET TimeZone = 'UTC'")
    frame: pd.DataFrame = con.from_arrow(table).df()
    return frame


class Connection:
    """An open engine: runs queries in its own SQL dialect over the relations named in the module docstring."""

    dialect: str
    partitioned: bool

    def arrow(self, query: str) -> pa.Table:
        raise NotImplementedError

    def df(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        raise NotImplementedError

    def to_pandas(self, table: pa.Table) -> pd.DataFrame:
        """Returns a result of this engine as a DataFrame (``arrow_to_pandas``)."""
        return arrow_to_pandas(table)

    def register(self, name: str, table: pa.Table) -> None:
        """Makes a small Arrow table (one an analysis worked out in Python) a relation named ``name``."""
        raise NotImplementedError


_T = TypeVar("_T")
_VANISHED_RETRIES = 5
_VANISHED = (
    "No such file or directory",
    "No files found that match the pattern",
    "Cannot open file",
    "NoSuchKey",
    "FileNotFoundError",
    "Not Found",
)


def _file_vanished(exc: BaseException) -> bool:
    import duckdb

    return isinstance(exc, (duckdb.IOException, duckdb.InvalidInputException, FileNotFoundError)) and any(
        text in str(exc) for text in _VANISHED
    )


class DuckDBConnection(Connection):
    dialect = "duckdb"

    def __init__(self, con: Any, *, partitioned: bool, relist: Callable[[], None] | None = None) -> None:
        self.con = con
        self.partitioned = partitioned
        self.relist = relist  # makes the views again over the files there are now (a lake)

    def arrow(self, query: str) -> pa.Table:
        def run() -> pa.Table:
            relation = self.con.sql(query)
            return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()

        return self._again_if_a_file_vanished(run)

    def df(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        import pandas  # noqa: F401  (DuckDB's .df() needs it)

        def run() -> pd.DataFrame:
            frame: pd.DataFrame = self.con.execute(query, list(params or [])).df()
            return frame

        return self._again_if_a_file_vanished(run)

    def _again_if_a_file_vanished(self, run: Callable[[], _T]) -> _T:
        """Returns ``run()``, run again when a lake file it had listed was gone when it opened it: compaction
        deletes the files it replaced once its grace period has passed (``_lake_lifecycle``); the lake's
        views are made again over the files there are now first. Such a run failed; it never answered wrongly."""
        for attempt in range(_VANISHED_RETRIES + 1):
            try:
                if attempt and self.relist is not None:
                    self.relist()
                return run()
            except Exception as exc:
                if not self.partitioned or attempt == _VANISHED_RETRIES or not _file_vanished(exc):
                    raise
            time.sleep(0.05 * 2**attempt)  # a compaction deletes its replaced files one by one: let it finish
        raise AssertionError("unreachable")

    def register(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)

    def to_pandas(self, table: pa.Table) -> pd.DataFrame:
        return arrow_to_pandas(table, self.con)


class Engine:
    """Where a store's rows are, and how to open an engine over them."""

    name: str  # duckdb or spark

    @contextmanager
    def open(self) -> Iterator[Connection]:
        raise NotImplementedError
        yield  # pragma: no cover


class DuckDBFile(Engine):
    """DuckDB over the store file (spooled batches folded in first, so that readers see every finished span)."""

    name = "duckdb"

    def __init__(self, path: str, lock_wait_s: float) -> None:
        self.path = path
        self.lock_wait_s = lock_wait_s

    @contextmanager
    def open(self) -> Iterator[Connection]:
        from ._read import read_connection

        with read_connection(self.path, wait_s=self.lock_wait_s) as con:  # spooled rows included
            columns = con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_name IN ('spans', 'provider_prices')"
            ).fetchall()
            present = {column for table, column in columns if table == "spans"}
            if not any(table == "provider_prices" for table, _ in columns):
                # a store file from before the price cache, opened read-only
                empty = ", ".join(f"NULL::{t} AS {n}" for n, t in _lake.PRICES_COLUMNS)
                con.execute(f"CREATE OR REPLACE TEMP VIEW provider_prices AS SELECT {empty} LIMIT 0")
            json_column = "extra_attributes" if "extra_attributes" in present else "attributes"
            view = _calls_view_sql(lambda name: _duckdb_helper(name, json_column), "spans", present=present)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {CALLS_VIEW} AS {view}")
            yield DuckDBConnection(con, partitioned=False)


def _read_parquet(paths: Sequence[str]) -> str:
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    return (
        f"read_parquet([{listed}], hive_partitioning = true, union_by_name = true, "
        f"hive_types = {{'{_lake.PARTITION_COLUMN}': DATE}})"
    )


def _duckdb_lake_views(con: Any, root: str) -> None:
    """Creates the views of a lake in a DuckDB connection: typed columns (NULL for those no file has yet), one row
    per span and date, the prices file when there is one.

    The dates that compaction found to hold each span once are read as they are; only the others are grouped
    by (date, trace_id, span_id) (``_lake_unique``). The files are listed here, once per connection: a lake
    connection lives for one query or analysis, and runs ``_duckdb_lake_views`` again when a listed file has
    gone meanwhile."""
    from ._lake_location import LakeLocation
    from ._lake_unique import split_lake

    lake = LakeLocation(root)
    once, grouped = split_lake(lake)
    columns = [*_lake.spans_columns(), (_lake.PARTITION_COLUMN, "DATE")]
    keys = (_lake.PARTITION_COLUMN, "trace_id", "span_id")
    parts = []
    for files, group in ((once, False), (grouped, True)):
        if not files:
            continue
        source = _read_parquet([lake.uri(f.path) for f in files])
        present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        selected = []
        for name, sql_type in columns:
            # JSON text stays VARCHAR until the spans view: a cast to JSON parses every row's text, which cost
            # 8.5 s of 13 in errors() over 10M calls where only the few calls with warnings are read
            sql_type = "VARCHAR" if sql_type == "JSON" else sql_type
            value = f'CAST("{name}" AS {sql_type})' if name in present else f"NULL::{sql_type}"
            # Copies of a span are alike: one row per (date, trace_id, span_id), any copy's values. Grouping
            # measured 2x faster than a row_number() window; the date leads the keys, so that a filter on it
            # goes below the grouping and prunes whole folders.
            selected.append(f'any_value({value}) AS "{name}"' if group and name not in keys else f'{value} AS "{name}"')
        grouping = f" GROUP BY {', '.join(keys)}" if group else ""
        parts.append(f"SELECT {', '.join(selected)} FROM {source}{grouping}")
    if not parts:  # an empty lake reads as empty tables
        empty = ", ".join(f'NULL::{"VARCHAR" if t == "JSON" else t} AS "{n}"' for n, t in columns)
        parts.append(f"SELECT {empty} LIMIT 0")
    con.execute(f"CREATE OR REPLACE VIEW auriko_obs_spans AS {' UNION ALL '.join(parts)}")
    names = ", ".join(
        f'CAST("{name}" AS JSON) AS "{name}"' if sql_type == "JSON" else f'"{name}"'
        for name, sql_type in _lake.spans_columns()
    )
    con.execute(f"CREATE OR REPLACE VIEW spans AS SELECT {names} FROM auriko_obs_spans")
    con.execute(
        f"CREATE OR REPLACE VIEW llm_calls AS SELECT {fields.llm_calls_select_list()} FROM spans "
        "WHERE operation IS NOT NULL"
    )
    date = _lake.PARTITION_COLUMN
    con.execute(
        f"CREATE OR REPLACE VIEW {CALLS_VIEW} AS "
        f"{_calls_view_sql(_duckdb_helper, 'auriko_obs_spans', f', {date}', json_as_text=True)}"
    )
    prices = _lake.prices_path(root)
    if _prices_exist(root):
        con.execute(f"CREATE OR REPLACE VIEW provider_prices AS SELECT * FROM read_parquet('{prices}')")
    else:
        empty = ", ".join(f"NULL::{t} AS {n}" for n, t in _lake.PRICES_COLUMNS)
        con.execute(f"CREATE OR REPLACE VIEW provider_prices AS SELECT {empty} LIMIT 0")


def _prices_exist(root: str) -> bool:
    if not _lake.is_remote(root):
        return os.path.exists(_lake.prices_path(root))
    from ._lake_location import LakeLocation

    return LakeLocation(root).exists(_lake.PRICES_FILE)


class DuckDBLake(Engine):
    """DuckDB over a lake, in a connection of its own (in memory) that lives for one query or analysis."""

    name = "duckdb"

    def __init__(self, root: str) -> None:
        self.root = root

    @contextmanager
    def open(self) -> Iterator[Connection]:
        import duckdb

        con = duckdb.connect()
        try:
            if _lake.is_remote(
                self.root
            ):  # through fsspec over pyarrow's S3 client: DuckDB's httpfs extension is a download
                from ._lake_location import fsspec_s3_filesystem

                con.register_filesystem(fsspec_s3_filesystem())
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET disabled_optimizers = 'compressed_materialization'")  # see _files.connect
            for attempt in range(_VANISHED_RETRIES + 1):  # reading the files' columns opens them too
                try:
                    _duckdb_lake_views(con, self.root)
                    break
                except Exception as exc:
                    if attempt == _VANISHED_RETRIES or not _file_vanished(exc):
                        raise
                time.sleep(0.05 * 2**attempt)
            yield DuckDBConnection(con, partitioned=True, relist=lambda: _duckdb_lake_views(con, self.root))
        finally:
            con.close()


class SparkConnection(Connection):
    dialect = "pyspark"
    partitioned = True

    def __init__(self, session: Any) -> None:
        self.session = session

    def arrow(self, query: str) -> pa.Table:
        return self.session.sql(query).toArrow()

    def df(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        frame = self.session.sql(query, args=list(params)) if params else self.session.sql(query)
        return arrow_to_pandas(frame.toArrow())

    def register(self, name: str, table: pa.Table) -> None:
        self.session.createDataFrame(table.to_pandas(), schema=_spark_ddl_of(table)).createOrReplaceTempView(name)


def _spark_ddl_of(table: pa.Table) -> str:
    import pyarrow as pa

    names = {pa.string(): "string", pa.float64(): "double", pa.int64(): "bigint", pa.int32(): "int"}
    return ", ".join(f"`{f.name}` {names[f.type]}" for f in table.schema)


def spark_schema_ddl() -> str:
    """Returns the Spark DDL schema of a lake's files, the partition column last."""
    columns = [f"`{name}` {_SPARK_TYPES[sql_type]}" for name, sql_type in _lake.spans_columns()]
    return ", ".join([*columns, f"`{_lake.PARTITION_COLUMN}` date"])


class Spark(Engine):
    """Apache Spark over a lake, in the caller's SparkSession (local, a cluster, or Spark Connect).

    Opening registers temporary views in the session (``spans``, ``llm_calls``, ``provider_prices`` and
    ``auriko_obs_calls``), re-reading the lake's file list so that new files count, and sets the session's
    time zone to UTC (as Ibis does): UTC periods and timestamps do not depend on where the driver runs.
    """

    name = "spark"

    def __init__(self, session: Any, root: str) -> None:
        self.session = session
        self.root = root

    @contextmanager
    def open(self) -> Iterator[Connection]:
        session = self.session
        session.conf.set("spark.sql.session.timeZone", "UTC")
        schema = spark_schema_ddl()
        if _lake.is_remote(self.root) or _lake.has_files(self.root):
            # Spark discovers the date folders itself, and skips names starting with _ or . (the price file's
            # folder, writers' temporary files).
            raw = session.read.schema(schema).parquet(self.root)
        else:
            raw = session.createDataFrame([], schema)
        date = _lake.PARTITION_COLUMN
        names = ", ".join(f"`{name}`" for name, _ in _lake.spans_columns())
        # One row per (date, trace_id, span_id): a filter on the date still prunes folders below it.
        raw.dropDuplicates([date, "trace_id", "span_id"]).createOrReplaceTempView("auriko_obs_spans")
        session.sql(f"SELECT {names} FROM auriko_obs_spans").createOrReplaceTempView("spans")
        session.sql(
            f"SELECT {fields.llm_calls_select_list()} FROM spans WHERE operation IS NOT NULL"
        ).createOrReplaceTempView("llm_calls")
        session.sql(_calls_view_sql(_spark_helper, "auriko_obs_spans", f", {date}")).createOrReplaceTempView(CALLS_VIEW)
        prices_ddl = ", ".join(f"`{n}` {_SPARK_TYPES[t]}" for n, t in _lake.PRICES_COLUMNS)
        frame = session.createDataFrame([], prices_ddl)
        prices = _lake.prices_path(self.root)
        if _lake.is_remote(self.root) or os.path.exists(prices):
            try:
                frame = session.read.schema(prices_ddl).parquet(prices)
            except Exception as exc:  # no price file on the object store: no prices, as in a local lake
                if "PATH_NOT_FOUND" not in str(exc) and "does not exist" not in str(exc):
                    raise
        frame.createOrReplaceTempView("provider_prices")
        yield SparkConnection(session)
