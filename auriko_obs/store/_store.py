"""The Store: read a DuckDB store file, or a Parquet lake with DuckDB or Apache Spark, as pandas DataFrames."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, overload

from . import _engines, _lake
from ._files import connect, default_path
from ._migrations import SCHEMA_VERSION, applied_version

if TYPE_CHECKING:
    import pandas as pd

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@overload
def parse_time(value: None, *, now: datetime | None = None) -> None: ...
@overload
def parse_time(value: datetime | str, *, now: datetime | None = None) -> datetime: ...
def parse_time(value: datetime | str | None, *, now: datetime | None = None) -> datetime | None:
    """Returns an aware UTC datetime for a datetime, an ISO-8601 string, or a span back from now ("1h", "7d")."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value)
    match = _RELATIVE.match(text)
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        try:
            return (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"{text!r} reaches back before the year 1") from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use ISO-8601 like 2026-11-25T10:00 or a span like 1h, 7d)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# Plain SQL that DuckDB and Spark both read.
_SUMMARY_SQL = """
SELECT provider, calls, errors, input_tokens, cached_tokens, output_tokens, cost_usd, cache_savings_usd,
       first_call, last_call
FROM (
    SELECT CASE WHEN grouping(served_by) = 1 THEN 'total' ELSE served_by END AS provider, count(*) AS calls,
           count(*) FILTER (WHERE status = 'error') AS errors,
           CAST(coalesce(sum(input_tokens), 0) AS BIGINT) AS input_tokens,
           CAST(coalesce(sum(cached_tokens), 0) AS BIGINT) AS cached_tokens,
           CAST(coalesce(sum(output_tokens), 0) AS BIGINT) AS output_tokens,
           sum(cost_usd) AS cost_usd, coalesce(sum(cache_savings_usd), 0) AS cache_savings_usd,
           min(start_time) AS first_call, max(start_time) AS last_call, grouping(served_by) AS total_row
    FROM (SELECT *, coalesce(provider, '(not routed)') AS served_by FROM llm_calls)
    GROUP BY ROLLUP (served_by)
) AS rolled
ORDER BY total_row, cost_usd DESC NULLS LAST, provider
"""


def _minute(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if hasattr(value, "strftime") else str(value)


class Store:
    """A store of LLM-call spans: a DuckDB file, or a lake of date-partitioned Parquet files.

    ``Store(path)`` opens a DuckDB store file, or with DuckDB a lake: a folder (or ``file://`` URI) of
    ``date=YYYY-MM-DD/*.parquet`` files. With no path it uses ``$AURIKO_OBS_DB`` or ``./auriko_obs.duckdb``.
    ``Store.spark(session, path)`` reads a lake with Apache Spark instead. Every query opens the file
    read-only (or lists the lake's files) for its own moment only, so the store never stays locked and new
    spans count; a store file's queries see the spans waiting in its spool too (``read_connection``).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_wait_s: float = 30.0) -> None:
        location = os.fspath(path or default_path())
        self.lock_wait_s = lock_wait_s
        self.engine: _engines.Engine
        if _lake.is_lake(location):
            self.path = _lake.lake_root(location)
            self.engine = _engines.DuckDBLake(self.path)
        else:
            self.path = os.path.abspath(location)
            self.engine = _engines.DuckDBFile(self.path, lock_wait_s)

    @classmethod
    def spark(cls, session: Any, path: str | os.PathLike[str]) -> Store:
        """Returns the lake at ``path`` read by Apache Spark through ``session`` (a ``pyspark.sql.SparkSession``:
        local, a cluster's, or Spark Connect's from ``SparkSession.builder.remote("sc://host:15002")``).

        Queries register temporary views in the session (``spans``, ``llm_calls``, ``provider_prices``,
        ``auriko_obs_calls``) and set its ``spark.sql.session.timeZone`` to UTC. ``sql`` takes Spark SQL.
        """
        store = cls.__new__(cls)
        store.lock_wait_s = 0.0
        store.path = _lake.lake_root(path)
        store.engine = _engines.Spark(session, store.path)
        return store

    @property
    def is_lake(self) -> bool:
        """Returns whether the store is a lake of Parquet files rather than a DuckDB file."""
        return not isinstance(self.engine, _engines.DuckDBFile)

    def __repr__(self) -> str:
        if isinstance(self.engine, _engines.Spark):
            return f"Store.spark(<SparkSession>, {self.path!r})"
        return f"Store({self.path!r})"

    def _query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with self.engine.open() as con:
            return con.df(sql, params)

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Returns the result of any SQL query over the store (tables ``spans``, ``provider_prices``, view
        ``llm_calls``), in the engine's dialect (DuckDB's, or Spark SQL for ``Store.spark``), ``?`` for each of
        ``params``."""
        return self._query(query, params)

    def calls(self, since: datetime | str | None = None, until: datetime | str | None = None) -> pd.DataFrame:
        """Returns the ``llm_calls`` rows (one per model call) started in [since, until), oldest first."""
        clauses, params = [], []
        for op, value in ((">=", since), ("<", until)):
            bound = parse_time(value)
            if bound is not None:
                clauses.append(f"start_time {op} ?")
                params.append(bound)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._query(f"SELECT * FROM llm_calls{where} ORDER BY start_time", params)

    def summary(self) -> pd.DataFrame:
        """Returns one row per provider (plus a total row): calls, errors, tokens, cost and cache savings."""
        return self._query(_SUMMARY_SQL)

    def _repr_html_(self) -> str:
        # Jupyter shows a Store as its per-provider totals, in dollars.
        import html

        from .._display import frame_html

        title = f"auriko-obs store {self.path}"
        if not os.path.exists(self.path):
            return f"<p>{html.escape(title)}: no calls recorded yet (the file does not exist)</p>"
        try:
            frame = self.summary()
        except Exception as exc:  # a locked or damaged file must not break the notebook's display
            return f"<p>{html.escape(title)}: cannot read it now ({html.escape(str(exc))})</p>"
        if frame.empty:
            return f"<p>{html.escape(title)}: no calls recorded yet</p>"
        return frame_html(
            frame.drop(columns=["first_call", "last_call"]),
            caption=f"{title} · schema v{self.schema_version} · calls from "
            f"{_minute(frame['first_call'].min())} to {_minute(frame['last_call'].max())}",
        )

    @property
    def schema_version(self) -> int:
        """Returns the number of schema migrations the store file has applied (a lake has no migrations: its
        readers fill the columns its files lack, so it is always at the latest version)."""
        if self.is_lake:
            return SCHEMA_VERSION
        with connect(self.path, read_only=True, wait_s=self.lock_wait_s) as con:
            return applied_version(con)

    latest_schema_version = SCHEMA_VERSION
