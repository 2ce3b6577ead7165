"""Per-provider list prices from Auriko's ``GET /v1/models``, cached in the store, and what routing saved."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Sequence

from ..store._files import connect
from ._query import (StoreLike, TimeLike, Values, calls_source, dimension_sql, out_name, period_sql,
                     run, store_of, table_exists, where)

if TYPE_CHECKING:
    import pandas as pd

PRICES_TABLE = "provider_prices"


def fetch_prices(base_url: str, api_key: str | None = None, *, timeout_s: float = 10.0) -> list[dict]:
    """Returns one dict per (model, provider) from ``GET {base_url}/models``: prices in USD per 1M tokens.

    Both listings are read (the default one, which has embedding models, and ``?endpoint=responses``,
    which adds Responses-only models). Keys: model, provider, position (the order /v1/models lists the
    model's providers in; 0 is its default provider), input_usd_per_1m, output_usd_per_1m, data_policy.
    The API key is sent as a bearer token and never stored.
    """
    rows: dict[tuple[str, str], dict] = {}
    for query in ("", "?endpoint=responses"):
        for model in _get_json(f"{base_url.rstrip('/')}/models{query}", api_key, timeout_s).get("data") or []:
            for position, offer in enumerate(model.get("providers") or []):
                key = (str(model["id"]), str(offer["name"]))
                rows.setdefault(key, {
                    "model": key[0], "provider": key[1], "position": position,
                    "input_usd_per_1m": _price(offer.get("input_price")),
                    "output_usd_per_1m": _price(offer.get("output_price")),
                    "data_policy": offer.get("data_policy"),
                })
    return list(rows.values())


def _price(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _get_json(url: str, api_key: str | None, timeout_s: float) -> dict:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"base_url must be an http(s) URL, not {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (scheme checked above)
        return json.loads(response.read())


def refresh_prices(store: StoreLike, base_url: str, api_key: str | None = None, *,
                   timeout_s: float = 10.0) -> "pd.DataFrame":
    """Returns the price table after replacing the store's cached prices with a fresh ``GET /v1/models``.

    ``base_url`` is the API root the openai client uses (``https://api.auriko.ai/v1``, or a simulator's
    ``base_url``). The whole table is replaced in one transaction, stamped with ``fetched_at``.
    """
    rows = fetch_prices(base_url, api_key, timeout_s=timeout_s)
    if not rows:
        raise ValueError(f"{base_url}/models listed no provider prices")
    target = store_of(store)
    fetched_at = datetime.now(timezone.utc)
    with connect(target.path, read_only=False, wait_s=target.lock_wait_s) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {PRICES_TABLE}")
            con.executemany(
                f"INSERT INTO {PRICES_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [[r["model"], r["provider"], r["position"], r["input_usd_per_1m"], r["output_usd_per_1m"],
                  r["data_policy"], base_url, fetched_at] for r in rows],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return prices(target)


def prices(store: StoreLike = None) -> "pd.DataFrame":
    """Returns the cached provider prices: model, provider, position, input_usd_per_1m, output_usd_per_1m,
    data_policy, source, fetched_at (empty when none were fetched yet)."""
    if not table_exists(store, PRICES_TABLE):
        return run(store, "SELECT NULL::VARCHAR AS model, NULL::VARCHAR AS provider, NULL::INTEGER AS position, "
                          "NULL::DOUBLE AS input_usd_per_1m, NULL::DOUBLE AS output_usd_per_1m, "
                          "NULL::VARCHAR AS data_policy, NULL::VARCHAR AS source, "
                          "NULL::TIMESTAMPTZ AS fetched_at LIMIT 0", [])
    return run(store, f"SELECT * FROM {PRICES_TABLE} ORDER BY model, position", [])


def routing_savings(store: StoreLike = None, *, since: TimeLike = None, until: TimeLike = None,
                    by: str | Sequence[str] = ("model", "provider"), period: str | None = None,
                    model: Values = None, provider: Values = None, service: Values = None, tag: Values = None,
                    user: Values = None) -> "pd.DataFrame":
    """Returns, per group, what the calls' tokens cost at the provider that served them and what they would
    have cost at the model's most expensive and at its median provider: the money routing saved.

    Each call is priced at list prices from the cached ``GET /v1/models`` table (``refresh_prices``):
    ``cost = (input_tokens × input price + output_tokens × output price) / 1e6`` at every provider of its
    model. The most expensive and the median (the mean of the middle two for an even count) are taken per
    call, so a model whose providers rank differently for input-heavy and output-heavy calls is priced
    right. List prices leave prompt-cache discounts out: those are ``cache_savings``. Calls whose model is
    not in the price table, or that no Auriko provider served (``provider`` NULL), are counted in ``calls``
    but not priced.

    Columns: ``period_start`` (when ``period`` is given), one column per ``by`` dimension, ``calls``,
    ``priced_calls``, ``input_tokens``, ``output_tokens``, ``cost_usd`` (as reported), ``list_cost_usd``
    (at the serving provider's list price), ``max_cost_usd``, ``median_cost_usd``,
    ``savings_vs_max_usd`` (= max − list), ``savings_vs_median_usd`` (= median − list).

    Raises ValueError when no prices are cached.
    """
    if prices(store).empty:
        raise ValueError("no provider prices in the store: call auriko_obs.analysis.refresh_prices(store, base_url)")
    dims = [by] if isinstance(by, str) else list(by)
    w = where(since, until, model=model, provider=provider, service=service, tag=tag, user=user)
    keys = [f"{dimension_sql(d)} AS \"{out_name(d)}\"" for d in dims]
    if period is not None:
        keys.insert(0, f"{period_sql(period)} AS period_start")
    key_names = (["period_start"] if period is not None else []) + [f'"{out_name(d)}"' for d in dims]
    query = f"""
WITH offers AS (
    SELECT model, list(struct_pack(provider := provider, i := input_usd_per_1m, o := output_usd_per_1m)) AS offers
    FROM {PRICES_TABLE} GROUP BY model
),
priced AS (
    SELECT {', '.join(keys)},
           coalesce(c.input_tokens, 0) AS input_tokens, coalesce(c.output_tokens, 0) AS output_tokens,
           c.cost_usd, c.provider AS served_by,
           list_transform(o.offers, lambda x: (coalesce(c.input_tokens, 0) * x.i
                                          + coalesce(c.output_tokens, 0) * coalesce(x.o, 0)) / 1e6) AS costs,
           list_filter(o.offers, lambda x: x.provider = c.provider) AS served
    FROM {calls_source(w, dims)} AS c LEFT JOIN offers AS o 
        ON o.model = coalesce(c.model_canonical, c.request_model)
),
per_call AS (
    SELECT *,
           CASE WHEN len(served) = 1
                THEN (input_tokens * served[1].i + output_tokens * coalesce(served[1].o, 0)) / 1e6 END AS list_cost_usd,
           list_max(costs) AS max_cost_usd, list_median(costs) AS median_cost_usd
    FROM priced
)
SELECT {', '.join(key_names)}, count(*) AS calls, count(list_cost_usd) AS priced_calls,
       sum(input_tokens)::BIGINT AS input_tokens, sum(output_tokens)::BIGINT AS output_tokens,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       coalesce(sum(list_cost_usd), 0) AS list_cost_usd,
       coalesce(sum(max_cost_usd) FILTER (WHERE list_cost_usd IS NOT NULL), 0) AS max_cost_usd,
       coalesce(sum(median_cost_usd) FILTER (WHERE list_cost_usd IS NOT NULL), 0) AS median_cost_usd,
       coalesce(sum(max_cost_usd - list_cost_usd), 0) AS savings_vs_max_usd,
       coalesce(sum(median_cost_usd - list_cost_usd), 0) AS savings_vs_median_usd
FROM per_call GROUP BY ALL ORDER BY {', '.join(key_names)}
"""
    return run(store, query, w.params)
