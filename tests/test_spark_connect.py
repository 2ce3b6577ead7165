"""Spark Connect: a session from SparkSession.builder.remote("sc://…") reads a lake like a classic one; the
analyses give the DuckDB store file's frames (the test starts the Connect server on 127.0.0.1)."""

from __future__ import annotations

import pandas as pd
import pytest

from auriko_obs import analysis
from auriko_obs.store import Store

from ._lakes import lake_from_store, spark_connect_session
from ._stores import make_store
from .test_lake import PRICES, three_days


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("connect")
    db = make_store(str(folder / "store.duckdb"), three_days(), PRICES)
    lake = lake_from_store(db, str(folder / "lake"), duplicate_where="start_time::DATE = DATE '2026-06-02'")
    spark, server = spark_connect_session("auriko-obs spark connect")
    assert type(spark).__module__.startswith("pyspark.sql.connect")  # a Spark Connect session, not a classic one
    yield Store(db), Store.spark(spark, lake)
    spark.stop()
    server.stop()


@pytest.mark.parametrize(
    "case",
    [
        lambda s: analysis.provider_mix(s, period="day"),
        lambda s: analysis.errors(s, by="error_code", period=None),
        lambda s: analysis.latency(s, by="provider", exact=True),
        lambda s: analysis.routing_savings(s, by="model"),
        lambda s: s.sql("SELECT provider, count(*) AS calls FROM llm_calls GROUP BY provider ORDER BY provider"),
    ],
    ids=["provider_mix", "errors", "latency", "routing_savings", "sql"],
)
def test_a_spark_connect_session_gives_the_store_files_frame(stores, case):
    expected, actual = case(stores[0]), case(stores[1])
    assert len(expected) > 0
    pd.testing.assert_frame_equal(expected, actual, check_exact=False, rtol=1e-9, atol=0)
