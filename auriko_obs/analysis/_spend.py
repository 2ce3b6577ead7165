"""Where the money goes: provider mix over time, cost by any dimension, prompt-cache savings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._query import (
    OTHER_LABEL,
    Grouping,
    Session,
    StoreLike,
    TimeLike,
    Values,
    Where,
    _ibis,
    group_sum,
    grouping,
    model_of,
    ordered,
    out_name,
    session,
    where,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd


def provider_mix(
    store: StoreLike | Session = None,
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
    ``total_tokens``, ``cost_usd``, ``call_share`` and ``cost_share`` (of the period's total, 0–1; with
    ``by="tag"`` each call counts once in the total and once under each of its tags, so the shares can
    add up to more than 1),
    ``off_default_calls`` (calls served by a provider other than the first one ``GET /v1/models`` lists
    for the model; NULL until ``refresh_prices`` cached the catalog), ``off_default_share`` (of the
    calls whose default is known), ``top_strategy`` (the most used ``routing_strategy``).
    """
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    g = grouping([by], period)
    with session(store) as s:
        return s.run(_provider_mix(s, w, g))


def _provider_mix(s: Session, w: Where, g: Grouping) -> ir.Table:
    ibis = _ibis()
    calls = w.apply(s)
    names = g.names
    # Aggregate first: per raw key, serving provider, model and strategy; then label, join the default providers
    # and rank strategies over those few groups.
    total = calls.total_tokens.coalesce(calls.input_tokens.coalesce(0) + calls.output_tokens.coalesce(0))
    pre = calls.group_by(
        **g.keys(calls), served_by=calls.provider, call_model=model_of(calls), strategy=calls.routing_strategy
    ).aggregate(
        n=calls.count(), i=calls.input_tokens.sum(), o=calls.output_tokens.sum(), t=total.sum(), c=calls.cost_usd.sum()
    )
    base = pre.select(
        **g.labels(pre),
        served_by=pre.served_by,
        call_model=pre.call_model,
        strategy=pre.strategy,
        n=pre.n,
        i=pre.i,
        o=pre.o,
        t=pre.t,
        c=pre.c,
    )
    prices = s.prices
    defaults = prices.filter(prices.position == 0).select(d_model=prices.model, default_provider=prices.provider)
    has_defaults = defaults.count().as_scalar() > 0
    joined = base.left_join(defaults, base.call_model == defaults.d_model)
    known = joined.served_by.notnull() & joined.default_provider.notnull()
    off = known & (joined.served_by != joined.default_provider)
    totals = joined.group_by(names).aggregate(
        calls=joined.n.sum().cast("int64"),
        input_tokens=joined.i.sum().coalesce(0).cast("int64"),
        output_tokens=joined.o.sum().coalesce(0).cast("int64"),
        total_tokens=joined.t.sum().coalesce(0).cast("int64"),
        cost_usd=joined.c.sum().coalesce(0.0),
        off_n=joined.n.sum(where=off).coalesce(0).cast("int64"),
        known_n=joined.n.sum(where=known).coalesce(0).cast("int64"),
    )
    # The most used strategy of each group; ties go to the alphabetically first.
    used = base.filter(base.strategy.notnull()).group_by([*names, "strategy"]).aggregate(uses=base.n.sum())
    rank = ibis.row_number().over(group_by=names, order_by=[ibis.desc(used.uses), used.strategy])
    top = used.mutate(r=rank).filter(lambda x: x.r == 0).select(*names, top_strategy="strategy")
    out = g.with_period_totals(totals.left_join(top, names), g.period_totals(pre, all_n="n", all_c="c"))
    result = out.select(
        *names,
        calls=out.calls,
        input_tokens=out.input_tokens,
        output_tokens=out.output_tokens,
        total_tokens=out.total_tokens,
        cost_usd=out.cost_usd,
        call_share=out.calls.cast("float64") / out.all_n.nullif(0),
        cost_share=out.cost_usd / out.all_c.coalesce(0.0).nullif(0.0),
        off_default_calls=ibis.cases((has_defaults, out.off_n), else_=ibis.null("int64")),
        off_default_share=out.off_n.cast("float64") / out.known_n.nullif(0),
        top_strategy=out.top_strategy,
    )
    return result.order_by(names)


def cost_by(
    dim: str,
    store: StoreLike | Session = None,
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
    ``output_tokens``, ``cost_usd``, ``cost_share`` (of the period's total cost, each call counted once, 0–1).
    """
    if int(top) < 1:
        raise ValueError(f"top must be at least 1, not {top!r}")
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    g = grouping([dim], period)
    with session(store) as s:
        return s.run(_cost_by(s, w, g, int(top)))


def _cost_by(s: Session, w: Where, g: Grouping, top: int) -> ir.Table:
    ibis = _ibis()
    calls = w.apply(s)
    name = out_name(g.dims[0])
    pre = calls.group_by(**g.keys(calls)).aggregate(
        n=calls.count(), i=calls.input_tokens.sum(), o=calls.output_tokens.sum(), c=calls.cost_usd.sum()
    )
    base = pre.select(**g.labels(pre), n=pre.n, i=pre.i, o=pre.o, c=pre.c)
    # Rank the values over the whole window: by cost, then calls, then name.
    per_value = base.group_by(k=base[name]).aggregate(kc=base.c.sum().coalesce(0.0), kn=base.n.sum())
    order = [ibis.desc(per_value.kc), ibis.desc(per_value.kn), per_value.k]
    ranked = per_value.select(k=per_value.k, r=ibis.row_number().over(order_by=order) + 1)
    joined = base.inner_join(ranked, base[name] == ranked.k)
    kept = joined.r <= top
    folded = joined.select(
        *(["period_start"] if g.period else []),
        **{name: ibis.cases((kept, joined.k), else_=OTHER_LABEL)},
        rank=ibis.cases((kept, joined.r), else_=ibis.null("int64")),
        n=joined.n,
        i=joined.i,
        o=joined.o,
        c=joined.c,
    )
    head = ["period_start"] if g.period else []
    out = folded.group_by([*head, name, "rank"]).aggregate(
        calls=folded.n.sum().cast("int64"),
        input_tokens=folded.i.sum().coalesce(0).cast("int64"),
        output_tokens=folded.o.sum().coalesce(0).cast("int64"),
        cost_usd=folded.c.sum().coalesce(0.0),
    )
    out = g.with_period_totals(out, g.period_totals(pre, all_c="c"))
    out = out.mutate(cost_share=out.cost_usd / out.all_c.coalesce(0.0).nullif(0.0)).drop("all_c")
    return out.order_by([*head, ibis.asc("rank", nulls_first=False)])


def cache_savings(
    store: StoreLike | Session = None,
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
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    g = grouping(by, period)
    with session(store) as s:
        return s.run(_cache_savings(s, w, g))


def _cache_savings(s: Session, w: Where, g: Grouping) -> ir.Table:
    calls = w.apply(s)
    aggregates = {
        "n": calls.count(),
        "inp": calls.input_tokens.coalesce(0).sum(),
        "cached": calls.cached_tokens.coalesce(0).sum(),
        "written": calls.cache_write_tokens.coalesce(0).sum(),
        "cost": calls.cost_usd.coalesce(0.0).sum(),
        "saved": calls.cache_savings_usd.coalesce(0.0).sum(),
    }
    keys = g.keys(calls)
    pre = calls.group_by(**keys).aggregate(**aggregates) if keys else calls.aggregate(**aggregates)
    base = pre.select(
        **g.labels(pre), n=pre.n, inp=pre.inp, cached=pre.cached, written=pre.written, cost=pre.cost, saved=pre.saved
    )
    out = group_sum(
        base,
        g.names,
        calls=base.n.sum().cast("int64"),
        input_tokens=base.inp.sum().cast("int64"),
        cached_tokens=base.cached.sum().cast("int64"),
        uncached_input_tokens=(base.inp.sum() - base.cached.sum()).cast("int64"),
        cache_write_tokens=base.written.sum().cast("int64"),
        cache_hit_ratio=base.cached.sum().cast("float64") / base.inp.sum().nullif(0),
        cost_usd=base.cost.sum(),
        cache_savings_usd=base.saved.sum(),
        cost_without_cache_usd=base.cost.sum() + base.saved.sum(),
        savings_percent=100 * base.saved.sum() / (base.cost.sum() + base.saved.sum()).nullif(0.0),
    )
    # Without groups (by=[], period=None) an aggregate of no calls would still make a row of zeros.
    return ordered(out.filter(out.calls > 0), g.names)
