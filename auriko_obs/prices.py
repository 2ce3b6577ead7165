"""Model prices in USD per 1M tokens, each saying where it came from and when: every price auriko-obs uses.

Two sources, one record (``ModelPrice``):

- **List prices** (``LIST_PRICES``): the vendors' published prices of the models that non-Auriko endpoints
  serve, copied from their pricing pages; ``source`` is the page and ``as_of`` the day they were copied.
  They price a call that no router priced (``cost_source = 'estimate'``, and the span's
  ``auriko.cost.price_source`` names the price used). Auriko's reported cost always wins over them, and
  a model not listed gets no estimate (NULL), never 0. A list price is only as current as its ``as_of``:
  update the table (and the date) when a vendor changes prices.
- **Auriko's catalog** (``fetch_auriko_prices``): ``GET /v1/models`` lists each model's providers and their
  prices; each row's ``source`` is the URL it was read from and ``as_of`` the moment it was read.
  ``auriko_obs.analysis.refresh_prices`` caches them in the store (table ``provider_prices``, with
  ``source`` and ``fetched_at``) for ``routing_savings`` and ``provider_mix``.

This module imports only the standard library: the instrumentation prices calls with it on its hot path.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["LIST_PRICES", "ModelPrice", "estimate_cost_usd", "fetch_auriko_prices", "list_price"]


@dataclass(frozen=True)
class ModelPrice:
    """One model's price at one provider, in USD per 1M tokens, with where and when it was read."""

    model: str
    input_usd_per_1m: float | None
    output_usd_per_1m: float | None
    cached_input_usd_per_1m: float | None = None
    provider: str | None = None
    position: int | None = None  # the order /v1/models lists the model's providers in; 0 is its default
    data_policy: str | None = None
    source: str = ""  # where: the pricing page or the URL it was fetched from
    as_of: str = ""  # when: the day it was copied (YYYY-MM-DD) or the moment it was fetched (ISO-8601)

    @property
    def citation(self) -> str:
        """Returns where and when, in one string: ``https://openai.com/api/pricing @ 2026-11-25``."""
        return f"{self.source} @ {self.as_of}"


OPENAI_PRICING = "https://openai.com/api/pricing"
ANTHROPIC_PRICING = "https://www.anthropic.com/pricing#api"
_COPIED = "2026-11-25"  # when the list prices below were copied from the pages named beside them


def _listed(model: str, provider: str, source: str, prices: tuple[float, float, float]) -> ModelPrice:
    return ModelPrice(model, *prices, provider=provider, source=source, as_of=_COPIED)


# (input, output, cached input) USD per 1M tokens
LIST_PRICES: tuple[ModelPrice, ...] = (
    _listed("gpt-4o", "openai", OPENAI_PRICING, (2.50, 10.00, 1.25)),
    _listed("gpt-4o-mini", "openai", OPENAI_PRICING, (0.15, 0.60, 0.075)),
    _listed("gpt-4.1", "openai", OPENAI_PRICING, (2.00, 8.00, 0.50)),
    _listed("gpt-4.1-mini", "openai", OPENAI_PRICING, (0.40, 1.60, 0.10)),
    _listed("gpt-4.1-nano", "openai", OPENAI_PRICING, (0.10, 0.40, 0.025)),
    _listed("gpt-5", "openai", OPENAI_PRICING, (1.25, 10.00, 0.125)),
    _listed("gpt-5-mini", "openai", OPENAI_PRICING, (0.25, 2.00, 0.025)),
    _listed("o3-mini", "openai", OPENAI_PRICING, (1.10, 4.40, 0.55)),
    _listed("o4-mini", "openai", OPENAI_PRICING, (1.10, 4.40, 0.275)),
    _listed("text-embedding-3-small", "openai", OPENAI_PRICING, (0.02, 0.0, 0.02)),
    _listed("text-embedding-3-large", "openai", OPENAI_PRICING, (0.13, 0.0, 0.13)),
    _listed("claude-sonnet-4-20250514", "anthropic", ANTHROPIC_PRICING, (3.00, 15.00, 0.30)),
)
_BY_MODEL = {p.model: p for p in LIST_PRICES}
_LONGEST_FIRST = sorted(_BY_MODEL, key=len, reverse=True)


# The snapshot suffixes the price sources use: OpenAI's ``-2024-08-06`` and Anthropic's ``-20250514``.
_SNAPSHOT_DATE = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})")


@functools.lru_cache(maxsize=1024)  # a process calls few models, many times
def list_price(model: str | None) -> ModelPrice | None:
    """Returns the list price of ``model``: by its name, the part after a ``vendor/`` prefix, or the family
    of a dated snapshot (``gpt-4o-2024-08-06`` and ``claude-x-20250514`` price as ``gpt-4o`` and ``claude-x``);
    None when it is not listed. Other variants (``gpt-5-nano``, ``gpt-5-pro``) are other models, so unlisted."""
    if not model:
        return None
    name = model.rsplit("/", 1)[1] if model not in _BY_MODEL and "/" in model else model
    price = _BY_MODEL.get(name)
    if price is None:
        family = next(
            (f for f in _LONGEST_FIRST if name.startswith(f) and _SNAPSHOT_DATE.fullmatch(name[len(f) :])), None
        )
        price = _BY_MODEL[family] if family else None
    return price


def estimate_cost_usd(
    model: str | None, input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None
) -> tuple[float, ModelPrice] | None:
    """Returns (estimated USD cost, the list price used), or None when the model's price or the token counts
    are unknown. Cached input tokens are part of ``input_tokens`` and priced at the cached rate."""
    price = list_price(model)
    if price is None or input_tokens is None:
        return None
    cached = min(cached_tokens or 0, input_tokens)
    cost = (
        (input_tokens - cached) * (price.input_usd_per_1m or 0.0)
        + cached * (price.cached_input_usd_per_1m or 0.0)
        + (output_tokens or 0) * (price.output_usd_per_1m or 0.0)
    ) / 1e6
    return cost, price


def fetch_auriko_prices(base_url: str, api_key: str | None = None, *, timeout_s: float = 10.0) -> list[ModelPrice]:
    """Returns one price per (model, provider) from ``GET {base_url}/models``, stamped with the URL and now.

    Both listings are read (the default one, which has embedding models, and ``?endpoint=responses``,
    which adds Responses-only models). The API key is sent as a bearer token and never kept.
    """
    fetched_at = datetime.now(timezone.utc).isoformat()
    rows: dict[tuple[str, str], ModelPrice] = {}
    for query in ("", "?endpoint=responses"):
        url = f"{base_url.rstrip('/')}/models{query}"
        for model in _get_json(url, api_key, timeout_s).get("data") or []:
            for position, offer in enumerate(model.get("providers") or []):
                key = (str(model["id"]), str(offer["name"]))
                rows.setdefault(
                    key,
                    ModelPrice(
                        model=key[0],
                        provider=key[1],
                        position=position,
                        input_usd_per_1m=_usd(offer.get("input_price")),
                        output_usd_per_1m=_usd(offer.get("output_price")),
                        data_policy=offer.get("data_policy"),
                        source=url,
                        as_of=fetched_at,
                    ),
                )
    return list(rows.values())


def _usd(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _get_json(url: str, api_key: str | None, timeout_s: float) -> dict[str, Any]:
    import urllib.parse  # here, not at the top: the hot path imports this module, and never fetches
    import urllib.request

    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"base_url must be an http(s) URL, not {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        data = json.loads(response.read())
    return data if isinstance(data, dict) else {}
