"""Times every analysis over 10 million synthetic calls, and reports peak memory.

    python benchmarks/analysis.py [--rows 10000000] [--db /tmp/analysis-bench.duckdb] [--threads 2]

The rows are generated inside DuckDB (SQL ``range()``) straight into ``spans`` of a store made by the real
schema code: 30 days of calls over 5 models, 9 providers, 4 strategies, 20 tags, 200 users, 4 services,
with usage, cost, cache savings, latency, ~2% errors, some retries and warnings. Each analysis runs
three times and the fastest run is reported (the machine is shared, so the first run also shows).
``--threads`` caps DuckDB's threads (set through DuckDB's ``threads`` setting for every connection).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from auriko_obs import analysis  # noqa: E402
from auriko_obs.store import Store  # noqa: E402
from auriko_obs.store._files import connect  # noqa: E402

END = datetime(2026, 11, 25, tzinfo=timezone.utc)

GENERATE = """
INSERT INTO spans (trace_id, span_id, start_time, end_time, duration_ms, service_name, operation, streaming,
    request_model, model_canonical, provider, routing_strategy, input_tokens, output_tokens, total_tokens,
    cached_tokens, cache_write_tokens, cost_usd, cost_source, cache_savings_usd, ttft_ms, provider_ttft_ms,
    throughput_tps, status, http_status, error_type, error_code, retry_after_s, http_attempts,
    credits_balance_usd, warnings, tags, user_id, attributes, name, kind)
SELECT printf('%032x', i), printf('%016x', i), ts, ts + to_milliseconds(dur), dur,
    ['api', 'batch', 'search', 'notebook'][1 + i % 4], 'chat', i % 3 = 0,
    m, m, p, ['cost', 'ttft', 'tps', 'balanced'][1 + (i // 7) % 4],
    inp, outp, inp + outp, cached, CASE WHEN cached = 0 THEN 1024 ELSE 0 END,
    CASE WHEN err THEN NULL ELSE (inp * 2.5 + outp * 10.0) / 1e6 END, 'auriko',
    CASE WHEN cached > 0 THEN cached * 1.25 / 1e6 END,
    CASE WHEN i % 3 = 0 THEN dur / 4 END, 200 + (i * 13) % 900, 40 + (i * 17) % 200,
    CASE WHEN err THEN 'error' ELSE 'ok' END, CASE WHEN err THEN 429 ELSE 200 END,
    CASE WHEN err THEN 'rate_limit_error' END,
    CASE WHEN err THEN ['rate_limit_exceeded', 'budget_exhausted'][1 + i % 2] END,
    CASE WHEN err THEN 1.0 END, 1 + CAST(i % 97 = 0 AS INTEGER), 100.0 - i * 1e-6,
    CASE WHEN i % 211 = 0 THEN ['top_k_ignored'] ELSE [] END,
    ['team:' || (i % 20)], 'u' || (i % 200),
    CASE WHEN i % 211 = 0 THEN '{"auriko.routing.warning_types": ["unsupported_parameter"]}'
         WHEN i % 1000 = 0 THEN '{"auriko.budget.daily.spend_usd": 12.5, "auriko.budget.daily.limit_usd": 100}'
         ELSE '{}' END,
    'chat ' || m, 'CLIENT'
FROM (
    SELECT i, ? + to_microseconds(CAST(i * (30 * 86400e6 / ?) AS BIGINT)) AS ts,
        ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-20250514', 'llama-3.3-70b', 'deepseek-v3'][1 + i % 5] AS m,
        [['openai', 'azure'], ['openai', 'azure'], ['anthropic', 'bedrock', 'vertex_ai'],
         ['fireworks_ai', 'together', 'groq', 'deepinfra', 'cerebras'],
         ['deepseek', 'fireworks_ai', 'together']][1 + i % 5][1 + (i // 5) % 2] AS p,
        200 + (i * 7919) % 4000 AS inp, 20 + (i * 104729) % 800 AS outp,
        CASE WHEN i % 4 = 0 THEN 1024 ELSE 0 END AS cached,
        50.0 + (i * 31) % 3000 AS dur, i % 50 = 0 AS err
    FROM range(?) AS r(i)
)
"""

PRICES = [(m, p, pos, 1.0 + pos * 0.1, 4.0 + pos) for m, ps in (
    ("gpt-4o", ["openai", "azure"]), ("gpt-4o-mini", ["openai", "azure"]),
    ("claude-sonnet-4-20250514", ["anthropic", "bedrock", "vertex_ai"]),
    ("llama-3.3-70b", ["fireworks_ai", "together", "groq", "deepinfra", "cerebras"]),
    ("deepseek-v3", ["deepseek", "fireworks_ai", "together"])) for pos, p in enumerate(ps)]


def build(path: str, rows: int) -> float:
    """Returns the seconds it took to create the store at ``path`` with ``rows`` synthetic calls."""
    for suffix in ("", ".wal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    began = time.perf_counter()
    with connect(path, read_only=False, wait_s=10) as con:
        con.execute(GENERATE, [END - timedelta(days=30), rows, rows])
        con.executemany("INSERT INTO provider_prices VALUES (?, ?, ?, ?, ?, NULL, 'benchmark', now())", PRICES)
        con.execute("CHECKPOINT")
    return time.perf_counter() - began


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--db", default="/tmp/auriko-obs-analysis-bench.duckdb")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["DUCKDB_THREADS"] = str(args.threads)  # informative; the setting below is what applies
    import duckdb

    original_connect = duckdb.connect

    def capped(*a, **kw):  # every store connection gets the thread cap
        kw.setdefault("config", {})["threads"] = args.threads
        return original_connect(*a, **kw)

    duckdb.connect = capped
    seconds = build(args.db, args.rows)
    size_mb = os.path.getsize(args.db) / 1e6
    print(f"generated {args.rows:,} calls in {seconds:.1f} s ({size_mb:,.0f} MB), threads={args.threads}, "
          f"load average {os.getloadavg()[0]:.2f}")
    store = Store(args.db)
    budgets = [analysis.Budget("workspace daily", 5000, "daily"), analysis.Budget("workspace monthly", 90000),
               analysis.Budget("team:3 weekly", 2000, "weekly", scope="tag", match="team:3")]
    cases = {
        "provider_mix(period=day)": lambda: analysis.provider_mix(store, period="day"),
        "provider_mix(by=model, hour)": lambda: analysis.provider_mix(store, by="model", period="hour"),
        "cache_savings(day)": lambda: analysis.cache_savings(store),
        "budget_burn(3 budgets)": lambda: analysis.budget_burn(store, budgets, now=END - timedelta(hours=5)),
        "budget_burndown(monthly)": lambda: analysis.budget_burndown(budgets[1], store, now=END - timedelta(hours=5)),
        "latency(provider, model)": lambda: analysis.latency(store),
        "errors(hour)": lambda: analysis.errors(store),
        "cost_by(user_id, top 10)": lambda: analysis.cost_by("user_id", store),
        "cost_by(tag, top 10)": lambda: analysis.cost_by("tag", store),
        "routing_savings(model, provider)": lambda: analysis.routing_savings(store),
        "provider_mix(since=7d, tag=team:3)": lambda: analysis.provider_mix(store, since=END - timedelta(days=7),
                                                                           tag="team:3"),
        "llm_calls view: count(*)": lambda: store.sql("SELECT count(*) FROM llm_calls"),
        "spans table: count(*) WHERE operation IS NOT NULL": lambda: store.sql(
            "SELECT count(*) FROM spans WHERE operation IS NOT NULL"),
        "llm_calls: sum(cost_usd) by provider": lambda: store.sql(
            "SELECT provider, sum(cost_usd) FROM llm_calls GROUP BY 1"),
    }
    print(f"{'analysis':<48} {'best s':>8} {'first s':>8} {'rows out':>9}")
    for name, run in cases.items():
        times = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - began)
        print(f"{name:<48} {min(times):>8.3f} {times[0]:>8.3f} {len(out):>9,}")
    print(f"peak RSS of this process: {peak_rss_mb():,.0f} MB; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
