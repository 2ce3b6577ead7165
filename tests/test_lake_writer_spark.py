"""Issue 14, item 1: Spark reads the files the lake writer publishes (types, partitions, duplicates) and gives the
analyses the DuckDB store file gives. Skipped without pyspark or Java; required in CI's Spark step."""

from __future__ import annotations

import pandas as pd
import pytest

from auriko_obs import analysis
from auriko_obs.store import LakeWriter, Store, StoreWriter

from ._lake_files import raw_rows
from ._lakes import spark_session
from ._stores import call, make_store


def _calls() -> list[dict]:
    rows = []
    for day in (1, 2, 3):
        for i, (provider, model) in enumerate([("openai", "gpt-4o"), ("azure", "gpt-4o"), ("groq", "llama-3.3-70b")]):
            rows.append(
                call(
                    f"2026-06-0{day}T{10 + i}:00:00Z",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "auriko.openai_api": "chat_completions",
                        "gen_ai.request.model": model,
                        "auriko.routing.provider": provider,
                        "auriko.routing.model_canonical": model,
                        "gen_ai.usage.input_tokens": 100 * (i + day),
                        "gen_ai.usage.output_tokens": 10 * day,
                        "auriko.cost.usd": 0.001 * (i + 1) * day,
                        "auriko.request.tags": [f"team:{i}"],
                        "auriko.routing.warnings": ["top_k_ignored"] if i == 2 else [],
                        "http.response.status_code": 200,
                    },
                )
            )
    rows.append(
        call(
            "2026-06-02T23:59:59Z",
            status="error",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "http.response.status_code": 502,
                "error.type": "InternalServerError",
            },
        )
    )
    return rows


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("writer-spark")
    raw = raw_rows(make_store(str(folder / "source.duckdb"), _calls()))
    db = str(folder / "store.duckdb")
    StoreWriter(db).write(raw)
    writer = LakeWriter(folder / "lake")
    writer.write(raw)
    writer.write(raw.slice(0, 4))  # written twice, in files of their own: counted once
    assert writer.flush()
    return Store(db), str(folder / "lake")


@pytest.fixture(scope="module")
def spark_store(stores):
    spark = spark_session("auriko-obs lake writer")
    yield Store.spark(spark, stores[1])
    spark.stop()


CASES = {
    "calls": lambda s: s.sql("SELECT count(*) AS n, CAST(sum(input_tokens) AS BIGINT) AS tokens FROM llm_calls"),
    "cost_by provider": lambda s: analysis.cost_by("provider", s),
    "cost_by tag": lambda s: analysis.cost_by("tag", s),
    "provider_mix by day": lambda s: analysis.provider_mix(s, period="day"),
    "errors": analysis.errors,
}


@pytest.mark.parametrize("name", CASES)
def test_spark_over_the_written_lake_gives_the_store_files_frame(stores, spark_store, name):
    run = CASES[name]
    pd.testing.assert_frame_equal(run(spark_store), run(stores[0]), check_exact=False, rtol=1e-9, obj=name)
