"""Returns ``%auriko_obs report``'s table (spend grouped by one dimension, computed in DuckDB) and its figure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..analysis import DIMENSIONS, label_sql, out_name, raw_dimension_sql, where
from ..store import Store
from ._summary import SESSION_ATTR, attribute_sql

if TYPE_CHECKING:
    import pandas as pd

# Dimensions read from span attributes, beside those of the analyses (whose SQL, labels such as
# "(none)" included, the report shares, so that both show the same groups).
_ATTRIBUTES = {
    "experiment": attribute_sql("auriko.experiment"),
    "notebook": attribute_sql("auriko.notebook.path"),
}
_GROUPABLE = tuple(sorted(set(DIMENSIONS) | set(_ATTRIBUTES)))

_TABLE_SQL = """
SELECT dim AS "{by}", count(*) AS calls, count(*) FILTER (WHERE status = 'error') AS errors,
       coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
       coalesce(sum(cached_tokens), 0)::BIGINT AS cached_tokens,
       coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
       sum(cost_usd) AS cost_usd,
       coalesce(sum(cache_savings_usd), 0) AS cache_savings_usd,
       sum(cost_usd) / nullif(sum(sum(cost_usd)) OVER (), 0) AS cost_share
FROM picked GROUP BY dim ORDER BY cost_usd DESC NULLS LAST, calls DESC, dim
"""

_SERIES_SQL = """
SELECT date_trunc('{unit}', start_time) AS period, dim AS "{by}", count(*) AS calls,
       coalesce(sum(cost_usd), 0) AS cost_usd
FROM picked GROUP BY ALL ORDER BY period, dim
"""


def _picked(by: str, since: Any, session: str | None) -> tuple[str, list]:
    """Returns the CTE selecting the calls to report, with a ``dim`` column, and its parameters."""
    if by not in _GROUPABLE:
        raise ValueError(f"cannot group by {by!r}; one of: {', '.join(_GROUPABLE)}")
    w = where(since)
    if session is not None:
        w = w.and_(f"{attribute_sql(SESSION_ATTR)} = ?", session)
    dim = label_sql(by, _ATTRIBUTES.get(by) or raw_dimension_sql(by))
    return f"WITH picked AS (SELECT *, {dim} AS dim FROM llm_calls WHERE {w.sql})", w.params


def _unit(store: Store, cte: str, params: list) -> str:
    frame = store.sql(f"{cte} SELECT epoch(max(start_time)) - epoch(min(start_time)) AS seconds FROM picked", params)
    seconds = frame["seconds"].iloc[0]
    seconds = 0.0 if seconds != seconds or seconds is None else float(seconds)
    return "minute" if seconds <= 3 * 3600 else "hour" if seconds <= 4 * 86400 else "day"


def report(
    store_path: str, *, by: str = "provider", since: Any = None, session: str | None = None
) -> tuple[pd.DataFrame, Any]:
    """Returns (table, figure): spend per ``by`` value, and a Plotly bar chart of cost over time (None when empty)."""
    store = Store(store_path)
    cte, params = _picked(by, since, session)
    name = out_name(by)
    table = store.sql(cte + _TABLE_SQL.format(by=name), params)
    if table.empty:
        return table, None
    unit = _unit(store, cte, params)
    series = store.sql(cte + _SERIES_SQL.format(by=name, unit=unit), params)
    return table, _figure(series, name, unit)


def _figure(series: pd.DataFrame, by: str, unit: str) -> Any:
    from .. import plots

    return plots.cost_over_time(series, by, unit, height=380)
