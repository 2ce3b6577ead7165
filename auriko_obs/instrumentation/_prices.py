"""Returns price-table cost estimates for calls that no router priced (non-Auriko endpoints).

USD per 1M tokens: (input, output, cached input). Auriko's reported cost always wins over this table;
a model not listed here gets no estimate (NULL), never 0.
"""

from __future__ import annotations

PRICES_PER_1M: dict[str, tuple[float, float, float]] = {
    "gpt-4o": (2.50, 10.00, 1.25),
    "gpt-4o-mini": (0.15, 0.60, 0.075),
    "gpt-4.1": (2.00, 8.00, 0.50),
    "gpt-4.1-mini": (0.40, 1.60, 0.10),
    "gpt-4.1-nano": (0.10, 0.40, 0.025),
    "gpt-5": (1.25, 10.00, 0.125),
    "gpt-5-mini": (0.25, 2.00, 0.025),
    "o3-mini": (1.10, 4.40, 0.55),
    "o4-mini": (1.10, 4.40, 0.275),
    "text-embedding-3-small": (0.02, 0.0, 0.02),
    "text-embedding-3-large": (0.13, 0.0, 0.13),
    "claude-sonnet-4-20250514": (3.00, 15.00, 0.30),
}


def estimate_cost_usd(
    model: str | None, input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None
) -> float | None:
    """Returns the estimated USD cost, or None when the model's price or the token counts are unknown."""
    if not model or input_tokens is None:
        return None
    price = PRICES_PER_1M.get(model)
    if price is None and "/" in model:
        price = PRICES_PER_1M.get(model.rsplit("/", 1)[1])
    if price is None:
        # Dated snapshots ("gpt-4o-2024-08-06") price like their family.
        price = next(
            (
                p
                for name, p in sorted(PRICES_PER_1M.items(), key=lambda kv: -len(kv[0]))
                if model.startswith(name + "-")
            ),
            None,
        )
    if price is None:
        return None
    in_price, out_price, cached_price = price
    cached = min(cached_tokens or 0, input_tokens)
    return ((input_tokens - cached) * in_price + cached * cached_price + (output_tokens or 0) * out_price) / 1e6
