"""How the calls behave: latency percentiles, errors, retries and routing warnings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._query import (
    Grouping,
    Session,
    StoreLike,
    TimeLike,
    Values,
    Where,
    _ibis,
    group_sum,
    grouping,
    label,
    out_name,
    raw_dimension,
    session,
    where,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

# metric column → unit, in the order latency() returns them.
LATENCY_METRICS = {"duration_ms": "ms", "ttft_ms": "ms", "provider_ttft_ms": "ms", "throughput_tps": "tokens/s"}
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.9, 0.99)
_Q_NAMES = ("p05", "p25", "p50", "p75", "p90", "p99")


def latency(
    store: StoreLike | Session = None,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    by: str | Sequence[str] = ("provider", "model"),
    include_errors: bool = False,
    exact: bool | None = None,
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
    Percentiles are exact on DuckDB (linear interpolation between the two nearest values). On Spark they
    are approximate by default (``percentile_approx`` with its default accuracy 10000: each is a value of the
    data whose rank is within 1/10000 of the group's calls of the exact rank), since exact percentiles make
    Spark sort every group; ``exact=True`` asks for exact ones (``percentile``) there too, ``exact=False``
    for approximate ones on DuckDB (``approx_quantile``).

    Columns: one per ``by`` dimension (NULL shown as ``(none)``; none for ``by=[]``: all calls together),
    ``metric`` (duration_ms, ttft_ms, provider_ttft_ms, throughput_tps), ``unit`` (ms or tokens/s),
    ``calls`` (calls with a value), ``mean``, ``p05``, ``p25``, ``p50``, ``p75``, ``p90``, ``p99``.
    Groups without any value for a metric have no row for it.
    """
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    if not include_errors:
        w = w.and_(lambda t: t.status == "ok")
    g = grouping(by, None)
    with session(store) as s:
        return s.run(_latency(s, w, g, exact))


def _latency(s: Session, w: Where, g: Grouping, exact: bool | None) -> ir.Table:
    ibis = _ibis()
    calls = w.apply(s)
    names = g.names
    # Label per call (a call with several tags counts under each), then aggregate every metric in one pass.
    calls = calls.mutate(**{out_name(d): label(raw_dimension(calls, d), d) for d in g.dims})
    approximate = exact is False or (exact is None and s.engine == "spark")
    aggregates = {}
    for m in LATENCY_METRICS:
        column = calls[m]
        aggregates[f"n_{m}"] = column.count()
        aggregates[f"mean_{m}"] = column.mean()
        aggregates[f"q_{m}"] = (
            column.approx_quantile(list(QUANTILES)) if approximate else column.quantile(list(QUANTILES))
        )
    agg = group_sum(calls, names, **aggregates)
    # One row per (group, metric) with values: unnest an array of one struct per metric.
    rows = ibis.array(
        [
            ibis.struct(
                {
                    "metric": ibis.literal(m),
                    "unit": ibis.literal(unit),
                    "metric_order": ibis.literal(i),
                    "calls": agg[f"n_{m}"],
                    "mean": agg[f"mean_{m}"],
                    **{q: agg[f"q_{m}"][j] for j, q in enumerate(_Q_NAMES)},
                }
            )
            for i, (m, unit) in enumerate(LATENCY_METRICS.items())
        ]
    )
    long = agg.select(*names, row=rows.unnest())
    out = long.select(
        *names, **{k: long.row[k] for k in ("metric", "unit", "metric_order", "calls", "mean", *_Q_NAMES)}
    )
    out = out.filter(out.calls > 0).order_by([*names, "metric_order"])
    return out.drop("metric_order")


def errors(
    store: StoreLike | Session = None,
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
    g = grouping([by], period)
    with session(store) as s:
        return s.run(_errors(s, w, g))


def _event_calls(calls: ir.Table, g: Grouping, predicate: Any) -> ir.Table:
    """Returns the calls that pass ``predicate`` (one kind of event) with their labels and the facts errors() reads.

    Each kind of event reads the calls through its own predicate, which DuckDB evaluates in the scan; one
    predicate for all three kinds, narrowed per kind after, made two of the three scans evaluate it on every
    call (errors() over 10M calls). The calls' own columns get names of their own (_error_code…): a group
    column such as error_code must never be confused with them."""
    ibis = _ibis()
    some = calls.filter(predicate)
    facts = dict(
        _error_type=some.error_type,
        _error_code=some.error_code,
        _http_status=some.http_status,
        _warnings=some.warnings,
        _warning_types=some.warning_types,
        _extra=ibis.greatest(some.http_attempts.coalesce(1) - 1, 0).cast("int64"),
        _retry_after_s=some.retry_after_s,
        _otel_type=some.otel_error_type,  # set for failed calls without an Auriko error type or code
    )
    raw = some.select(**g.keys(some), **facts)
    return raw.select(*facts, **g.labels(raw))


def _errors(s: Session, w: Where, g: Grouping) -> ir.Table:
    ibis = _ibis()
    calls = w.apply(s)
    names = g.names
    # Totals are summed per raw key first; the events come from the few calls that failed, retried or carry
    # warnings, so that JSON and list work touches only those.
    keys = g.keys(calls)
    pre = calls.group_by(**keys).aggregate(n=calls.count())
    labelled = pre.select(**g.labels(pre), n=pre.n)
    totals = labelled.group_by(names).aggregate(calls=labelled.n.sum().cast("int64"))
    failed = _event_calls(calls, g, calls.status == "error")
    errors = failed.select(
        *names,
        kind=ibis.literal("error"),
        type=failed._error_type.coalesce(failed._otel_type),
        code=failed._error_code.coalesce(
            failed._otel_type, ibis.literal("http_") + failed._http_status.cast("string"), ibis.literal("error")
        ),
        extra=failed._extra,
        retry_after_s=failed._retry_after_s,
        http_status=failed._http_status,
    )
    retried = _event_calls(calls, g, calls.http_attempts > 1)  # the calls with _extra > 0
    retries = retried.select(
        *names,
        kind=ibis.literal("retry"),
        type=ibis.null("string"),
        code=ibis.literal("retried"),
        extra=retried._extra,
        retry_after_s=retried._retry_after_s,
        http_status=retried._http_status,
    )
    warned = _event_calls(calls, g, calls.has_warnings)
    # Codes and types pair up by position (zip), never as a cross product.
    pairs = warned.select(
        *names,
        pair=warned._warnings.zip(warned._warning_types.coalesce(ibis.literal([], type="array<string>"))).unnest(),
        http_status=warned._http_status,
    )
    warnings = pairs.select(
        *names,
        kind=ibis.literal("warning"),
        type=pairs.pair.f2,
        code=pairs.pair.f1,
        extra=ibis.literal(0).cast("int64"),
        retry_after_s=ibis.null("float64"),
        http_status=pairs.http_status,
    )
    events = errors.union(retries).union(warnings)
    row = [*names, "kind", "type", "code"]
    # Per row and HTTP status first; the row's http_status is its most common one (ties: the lowest).
    per_status = events.group_by([*row, "http_status"]).aggregate(
        k=events.count(), extra=events.extra.sum(), retry_after=events.retry_after_s.sum()
    )
    whole = ibis.window(group_by=row)
    first = ibis.window(
        group_by=row,
        order_by=[per_status.http_status.isnull(), ibis.desc(per_status.k), per_status.http_status],
    )
    rows = per_status.mutate(
        count=per_status.k.sum().over(whole).cast("int64"),
        retries=per_status.extra.sum().over(whole).cast("int64"),
        retry_after_s=per_status.retry_after.sum().over(whole).coalesce(0.0),
        r=ibis.row_number().over(first),
    ).filter(lambda x: x.r == 0)
    joined = rows.inner_join(totals, names)
    out = joined.select(
        *row,
        calls=joined.calls,
        count=joined["count"],
        rate=joined["count"].cast("float64") / joined.calls,
        retries=joined.retries,
        retry_after_s=joined.retry_after_s,
        http_status=joined.http_status.cast("int32"),
    )
    return out.order_by([*names, "kind", ibis.desc("count"), "code", ibis.asc("type", nulls_first=False)])
