"""The Store: read the DuckDB store as pandas DataFrames."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ._files import connect, default_path
from ._migrations import SCHEMA_VERSION, applied_version
from ._read import read_connection

if TYPE_CHECKING:
    import pandas as pd

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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


_SUMMARY_SQL = """
SELECT CASE WHEN grouping(coalesce(provider, '(not routed)')) = 1 THEN 'total'
            ELSE coalesce(provider, '(not routed)') END AS provider, count(*) AS calls,
       count(*) FILTER (WHERE status = 'error') AS errors,
       coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
       coalesce(sum(cached_tokens), 0)::BIGINT AS cached_tokens,
       coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
       sum(cost_usd) AS cost_usd, coalesce(sum(cache_savings_usd), 0) AS cache_savings_usd,
       min(start_time) AS first_call, max(start_time) AS last_call
FROM llm_calls
GROUP BY ROLLUP (coalesce(provider, '(not routed)'))
ORDER BY grouping(coalesce(provider, '(not routed)')), sum(cost_usd) DESC NULLS LAST, 1
"""


def _minute(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if hasattr(value, "strftime") else str(value)


class Store:
    """A DuckDB store of LLM-call spans. Opens the file read-only, only for the moment of each query.

    Queries see the spans that wait in the store's spool too (``read_connection``).

    ``Store(path)`` with no path uses ``$AURIKO_OBS_DB`` or ``./auriko_obs.duckdb``.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_wait_s: float = 30.0) -> None:
        self.path = os.path.abspath(os.fspath(path or default_path()))
        self.lock_wait_s = lock_wait_s

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    def _query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        import pandas  # noqa: F401  (DuckDB's .df() needs it; loaded here, not at import)

        with read_connection(self.path, wait_s=self.lock_wait_s) as con:  # spooled rows included
            return con.execute(sql, params or []).df()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Returns the result of any SQL query over the store (tables ``spans``, view ``llm_calls``)."""
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
        """Returns the number of schema migrations the store file has applied."""
        with connect(self.path, read_only=True, wait_s=self.lock_wait_s) as con:
            return applied_version(con)

    latest_schema_version = SCHEMA_VERSION
