"""Analyses of the store: each answers one question in one call, computed by the store's engine, as a tidy DataFrame.

```python
from auriko_obs import analysis, Store
analysis.provider_mix("auriko_obs.duckdb", since="7d", period="day")
analysis.cost_by("tag", "auriko_obs.duckdb", top=5)
analysis.budget_burn("auriko_obs.duckdb", [analysis.Budget("team", 50, "daily", scope="tag", match="team:search")])
analysis.cost_by("tag", "/mnt/lake/")                   # DuckDB over a lake of Parquet files
analysis.cost_by("tag", Store.spark(spark, "/mnt/lake/"))  # Apache Spark over the same lake, the same frame
```

Each analysis is one Ibis expression, compiled to the SQL of the engine that reads the store (see
``auriko_obs.store._engines``). Every function takes the store (a ``Store``, the path of a store file or of a
lake, None for ``$AURIKO_OBS_DB`` / ``./auriko_obs.duckdb``, or an open ``session(store)``, whose engine several
analyses then share: the file is opened, or the lake listed, once),
``since``/``until`` (datetimes, ISO-8601 strings or spans back from now such as ``"7d"``; calls whose
``start_time`` is in [since, until); a ``since`` not before ``until`` raises ValueError), and the filters
``model``, ``provider``, ``service``, ``tag`` and ``user``, each one value or a list. Periods (``hour``,
``day``, ``week``, ``month``) are UTC; weeks start on Monday. A dimension's NULL shows as ``(none)``.
Each docstring lists the columns returned.
``auriko_obs.plots`` draws one figure from each of these frames.

For expressions of one's own with the same filters and groups (as ``%auriko_obs report`` builds its table):
``session(store)`` opens the store's engine (``.calls``, an Ibis table; ``.run(expr)``, a DataFrame),
``where()`` builds the filter (a ``Where``; ``.apply(session)`` gives the calls it keeps), and
``raw_dimension``/``label``/``out_name`` a dimension's value, its label and its column name.
"""

from ._budget_burn import MIN_FORECAST_HISTORY, Budget, budget_burn, budget_burndown, load_budgets, period_bounds
from ._forecast import Forecast, decayed_rate, forecast
from ._health import errors, latency
from ._query import (
    DIMENSIONS,
    NONE_LABEL,
    OTHER_LABEL,
    Session,
    Where,
    label,
    out_name,
    raw_dimension,
    session,
    where,
)
from ._routing import fetch_prices, prices, refresh_prices, routing_savings
from ._spend import cache_savings, cost_by, provider_mix

__all__ = [
    "DIMENSIONS",
    "MIN_FORECAST_HISTORY",
    "NONE_LABEL",
    "OTHER_LABEL",
    "Budget",
    "Forecast",
    "Session",
    "Where",
    "budget_burn",
    "budget_burndown",
    "cache_savings",
    "cost_by",
    "decayed_rate",
    "errors",
    "fetch_prices",
    "forecast",
    "label",
    "latency",
    "load_budgets",
    "out_name",
    "period_bounds",
    "prices",
    "provider_mix",
    "raw_dimension",
    "refresh_prices",
    "routing_savings",
    "session",
    "where",
]
