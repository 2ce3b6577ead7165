"""Times every analysis over 10 million synthetic calls, and reports peak memory.

    python benchmarks/analysis.py [--rows 10000000] [--db /tmp/analysis-bench.duckdb] [--threads 2]
                                  [--engine file|lake|spark] [--lake /tmp/analysis-bench-lake]

The rows are generated inside DuckDB by one set-based INSERT straight into ``span_rows`` (the table behind
the ``spans`` view) of a store made by the real schema code: 30 days of calls over 5 models served by 15
(model, provider) offers (70% by the model's default provider), 4 strategies, 20 tags, 200 users,
4 services, with usage, cost at the cached list prices, cache savings, latency, ~2% errors, ~1% retries,
~0.5% routing warnings and budget headers on every 1000th call. Each row's values are bit fields of
``hash(i)``; ``extra_attributes`` is one of 75 short JSON templates (per offer and kind of call), passed
as JSON so that no row is parsed. The row numbers come from a temporary
table rather than ``range()`` directly, because ``range()`` is a single-threaded source and a table scan
lets both cores build and insert rows.

Each analysis runs ``--repeat`` times; the fastest run, the median, the first run and the fastest CPU time (all
threads of this process) are reported, with the ratio to a floor measured in the same run (a plain
``SELECT provider, sum(cost_usd) FROM llm_calls GROUP BY 1``), the 1-minute load average after each analysis's
runs and at start and end (the machine may be shared), and the peak RSS. ``--threads`` caps DuckDB's threads
for every connection.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from auriko_obs import analysis
from auriko_obs.store import Store, connect

END = datetime(2026, 11, 25, tzinfo=timezone.utc)
DAYS = 30
# (model, share of calls in %, providers with the default first and their list prices in USD per 1M tokens)
MODELS = [
    ("gpt-4o-mini", 35, [("openai", 0.15, 0.60), ("azure", 0.165, 0.66)]),
    ("gpt-4o", 20, [("openai", 2.5, 10.0), ("azure", 2.75, 11.0)]),
    ("claude-sonnet-4-20250514", 20, [("anthropic", 3.0, 15.0), ("bedrock", 3.3, 16.5), ("vertex_ai", 3.0, 15.0)]),
    (
        "llama-3.3-70b",
        15,
        [
            ("fireworks_ai", 0.9, 0.9),
            ("together", 0.88, 0.88),
            ("groq", 0.59, 0.79),
            ("deepinfra", 0.23, 0.40),
            ("cerebras", 0.85, 1.2),
        ],
    ),
    ("deepseek-v3", 10, [("deepseek", 0.27, 1.10), ("fireworks_ai", 0.9, 0.9), ("together", 1.25, 1.25)]),
]
DEFAULT_SHARE = 70  # % of a model's calls its default provider serves; routing spreads the rest evenly

COMBOS = [(m, p, pi, po) for m, _, ps in MODELS for p, pi, po in ps]  # 1-based index in SQL
PRICES = [(m, p, pos, pi, po) for m, _, ps in MODELS for pos, (p, pi, po) in enumerate(ps)]


def _combo_table() -> list[int]:
    """Returns 1000 combo indexes (1-based) in the proportions of the model shares and DEFAULT_SHARE."""
    table, base = [], 0
    for _, share, ps in MODELS:
        n = share * 10
        if len(ps) == 1:
            table += [base + 1] * n
        else:
            first = n * DEFAULT_SHARE // 100
            table += [base + 1] * first
            rest = n - first
            table += [base + 2 + k % (len(ps) - 1) for k in range(rest)]
        base += len(ps)
    assert len(table) == 1000
    return table


VARIANTS = ("ok", "stream", "warning", "budget", "error")


def _attributes(model: str, provider: str, variant: str) -> str:
    a = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "auriko",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "auriko.routing.model_canonical": model,
        "auriko.routing.provider": provider,
        "server.address": "api.auriko.ai",
        "auriko.api": "openai",
    }
    if variant == "stream":
        a.update({"gen_ai.request.stream": True, "auriko.stream.completed": True, "auriko.stream.end": "completed"})
    if variant == "warning":
        a.update(
            {"auriko.routing.warnings": ["top_k_ignored"], "auriko.routing.warning_types": ["unsupported_parameter"]}
        )
    if variant == "budget":
        a.update(
            {
                "auriko.budget.daily.spend_usd": 12.5,
                "auriko.budget.daily.limit_usd": 5000.0,
                "auriko.budget.monthly.spend_usd": 1250.0,
                "auriko.budget.monthly.limit_usd": 90000.0,
            }
        )
    if variant == "error":
        a.update(
            {
                "error.type": "RateLimitError",
                "auriko.error.type": "rate_limit_error",
                "auriko.error.code": "rate_limit_exceeded",
                "http.response.status_code": 429,
                "auriko.retry_after_s": 1.0,
            }
        )
    return json.dumps(a, separators=(",", ":"))


TEMPLATES = [_attributes(m, p, v) for m, p, _, _ in COMBOS for v in VARIANTS]  # index (combo-1)*5 + variant

COLUMNS = (
    "trace_id, span_id, start_time, end_time, duration_ms, service_name, operation, streaming, request_model, "
    "response_model, model_canonical, provider, routing_strategy, input_tokens, output_tokens, total_tokens, "
    "cached_tokens, cache_write_tokens, cost_usd, cost_source, cache_savings_usd, ttft_ms, provider_ttft_ms, "
    "throughput_tps, finish_reason, status, http_status, error_type, error_code, retry_after_s, http_attempts, "
    "request_id, credits_balance_usd, warnings, tags, user_id, extra_attributes, name, kind"
)

# Each row's pseudo-random values come from bit fields of hash(i). Variant: 4 = error (2%), 3 = budget headers
# (every 1000th call), 2 = routing warning (~0.5%), 1 = stream (1/3), 0 = plain.
GENERATE = f"""
INSERT INTO span_rows ({COLUMNS})
WITH r AS (
    SELECT i, h, $start + to_microseconds((i * $step)::BIGINT) AS ts,
           $combos[1 + (h % 1000)::INTEGER] AS c,
           200 + (h >> 10) % 4000 AS inp, 20 + (h >> 22) % 800 AS outp,
           CASE WHEN (h >> 32) % 4 = 0 THEN 1024 ELSE 0 END AS cached,
           CASE WHEN (h >> 36) % 50 = 0 THEN 4 WHEN i % 1000 = 0 THEN 3 WHEN (h >> 42) % 200 = 0 THEN 2
                WHEN (h >> 50) % 3 = 0 THEN 1 ELSE 0 END AS v,
           150 + (h >> 52) % 900 AS gw_ttft, 40 + (h >> 40) % 200 AS tps
    FROM (SELECT i, (hash(i) >> 1)::BIGINT AS h FROM bench_seq)
), s AS (
    SELECT *, gw_ttft + outp * 1000.0 / tps AS dur, $models[c] AS m, $providers[c] AS p, v = 4 AS err
    FROM r
)
SELECT lower(hex(hash(i // 3, 1) | 9223372036854775808::UBIGINT)
             || hex(hash(i // 3, 2) | 9223372036854775808::UBIGINT)),
       lower(hex(h | 4611686018427387904)), ts, ts + to_microseconds((dur * 1000)::BIGINT), dur,
       ['api', 'batch', 'search', 'notebook'][1 + (h >> 54) % 4], 'chat', v = 1,
       m, m, m, p, ['cost', 'ttft', 'tps', 'balanced'][1 + (h >> 48) % 4],
       inp, CASE WHEN err THEN NULL ELSE outp END, CASE WHEN err THEN NULL ELSE inp + outp END,
       CASE WHEN err THEN NULL ELSE cached END, CASE WHEN err THEN NULL WHEN cached = 0 THEN 0 ELSE 1024 END,
       CASE WHEN NOT err THEN ((inp - cached) * $pin[c] + cached * $pin[c] * 0.5 + outp * $pout[c]) / 1e6 END,
       CASE WHEN NOT err THEN 'auriko' END,
       CASE WHEN cached > 0 AND NOT err THEN cached * $pin[c] * 0.5 / 1e6 END,
       CASE WHEN v = 1 THEN gw_ttft + 35e0 END, CASE WHEN NOT err THEN gw_ttft::DOUBLE END,
       CASE WHEN NOT err THEN tps::DOUBLE END, CASE WHEN NOT err THEN 'stop' END,
       CASE WHEN err THEN 'error' ELSE 'ok' END, CASE WHEN err THEN 429 ELSE 200 END,
       CASE WHEN err THEN 'rate_limit_error' END, CASE WHEN err THEN 'rate_limit_exceeded' END,
       CASE WHEN err THEN 1e0 END, 1 + ((h >> 5) % 97 = 0)::INTEGER,
       NULL, 1e5 - i * 1e-3, CASE WHEN v = 2 THEN ['top_k_ignored'] ELSE [] END,
       $tags[1 + (h >> 57) % 20:1 + (h >> 57) % 20], $users[1 + (h >> 24) % 200],
       ($templates::JSON[])[(c - 1) * 5 + v + 1], $names[c], 'CLIENT'
FROM s
"""


def params(rows: int) -> dict:
    return {
        "start": END - timedelta(days=DAYS),
        "step": DAYS * 86400e6 / rows,
        "combos": _combo_table(),
        "models": [m for m, *_ in COMBOS],
        "providers": [p for _, p, *_ in COMBOS],
        "pin": [pi for *_, pi, _ in COMBOS],
        "pout": [po for *_, po in COMBOS],
        "tags": [f"team:{k}" for k in range(20)],
        "users": [f"user-{k:03d}" for k in range(200)],
        "templates": TEMPLATES,
        "names": [f"chat {m}" for m, *_ in COMBOS],
    }


def build(path: str, rows: int) -> float:
    """Returns the seconds it took to create the store at ``path`` with ``rows`` synthetic calls."""
    for suffix in ("", ".wal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    began = time.perf_counter()
    with connect(path, read_only=False, wait_s=10) as con:
        con.execute("SET enable_progress_bar = false")
        # range() is a single-threaded source; a table scan of its rows lets both cores build and insert rows.
        con.execute("CREATE OR REPLACE TEMP TABLE bench_seq AS SELECT i FROM range(?) AS r(i)", [rows])
        con.execute(GENERATE, params(rows))
        con.executemany("INSERT INTO provider_prices VALUES (?, ?, ?, ?, ?, NULL, 'benchmark', now())", PRICES)
        con.execute("CHECKPOINT")
    return time.perf_counter() - began


def write_lake(db: str, root: str) -> float:
    """Returns the seconds it took to write the store's spans as a lake at ``root`` (one folder per UTC date)."""
    from auriko_obs import fields
    from auriko_obs.store._lake import prices_path

    began = time.perf_counter()
    columns = [f'CAST("{n}" AS VARCHAR) AS "{n}"' if t == "JSON" else f'"{n}"' for n, t in fields.spans_columns()]
    with connect(db, read_only=True, wait_s=10) as con:
        con.execute(
            f"COPY (SELECT {', '.join(columns)}, CAST(start_time AS DATE) AS date FROM spans) TO '{root}' "
            "(FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd, OVERWRITE_OR_IGNORE)"
        )
        os.makedirs(os.path.dirname(prices_path(root)), exist_ok=True)
        con.execute(f"COPY provider_prices TO '{prices_path(root)}' (FORMAT parquet)")
    return time.perf_counter() - began


def open_store(args: argparse.Namespace) -> Store:
    """Returns the store the cases run on: the file, or the lake read by DuckDB or by Spark local[2]."""
    if args.engine == "file":
        return Store(args.db)
    if not os.path.isdir(args.lake):
        print(f"wrote the lake {args.lake} in {write_lake(args.db, args.lake):.1f} s")
    if args.engine == "lake":
        return Store(args.lake)
    from pyspark.sql import SparkSession

    began = time.perf_counter()
    spark = (
        SparkSession.builder.master(f"local[{args.threads}]")
        .config("spark.driver.memory", args.spark_memory)
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    print(f"Spark session started in {time.perf_counter() - began:.1f} s")
    return Store.spark(spark, args.lake)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--db", default="/tmp/auriko-obs-analysis-bench.duckdb")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="keep an existing store at --db instead of generating")
    parser.add_argument(
        "--engine",
        choices=("file", "lake", "spark"),
        default="file",
        help="read the store file (default), or a lake of the same calls (--lake, written from --db when missing) "
        "with DuckDB or with Spark local[2]",
    )
    parser.add_argument("--lake", default="/tmp/auriko-obs-analysis-bench-lake")
    parser.add_argument("--spark-memory", default="4g", help="spark.driver.memory for --engine spark")
    args = parser.parse_args()
    import duckdb

    original_connect = duckdb.connect

    def capped(*a, **kw):  # every store connection gets the thread cap
        kw.setdefault("config", {})["threads"] = args.threads
        return original_connect(*a, **kw)

    duckdb.connect = capped
    load_start = os.getloadavg()
    print(
        f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} on {os.cpu_count()} CPUs; "
        f"threads={args.threads}"
    )
    if args.reuse and os.path.exists(args.db):
        print(f"reusing {args.db}")
    else:
        cpu = time.process_time()
        seconds = build(args.db, args.rows)
        print(
            f"generated {args.rows:,} calls in {seconds:.1f} s wall, {time.process_time() - cpu:.1f} s CPU "
            f"({os.path.getsize(args.db) / 1e6:,.0f} MB), load average {os.getloadavg()[0]:.2f}"
        )
    store = open_store(args)
    budgets = [
        analysis.Budget("workspace daily", 5000, "daily"),
        analysis.Budget("workspace monthly", 90000),
        analysis.Budget("team:3 weekly", 2000, "weekly", scope="tag", match="team:3"),
    ]
    floor_name = "floor: SELECT provider, sum(cost_usd) GROUP BY 1"
    cases = {
        floor_name: lambda: store.sql("SELECT provider, sum(cost_usd) FROM llm_calls GROUP BY 1"),
        "llm_calls view: count(*)": lambda: store.sql("SELECT count(*) FROM llm_calls"),
        "provider_mix(period=day)": lambda: analysis.provider_mix(store, period="day"),
        "provider_mix(by=model, hour)": lambda: analysis.provider_mix(store, by="model", period="hour"),
        "provider_mix(since=7d, tag=team:3)": lambda: analysis.provider_mix(
            store, since=END - timedelta(days=7), tag="team:3"
        ),
        "cache_savings(day)": lambda: analysis.cache_savings(store),
        "budget_burn(3 budgets)": lambda: analysis.budget_burn(store, budgets, now=END - timedelta(hours=5)),
        "budget_burndown(monthly)": lambda: analysis.budget_burndown(budgets[1], store, now=END - timedelta(hours=5)),
        "latency(provider, model)": lambda: analysis.latency(store),
        "errors(hour)": lambda: analysis.errors(store),
        "cost_by(user_id, top 10)": lambda: analysis.cost_by("user_id", store),
        "cost_by(tag, top 10)": lambda: analysis.cost_by("tag", store),
        "routing_savings(model, provider)": lambda: analysis.routing_savings(store),
    }
    print(
        f"{'analysis':<50} {'best s':>7} {'median s':>8} {'first s':>7} {'CPU s':>6} {'x floor':>7} {'rows out':>9} "
        f"{'load':>5}"
    )
    floor = None
    for name, run in cases.items():
        times, cpus = [], []
        for _ in range(args.repeat):
            began, cpu = time.perf_counter(), time.process_time()
            out = run()
            times.append(time.perf_counter() - began)
            cpus.append(time.process_time() - cpu)
        floor = floor or min(times)
        print(
            f"{name:<50} {min(times):>7.3f} {statistics.median(times):>8.3f} {times[0]:>7.3f} {min(cpus):>6.2f} "
            f"{min(times) / floor:>7.1f} {len(out):>9,} {os.getloadavg()[0]:>5.2f}",
            flush=True,
        )
    load_end = os.getloadavg()
    print(
        f"peak RSS of this process: {peak_rss_mb():,.0f} MB; load average at end {load_end[0]:.2f} "
        f"{load_end[1]:.2f} {load_end[2]:.2f}"
    )


if __name__ == "__main__":
    main()
