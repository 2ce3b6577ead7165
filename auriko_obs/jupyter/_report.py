"""Returns ``%auriko_obs report``'s table (spend grouped by one dimension, computed by the store's engine) and
its figure."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..analysis import DIMENSIONS, Session, label, out_name, raw_dimension, where
from ..analysis import session as open_session

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

# Dimensions read from span attributes (helper columns of the store's engines), beside those of the analyses
# (whose labels, "(none)" included, the report shares, so that both show the same groups).
_ATTRIBUTES = {"experiment": "experiment", "notebook": "notebook_path"}
_GROUPABLE = tuple(sorted(set(DIMENSIONS) | set(_ATTRIBUTES)))
_UNITS = {"minute": "m", "hour": "h", "day": "D"}


def _picked(s: Session, by: str, since: Any, notebook_session: str | None) -> ir.Table:
    """Returns the calls to report, with a ``dim`` column (one row per tag when grouping by tag)."""
    if by not in _GROUPABLE:
        raise ValueError(f"cannot group by {by!r}; one of: {', '.join(_GROUPABLE)}")
    w = where(since)
    if notebook_session is not None:
        w = w.and_(lambda t: t.notebook_session == notebook_session)
    calls = w.apply(s)
    raw = calls[_ATTRIBUTES[by]] if by in _ATTRIBUTES else raw_dimension(calls, by)
    return calls.mutate(dim=label(raw, by))


def _unit(s: Session, picked: ir.Table) -> str:
    span = s.run(picked.aggregate(first=picked.start_time.min(), last=picked.start_time.max())).iloc[0]
    seconds = 0.0 if span["first"] != span["first"] else (span["last"] - span["first"]) / timedelta(seconds=1)
    return "minute" if seconds <= 3 * 3600 else "hour" if seconds <= 4 * 86400 else "day"


def report(
    store_path: Any, *, by: str = "provider", since: Any = None, session: str | None = None
) -> tuple[pd.DataFrame, Any]:
    """Returns (table, figure): spend per ``by`` value, and a Plotly bar chart of cost over time (None when empty).

    ``store_path`` is a store file, a lake, or a Store (``Store.spark`` too); ``session`` keeps one notebook
    session's calls."""
    import ibis

    name = out_name(by)
    with open_session(store_path) as s:
        picked = _picked(s, by, since, session)
        grouped = picked.group_by(name=picked.dim).aggregate(
            calls=picked.count(),
            errors=picked.count(where=picked.status == "error"),
            input_tokens=picked.input_tokens.sum().coalesce(0).cast("int64"),
            cached_tokens=picked.cached_tokens.sum().coalesce(0).cast("int64"),
            output_tokens=picked.output_tokens.sum().coalesce(0).cast("int64"),
            cost_usd=picked.cost_usd.sum(),
            cache_savings_usd=picked.cache_savings_usd.sum().coalesce(0.0),
        )
        grouped = grouped.mutate(cost_share=grouped.cost_usd / grouped.cost_usd.sum().over().nullif(0.0))
        order = [ibis.desc(grouped.cost_usd, nulls_first=False), ibis.desc(grouped.calls), grouped.name]
        table = s.run(grouped.order_by(order).rename({name: "name"}))
        if table.empty:
            return table, None
        unit = _unit(s, picked)
        per = picked.mutate(period=picked.start_time.truncate(_UNITS[unit]).cast("timestamp('UTC')"))
        series = per.group_by(["period", per.dim.name(name)]).aggregate(
            calls=per.count(), cost_usd=per.cost_usd.sum().coalesce(0.0)
        )
        series = s.run(series.order_by(["period", name]))
    return table, _figure(series, name, unit)


def _figure(series: pd.DataFrame, by: str, unit: str) -> Any:
    from .. import plots

    return plots.cost_over_time(series, by, unit, height=380)
