"""Issue 11, item 1: one bad value must not cost its batch, and flush() must say when spans are missing."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import auriko_obs

from .conftest import ask

HOSTILE_ANSWERS = ["tokens_2_64", "tokens_1e20", "remaining_25_digits"]


def _attribute(row, name: str):
    return json.loads(row["attributes"]).get(name)


def test_integers_beyond_a_columns_type_become_null_and_the_raw_value_stays_in_attributes(instrumented, hostile_client):
    answers = ["plain"] * 20 + HOSTILE_ANSWERS + ["plain"] * 20
    for answer in answers:
        ask(hostile_client, answer)
    assert auriko_obs.flush() is True
    stats = auriko_obs.stats()
    calls = auriko_obs.Store(instrumented).calls()
    assert len(calls) == len(answers)  # not one call lost with its batch
    assert stats["export_failures"] == {} and stats["store"]["lost_spans"] == 0
    by_raw = {
        "tokens_2_64": calls[calls["attributes"].str.contains(str(2**64))],
        "tokens_1e20": calls[calls["attributes"].str.contains(str(10**20))],
        "remaining_25_digits": calls[calls["attributes"].str.contains("9" * 25)],
    }
    for answer, rows in by_raw.items():
        assert len(rows) == 1, answer
    huge = by_raw["tokens_2_64"].iloc[0]
    assert pd.isna(huge["input_tokens"]) and _attribute(huge, "gen_ai.usage.input_tokens") == 2**64
    assert huge["output_tokens"] == 2
    assert pd.isna(by_raw["tokens_1e20"].iloc[0]["input_tokens"])
    assert _attribute(by_raw["tokens_1e20"].iloc[0], "gen_ai.usage.input_tokens") == 10**20
    remaining = by_raw["remaining_25_digits"].iloc[0]
    assert pd.isna(remaining["ratelimit_remaining_requests"])
    assert _attribute(remaining, "auriko.ratelimit.remaining_requests") == int("9" * 25)
    plain = calls[~calls.index.isin([rows.index[0] for rows in by_raw.values()])]
    assert (plain["input_tokens"] == 5).all() and len(plain) == 40


def test_a_negative_token_count_is_null_in_its_column_and_kept_in_attributes(instrumented, hostile_client):
    for answer in ["plain", "tokens_negative", "plain"]:
        ask(hostile_client, answer)
    assert auriko_obs.flush() is True
    calls = auriko_obs.Store(instrumented).calls()
    negative = calls[calls["attributes"].str.contains('"gen_ai.usage.input_tokens":-5')]
    assert len(calls) == 3 and len(negative) == 1  # a negative count is never summed into spend
    assert pd.isna(negative.iloc[0]["input_tokens"]) and negative.iloc[0]["output_tokens"] == 2
    assert (calls.drop(negative.index)["input_tokens"] == 5).all()


def test_a_span_that_cannot_be_encoded_costs_only_itself_and_flush_says_so(instrumented, hostile_client):
    # A lone surrogate in the model name: the SDK refuses to send it (the caller's own error, which reaches
    # it unchanged), and the span of that failed call has a name that cannot be UTF-8 in Arrow.
    for _ in range(10):
        ask(hostile_client)
    with pytest.raises(UnicodeEncodeError):
        ask(hostile_client, model="gpt-4o-\ud800")
    for _ in range(10):
        ask(hostile_client)
    assert auriko_obs.flush() is False  # one call is not in the store
    stats = auriko_obs.stats()
    assert stats["store"]["lost_spans"] == 1 and stats["export_failures"] == {"DuckDBSpanExporter": 1}
    assert stats["internal_errors"].get("store.rows") == 1
    calls = auriko_obs.Store(instrumented).calls()
    assert len(calls) == 20 and set(calls["request_model"]) == {"gpt-4o"}
    ask(hostile_client)
    assert auriko_obs.flush() is True  # the next flush, with every span since the last one stored


def test_rows_the_store_refuses_are_set_aside_and_the_rest_of_the_batch_is_stored(
    instrumented, hostile_client, tmp_path
):
    from auriko_obs.store import RAW_SCHEMA, Spool, StoreWriter, connect, spool_dir

    for _ in range(5):
        ask(hostile_client)
    assert auriko_obs.flush()
    names = ", ".join(f'"{name}"' for name in RAW_SCHEMA.names)
    with connect(instrumented, read_only=True, wait_s=5) as con:
        table = con.sql(f"SELECT {names} FROM span_rows ORDER BY start_time").to_arrow_table().cast(RAW_SCHEMA)
    attributes = table["extra_attributes"].to_pylist()
    attributes[2] = '{"gen_ai.operation.name": "chat", '  # cut short: not JSON, which DuckDB refuses
    column = RAW_SCHEMA.get_field_index("extra_attributes")
    table = table.set_column(column, "extra_attributes", pa.array(attributes, pa.string()))

    other = str(tmp_path / "other.duckdb")
    outcome = StoreWriter(other).write(table)
    assert (outcome.stored, outcome.refused, outcome.lost, outcome.failed) == (4, 1, 0, 1)
    stored = auriko_obs.Store(other).sql("SELECT span_id FROM spans ORDER BY start_time")["span_id"].tolist()
    assert stored == [span for i, span in enumerate(table["span_id"].to_pylist()) if i != 2]
    [kept] = Spool(spool_dir(other)).quarantined()
    refused = pq.read_table(kept)
    assert refused.num_rows == 1 and refused["extra_attributes"][0].as_py() == attributes[2]


def test_with_otlp_on_the_store_and_the_collector_get_the_same_spans(
    db_path, hostile_client, otlp_collector, no_otel_env
):
    """Before: the collector got every span of a batch with a bad integer, and the local store none."""
    auriko_obs.instrument(db=db_path, otlp=otlp_collector.endpoint)
    try:
        for answer in ["plain"] * 5 + HOSTILE_ANSWERS + ["plain"] * 5:
            ask(hostile_client, answer)
        assert auriko_obs.flush() is True
    finally:
        auriko_obs.uninstrument()
    assert otlp_collector.flush(20)
    local = auriko_obs.Store(db_path).calls()
    collected = auriko_obs.Store(otlp_collector.path).calls()
    assert len(local) == 13 and sorted(local["span_id"]) == sorted(collected["span_id"])
