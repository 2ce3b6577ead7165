"""How the calls behave: latency percentiles, errors, retries and routing warnings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..store import unmerged_attribute_sql
from ._query import (
    StoreLike,
    TimeLike,
    Values,
    calls_source,
    dimension_sql,
    grouping,
    leading,
    out_name,
    run,
    session,
    where,
)

if TYPE_CHECKING:
    import pandas as pd

# metric column → unit, in the order latency() returns them.
LATENCY_METRICS = {"duration_ms": "ms", "ttft_ms": "ms", "provider_ttft_ms": "ms", "throughput_tps": "tokens/s"}
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.9, 0.99)
_Q_NAMES = ("p05", "p25", "p50", "p75", "p90", "p99")


def latency(
    store: StoreLike = None,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    by: str | Sequence[str] = ("provider", "model"),
    include_errors: bool = False,
    model: Values = None,
    provider: Values = None,
    service: Values = None,
    tag: Values = None,
    user: Values = None,
) -> pd.DataFrame:
    """Returns latency percentiles per provider and model (or ``by``), one row per metric.

    Answers: how long calls take end to end, how soon the first token arrives as the client sees it
    (``ttft_ms``, streams only) and as the gateway reports it (``provider_ttft_ms``), and how fast
    providers generate (``throughput_tps``). Only successful calls count unless ``include_errors``.
    Percentiles are exact (``quantile_cont``, linear interpolation).

    Columns: one per ``by`` dimension (NULL shown as ``(none)``; none for ``by=[]``: all calls together),
    ``metric`` (duration_ms, ttft_ms, provider_ttft_ms, throughput_tps), ``unit`` (ms or tokens/s),
    ``calls`` (calls with a value), ``mean``, ``p05``, ``p25``, ``p50``, ``p75``, ``p90``, ``p99``.
    Groups without any value for a metric have no row for it.
    """
    dims = [by] if isinstance(by, str) else list(by)
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    if not include_errors:
        w = w.and_("status = 'ok'")
    keys = [f'{dimension_sql(d)} AS "{out_name(d)}"' for d in dims]
    names = [f'"{out_name(d)}"' for d in dims]
    quantiles = ", ".join(repr(q) for q in QUANTILES)
    aggregates = ", ".join(
        f"count({m}) AS n_{m}, avg({m}) AS mean_{m}, quantile_cont({m}, [{quantiles}]) AS q_{m}"
        for m in LATENCY_METRICS
    )
    unpivot = "\nUNION ALL\n".join(
        f"SELECT {leading(names)}'{m}' AS metric, '{unit}' AS unit, {i} AS metric_order, n_{m} AS calls, "
        f"mean_{m} AS mean, "
        + ", ".join(f"q_{m}[{j + 1}] AS {q}" for j, q in enumerate(_Q_NAMES))
        + f" FROM agg WHERE n_{m} > 0"
        for i, (m, unit) in enumerate(LATENCY_METRICS.items())
    )
    query = f"""
WITH agg AS (
    SELECT {leading(keys)}{aggregates}
    FROM {calls_source(w, dims)} GROUP BY ALL
)
SELECT * EXCLUDE (metric_order) FROM ({unpivot}) ORDER BY {leading(names)}metric_order
"""
    with session(store) as s:
        return run(s, query, w.params)


def errors(
    store: StoreLike = None,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    by: str = "provider",
    period: str | None = "hour",
    model: Values = None,
    provider: Values = None,
    service: Values = None,
    tag: Values = None,
    user: Values = None,
) -> pd.DataFrame:
    """Returns errors by code, retries and routing warnings by type, per provider (or ``by``) per UTC period.

    Answers: which errors we get and how often (budget_exhausted, rate_limit_exceeded, upstream errors…),
    how much the SDK retried, how long servers asked us to wait (Retry-After), and which routing warnings
    Auriko raised (a parameter it dropped, an extension it ignored…).

    One row per (period, group, kind, code). ``kind`` is ``error`` (a failed call; ``code`` is the
    Auriko error code, else the ``error.type`` attribute, else ``http_<status>``; ``type`` the error
    type such as rate_limit_error), ``warning`` (a routing warning carried by a call; ``code`` its code,
    ``type`` its type such as unsupported_parameter), or ``retry`` (calls the SDK sent more than once;
    ``code`` is ``retried``). Groups with neither have no rows.

    Columns: ``period_start`` (when ``period`` is given), ``<by>``, ``kind``, ``type``, ``code``,
    ``calls`` (all calls of the period and group), ``count`` (calls with this error, warning or retry),
    ``rate`` (count / calls), ``retries`` (extra HTTP attempts of those calls), ``retry_after_s``
    (sum of their Retry-After), ``http_status`` (the most common status of those calls). Raises ValueError
    for ``by="http_status"``, which would name two columns alike.
    """
    if by == "http_status":
        raise ValueError(
            "errors() has an http_status column of its own (the most common status of each row); "
            "group by another dimension, such as error_code or status"
        )
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    name = f'"{out_name(by)}"'
    pre, labelled, _ = grouping([by], period)
    if period is None:
        labelled.insert(0, "NULL::TIMESTAMPTZ AS period_start")
    head = "period_start, " if period is not None else ""
    warning_types = "'$.\"auriko.routing.warning_types\"'"
    # Totals are summed per raw key first; the events come from the few calls that failed, retried or carry
    # warnings, so that JSON and list work touches only those.
    query = f"""
WITH totals AS (
    SELECT period_start, {name}, sum(n)::BIGINT AS calls
    FROM (SELECT {", ".join(labelled)}, n
          FROM (SELECT {", ".join(pre)}, count(*) AS n FROM llm_calls WHERE {w.sql} GROUP BY ALL))
    GROUP BY ALL
),
base AS (
    SELECT {", ".join(labelled)}, status, error_type, error_code, http_status, warnings,
           greatest(coalesce(http_attempts, 1) - 1, 0) AS extra_attempts, retry_after_s,
           CASE WHEN status = 'error' THEN {unmerged_attribute_sql("error.type")} END AS otel_error_type,
           CASE WHEN len(warnings) > 0 THEN extra_attributes END AS extra_attributes
    FROM (SELECT {", ".join(pre)}, status, error_type, error_code, http_status, warnings, http_attempts,
                 retry_after_s, extra_attributes
          FROM spans WHERE operation IS NOT NULL AND {w.sql}
          AND (status = 'error' OR http_attempts > 1 OR len(warnings) > 0))
),
events AS (
    SELECT period_start, {name}, 'error' AS kind, coalesce(error_type, otel_error_type) AS type,
           coalesce(error_code, otel_error_type, 'http_' || http_status, 'error') AS code,
           extra_attempts, retry_after_s, http_status
    FROM base WHERE status = 'error'
    UNION ALL
    SELECT period_start, {name}, 'retry', NULL, 'retried', extra_attempts, retry_after_s, http_status
    FROM base WHERE extra_attempts > 0
    UNION ALL
    SELECT period_start, {name}, 'warning', unnest(from_json(json_extract(extra_attributes, {warning_types}),
                                                            '["VARCHAR"]')),
           unnest(warnings), 0, NULL, http_status
    FROM base WHERE len(warnings) > 0
)
SELECT {"e.period_start AS period_start, " if period is not None else ""}e.{name} AS {name}, kind, type, code,
       any_value(t.calls) AS calls, count(*) AS count, count(*) / any_value(t.calls) AS rate,
       sum(extra_attempts)::BIGINT AS retries, coalesce(sum(retry_after_s), 0) AS retry_after_s,
       mode(http_status) AS http_status
FROM events AS e JOIN totals AS t ON e.period_start IS NOT DISTINCT FROM t.period_start AND e.{name} = t.{name}
GROUP BY ALL ORDER BY {head}{name}, kind, count DESC, code
"""
    with session(store) as s:
        return run(s, query, [*w.params, *w.params])  # the filter appears twice: totals and base
