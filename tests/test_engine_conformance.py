"""One expression per analysis, three engines: every analysis, with the groupings, filters and periods the docs
show, gives the same frame on (a) the DuckDB store file, (b) DuckDB over a lake of the same calls and (c) Spark
local[2] over that lake.

The calls are synthetic (100,000 over 9 days across a week and a month boundary) and hold the edge cases:
several routing warnings on one call (and more codes than types), NULL and empty lists, every error kind
(Auriko bodies with 4xx and 5xx, 502/503/504 with no Auriko body, with and without the SDK's error.type),
calls with and without routing, four services, calls with no, one and two tags, users and no user, and in
the lake 2% of the spans written twice (in files of their own).

Equal means: same columns, dtypes and row order; integers and text exactly, doubles within a relative 1e-9
(sums of doubles depend on the order the engine adds them in). Spark's default percentiles are approximate:
each must be a value whose rank in its group is within 1/10000 of the group's calls (the accuracy of
``percentile_approx``) of the exact rank, plus one call; ``exact=True`` must match DuckDB within 1e-9.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone

import pandas as pd
import pytest

from auriko_obs import analysis
from auriko_obs.store import Store
from auriko_obs.store._files import connect

from ._lakes import lake_from_store, spark_session

CALLS = 100_000  # the fleet issue asks for at least 100k; Spark's time is per query more than per row
START = datetime(2026, 11, 27, tzinfo=timezone.utc)  # a Friday: the 9 days cross a week and a month boundary
DAYS = 9
NOW = datetime(2026, 12, 5, 15, 30, tzinfo=timezone.utc)
PRICES = [
    ("gpt-4o", "openai", 0, 2.5, 10.0),
    ("gpt-4o", "azure", 1, 2.75, 11.0),
    ("claude-sonnet", "anthropic", 0, 3.0, 15.0),
    ("claude-sonnet", "bedrock", 1, 3.3, 16.5),
    ("llama-70b", "fireworks_ai", 0, 0.9, 0.9),
    ("llama-70b", "groq", 1, 0.59, 0.79),
    ("llama-70b", "deepinfra", 2, 0.23, 0.40),
    ("llama-70b", "together", 3, 0.88, 0.95),
]

# kind of call (bits of hash(i)): 0-79 ok, 80-83 rate limited (429, Auriko body), 84 budget (402), 85 invalid
# request (400), 86 upstream (500, Auriko body), 87 bad gateway (502, no body, no error.type), 88 unavailable
# (503, no body, SDK's error.type), 89 gateway timeout (504, body with a type and no code), 90-99 ok again.
GENERATE = """
INSERT INTO span_rows (trace_id, span_id, start_time, end_time, duration_ms, service_name, operation, streaming,
    request_model, response_model, model_canonical, provider, routing_strategy, input_tokens, output_tokens,
    total_tokens, cached_tokens, cache_write_tokens, cost_usd, cost_source, cache_savings_usd, ttft_ms,
    provider_ttft_ms, throughput_tps, finish_reason, status, http_status, error_type, error_code, retry_after_s,
    budget_exceeded_scope, http_attempts, credits_balance_usd, warnings, tags, user_id, extra_attributes, name, kind)
WITH r AS (
    SELECT i, h, $start + to_microseconds((i * $step)::BIGINT) AS ts, h % 100 AS k,
           (h >> 8) % 10 AS routed_pick, (h >> 12) % 4 AS model_pick, (h >> 16) % 4 AS provider_pick,
           100 + (h >> 20) % 3000 AS inp, 10 + (h >> 32) % 700 AS outp, (h >> 42) % 7 AS warn_pick,
           (h >> 45) % 6 AS tag_pick, (h >> 48) % 5 AS user_pick
    FROM (SELECT i, (hash(i) >> 1)::BIGINT AS h FROM range($calls) AS t(i))
), c AS (
    SELECT *, routed_pick < 9 AS routed, k BETWEEN 80 AND 89 AS failed,
           ['gpt-4o', 'claude-sonnet', 'llama-70b', 'gpt-4o-mini'][1 + model_pick] AS m
    FROM r
), p AS (
    SELECT *, CASE WHEN NOT routed THEN NULL
                   WHEN m = 'gpt-4o' THEN ['openai', 'azure', 'openai', 'openai'][1 + provider_pick]
                   WHEN m = 'claude-sonnet' THEN ['anthropic', 'bedrock', 'anthropic', 'anthropic'][1 + provider_pick]
                   WHEN m = 'llama-70b' THEN ['fireworks_ai', 'groq', 'deepinfra', 'together'][1 + provider_pick]
                   ELSE 'openai' END AS served
    FROM c
)
SELECT lower(hex(hash(i // 4, 1))) || lower(hex(hash(i // 4, 2))), lower(hex(hash(i, 3))),
       ts, ts + to_microseconds(((50 + (h >> 24) % 4000) * 1000)::BIGINT), (50 + (h >> 24) % 4000)::DOUBLE,
       ['api', 'batch', 'search', 'notebook'][1 + (h >> 52) % 4], 'chat', (h >> 54) % 3 = 0,
       m, CASE WHEN NOT failed THEN m END, CASE WHEN routed THEN m END, served,
       CASE WHEN routed THEN ['cost', 'ttft', 'tps', 'balanced'][1 + (h >> 56) % 4] END,
       CASE WHEN NOT failed THEN inp END, CASE WHEN NOT failed THEN outp END,
       CASE WHEN NOT failed AND k % 2 = 0 THEN inp + outp END,
       CASE WHEN NOT failed THEN CASE WHEN (h >> 58) % 4 = 0 THEN inp // 2 ELSE 0 END END,
       CASE WHEN NOT failed AND (h >> 58) % 4 = 1 THEN 1024 END,
       CASE WHEN NOT failed THEN (inp * 2.5 + outp * 10.0) / 1e6 END,
       CASE WHEN failed THEN NULL WHEN routed THEN 'auriko' ELSE 'estimate' END,
       CASE WHEN NOT failed AND (h >> 58) % 4 = 0 THEN inp * 1.25 / 1e6 END,
       CASE WHEN (h >> 54) % 3 = 0 AND NOT failed THEN 20.0 + (h >> 30) % 900 END,
       CASE WHEN routed AND NOT failed THEN 100.0 + (h >> 36) % 1500 END,
       CASE WHEN routed AND NOT failed THEN 20.0 + (h >> 40) % 180 END,
       CASE WHEN NOT failed THEN 'stop' END,
       CASE WHEN failed THEN 'error' ELSE 'ok' END,
       CASE k WHEN 80 THEN 429 WHEN 81 THEN 429 WHEN 82 THEN 429 WHEN 83 THEN 429 WHEN 84 THEN 402 WHEN 85 THEN 400
              WHEN 86 THEN 500 WHEN 87 THEN 502 WHEN 88 THEN 503 WHEN 89 THEN 504 ELSE 200 END,
       CASE WHEN k BETWEEN 80 AND 83 THEN 'rate_limit_error' WHEN k = 84 THEN 'budget_error'
            WHEN k = 85 THEN 'invalid_request_error' WHEN k = 86 THEN 'api_error' WHEN k = 89 THEN 'timeout_error' END,
       CASE WHEN k BETWEEN 80 AND 83 THEN 'rate_limit_exceeded' WHEN k = 84 THEN 'budget_exhausted'
            WHEN k = 85 THEN 'invalid_parameter' WHEN k = 86 THEN 'provider_error' END,
       CASE WHEN k BETWEEN 80 AND 83 THEN 1.0 + (h >> 60) % 3 END,
       CASE WHEN k = 84 THEN 'workspace' END,
       CASE WHEN k BETWEEN 80 AND 83 THEN 3 WHEN (h >> 5) % 40 = 0 THEN 2 ELSE 1 END,
       CASE WHEN routed AND NOT failed THEN 500.0 - i * 1e-3 END,
       CASE warn_pick WHEN 0 THEN ['top_k_ignored'] WHEN 1 THEN ['top_k_ignored', 'seed_dropped', 'logit_bias_ignored']
                      WHEN 2 THEN [] WHEN 3 THEN NULL ELSE [] END,
       CASE tag_pick WHEN 0 THEN NULL WHEN 1 THEN [] WHEN 2 THEN ['team:search']
                     WHEN 3 THEN ['team:search', 'exp:b'] ELSE ['team:ads'] END,
       CASE user_pick WHEN 0 THEN NULL ELSE 'user-' || user_pick END,
       json_object(
           'error.type', CASE k WHEN 80 THEN 'RateLimitError' WHEN 88 THEN 'ServiceUnavailableError' END,
           'auriko.routing.warning_types',
               CASE warn_pick WHEN 0 THEN ['unsupported_parameter']
                              WHEN 1 THEN ['unsupported_parameter', 'blocked_field'] END,
           'auriko.budget.daily.spend_usd', CASE WHEN i % 997 = 0 AND routed THEN 10.0 + i * 1e-4 END,
           'auriko.budget.daily.limit_usd', CASE WHEN i % 997 = 0 AND routed THEN 5000.0 END,
           'auriko.budget.monthly.spend_usd', CASE WHEN i % 997 = 0 AND routed THEN 100.0 + i * 1e-3 END,
           'auriko.budget.monthly.limit_usd', CASE WHEN i % 997 = 0 AND routed THEN 90000.0 END),
       'chat ' || m, 'CLIENT'
FROM p
"""


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Returns (the DuckDB store file, DuckDB over the lake) of the same synthetic calls."""
    folder = tmp_path_factory.mktemp("conformance")
    db = str(folder / "calls.duckdb")
    with connect(db, read_only=False, wait_s=10) as con:
        con.execute(GENERATE, {"start": START, "step": DAYS * 86400e6 / CALLS, "calls": CALLS})
        con.executemany("INSERT INTO provider_prices VALUES (?, ?, ?, ?, ?, NULL, 'test', now())", PRICES)
    lake = lake_from_store(db, str(folder / "lake"), duplicate_where="hash(span_id) % 50 = 0")
    return Store(db), Store(lake)


@pytest.fixture(scope="module")
def spark_store(stores):
    spark = spark_session("auriko-obs conformance")
    yield Store.spark(spark, stores[1].path)
    spark.stop()


BUDGETS = [
    analysis.Budget("workspace daily", 5000, "daily"),
    analysis.Budget("workspace monthly", 90000),
    analysis.Budget("search weekly", 20, "weekly", scope="tag", match="team:search"),
    analysis.Budget("user-2 daily", 5, "daily", scope="user", match="user-2", service="api"),
]

# name → the analysis, as the docs and the reports call them; periods, groupings and filters covered.
CASES = {
    "provider_mix(day)": lambda s: analysis.provider_mix(s, period="day"),
    "provider_mix(model, hour, since)": lambda s: analysis.provider_mix(
        s, by="model", period="hour", since="2026-12-03T05:30:00Z"
    ),
    "provider_mix(service, week, tag)": lambda s: analysis.provider_mix(
        s, by="service", period="week", tag="team:search"
    ),
    "provider_mix(strategy, month, provider list)": lambda s: analysis.provider_mix(
        s, by="routing_strategy", period="month", provider=["openai", "groq"]
    ),
    "provider_mix(tag, none)": lambda s: analysis.provider_mix(s, by="tag", period=None),
    "cost_by(tag, top 5, since 7d)": lambda s: analysis.cost_by("tag", s, top=5, since="7d"),
    "cost_by(provider)": lambda s: analysis.cost_by("provider", s),
    "cost_by(user, day, model)": lambda s: analysis.cost_by("user", s, period="day", model="gpt-4o"),
    "cost_by(model, top 2, until)": lambda s: analysis.cost_by("model", s, top=2, until="2026-12-01"),
    "cache_savings(day)": lambda s: analysis.cache_savings(s),
    "cache_savings(model, none)": lambda s: analysis.cache_savings(s, by="model", period=None),
    "cache_savings([], none)": lambda s: analysis.cache_savings(s, by=[], period=None),
    "cache_savings(tag, week, user)": lambda s: analysis.cache_savings(s, by="tag", period="week", user="user-3"),
    "latency(provider, exact)": lambda s: analysis.latency(s, by="provider", exact=True),
    "latency(tag, errors, exact)": lambda s: analysis.latency(s, by="tag", include_errors=True, exact=True),
    "latency([], service, exact)": lambda s: analysis.latency(s, by=[], service="batch", exact=True),
    "errors(hour)": lambda s: analysis.errors(s),
    "errors(error_code, none)": lambda s: analysis.errors(s, by="error_code", period=None),
    "errors(error_type, day)": lambda s: analysis.errors(s, by="error_type", period="day"),
    "errors(operation, range)": lambda s: analysis.errors(
        s, since="2026-11-29", until="2026-12-02T12:00:00Z", by="operation", period=None
    ),
    "errors(tag, week)": lambda s: analysis.errors(s, by="tag", period="week"),
    "routing_savings(model, provider)": lambda s: analysis.routing_savings(s),
    "routing_savings(model, day)": lambda s: analysis.routing_savings(s, by="model", period="day"),
    "routing_savings(provider, since)": lambda s: analysis.routing_savings(s, by="provider", since="2026-12-02"),
    "prices": lambda s: analysis.prices(s),
    "budget_burn": lambda s: analysis.budget_burn(s, BUDGETS, now=NOW),
    "budget_burndown(monthly)": lambda s: analysis.budget_burndown(BUDGETS[1], s, now=NOW),
    "calls(since, until)": lambda s: s.calls(since="2026-12-04T23:00:00Z", until="2026-12-05T01:00:00Z"),
    "summary": lambda s: s.summary(),
}


def assert_same_frame(expected: pd.DataFrame, actual: pd.DataFrame) -> None:
    assert len(expected) > 0, "a case that selects nothing compares nothing"
    pd.testing.assert_frame_equal(expected, actual, check_exact=False, rtol=1e-9, atol=0)


@pytest.fixture(scope="module")
def expected(stores):
    """Returns every case's frame on the DuckDB store file, computed once."""
    return {name: case(stores[0]) for name, case in CASES.items()}


def test_the_lake_holds_duplicates_and_the_store_file_does_not(stores):
    file, lake = stores
    with lake.engine.open() as con:
        rows = con.df("SELECT count(*) AS n FROM read_parquet(?)", [f"{lake.path}/date=*/*.parquet"])["n"][0]
    calls = lake.sql("SELECT count(*) AS n FROM llm_calls")["n"][0]
    assert calls == file.sql("SELECT count(*) AS n FROM llm_calls")["n"][0] == CALLS
    assert rows > CALLS * 1.01  # about 2% written twice


@pytest.mark.parametrize("case", list(CASES))
def test_duckdb_over_the_lake_gives_the_store_files_frame(stores, expected, case):
    assert_same_frame(expected[case], CASES[case](stores[1]))


@pytest.fixture(scope="module")
def compacted(stores, tmp_path_factory):
    """Returns DuckDB over a copy of the lake after ``lake compact`` (the files it replaced still waiting beside
    the merged ones), with late copies of some spans written afterwards into two of its dates: dates read as
    compaction left them and dates grouped again, in one lake."""
    import duckdb

    from auriko_obs.store._lake_lifecycle import compact

    root = str(tmp_path_factory.mktemp("compacted") / "lake")
    shutil.copytree(stores[1].path, root)
    report = compact(root, grace_s=3600, target_bytes=1 << 40)
    assert report.days and report.waiting_files > 0
    dates = sorted(d for d in os.listdir(root) if d.startswith("date="))
    with duckdb.connect() as con:
        for folder in dates[1:3]:
            source = f"read_parquet('{root}/{folder}/*.parquet', hive_partitioning = false)"
            con.execute(
                f"COPY (SELECT * FROM {source} WHERE hash(span_id) % 7 = 0) TO '{root}/{folder}/late-1.parquet' "
                "(FORMAT parquet)"
            )
    return Store(root)


def test_a_compacted_lake_with_late_copies_holds_dates_read_as_they_are_and_dates_grouped(compacted):
    from auriko_obs.store._lake_location import LakeLocation
    from auriko_obs.store._lake_unique import split_lake

    once, grouped = split_lake(LakeLocation(compacted.path))
    assert {f.path.split("/")[-2] for f in grouped} == {
        d for d in os.listdir(compacted.path) if os.path.exists(f"{compacted.path}/{d}/late-1.parquet")
    }
    assert once and len({f.path.split("/")[-2] for f in grouped}) == 2


@pytest.mark.parametrize("case", list(CASES))
def test_duckdb_over_a_compacted_lake_with_late_copies_gives_the_store_files_frame(compacted, expected, case):
    assert_same_frame(expected[case], CASES[case](compacted))


@pytest.mark.parametrize("case", list(CASES))
def test_spark_over_the_lake_gives_the_store_files_frame(spark_store, expected, case):
    assert_same_frame(expected[case], CASES[case](spark_store))


def test_spark_percentiles_are_approximate_by_default_within_their_rank_error(stores, spark_store):
    exact = analysis.latency(stores[0], by="provider")
    approx = analysis.latency(spark_store, by="provider")
    keys = ["provider", "metric"]
    pd.testing.assert_frame_equal(exact[[*keys, "unit", "calls"]], approx[[*keys, "unit", "calls"]])
    assert (exact["mean"] - approx["mean"]).abs().max() <= 1e-9 * exact["mean"].abs().max()
    quantiles = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "p99": 0.99}
    checks = approx.melt(id_vars=[*keys, "calls"], value_vars=list(quantiles), var_name="q", value_name="value")
    checks["p"] = checks["q"].map(quantiles)
    con = connect(stores[0].path, read_only=True, wait_s=10)
    with con as db:
        db.register("checks", checks)
        ranks = db.execute(
            """
            SELECT c.provider, c.metric, c.q, c.p, c.calls,
                   count(*) FILTER (WHERE m.value <= c.value) AS at_or_below,
                   count(*) FILTER (WHERE m.value < c.value) AS below
            FROM checks AS c JOIN (
                SELECT coalesce(provider, '(none)') AS provider, unnest(['duration_ms', 'ttft_ms',
                       'provider_ttft_ms', 'throughput_tps']) AS metric,
                       unnest([duration_ms, ttft_ms, provider_ttft_ms, throughput_tps]) AS value
                FROM llm_calls WHERE status = 'ok'
            ) AS m ON m.provider = c.provider AND m.metric = c.metric AND m.value IS NOT NULL
            GROUP BY ALL
            """
        ).df()
    # percentile_approx returns a value of the data whose rank is within calls / 10000 of p × calls.
    slack = ranks["calls"] / 10_000 + 1
    target = ranks["p"] * ranks["calls"]
    inside = (ranks["below"] <= target + slack) & (ranks["at_or_below"] >= target - slack)
    assert inside.all(), ranks[~inside]
    assert not exact[list(quantiles)].equals(approx[list(quantiles)])  # really approximate, not exact twice
