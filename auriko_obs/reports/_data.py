"""The content of a spend report, as one JSON-ready dict (its shape: ``report.schema.json``).

Every number is aggregated in DuckDB; pandas only carries the small results. Each section has its own
function taking the store and a period, so a renderer, a test or a notebook can call one alone.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from .._version import __version__
from ..store import Store
from ._anomalies import find_anomalies
from ._periods import Period

REPORT_SCHEMA_VERSION = 1
DIMENSIONS = {  # report name → SQL expression over llm_calls (a call counts under each of its tags)
    "provider": "coalesce(provider, '(not routed)')",
    "model": "coalesce(model_canonical, response_model, request_model, '(unknown)')",
    "service": "coalesce(service_name, '(unknown)')",
    "tag": "unnest(CASE WHEN len(tags) > 0 THEN tags ELSE ['(untagged)'] END)",
    "user": "coalesce(user_id, '(no user)')",
}
BUDGET_CODES = ("budget_exhausted", "budget_exceeded")
RATE_LIMIT_CODES = ("rate_limit_exceeded", "concurrent_requests_exceeded", "tokens_per_min_exceeded")
_WHERE = "start_time >= ? AND start_time < ?"


def _iso(moment: Any) -> str | None:
    if moment is None or (isinstance(moment, float) and math.isnan(moment)):
        return None
    if hasattr(moment, "to_pydatetime"):
        moment = moment.to_pydatetime()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _num(value: Any, digits: int = 6) -> float:
    value = float(value or 0)
    return 0.0 if math.isnan(value) else round(value, digits)


def totals(store: Store, period: Period) -> dict:
    """Returns calls, errors, cost, tokens, cache savings and distinct users in the period."""
    row = store.sql(f"""
        SELECT count(*) AS calls, count(*) FILTER (WHERE status = 'error') AS errors,
               coalesce(sum(cost_usd), 0) AS cost_usd, coalesce(sum(input_tokens), 0) AS input_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens, coalesce(sum(cached_tokens), 0) AS cached_tokens,
               coalesce(sum(cache_savings_usd), 0) AS cache_savings_usd, count(DISTINCT user_id) AS users
        FROM llm_calls WHERE {_WHERE}""", [period.start, period.end]).iloc[0]
    ints = ("calls", "errors", "input_tokens", "output_tokens", "cached_tokens", "users")
    return {k: (int(row[k]) if k in ints else _num(row[k])) for k in row.index}


def compare(current: dict, previous: dict) -> dict:
    """Returns, per metric, the change from ``previous`` and the change in percent (None from zero)."""
    out = {}
    for key, now in current.items():
        before = previous.get(key, 0)
        out[key] = {"delta": _num(now - before), "delta_pct": None if not before else round(100 * (now - before) / before, 2)}
    return out


def cost_by(store: Store, period: Period, dimension: str, top_n: int = 10) -> list[dict]:
    """Returns the top ``top_n`` values of ``dimension`` by cost, then one "(other)" row for the rest."""
    expr = DIMENSIONS[dimension]
    frame = store.sql(f"""
        WITH per AS (
            SELECT key, count(*) AS calls, coalesce(sum(cost_usd), 0) AS cost_usd,
                   coalesce(sum(input_tokens + output_tokens), 0) AS tokens
            FROM (SELECT {expr} AS key, cost_usd, input_tokens, output_tokens FROM llm_calls WHERE {_WHERE})
            GROUP BY key),
        ranked AS (SELECT *, row_number() OVER (ORDER BY cost_usd DESC, calls DESC, key) AS rank FROM per)
        SELECT CASE WHEN rank <= ? THEN key ELSE '(other)' END AS key, sum(calls) AS calls,
               sum(cost_usd) AS cost_usd, sum(tokens) AS tokens, min(rank) AS rank
        FROM ranked GROUP BY 1 ORDER BY min(rank)""", [period.start, period.end, top_n])
    total = float(frame["cost_usd"].sum()) if len(frame) else 0.0
    return [{"key": str(r.key), "calls": int(r.calls), "cost_usd": _num(r.cost_usd), "tokens": int(r.tokens),
             "share_pct": round(100 * r.cost_usd / total, 2) if total else 0.0} for r in frame.itertuples()]


def savings(store: Store, period: Period) -> dict:
    """Returns cache savings and routing savings in the period.

    Routing savings: for each routed call, what its tokens would have cost at the median of the per-token
    prices that the same model was billed at across providers in the period, minus what it cost.
    """
    cache = store.sql(f"""
        SELECT coalesce(sum(cache_savings_usd), 0) AS cache_savings_usd,
               coalesce(sum(cost_usd), 0) AS cost_usd,
               coalesce(sum(cached_tokens), 0) AS cached_tokens, coalesce(sum(input_tokens), 0) AS input_tokens
        FROM llm_calls WHERE {_WHERE}""", [period.start, period.end]).iloc[0]
    routing = store.sql(f"""
        WITH calls AS (
            SELECT model_canonical AS model, provider, cost_usd, input_tokens + output_tokens AS tokens
            FROM llm_calls WHERE {_WHERE} AND provider IS NOT NULL AND model_canonical IS NOT NULL
              AND cost_usd > 0 AND input_tokens + output_tokens > 0),
        provider_price AS (SELECT model, provider, sum(cost_usd) / sum(tokens) AS usd_per_token
                           FROM calls GROUP BY ALL),
        model_price AS (SELECT model, median(usd_per_token) AS median_usd_per_token,
                               max(usd_per_token) AS max_usd_per_token FROM provider_price GROUP BY model)
        SELECT coalesce(sum(tokens * median_usd_per_token - cost_usd), 0) AS vs_median_usd,
               coalesce(sum(tokens * max_usd_per_token - cost_usd), 0) AS vs_most_expensive_usd
        FROM calls JOIN model_price USING (model)""", [period.start, period.end]).iloc[0]
    input_tokens = int(cache["input_tokens"])
    return {
        "cache_savings_usd": _num(cache["cache_savings_usd"]),
        "cost_without_cache_usd": _num(cache["cost_usd"] + cache["cache_savings_usd"]),
        "cache_hit_ratio": round(int(cache["cached_tokens"]) / input_tokens, 4) if input_tokens else None,
        "routing_savings_vs_median_usd": _num(routing["vs_median_usd"]),
        "routing_savings_vs_most_expensive_usd": _num(routing["vs_most_expensive_usd"]),
    }


def errors(store: Store, period: Period) -> dict:
    """Returns error counts: by code, rate limits, budget rejections, and the error rate."""
    by_code = store.sql(f"""
        SELECT coalesce(error_code, error_type, 'http_' || http_status::VARCHAR, 'unknown') AS code,
               any_value(http_status) AS http_status, count(*) AS calls, coalesce(sum(retry_after_s), 0) AS retry_after_s
        FROM llm_calls WHERE {_WHERE} AND status = 'error' GROUP BY 1 ORDER BY calls DESC, code""",
        [period.start, period.end])
    counts = store.sql(f"""
        SELECT count(*) AS calls, count(*) FILTER (WHERE status = 'error') AS errors,
               count(*) FILTER (WHERE error_code IN {BUDGET_CODES} OR budget_exceeded_scope IS NOT NULL) AS budget,
               count(*) FILTER (WHERE error_code IN {RATE_LIMIT_CODES}
                                 OR (http_status = 429 AND error_code IS NULL)) AS rate_limited
        FROM llm_calls WHERE {_WHERE}""", [period.start, period.end]).iloc[0]
    calls = int(counts["calls"])
    return {
        "errors": int(counts["errors"]),
        "error_rate_pct": round(100 * int(counts["errors"]) / calls, 2) if calls else 0.0,
        "rate_limited": int(counts["rate_limited"]),
        "budget_rejections": int(counts["budget"]),
        "by_code": [{"code": str(r.code), "http_status": None if r.http_status != r.http_status else int(r.http_status),
                     "calls": int(r.calls), "retry_after_s": _num(r.retry_after_s, 3)} for r in by_code.itertuples()],
    }


def biggest_calls(store: Store, period: Period, top_n: int = 10) -> list[dict]:
    """Returns the ``top_n`` most expensive single calls of the period."""
    frame = store.sql(f"""
        SELECT start_time, coalesce(model_canonical, response_model, request_model) AS model, provider,
               service_name, user_id, cost_usd, input_tokens, output_tokens, request_id, trace_id
        FROM llm_calls WHERE {_WHERE} AND cost_usd IS NOT NULL ORDER BY cost_usd DESC, start_time LIMIT ?""",
        [period.start, period.end, top_n])
    return [{"start_time": _iso(r.start_time), "model": _str(r.model), "provider": _str(r.provider),
             "service": _str(r.service_name), "user": _str(r.user_id), "cost_usd": _num(r.cost_usd),
             "input_tokens": _int(r.input_tokens), "output_tokens": _int(r.output_tokens),
             "request_id": _str(r.request_id), "trace_id": _str(r.trace_id)} for r in frame.itertuples()]


def _str(value: Any) -> str | None:
    return None if value is None or value != value else str(value)


def _int(value: Any) -> int | None:
    return None if value is None or value != value else int(value)


def spend_series(store: Store, period: Period, granularity: str, window: int) -> tuple[list[tuple[str, float]], int]:
    """Returns gap-free (bucket start, cost) from ``window`` buckets before the period (or the store's first
    call, if later) to its end, and the index of the period's first bucket."""
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    first = store.sql(f"SELECT min(date_trunc('{granularity}', start_time)) AS first FROM llm_calls "
                      "WHERE start_time < ?", [period.end]).iloc[0]["first"]
    if first is None or first != first:
        return [], 0
    first = first.to_pydatetime() if hasattr(first, "to_pydatetime") else first
    start = max(first.astimezone(timezone.utc), period.start - window * step)
    frame = store.sql(f"""
        WITH buckets AS (SELECT unnest(generate_series(?::TIMESTAMPTZ, ?::TIMESTAMPTZ - INTERVAL 1 SECOND,
                                                       INTERVAL 1 {granularity})) AS bucket),
        spend AS (SELECT date_trunc('{granularity}', start_time) AS bucket, sum(cost_usd) AS cost_usd
                  FROM llm_calls WHERE start_time >= ? AND start_time < ? GROUP BY 1)
        SELECT bucket, coalesce(cost_usd, 0) AS cost_usd FROM buckets LEFT JOIN spend USING (bucket)
        ORDER BY bucket""", [start, period.end, start, period.end])
    series = [(_iso(r.bucket), float(r.cost_usd)) for r in frame.itertuples()]
    first_in_period = next((i for i, (b, _) in enumerate(series) if b >= _iso(period.start)), len(series))
    return series, first_in_period


def anomalies(store: Store, period: Period) -> dict:
    """Returns the anomalous hours (daily reports) or days (longer ones) of the period, with the method."""
    granularity, window = ("hour", 168) if period.end - period.start <= timedelta(days=2) else ("day", 28)
    series, first = spend_series(store, period, granularity, window)
    found = find_anomalies(series, first, granularity=granularity, window=window)
    return {
        "method": f"robust z-score of {granularity}ly spend against the median and MAD of the {window} "
                  f"{granularity}s before it; anomaly when z > 3.5",
        "granularity": granularity,
        "series": [{"bucket_start": b, "cost_usd": round(c, 6)} for b, c in series[first:]],
        "items": [a.__dict__ for a in found],
    }


def budget_rows(store: Store, configured: Sequence[Any], now: datetime) -> list[dict]:
    """Returns the burn of each budget at ``now``, in its current period."""
    from ._budgets import budget_status

    return [status.as_dict() for status in budget_status(store, configured, now=now)]


def build_report(db: str | Store, period: Period, *, top_n: int = 10, now: datetime | None = None,
                 budgets: Sequence[Any] = (), dimensions: Sequence[str] = tuple(DIMENSIONS)) -> dict:
    """Returns the whole report for ``period`` as a dict that ``report.schema.json`` describes."""
    store = db if isinstance(db, Store) else Store(db)
    now = now or datetime.now(timezone.utc)
    previous = period.previous()
    current_totals, previous_totals = totals(store, period), totals(store, previous)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated_at": _iso(now),
        "generator": f"auriko-obs {__version__}",
        "store": store.path,
        "period": {"kind": period.kind, "label": period.label, "start": _iso(period.start), "end": _iso(period.end)},
        "previous_period": {"start": _iso(previous.start), "end": _iso(previous.end)},
        "totals": current_totals,
        "previous_totals": previous_totals,
        "changes": compare(current_totals, previous_totals),
        "cost_by": {dim: cost_by(store, period, dim, top_n) for dim in dimensions},
        "savings": savings(store, period),
        "budgets": budget_rows(store, budgets, now),
        "errors": errors(store, period),
        "biggest_calls": biggest_calls(store, period, top_n),
        "anomalies": anomalies(store, period),
    }
