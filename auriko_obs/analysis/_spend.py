"""Where the money goes: provider mix over time, cost by any dimension, prompt-cache savings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._query import (
    MODEL_SQL,
    OTHER_LABEL,
    StoreLike,
    TimeLike,
    Values,
    grouping,
    leading,
    order_by,
    out_name,
    run,
    session,
    where,
)
from ._routing import PRICES_TABLE, prices

if TYPE_CHECKING:
    import pandas as pd


def provider_mix(
    store: StoreLike = None,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    by: str = "provider",
    period: str | None = "day",
    model: Values = None,
    provider: Values = None,
    service: Values = None,
    tag: Values = None,
    user: Values = None,
) -> pd.DataFrame:
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
    pre, labelled, names = grouping([by], period)
    with session(store) as s:
        has_defaults = not prices(s).empty
        defaults = (
            f"(SELECT model AS d_model, provider AS default_provider FROM {PRICES_TABLE} WHERE position = 0)"
            if has_defaults
            else "(SELECT NULL::VARCHAR AS d_model, NULL::VARCHAR AS default_provider LIMIT 0)"
        )
        off = "served_by IS NOT NULL AND default_provider IS NOT NULL AND served_by <> default_provider"
        known = "served_by IS NOT NULL AND default_provider IS NOT NULL"
        partition = "PARTITION BY base.period_start" if period is not None else ""
        # Aggregate first: per raw key, serving provider, model and strategy; then label, join the defaults and
        # rank strategies over those few groups (ties to the alphabetically first strategy).
        query = f"""
WITH pre AS (
    SELECT {", ".join(pre)}, provider AS served_by, {MODEL_SQL} AS call_model, routing_strategy,
           count(*) AS n, sum(input_tokens) AS i, sum(output_tokens) AS o,
           sum(coalesce(total_tokens, coalesce(input_tokens, 0) + coalesce(output_tokens, 0))) AS t, sum(cost_usd) AS c
    FROM llm_calls WHERE {w.sql} GROUP BY ALL
),
base AS (
    SELECT {", ".join(labelled)}, served_by, call_model, routing_strategy, n, i, o, t, c FROM pre
),
strategies AS (
    SELECT {", ".join(names)}, routing_strategy, sum(n) AS uses FROM base
    WHERE routing_strategy IS NOT NULL GROUP BY ALL
),
top AS (
    SELECT {", ".join(names)}, arg_min(routing_strategy, (-uses, routing_strategy)) AS top_strategy
    FROM strategies GROUP BY ALL
)
SELECT {", ".join(f"base.{n} AS {n}" for n in names)}, sum(n)::BIGINT AS calls,
       coalesce(sum(i), 0)::BIGINT AS input_tokens, coalesce(sum(o), 0)::BIGINT AS output_tokens,
       coalesce(sum(t), 0)::BIGINT AS total_tokens, coalesce(sum(c), 0) AS cost_usd,
       sum(n)::DOUBLE / sum(sum(n)) OVER ({partition}) AS call_share,
       coalesce(sum(c), 0) / nullif(sum(coalesce(sum(c), 0)) OVER ({partition}), 0) AS cost_share,
       CASE WHEN {"TRUE" if has_defaults else "FALSE"} THEN coalesce(sum(n) FILTER (WHERE {off}), 0)::BIGINT END
           AS off_default_calls,
       coalesce(sum(n) FILTER (WHERE {off}), 0)::DOUBLE / nullif(coalesce(sum(n) FILTER (WHERE {known}), 0), 0)
           AS off_default_share,
       any_value(top.top_strategy) AS top_strategy
FROM base LEFT JOIN {defaults} AS d ON d.d_model = base.call_model
     LEFT JOIN top ON {" AND ".join(f"top.{n} = base.{n}" for n in names)}
GROUP BY {", ".join(f"base.{n}" for n in names)} ORDER BY {", ".join(f"base.{n}" for n in names)}
"""
        return run(s, query, w.params)


def cost_by(
    dim: str,
    store: StoreLike = None,
    *,
    top: int = 10,
    since: TimeLike = None,
    until: TimeLike = None,
    period: str | None = None,
    model: Values = None,
    provider: Values = None,
    service: Values = None,
    tag: Values = None,
    user: Values = None,
) -> pd.DataFrame:
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
    pre, labelled, _ = grouping([dim], period)
    head = "period_start, " if period is not None else ""
    partition = "PARTITION BY period_start" if period is not None else ""
    query = f"""
WITH pre AS (
    SELECT {", ".join(pre)}, count(*) AS n, sum(input_tokens) AS i, sum(output_tokens) AS o, sum(cost_usd) AS c
    FROM llm_calls WHERE {w.sql} GROUP BY ALL
),
base AS (SELECT {", ".join(labelled)}, n, i, o, c FROM pre),
ranked AS (
    SELECT {name} AS k, row_number() OVER (ORDER BY coalesce(sum(c), 0) DESC, sum(n) DESC, {name}) AS r
    FROM base GROUP BY {name}
),
folded AS (
    SELECT CASE WHEN r <= ? THEN k ELSE '{OTHER_LABEL}' END AS {name},
           CASE WHEN r <= ? THEN r END AS rank, base.* EXCLUDE ({name})
    FROM base JOIN ranked ON ranked.k = base.{name}
)
SELECT {head}{name}, rank, sum(n)::BIGINT AS calls,
       coalesce(sum(i), 0)::BIGINT AS input_tokens,
       coalesce(sum(o), 0)::BIGINT AS output_tokens,
       coalesce(sum(c), 0) AS cost_usd,
       coalesce(sum(c), 0) / nullif(sum(coalesce(sum(c), 0)) OVER ({partition}), 0) AS cost_share
FROM folded GROUP BY {head}{name}, rank ORDER BY {head}rank NULLS LAST
"""
    with session(store) as s:
        return run(s, query, [*w.params, int(top), int(top)])


def cache_savings(
    store: StoreLike = None,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    by: str | Sequence[str] = ("model", "provider"),
    period: str | None = "day",
    model: Values = None,
    provider: Values = None,
    service: Values = None,
    tag: Values = None,
    user: Values = None,
) -> pd.DataFrame:
    """Returns prompt-cache use and what it saved, per model and provider (or ``by``) per UTC period.

    Answers: how much of our input is served from the prompt cache, how many tokens were written to it,
    how much money that saved, and what the same traffic would have cost without caching.
    ``cache_savings_usd`` is the router-reported ``routing_metadata.cost.cache_savings_usd``; Auriko
    omits it when it is zero, so a missing value counts as 0.

    Columns: ``period_start`` (when ``period`` is given), one column per ``by`` dimension (none for ``by=[]``:
    the totals), ``calls``, ``input_tokens`` (cached included), ``cached_tokens``, ``uncached_input_tokens``,
    ``cache_write_tokens``, ``cache_hit_ratio`` (cached / input tokens, 0–1; NULL without input),
    ``cost_usd``, ``cache_savings_usd``, ``cost_without_cache_usd`` (= cost + savings),
    ``savings_percent`` (100 × savings / cost without cache).
    """
    dims = [by] if isinstance(by, str) else list(by)
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    pre, labelled, names = grouping(dims, period)
    # HAVING: without groups (by=[], period=None) an aggregate of no calls would still make a row of zeros.
    query = f"""
WITH pre AS (
    SELECT {leading(pre)}count(*) AS n, sum(coalesce(input_tokens, 0)) AS input_tokens,
           sum(coalesce(cached_tokens, 0)) AS cached, sum(coalesce(cache_write_tokens, 0)) AS written,
           sum(coalesce(cost_usd, 0)) AS cost, sum(coalesce(cache_savings_usd, 0)) AS saved
    FROM llm_calls WHERE {w.sql} GROUP BY ALL
),
base AS (SELECT {leading(labelled)}n, input_tokens, cached, written, cost, saved FROM pre)
SELECT {leading(names)}sum(n)::BIGINT AS calls,
       sum(input_tokens)::BIGINT AS input_tokens, sum(cached)::BIGINT AS cached_tokens,
       (sum(input_tokens) - sum(cached))::BIGINT AS uncached_input_tokens,
       sum(written)::BIGINT AS cache_write_tokens,
       (sum(cached) / nullif(sum(input_tokens), 0))::DOUBLE AS cache_hit_ratio,
       sum(cost) AS cost_usd, sum(saved) AS cache_savings_usd, sum(cost) + sum(saved) AS cost_without_cache_usd,
       100 * sum(saved) / nullif(sum(cost) + sum(saved), 0) AS savings_percent
FROM base GROUP BY ALL HAVING sum(n) > 0 {order_by(names)}
"""
    with session(store) as s:
        return run(s, query, w.params)
