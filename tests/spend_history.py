"""Stores with known contents for report, budget and dashboard tests: rows written straight into ``span_rows``
(the table behind the ``spans`` view)."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from auriko_obs.store import connect

# (input, output) USD per 1M tokens, as the simulator's /v1/models lists them
PRICES = {
    "gpt-4o": {"openai": (2.50, 10.00), "azure": (2.75, 11.00)},
    "gpt-4o-mini": {"openai": (0.15, 0.60), "azure": (0.165, 0.66)},
    "llama-3.3-70b": {"together": (0.88, 0.88), "groq": (0.59, 0.79), "deepinfra": (0.23, 0.40)},
    "claude-sonnet-4-20250514": {"anthropic": (3.00, 15.00), "bedrock": (3.30, 16.50)},
}


def list_cost(model: str, provider: str, tokens_in: int, tokens_out: int) -> float:
    price_in, price_out = PRICES[model][provider]
    return (tokens_in * price_in + tokens_out * price_out) / 1e6


def call(start: datetime, **values) -> dict:
    """Returns one llm_calls row with defaults for what ``values`` leaves out."""
    row: dict[str, Any] = {
        "trace_id": uuid.uuid4().hex,
        "span_id": uuid.uuid4().hex[:16],
        "start_time": start,
        "end_time": start + timedelta(milliseconds=values.get("duration_ms", 800)),
        "duration_ms": 800.0,
        "service_name": "api",
        "operation": "chat",
        "streaming": False,
        "request_model": "gpt-4o",
        "model_canonical": "gpt-4o",
        "provider": "openai",
        "input_tokens": 1000,
        "output_tokens": 200,
        "cached_tokens": 0,
        "cost_usd": 0.01,
        "cost_source": "auriko",
        "cache_savings_usd": 0.0,
        "status": "ok",
        "http_status": 200,
        "tags": [],
        "user_id": None,
        "name": "chat gpt-4o",
        "kind": "CLIENT",
    }
    row.update(values)
    row["total_tokens"] = (row["input_tokens"] or 0) + (row["output_tokens"] or 0)
    return row


def insert_calls(db_path: str, rows: list[dict]) -> None:
    """Writes ``rows`` (from ``call``) into the store's ``span_rows`` table."""
    import pandas as pd

    frame = pd.DataFrame(rows).rename(columns={"attributes": "extra_attributes"})  # every attribute, in the table
    with connect(db_path, read_only=False, wait_s=30) as con:  # creates the store and its schema
        if not rows:
            return
        con.register("new_rows", frame)
        con.execute("INSERT INTO span_rows BY NAME SELECT * FROM new_rows")


def history(
    end: datetime,
    *,
    days: int = 35,
    calls_per_day: int = 48,
    seed: int = 0,
    spike_at: datetime | None = None,
    spike_calls: int = 40,
) -> list[dict]:
    """Returns ``days`` of varied calls before ``end`` (a burst of expensive calls in the hour of ``spike_at``)."""
    rng = random.Random(seed)
    rows = []
    start = end - timedelta(days=days)
    for _ in range(days * calls_per_day):
        moment = start + timedelta(seconds=rng.uniform(0, days * 86400))
        model = rng.choice(list(PRICES))
        provider = rng.choice(list(PRICES[model]))
        tokens_in, tokens_out = rng.randint(200, 4000), rng.randint(50, 800)
        cached = tokens_in // 2 if rng.random() < 0.4 else 0
        price_in = PRICES[model][provider][0]
        saved = cached * price_in * 0.5 / 1e6
        values = dict(
            request_model=model,
            model_canonical=model,
            provider=provider,
            name=f"chat {model}",
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cached_tokens=cached,
            cost_usd=round(list_cost(model, provider, tokens_in, tokens_out) - saved, 8),
            cache_savings_usd=round(saved, 8) if saved else None,
            service_name=rng.choice(["search-api", "support-bot", "nightly-batch"]),
            tags=[f"team:{rng.choice(['search', 'support', 'research'])}"],
            user_id=f"user-{rng.randint(1, 12)}",
        )
        error = rng.random()
        if error < 0.03:
            values.update(
                status="error",
                http_status=429,
                error_type="rate_limit_error",
                error_code="rate_limit_exceeded",
                retry_after_s=2.0,
                cost_usd=None,
                input_tokens=None,
                output_tokens=None,
                cached_tokens=None,
                cache_savings_usd=None,
                provider=None,
            )
        elif error < 0.04:
            values.update(
                status="error",
                http_status=429,
                error_type="rate_limit_error",
                error_code="budget_exhausted",
                budget_exceeded_scope="workspace",
                budget_exceeded_period="daily",
                cost_usd=None,
                input_tokens=None,
                output_tokens=None,
                cached_tokens=None,
                cache_savings_usd=None,
                provider=None,
            )
        rows.append(call(moment, **values))
    if spike_at is not None:
        hour = spike_at.replace(minute=0, second=0, microsecond=0)
        for j in range(spike_calls):
            model = "claude-sonnet-4-20250514"
            rows.append(
                call(
                    hour + timedelta(seconds=60 * j % 3600),
                    request_model=model,
                    model_canonical=model,
                    provider="anthropic",
                    input_tokens=60000,
                    output_tokens=4000,
                    cost_usd=list_cost(model, "anthropic", 60000, 4000),
                    service_name="nightly-batch",
                    tags=["team:research"],
                    user_id="user-13",
                    name=f"chat {model}",
                )
            )
    return rows


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)
