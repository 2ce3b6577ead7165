"""Auriko's per-provider prices cached in the store (``auriko_obs.prices`` fetches them), and what routing saved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..prices import fetch_auriko_prices
from ..store import connect
from ._query import (
    MODEL_SQL,
    Session,
    StoreLike,
    TimeLike,
    Values,
    grouping,
    leading,
    order_by,
    run,
    session,
    store_of,
    table_exists,
    where,
)

if TYPE_CHECKING:
    import pandas as pd

PRICES_TABLE = "provider_prices"


def fetch_prices(base_url: str, api_key: str | None = None, *, timeout_s: float = 10.0) -> list[dict]:
    """Returns one dict per (model, provider) from ``GET {base_url}/models``: model, provider, position (0 is
    the model's default provider), input_usd_per_1m, output_usd_per_1m, data_policy, source (the URL read)
    and fetched_at (when). See ``auriko_obs.prices.fetch_auriko_prices``."""
    return [
        {
            "model": p.model,
            "provider": p.provider,
            "position": p.position,
            "input_usd_per_1m": p.input_usd_per_1m,
            "output_usd_per_1m": p.output_usd_per_1m,
            "data_policy": p.data_policy,
            "source": p.source,
            "fetched_at": p.as_of,
        }
        for p in fetch_auriko_prices(base_url, api_key, timeout_s=timeout_s)
    ]


def refresh_prices(
    store: StoreLike, base_url: str, api_key: str | None = None, *, timeout_s: float = 10.0
) -> pd.DataFrame:
    """Returns the price table after replacing the store's cached prices with a fresh ``GET /v1/models``.

    ``base_url`` is the API root the openai client uses (``https://api.auriko.ai/v1``, or a simulator's
    ``base_url``). The whole table is replaced in one transaction, stamped with ``fetched_at``.
    """
    rows = fetch_auriko_prices(base_url, api_key, timeout_s=timeout_s)
    if not rows:
        raise ValueError(f"{base_url}/models listed no provider prices")
    target = store_of(store)
    with connect(target.path, read_only=False, wait_s=target.lock_wait_s) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {PRICES_TABLE}")
            con.executemany(
                f"INSERT INTO {PRICES_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?::TIMESTAMPTZ)",
                [
                    [
                        p.model,
                        p.provider,
                        p.position,
                        p.input_usd_per_1m,
                        p.output_usd_per_1m,
                        p.data_policy,
                        base_url,
                        p.as_of,
                    ]
                    for p in rows
                ],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return prices(target)


def prices(store: StoreLike | Session = None) -> pd.DataFrame:
    """Returns the cached provider prices: model, provider, position, input_usd_per_1m, output_usd_per_1m,
    data_policy, source, fetched_at (empty when none were fetched yet)."""
    if not table_exists(store, PRICES_TABLE):
        return run(
            store,
            "SELECT NULL::VARCHAR AS model, NULL::VARCHAR AS provider, NULL::INTEGER AS position, "
            "NULL::DOUBLE AS input_usd_per_1m, NULL::DOUBLE AS output_usd_per_1m, "
            "NULL::VARCHAR AS data_policy, NULL::VARCHAR AS source, "
            "NULL::TIMESTAMPTZ AS fetched_at LIMIT 0",
            [],
        )
    return run(store, f"SELECT * FROM {PRICES_TABLE} ORDER BY model, position", [])


def routing_savings(
    store: StoreLike = None,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    by: str | Sequence[str] = ("model", "provider"),
    period: str | None = None,
    model: Values = None,
    provider: Values = None,
    service: Values = None,
    tag: Values = None,
    user: Values = None,
) -> pd.DataFrame:
    """Returns, per group, what the calls' tokens cost at the provider that served them and what they would
    have cost at the model's most expensive and at its median provider: the money routing saved.

    Each call is priced at list prices from the cached ``GET /v1/models`` table (``refresh_prices``):
    ``cost = (input_tokens × input price + output_tokens × output price) / 1e6`` at every provider of its
    model. The most expensive and the median (the mean of the middle two for an even count) are taken per
    call, so a model whose providers rank differently for input-heavy and output-heavy calls is priced
    right. (The calls are not priced one by one: between the input shares where two providers' costs cross,
    the ranking of providers is fixed, so tokens are summed per such segment and priced once; the result is
    the same.) List prices leave prompt-cache discounts out: those are ``cache_savings``. Calls whose model is
    not in the price table, or that no Auriko provider served (``provider`` NULL), are counted in ``calls``
    but not priced.

    Columns: ``period_start`` (when ``period`` is given), one column per ``by`` dimension (none for ``by=[]``:
    the totals), ``calls``, ``priced_calls``, ``input_tokens``, ``output_tokens``, ``cost_usd`` (as reported),
    ``list_cost_usd`` (at the serving provider's list price), ``max_cost_usd``, ``median_cost_usd``,
    ``savings_vs_max_usd`` (= max − list), ``savings_vs_median_usd`` (= median − list).

    Raises ValueError when no prices are cached.
    """
    with session(store) as s:
        return _routing_savings(s, since, until, by, period, model, provider, service, tag, user)


def _routing_savings(
    store: Session,
    since: TimeLike,
    until: TimeLike,
    by: str | Sequence[str],
    period: str | None,
    model: Values,
    provider: Values,
    service: Values,
    tag: Values,
    user: Values,
) -> pd.DataFrame:
    if prices(store).empty:
        raise ValueError("no provider prices in the store: call auriko_obs.analysis.refresh_prices(store, base_url)")
    dims = [by] if isinstance(by, str) else list(by)
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    pre, labelled, names = grouping(dims, period)
    # The model and serving provider are grouping keys too; when they are also dimensions, group by them once.
    aliases = dict(p.rsplit(" AS ", 1) for p in pre)
    model_key, provider_key = aliases.get(MODEL_SQL, "call_model"), aliases.get('"provider"', "served_by")
    keys = [*aliases.values(), *(k for k, key in (("call_model", model_key), ("served_by", provider_key)) if k == key)]
    # Exact, yet without pricing every call at every provider. A call's cost at a provider,
    # (input × i + output × o) / 1e6, ranks its model's providers by the call's input share
    # t = input / (input + output) alone, and that ranking changes only at the few t where two providers'
    # costs cross. Between two crossings (a segment) the most expensive and the median provider are fixed,
    # so the calls are summed per (key, model, serving provider, segment) and each sum of tokens is priced
    # at its segment's max and median prices: the same sum as per call, since cost is linear in tokens.
    offers = f"""
offers AS (
    SELECT model, provider, input_usd_per_1m AS i, coalesce(output_usd_per_1m, 0) AS o, row_number() OVER () AS k
    FROM {PRICES_TABLE} WHERE input_usd_per_1m IS NOT NULL
),
crossings AS (
    SELECT x_model, list(DISTINCT t ORDER BY t) AS ts
    FROM (SELECT a.model AS x_model, (b.o - a.o) / ((a.i - b.i) - (a.o - b.o)) AS t
          FROM offers AS a JOIN offers AS b ON a.model = b.model AND a.k < b.k
          WHERE (a.i - b.i) <> (a.o - b.o))
    WHERE t > 0 AND t < 1 GROUP BY x_model
)"""
    # Each call finds its segment by counting the crossings of its model below its t (few models have any).
    crossed = run(store, f"WITH {offers} SELECT x_model, ts FROM crossings ORDER BY x_model", [])
    segment, segment_params = "0", []
    if len(crossed):
        whens = []
        for x_model, ts in zip(crossed["x_model"], crossed["ts"], strict=True):
            whens.append("WHEN ? THEN " + " + ".join("(_t > ?)::INTEGER" for _ in ts))
            segment_params += [x_model, *(float(t) for t in ts)]
        segment = f"CASE call_model {' '.join(whens)} ELSE 0 END"
    # HAVING: without groups (by=[], period=None) an aggregate of no calls would still make a row of zeros.
    query = f"""
WITH {offers},
segments AS (
    SELECT model, segment,
           (CASE WHEN segment = 0 THEN 0 ELSE ts[segment] END + coalesce(ts[segment + 1], 1)) / 2 AS t
    FROM (SELECT m.model, x.ts, unnest(range(len(coalesce(x.ts, [])) + 1)) AS segment
          FROM (SELECT DISTINCT model FROM offers) AS m LEFT JOIN crossings AS x ON x.x_model = m.model)
),
ranked AS (
    SELECT s.model, s.segment, o.i, o.o,
           row_number() OVER (PARTITION BY s.model, s.segment ORDER BY s.t * o.i + (1 - s.t) * o.o) AS r,
           count(*) OVER (PARTITION BY s.model, s.segment) AS n
    FROM segments AS s JOIN offers AS o ON o.model = s.model
),
segment_prices AS (
    SELECT model, segment, any_value(i) FILTER (WHERE r = n) AS max_i, any_value(o) FILTER (WHERE r = n) AS max_o,
           avg(i) FILTER (WHERE r IN ((n + 1) // 2, n // 2 + 1)) AS med_i,
           avg(o) FILTER (WHERE r IN ((n + 1) // 2, n // 2 + 1)) AS med_o
    FROM ranked GROUP BY ALL
),
served AS (
    SELECT model, provider, CASE WHEN count(*) = 1 THEN any_value(input_usd_per_1m) END AS i,
           coalesce(any_value(output_usd_per_1m), 0) AS o
    FROM {PRICES_TABLE} GROUP BY ALL
),
pre AS (
    SELECT {", ".join(keys)}, segment, {model_key} AS call_model, {provider_key} AS served_by, count(*) AS n,
           sum(inp) AS inp, sum(outp) AS outp, sum(cost_usd) AS cost
    FROM (SELECT {leading(pre)}{MODEL_SQL} AS call_model, provider AS served_by, cost_usd,
                 coalesce(input_tokens, 0) AS inp, coalesce(output_tokens, 0) AS outp,
                 inp / (inp + outp) AS _t, {segment} AS segment  -- _t is NULL for a call without tokens
          FROM llm_calls WHERE {w.sql})
    GROUP BY {", ".join(keys)}, segment
),
priced AS (
    SELECT {leading(labelled)}n, inp, outp, cost,
           (inp * v.i + outp * v.o) / 1e6 AS list_cost, (inp * p.max_i + outp * p.max_o) / 1e6 AS max_cost,
           (inp * p.med_i + outp * p.med_o) / 1e6 AS med_cost
    FROM pre LEFT JOIN segment_prices AS p ON p.model = pre.call_model AND p.segment = coalesce(pre.segment, 0)
             LEFT JOIN served AS v ON v.model = pre.call_model AND v.provider = pre.served_by
)
SELECT {leading(names)}sum(n)::BIGINT AS calls,
       coalesce(sum(n) FILTER (WHERE list_cost IS NOT NULL), 0)::BIGINT AS priced_calls,
       sum(inp)::BIGINT AS input_tokens, sum(outp)::BIGINT AS output_tokens, coalesce(sum(cost), 0) AS cost_usd,
       coalesce(sum(list_cost), 0) AS list_cost_usd,
       coalesce(sum(max_cost) FILTER (WHERE list_cost IS NOT NULL), 0) AS max_cost_usd,
       coalesce(sum(med_cost) FILTER (WHERE list_cost IS NOT NULL), 0) AS median_cost_usd,
       coalesce(sum(max_cost - list_cost), 0) AS savings_vs_max_usd,
       coalesce(sum(med_cost - list_cost), 0) AS savings_vs_median_usd
FROM priced GROUP BY ALL HAVING count(*) > 0 {order_by(names)}
"""
    return run(store, query, [*segment_params, *w.params])
