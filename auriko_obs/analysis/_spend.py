"""Where the money goes: provider mix over time, cost by any dimension, prompt-cache savings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ._prices import PRICES_TABLE, prices
from ._query import (OTHER_LABEL, StoreLike, TimeLike, Values, calls_source, dimension_sql, out_name, period_sql,
                     run, where)

# The most used routing strategy; ties go to the alphabetically first, so results are reproducible.
TOP_STRATEGY = ("list_sort(list_transform(map_entries(histogram(routing_strategy)), "
                "lambda e: struct_pack(n := -CAST(e.value AS BIGINT), k := e.key)))[1].k")

if TYPE_CHECKING:
    import pandas as pd


def _keys(dims: Sequence[str], period: str | None) -> tuple[list[str], list[str]]:
    """Returns (SELECT expressions, output names) of the grouping keys: period_start first when asked for."""
    exprs = [f'{dimension_sql(d)} AS "{out_name(d)}"' for d in dims]
    names = [f'"{out_name(d)}"' for d in dims]
    if period is not None:
        exprs.insert(0, f"{period_sql(period)} AS period_start")
        names.insert(0, "period_start")
    return exprs, names


def provider_mix(store: StoreLike = None, *, since: TimeLike = None, until: TimeLike = None, by: str = "provider",
                 period: str | None = "day", model: Values = None, provider: Values = None, service: Values = None,
                 tag: Values = None, user: Values = None) -> "pd.DataFrame":
    """Returns calls, tokens, cost and their share per provider (or ``by`` another dimension) per UTC period.

    Answers: which providers serve our traffic, how that shifts over time, how often Auriko's routing
    moved a model off its default provider, and which routing strategy was used.

    Columns: ``period_start`` (UTC, when ``period`` is hour, day, week or month), ``<by>`` (NULL shown as
    ``(none)``: calls no Auriko provider served), ``calls``, ``input_tokens``, ``output_tokens``,
    ``total_tokens``, ``cost_usd``, ``call_share`` and ``cost_share`` (of the period's total, 0–1),
    ``off_default_calls`` (calls served by a provider other than the first one ``GET /v1/models`` lists
    for the model; NULL until ``refresh_prices`` cached the catalog), ``off_default_share`` (of the
    calls whose default is known), ``top_strategy`` (the most used ``routing_strategy``).
    """
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    exprs, names = _keys([by], period)
    has_defaults = not prices(store).empty
    defaults = (f"(SELECT model AS d_model, provider AS default_provider FROM {PRICES_TABLE} WHERE position = 0)"
                if has_defaults else "(SELECT NULL::VARCHAR AS d_model, NULL::VARCHAR AS default_provider LIMIT 0)")
    off_default = ("count(*) FILTER (WHERE served_by IS NOT NULL AND default_provider IS NOT NULL "
                   "AND served_by <> default_provider)")
    known = "count(*) FILTER (WHERE served_by IS NOT NULL AND default_provider IS NOT NULL)"
    partition = "PARTITION BY period_start" if period is not None else ""
    query = f"""
WITH base AS (
    SELECT {', '.join(exprs)}, provider AS served_by, coalesce(model_canonical, request_model) AS call_model,
           routing_strategy, input_tokens, output_tokens,
           coalesce(total_tokens, coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) AS call_tokens, cost_usd
    FROM {calls_source(w, [by])}
)
SELECT {', '.join(names)}, count(*) AS calls,
       coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
       coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
       coalesce(sum(call_tokens), 0)::BIGINT AS total_tokens,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       count(*) / sum(count(*)) OVER ({partition}) AS call_share,
       coalesce(sum(cost_usd), 0) / nullif(sum(coalesce(sum(cost_usd), 0)) OVER ({partition}), 0) AS cost_share,
       CASE WHEN {'TRUE' if has_defaults else 'FALSE'} THEN {off_default} END AS off_default_calls,
       {off_default} / nullif({known}, 0) AS off_default_share,
       {TOP_STRATEGY} AS top_strategy
FROM base LEFT JOIN {defaults} AS d ON d.d_model = base.call_model
GROUP BY {', '.join(names)} ORDER BY {', '.join(names)}
"""
    return run(store, query, w.params)


def cost_by(dim: str, store: StoreLike = None, *, top: int = 10, since: TimeLike = None, until: TimeLike = None,
            period: str | None = None, model: Values = None, provider: Values = None, service: Values = None,
            tag: Values = None, user: Values = None) -> "pd.DataFrame":
    """Returns cost and tokens per value of ``dim``: the ``top`` values by cost, the rest summed as ``other``.

    Answers: who or what spends (a model, provider, tag, user_id, service_name, notebook_cell, any
    groupable ``llm_calls`` column, or the aliases ``model``, ``user``, ``service``). With ``dim="tag"``
    a call counts once under each of its tags, so the shares of tags can add up to more than 1.

    Columns: ``period_start`` (when ``period`` is given), ``<dim>`` (NULL shown as ``(none)``), ``rank``
    (1 = most expensive over the whole window; NULL for ``other``), ``calls``, ``input_tokens``,
    ``output_tokens``, ``cost_usd``, ``cost_share`` (of the period's total, 0–1).
    """
    if int(top) < 1:
        raise ValueError(f"top must be at least 1, not {top!r}")
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    name = f'"{out_name(dim)}"'
    key = dimension_sql(dim)
    period_expr = period_sql(period)
    head = "period_start, " if period is not None else ""
    partition = "PARTITION BY period_start" if period is not None else ""
    query = f"""
WITH base AS (
    SELECT {key} AS k, {period_expr} AS period_start, input_tokens, output_tokens, cost_usd
    FROM {calls_source(w, [dim])}
),
ranked AS (
    SELECT k, row_number() OVER (ORDER BY coalesce(sum(cost_usd), 0) DESC, count(*) DESC, k) AS r
    FROM base GROUP BY k
),
folded AS (
    SELECT CASE WHEN r <= ? THEN k ELSE '{OTHER_LABEL}' END AS {name},
           CASE WHEN r <= ? THEN r END AS rank, base.*
    FROM base JOIN ranked USING (k)
)
SELECT {head}{name}, rank, count(*) AS calls,
       coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
       coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       coalesce(sum(cost_usd), 0) / nullif(sum(coalesce(sum(cost_usd), 0)) OVER ({partition}), 0) AS cost_share
FROM folded GROUP BY {head}{name}, rank ORDER BY {head}rank NULLS LAST
"""
    return run(store, query, [*w.params, int(top), int(top)])


def cache_savings(store: StoreLike = None, *, since: TimeLike = None, until: TimeLike = None,
                  by: str | Sequence[str] = ("model", "provider"), period: str | None = "day", model: Values = None,
                  provider: Values = None, service: Values = None, tag: Values = None,
                  user: Values = None) -> "pd.DataFrame":
    """Returns prompt-cache use and what it saved, per model and provider (or ``by``) per UTC period.

    Answers: how much of our input is served from the prompt cache, how many tokens were written to it,
    how much money that saved, and what the same traffic would have cost without caching.
    ``cache_savings_usd`` is the router-reported ``routing_metadata.cost.cache_savings_usd``; Auriko
    omits it when it is zero, so a missing value counts as 0.

    Columns: ``period_start`` (when ``period`` is given), one column per ``by`` dimension, ``calls``,
    ``input_tokens`` (cached included), ``cached_tokens``, ``uncached_input_tokens``,
    ``cache_write_tokens``, ``cache_hit_ratio`` (cached / input tokens, 0–1; NULL without input),
    ``cost_usd``, ``cache_savings_usd``, ``cost_without_cache_usd`` (= cost + savings),
    ``savings_percent`` (100 × savings / cost without cache).
    """
    dims = [by] if isinstance(by, str) else list(by)
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    exprs, names = _keys(dims, period)
    query = f"""
WITH base AS (
    SELECT {', '.join(exprs)}, coalesce(input_tokens, 0) AS input_tokens, coalesce(cached_tokens, 0) AS cached,
           coalesce(cache_write_tokens, 0) AS written, coalesce(cost_usd, 0) AS cost,
           coalesce(cache_savings_usd, 0) AS saved
    FROM {calls_source(w, dims)}
)
SELECT {', '.join(names)}, count(*) AS calls,
       sum(input_tokens)::BIGINT AS input_tokens, sum(cached)::BIGINT AS cached_tokens,
       (sum(input_tokens) - sum(cached))::BIGINT AS uncached_input_tokens,
       sum(written)::BIGINT AS cache_write_tokens,
       sum(cached) / nullif(sum(input_tokens), 0) AS cache_hit_ratio,
       sum(cost) AS cost_usd, sum(saved) AS cache_savings_usd, sum(cost) + sum(saved) AS cost_without_cache_usd,
       100 * sum(saved) / nullif(sum(cost) + sum(saved), 0) AS savings_percent
FROM base GROUP BY ALL ORDER BY {', '.join(names)}
"""
    return run(store, query, w.params)
