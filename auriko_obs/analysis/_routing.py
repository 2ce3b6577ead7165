"""Auriko's per-provider prices cached in the store (``auriko_obs.prices`` fetches them), and what routing saved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..prices import fetch_auriko_prices
from ..store import PRICES_COLUMNS, PRICES_FILE, LakeLocation, connect
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
    model_of,
    ordered,
    session,
    store_of,
    where,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir
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
    ``base_url``). The whole table is replaced in one transaction, stamped with ``fetched_at``; in a lake (a folder
    or ``s3://``), ``_auriko_obs/provider_prices.parquet`` is replaced at once, published as the lake writer
    publishes its files.
    """
    rows = fetch_auriko_prices(base_url, api_key, timeout_s=timeout_s)
    if not rows:
        raise ValueError(f"{base_url}/models listed no provider prices")
    target = store_of(store)
    if target.is_lake:
        _write_lake_prices(
            target.path,
            [
                {**asdict(p), "source": base_url, "fetched_at": datetime.fromisoformat(p.as_of.replace("Z", "+00:00"))}
                for p in rows
            ],
        )
        return prices(target)
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


def _write_lake_prices(root: str, rows: list[dict]) -> None:
    """Replaces a lake's price file (a local folder or S3) as the lake writer publishes its files: written
    whole under a temporary name and renamed (locally), or put as one object (S3); readers never see half."""
    import pyarrow as pa

    types = {
        "VARCHAR": pa.string(),
        "INTEGER": pa.int32(),
        "DOUBLE": pa.float64(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    }
    schema = pa.schema([(name, types[sql_type]) for name, sql_type in PRICES_COLUMNS])
    table = pa.Table.from_pylist([{name: r.get(name) for name in schema.names} for r in rows], schema=schema)
    folder, name = PRICES_FILE.rsplit("/", 1)
    LakeLocation(root).write_table(folder, name, table, compression="zstd")


def prices(store: StoreLike | Session = None) -> pd.DataFrame:
    """Returns the cached provider prices: model, provider, position, input_usd_per_1m, output_usd_per_1m,
    data_policy, source, fetched_at (empty when none were fetched yet)."""
    with session(store) as s:
        return s.run(s.prices.order_by(["model", "position"]))


def routing_savings(
    store: StoreLike | Session = None,
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
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    g = grouping(by, period)
    with session(store) as s:
        table = prices(s)
        if table.empty:
            raise ValueError(
                "no provider prices in the store: call auriko_obs.analysis.refresh_prices(store, base_url)"
            )
        return s.run(_routing_savings(s, w, g, table))


@dataclass(frozen=True)
class _Segment:
    """The providers' ranking of one model between two crossings: its most expensive and median prices."""

    model: str
    segment: int
    max_i: float
    max_o: float
    med_i: float
    med_o: float


def _segments(table: pd.DataFrame) -> tuple[dict[str, list[float]], list[_Segment]]:
    """Returns each model's crossings (the input shares where two providers' costs cross, ascending) and the
    max and median prices of every segment between them.

    A call's cost at a provider, (input × i + output × o) / 1e6, ranks its model's providers by the call's
    input share t = input / (input + output) alone, and that ranking changes only at the t where two
    providers' costs cross. The price table is small, so this is worked out here, once per analysis."""
    offers: dict[str, list[tuple[float, float]]] = {}
    columns = (table[name].tolist() for name in ("model", "input_usd_per_1m", "output_usd_per_1m"))
    for model, input_price, output_price in zip(*columns, strict=True):
        if input_price is not None and input_price == input_price:  # not NULL, not NaN
            output = 0.0 if output_price is None or output_price != output_price else float(output_price)
            offers.setdefault(model, []).append((float(input_price), output))
    crossings: dict[str, list[float]] = {}
    segments = []
    for model_id, listed in offers.items():
        found = set()
        for a, (ai, ao) in enumerate(listed):
            for bi, bo in listed[a + 1 :]:
                if (ai - bi) != (ao - bo):
                    t = (bo - ao) / ((ai - bi) - (ao - bo))
                    if 0 < t < 1:
                        found.add(t)
        ts = sorted(found)
        if ts:
            crossings[model_id] = ts
        bounds = [0.0, *ts, 1.0]
        for k in range(len(bounds) - 1):
            mid = (bounds[k] + bounds[k + 1]) / 2
            ranked = sorted(listed, key=_cost_at(mid))
            n = len(ranked)
            middle = ranked[(n + 1) // 2 - 1], ranked[n // 2]
            segments.append(
                _Segment(
                    model_id,
                    k,
                    ranked[-1][0],
                    ranked[-1][1],
                    (middle[0][0] + middle[1][0]) / 2,
                    (middle[0][1] + middle[1][1]) / 2,
                )
            )
    return crossings, segments


def _cost_at(share: float) -> Any:
    """Returns the cost per token of an offer (input price, output price) at a call's input share."""

    def cost(offer: tuple[float, float]) -> float:
        return share * offer[0] + (1 - share) * offer[1]

    return cost


def _routing_savings(s: Session, w: Where, g: Grouping, table: pd.DataFrame) -> ir.Table:
    ibis = _ibis()
    crossings, segments = _segments(table)
    calls = w.apply(s)
    inp, outp = calls.input_tokens.coalesce(0), calls.output_tokens.coalesce(0)
    share = ibis.cases((inp + outp > 0, inp.cast("float64") / (inp + outp)), else_=ibis.null("float64"))
    call_model = model_of(calls)
    # Each call finds its segment by counting the crossings of its model below its input share t (NULL for a
    # call without tokens, which is then priced at segment 0: it costs nothing anywhere).
    segment: Any = ibis.literal(0)
    if crossings:
        segment = ibis.cases(
            *(
                (call_model == m, sum(((share > t).cast("int32") for t in ts), ibis.literal(0)))
                for m, ts in crossings.items()
            ),
            else_=ibis.literal(0),
        )
    pre = calls.group_by(**g.keys(calls), segment=segment, call_model=call_model, served_by=calls.provider).aggregate(
        n=calls.count(), inp=inp.sum(), outp=outp.sum(), cost=calls.cost_usd.sum()
    )
    seg = ibis.memtable(
        {
            "s_model": [x.model for x in segments],
            "s_segment": [x.segment for x in segments],
            "max_i": [x.max_i for x in segments],
            "max_o": [x.max_o for x in segments],
            "med_i": [x.med_i for x in segments],
            "med_o": [x.med_o for x in segments],
        },
        schema={
            "s_model": "string",
            "s_segment": "int32",
            "max_i": "float64",
            "max_o": "float64",
            "med_i": "float64",
            "med_o": "float64",
        },
    )
    p = s.prices
    served = p.group_by(v_model=p.model, v_provider=p.provider).aggregate(
        i=ibis.cases((p.count() == 1, p.input_usd_per_1m.max()), else_=ibis.null("float64")),
        o=p.output_usd_per_1m.max().coalesce(0.0),
    )
    priced = pre.left_join(seg, (pre.call_model == seg.s_model) & (pre.segment.coalesce(0) == seg.s_segment)).left_join(
        served, (pre.call_model == served.v_model) & (pre.served_by == served.v_provider)
    )
    base = priced.select(
        **g.labels(priced),
        n=priced.n,
        inp=priced.inp,
        outp=priced.outp,
        cost=priced.cost,
        list_cost=(priced.inp * priced.i + priced.outp * priced.o) / 1e6,
        max_cost=(priced.inp * priced.max_i + priced.outp * priced.max_o) / 1e6,
        med_cost=(priced.inp * priced.med_i + priced.outp * priced.med_o) / 1e6,
    )
    listed = base.list_cost.notnull()
    out = group_sum(
        base,
        g.names,
        calls=base.n.sum().cast("int64"),
        priced_calls=base.n.sum(where=listed).coalesce(0).cast("int64"),
        input_tokens=base.inp.sum().cast("int64"),
        output_tokens=base.outp.sum().cast("int64"),
        cost_usd=base.cost.sum().coalesce(0.0),
        list_cost_usd=base.list_cost.sum().coalesce(0.0),
        max_cost_usd=base.max_cost.sum(where=listed).coalesce(0.0),
        median_cost_usd=base.med_cost.sum(where=listed).coalesce(0.0),
        savings_vs_max_usd=(base.max_cost - base.list_cost).sum().coalesce(0.0),
        savings_vs_median_usd=(base.med_cost - base.list_cost).sum().coalesce(0.0),
    )
    # Without groups (by=[], period=None) an aggregate of no calls would still make a row of zeros.
    return ordered(out.filter(out.calls > 0), g.names)
