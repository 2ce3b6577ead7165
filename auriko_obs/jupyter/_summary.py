"""Returns spend summaries of a set of calls (one cell, one session), computed in DuckDB, and renders them.

The footer under a cell and ``%auriko_obs status`` show the same facts: calls, input/output/cached
tokens, cost, cache savings, providers, errors by code, and the last credit balance and budget headers
Auriko reported (plus the session budget when one is set).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._display import count, usd

SESSION_ATTR = "auriko.notebook.session"
RUN_ATTR = "auriko.notebook.run"
PERIODS = ("daily", "weekly", "monthly")


def attribute_sql(name: str) -> str:
    """Returns the SQL expression reading one span attribute, as text, from the ``attributes`` JSON."""
    return f"json_extract_string(attributes, '$.\"{name}\"')"


def _budget_columns() -> str:
    parts = []
    for period in PERIODS:
        for what in ("limit", "spend"):
            value = f"TRY_CAST({attribute_sql(f'auriko.budget.{period}.{what}_usd')} AS DOUBLE)"
            parts.append(f"arg_max({value}, end_time) FILTER (WHERE {value} IS NOT NULL) AS {period}_{what}_usd")
    return ",\n       ".join(parts)


SUMMARY_SQL = f"""
WITH picked AS (SELECT * FROM llm_calls WHERE start_time >= ? AND {attribute_sql("{attr}")} = ?)
SELECT count(*) AS calls,
       coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
       coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
       coalesce(sum(cached_tokens), 0)::BIGINT AS cached_tokens,
       sum(cost_usd) AS cost_usd,
       count(*) FILTER (WHERE cost_usd IS NULL AND status = 'ok') AS unpriced_calls,
       coalesce(sum(cache_savings_usd), 0) AS cache_savings_usd,
       arg_max(credits_balance_usd, end_time) FILTER (WHERE credits_balance_usd IS NOT NULL) AS credits_balance_usd,
       {_budget_columns()},
       (SELECT list(struct_pack(name := p, calls := n) ORDER BY n DESC, p)
          FROM (SELECT coalesce(provider, 'not routed') AS p, count(*) AS n FROM picked
                WHERE status = 'ok' OR provider IS NOT NULL GROUP BY 1)) AS providers,
       (SELECT list(struct_pack(code := c, calls := n) ORDER BY n DESC, c)
          FROM (SELECT coalesce(error_code, error_type, 'error') AS c, count(*) AS n FROM picked
                WHERE status = 'error' GROUP BY 1)) AS errors
FROM picked
"""


@dataclass
class Summary:
    """What a set of calls cost: the facts a footer or ``%auriko_obs status`` shows."""

    label: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    unpriced_calls: int = 0
    cache_savings_usd: float = 0.0
    providers: list[tuple[str, int]] = field(default_factory=list)
    errors: list[tuple[str, int]] = field(default_factory=list)
    credits_balance_usd: float | None = None
    budgets: dict[str, tuple[float, float]] = field(default_factory=dict)  # period → (spend, limit)
    session_budget: tuple[float, float] | None = None  # (session spend, limit) when a budget is set


def summarize(store_path: str, *, label: str, attr: str, value: str, since: datetime) -> Summary:
    """Returns the Summary of the calls whose span attribute ``attr`` equals ``value``, started since ``since``."""
    from ..store import Store

    row = Store(store_path).sql(SUMMARY_SQL.replace("{attr}", attr), [since, value]).iloc[0]
    summary = Summary(
        label=label,
        calls=int(row["calls"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cached_tokens=int(row["cached_tokens"]),
        cost_usd=_float(row["cost_usd"]),
        unpriced_calls=int(row["unpriced_calls"]),
        cache_savings_usd=_float(row["cache_savings_usd"]) or 0.0,
        credits_balance_usd=_float(row["credits_balance_usd"]),
    )
    summary.providers = [(item["name"], int(item["calls"])) for item in _items(row["providers"])]
    summary.errors = [(item["code"], int(item["calls"])) for item in _items(row["errors"])]
    for period in PERIODS:
        limit, spend = _float(row[f"{period}_limit_usd"]), _float(row[f"{period}_spend_usd"])
        if limit is not None:
            summary.budgets[period] = (spend or 0.0, limit)
    return summary


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def _items(value: Any) -> list:
    try:
        return list(value)
    except TypeError:  # NULL: no providers or no errors
        return []


def _facts(summary: Summary) -> list[tuple[str, str]]:
    """Returns (kind, text) pieces, in display order."""
    s = summary
    facts = [
        ("calls", f"{count(s.calls)} call{'s' if s.calls != 1 else ''}"),
        (
            "tokens",
            f"{count(s.input_tokens)} in / {count(s.output_tokens)} out / {count(s.cached_tokens)} cached tokens",
        ),
    ]
    if s.cost_usd is None and s.unpriced_calls:
        cost = "cost unknown"
    else:
        cost = usd(s.cost_usd or 0.0)  # failed calls are not billed
        if s.unpriced_calls:
            cost += f" (+{s.unpriced_calls} unpriced)"
    facts.append(("cost", cost))
    if s.cache_savings_usd:
        facts.append(("savings", f"cache saved {usd(s.cache_savings_usd)}"))
    if s.providers:
        facts.append(("providers", ", ".join(f"{name} ×{n}" for name, n in s.providers)))
    if s.errors:
        facts.append(("errors", ", ".join(f"{n} × {code}" for code, n in s.errors)))
    if s.session_budget is not None:
        spent, limit = s.session_budget
        facts.append(
            ("budget", f"session budget {usd(spent)} of {usd(limit)} used, {usd(max(limit - spent, 0.0))} left")
        )
    for period, (spend, limit) in s.budgets.items():
        facts.append(("budget", f"{period} budget {usd(spend)} of {usd(limit)} used"))
    if s.credits_balance_usd is not None:
        facts.append(("credit", f"credit {usd(s.credits_balance_usd)} left"))
    return facts


def render_text(summary: Summary) -> str:
    """Returns the summary as one line of text (terminal IPython, logs)."""
    return f"auriko-obs · {summary.label}: " + " · ".join(text for _, text in _facts(summary))


_COLORS = {"errors": "#b3261e", "cost": "#1b5e20", "savings": "#1b5e20"}


def render_html(summary: Summary) -> str:
    """Returns the summary as a compact HTML block (Jupyter)."""
    pieces = []
    for kind, text in _facts(summary):
        color = _COLORS.get(kind)
        style = f"color:{color};font-weight:600" if color else ""
        pieces.append(f'<span class="auriko-obs-{kind}" style="{style}">{html.escape(text)}</span>')
    separator = '<span style="opacity:.5"> · </span>'
    return (
        '<div class="auriko-obs-footer" style="font:12px/1.5 ui-monospace,monospace;border-left:3px solid '
        '#6750a4;padding:2px 8px;margin:4px 0;opacity:.9">'
        f"<b>auriko-obs</b> · {html.escape(summary.label)}: {separator.join(pieces)}</div>"
    )


def mime_bundle(summary: Summary) -> dict[str, str]:
    """Returns the summary as a display bundle with both text/plain and text/html."""
    return {"text/plain": render_text(summary), "text/html": render_html(summary)}
