"""Returns ``%auriko_obs report``'s table (spend grouped by one dimension, computed in DuckDB) and its figure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import fields
from ..store import Store, parse_time
from ._summary import SESSION_ATTR, attribute_sql

if TYPE_CHECKING:
    import pandas as pd

# Dimensions beyond the plain VARCHAR columns of llm_calls.
_DERIVED = {
    "model": "coalesce(model_canonical, response_model, request_model)",
    "experiment": attribute_sql("auriko.experiment"),
    "notebook": attribute_sql("auriko.notebook.path"),
}
_GROUPABLE = sorted({c.name for c in fields.LLM_CALL_COLUMNS if c.sql_type == "VARCHAR"
                     and c.name not in ("trace_id", "span_id", "parent_span_id", "request_id")}
                    | set(_DERIVED) | {"tag"})

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
    clauses, params = [], []
    start = parse_time(since)
    if start is not None:
        clauses.append("start_time >= ?")
        params.append(start)
    if session is not None:
        clauses.append(f"{attribute_sql(SESSION_ATTR)} = ?")
        params.append(session)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    if by == "tag":
        dim = "unnest(CASE WHEN len(tags) > 0 THEN tags ELSE ['(no tag)'] END)"
    else:
        dim = f"coalesce(CAST({_DERIVED.get(by, by)} AS VARCHAR), '(none)')"
    return f"WITH picked AS (SELECT *, {dim} AS dim FROM llm_calls {where})", params


def _unit(store: Store, cte: str, params: list) -> str:
    frame = store.sql(f"{cte} SELECT epoch(max(start_time)) - epoch(min(start_time)) AS seconds FROM picked", params)
    seconds = frame["seconds"].iloc[0]
    seconds = 0.0 if seconds != seconds or seconds is None else float(seconds)
    return "minute" if seconds <= 3 * 3600 else "hour" if seconds <= 4 * 86400 else "day"


def report(store_path: str, *, by: str = "provider", since: Any = None,
           session: str | None = None) -> tuple["pd.DataFrame", Any]:
    """Returns (table, figure): spend per ``by`` value, and a Plotly bar chart of cost over time (None when empty)."""
    store = Store(store_path)
    cte, params = _picked(by, since, session)
    table = store.sql(cte + _TABLE_SQL.format(by=by), params)
    if table.empty:
        return table, None
    unit = _unit(store, cte, params)
    series = store.sql(cte + _SERIES_SQL.format(by=by, unit=unit), params)
    return table, _figure(series, by, unit)


def _figure(series: "pd.DataFrame", by: str, unit: str) -> Any:
    import plotly.express as px

    fig = px.bar(series, x="period", y="cost_usd", color=by, custom_data=["calls"],
                 title=f"Cost per {unit} by {by}",
                 labels={"period": f"time (UTC, per {unit})", "cost_usd": "cost (USD)", by: by})
    fig.update_traces(hovertemplate=f"%{{x}}<br>{by}: %{{fullData.name}}<br>cost: $%{{y:.4f}}"
                                    "<br>calls: %{customdata[0]}<extra></extra>")
    fig.update_layout(yaxis_tickprefix="$", barmode="stack", legend_title_text=by, height=380)
    return fig
