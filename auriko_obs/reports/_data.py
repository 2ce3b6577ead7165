"""The content of a spend report, as one JSON-ready dict (its shape: ``report.schema.json``).

Every number is aggregated in DuckDB; pandas only carries the small results. Each section has its own
function taking the store (or an open ``analysis.session`` of it) and a period, so a renderer, a test or a
notebook can call one alone. ``build_report`` runs them all in one session: the store file is opened (or the
lake listed) once, and every section reads the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeAlias

from .._version import __version__
from ..store import Store
from ._anomalies import find_anomalies
from ._budget_verdicts import budget_rows
from ._periods import Period
from ._values import integer, iso, number, text

if TYPE_CHECKING:
    from ..analysis import Session

Source: TypeAlias = "Store | Session"  # what each section reads: the store, or a session open on it

REPORT_SCHEMA_VERSION = 1
# report breakdown → the ``analysis.cost_by`` dimension (a call counts under each of its tags)
DIMENSIONS = {"provider": "provider", "model": "model", "service": "service", "tag": "tag", "user": "user"}
BUDGET_CODES = ("budget_exhausted", "budget_exceeded")
RATE_LIMIT_CODES = ("rate_limit_exceeded", "concurrent_requests_exceeded", "tokens_per_min_exceeded")
ADVERB = {"hour": "hourly", "day": "daily"}
_WHERE = "start_time >= ? AND start_time < ?"


def totals(store: Source, period: Period) -> dict:
    """Returns calls, errors, cost, tokens, cache savings and distinct users in the period."""
    row = store.sql(
        f"""
        SELECT count(*) AS calls, count(*) FILTER (WHERE status = 'error') AS errors,
               coalesce(sum(cost_usd), 0) AS cost_usd, coalesce(sum(input_tokens), 0) AS input_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens, coalesce(sum(cached_tokens), 0) AS cached_tokens,
               coalesce(sum(cache_savings_usd), 0) AS cache_savings_usd, count(DISTINCT user_id) AS users
        FROM llm_calls WHERE {_WHERE}""",
        [period.start, period.end],
    ).iloc[0]
    ints = ("calls", "errors", "input_tokens", "output_tokens", "cached_tokens", "users")
    return {k: (int(row[k]) if k in ints else number(row[k])) for k in row.index}


def compare(current: dict, previous: dict) -> dict:
    """Returns, per metric, the change from ``previous`` and the change in percent (None from zero)."""
    out = {}
    for key, now in current.items():
        before = previous.get(key, 0)
        out[key] = {
            "delta": number(now - before),
            "delta_pct": None if not before else round(100 * (now - before) / before, 2),
        }
    return out


def cost_by(store: Source, period: Period, dimension: str, top_n: int = 10) -> list[dict]:
    """Returns the top ``top_n`` values of ``dimension`` by cost, then one "other" row for the rest."""
    from .. import analysis

    frame = analysis.cost_by(DIMENSIONS[dimension], store, top=top_n, since=period.start, until=period.end)
    key = frame.columns[0]
    return [
        {
            "key": str(row[key]),
            "calls": int(row["calls"]),
            "cost_usd": number(row["cost_usd"]),
            "tokens": int(row["input_tokens"]) + int(row["output_tokens"]),
            "share_pct": number(100 * row["cost_share"], 2),
        }
        for _, row in frame.iterrows()
    ]


def savings(store: Source, period: Period) -> dict:
    """Returns cache savings (``analysis.cache_savings``) and routing savings (``analysis.routing_savings``,
    at list prices from ``/v1/models``; None when no prices are cached in the store)."""
    from .. import analysis

    cache = analysis.cache_savings(store, since=period.start, until=period.end, by="provider", period=None)
    input_tokens = int(cache["input_tokens"].sum()) if len(cache) else 0
    out = {
        "cache_savings_usd": number(cache["cache_savings_usd"].sum()) if len(cache) else 0.0,
        "cost_without_cache_usd": number(cache["cost_without_cache_usd"].sum()) if len(cache) else 0.0,
        "cache_hit_ratio": round(int(cache["cached_tokens"].sum()) / input_tokens, 4) if input_tokens else None,
        "routing_savings_vs_median_usd": None,
        "routing_savings_vs_most_expensive_usd": None,
        "routing_priced_calls": 0,
    }
    try:
        routing = analysis.routing_savings(store, since=period.start, until=period.end, by="provider")
    except ValueError:  # no price list cached: routing savings are unknown, not zero
        return out
    out.update(
        routing_savings_vs_median_usd=number(routing["savings_vs_median_usd"].sum()),
        routing_savings_vs_most_expensive_usd=number(routing["savings_vs_max_usd"].sum()),
        routing_priced_calls=int(routing["priced_calls"].sum()),
    )
    return out


def errors(store: Source, period: Period, calls: int) -> dict:
    """Returns error counts by code (``analysis.errors``), rate limits and budget rejections, and the error rate."""
    from .. import analysis

    frame = analysis.errors(store, since=period.start, until=period.end, by="api", period=None)
    frame = frame[frame["kind"] == "error"]
    by_code: list[dict[str, Any]] = []
    if len(frame):
        grouped = frame.groupby("code", as_index=False).agg(
            calls=("count", "sum"), http_status=("http_status", "first"), retry_after_s=("retry_after_s", "sum")
        )
        by_code = [
            {
                "code": str(r.code),
                "http_status": integer(r.http_status),
                "calls": int(r.calls),
                "retry_after_s": number(r.retry_after_s, 3),
            }
            for r in grouped.sort_values(["calls", "code"], ascending=[False, True]).itertuples()
        ]
    total = sum(r["calls"] for r in by_code)
    return {
        "errors": total,
        "error_rate_pct": round(100 * total / calls, 2) if calls else 0.0,
        **rejections(store, period),
        "by_code": by_code,
    }


def _code_in(codes: Sequence[str]) -> str:
    """Returns SQL that is true when error_code is one of ``codes`` (false, not NULL, without a code)."""
    return f"coalesce(error_code IN ({', '.join(repr(c) for c in codes)}), false)"


def rejections(store: Source, period: Period) -> dict:
    """Returns the failed calls that were rate limited and those rejected for budget (never both)."""
    # by status and header too, not the Auriko code alone: a plain 429 (code missing, or only error.type
    # RateLimitError) is a rate limit, and a call with X-Budget-Exceeded-Scope a budget rejection
    budget = f"({_code_in(BUDGET_CODES)} OR budget_exceeded_scope IS NOT NULL)"
    rate_limit = f"(http_status = 429 OR {_code_in(RATE_LIMIT_CODES)})"
    row = store.sql(
        f"""
        SELECT count(*) FILTER (WHERE {rate_limit} AND NOT {budget}) AS rate_limited,
               count(*) FILTER (WHERE {budget}) AS budget_rejections
        FROM llm_calls WHERE {_WHERE} AND status = 'error'""",
        [period.start, period.end],
    ).iloc[0]
    return {"rate_limited": int(row["rate_limited"]), "budget_rejections": int(row["budget_rejections"])}


def biggest_calls(store: Source, period: Period, top_n: int = 10) -> list[dict]:
    """Returns the ``top_n`` most expensive single calls of the period."""
    frame = store.sql(
        f"""
        SELECT start_time, coalesce(model_canonical, response_model, request_model) AS model, provider,
               service_name, user_id, cost_usd, input_tokens, output_tokens, request_id, trace_id
        FROM llm_calls WHERE {_WHERE} AND cost_usd IS NOT NULL ORDER BY cost_usd DESC, start_time LIMIT ?""",
        [period.start, period.end, top_n],
    )
    return [
        {
            "start_time": iso(r.start_time),
            "model": text(r.model),
            "provider": text(r.provider),
            "service": text(r.service_name),
            "user": text(r.user_id),
            "cost_usd": number(r.cost_usd),
            "input_tokens": integer(r.input_tokens),
            "output_tokens": integer(r.output_tokens),
            "request_id": text(r.request_id),
            "trace_id": text(r.trace_id),
        }
        for r in frame.itertuples()
    ]


def _floor(moment: datetime, granularity: str) -> datetime:
    """Returns the start of the UTC hour or day that holds ``moment`` (as ``date_trunc`` buckets it)."""
    moment = moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return moment if granularity == "hour" else moment.replace(hour=0)


def _bucket_iso(bucket: Any) -> str:
    moment = iso(bucket)
    if moment is None:  # generate_series gives every bucket a time
        raise ValueError("a spend bucket without a time")
    return moment


def spend_series(store: Source, period: Period, granularity: str, window: int) -> tuple[list[tuple[str, float]], int]:
    """Returns gap-free (bucket start, cost) from ``window`` buckets before the period (or the store's first
    call, if later) to its end, and the index of the period's first bucket.

    Buckets start on whole UTC hours or days. When the period does not, its first bucket holds only the
    spend from the period's start on, so that the period's buckets sum to its spend.
    """
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    first = store.sql(
        f"SELECT min(date_trunc('{granularity}', start_time)) AS first FROM llm_calls WHERE start_time < ?",
        [period.end],
    ).iloc[0]["first"]
    if first is None or first != first:
        return [], 0
    first = first.to_pydatetime() if hasattr(first, "to_pydatetime") else first
    period_bucket = _floor(period.start, granularity)
    start = max(first.astimezone(timezone.utc), period_bucket - window * step)
    frame = store.sql(
        f"""
        WITH buckets AS (SELECT unnest(generate_series(?::TIMESTAMPTZ, ?::TIMESTAMPTZ - INTERVAL 1 SECOND,
                                                       INTERVAL 1 {granularity})) AS bucket),
        spend AS (SELECT date_trunc('{granularity}', start_time) AS bucket, sum(cost_usd) AS cost_usd
                  FROM llm_calls WHERE (start_time >= ? AND start_time < ?) OR (start_time >= ? AND start_time < ?)
                  GROUP BY 1)
        SELECT bucket, coalesce(cost_usd, 0) AS cost_usd FROM buckets LEFT JOIN spend USING (bucket)
        ORDER BY bucket""",
        [start, period.end, start, period_bucket, period.start, period.end],
    )
    series = [
        (_bucket_iso(bucket), float(cost)) for bucket, cost in zip(frame["bucket"], frame["cost_usd"], strict=True)
    ]
    first_bucket = _bucket_iso(period_bucket)
    first_in_period = next((i for i, (b, _) in enumerate(series) if b >= first_bucket), len(series))
    return series, first_in_period


def anomalies(store: Source, period: Period) -> dict:
    """Returns the anomalous hours (daily reports) or days (longer ones) of the period, with the method."""
    granularity, window = ("hour", 168) if period.end - period.start <= timedelta(days=2) else ("day", 28)
    series, first = spend_series(store, period, granularity, window)
    found = find_anomalies(series, first, granularity=granularity, window=window)
    return {
        "method": f"robust z-score of {ADVERB[granularity]} spend against the median and MAD of the {window} "
        f"{granularity}s before it; anomaly when z > 3.5",
        "granularity": granularity,
        "series": [{"bucket_start": b, "cost_usd": round(c, 6)} for b, c in series[first:]],
        "items": [a.__dict__ for a in found],
    }


def build_report(
    db: str | Store,
    period: Period,
    *,
    top_n: int = 10,
    now: datetime | None = None,
    budgets: Sequence[Any] = (),
    dimensions: Sequence[str] = tuple(DIMENSIONS),
) -> dict:
    """Returns the whole report for ``period`` as a dict that ``report.schema.json`` describes.

    Its sections share one session of the store: one read-only open of the file (or listing of the lake)
    instead of one per query, and one state of the store for every number in the report."""
    from ..analysis import session

    store = db if isinstance(db, Store) else Store(db)
    now = now or datetime.now(timezone.utc)
    previous = period.previous()
    with session(store) as s:
        current_totals, previous_totals = totals(s, period), totals(s, previous)
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "generated_at": iso(now),
            "generator": f"auriko-obs {__version__}",
            "store": store.path,
            "period": {"kind": period.kind, "label": period.label, "start": iso(period.start), "end": iso(period.end)},
            "previous_period": {"start": iso(previous.start), "end": iso(previous.end)},
            "totals": current_totals,
            "previous_totals": previous_totals,
            "changes": compare(current_totals, previous_totals),
            "cost_by": {dim: cost_by(s, period, dim, top_n) for dim in dimensions},
            "savings": savings(s, period),
            "budgets": budget_rows(s, budgets, now),
            "errors": errors(s, period, current_totals["calls"]),
            "biggest_calls": biggest_calls(s, period, top_n),
            "anomalies": anomalies(s, period),
        }
