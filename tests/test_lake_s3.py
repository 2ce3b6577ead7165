"""Issue 14, items 1 and 2: a lake on S3, against moto's S3-compatible server that these tests start on
127.0.0.1 (``AWS_ENDPOINT_URL`` points the writer and the reader at it, as it would at MinIO or R2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import auriko_obs
from auriko_obs.store import LakeWriter

from ._lake_files import MotoS3, lake_rows, moto_s3, raw_rows, store_rows
from ._stores import call, make_store
from .test_lake_writer import MESSAGES, _frames_equal, _writer_script


@pytest.fixture(scope="module")
def s3():
    with moto_s3() as server:
        yield server


@pytest.fixture
def s3_env(s3, monkeypatch):
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


def test_instrumented_calls_land_in_an_s3_lake_with_the_rows_the_store_gets(s3_env, sim, client, tmp_path):
    bucket = s3_env.bucket("calls")
    db, lake = str(tmp_path / "spend.duckdb"), f"{bucket}/team/llm"
    auriko_obs.instrument(db=db, lake=lake)
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        client.embeddings.create(model="text-embedding-3-small", input="hi")
        assert auriko_obs.flush() is True
        assert auriko_obs.stats()["lake"]["published_files"] == 1
    finally:
        auriko_obs.uninstrument()
    [key] = s3_env.keys("calls")
    assert key.startswith("team/llm/date=") and key.endswith(".parquet") and "/part-" in key
    _frames_equal(lake_rows(lake), store_rows(db))


def test_many_processes_write_one_s3_lake_without_coordination(s3_env, tmp_path):
    lake = f"{s3_env.bucket('fleet')}/lake"
    procs = [
        subprocess.Popen([sys.executable, "-c", _writer_script(lake, 300, 4, seed)], stderr=subprocess.PIPE)
        for seed in range(3)
    ]
    for proc in procs:
        assert proc.wait(180) == 0, proc.stderr.read().decode()[-2000:]
    rows = lake_rows(lake, "trace_id, span_id")
    assert len(rows) == 3 * 4 * 300 and rows["trace_id"].is_unique
    assert len(s3_env.keys("fleet")) == 12


def test_an_s3_outage_holds_files_in_memory_and_publishes_them_once_s3_is_back(tmp_path, monkeypatch):
    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call(f"2026-06-01T10:00:{i:02d}Z") for i in range(10)]))
    server = MotoS3().start()
    try:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        lake = f"{server.bucket('outage')}/lake"
        writer = LakeWriter(lake, flush_interval_s=3600)
        server.stop()
        writer.write(raw)
        assert writer.flush() is False
        assert writer.stats()["held_spans"] == 10 and writer.stats()["failed_publishes"] >= 1
        server.start()  # the same endpoint; a new server has lost the bucket
        server.bucket("outage")
        assert writer.flush() is True
        assert writer.stats()["held_spans"] == 0 and writer.stats()["published_spans"] == 10
        assert len(lake_rows(lake)) == 10
    finally:
        server.stop()


def test_an_s3_lake_reads_as_the_store_in_every_analysis_and_command(s3_env, sim, client, tmp_path, capsys):
    from auriko_obs import Store, analysis
    from auriko_obs.cli import main

    bucket = s3_env.bucket("reading")
    db, lake = str(tmp_path / "spend.duckdb"), f"{bucket}/lake"
    auriko_obs.instrument(db=db, lake=lake)
    try:
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        sim.inject("rate_limit_exceeded")
        with pytest.raises(Exception):  # noqa: B017  (the caller's own error; what is recorded is the subject)
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush() is True
    finally:
        auriko_obs.uninstrument()
    on_s3, in_file = Store(lake), Store(db)
    assert on_s3.is_lake and on_s3.path == lake
    assert on_s3.calls().equals(in_file.calls())
    cases = {
        "provider_mix": analysis.provider_mix,
        "errors": analysis.errors,
        "latency": analysis.latency,
        "cost_by provider": lambda s: analysis.cost_by("provider", s),
    }
    for name, run in cases.items():
        # Sums of floats depend on the order the engine adds rows in (one file against several objects): a mean may
        # differ in its last bit, so floats are compared to 1e-9 relative; everything else exactly.
        pd.testing.assert_frame_equal(run(on_s3), run(in_file), check_exact=False, rtol=1e-9, atol=0, obj=name)
    assert main(["sql", "--db", lake, "--format", "json", "SELECT count(*) AS calls FROM llm_calls"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"calls": 4}]


def test_an_empty_s3_lake_reads_as_empty_tables(s3_env):
    from auriko_obs import Store

    lake = f"{s3_env.bucket('empty')}/lake"
    assert Store(lake).calls().empty


def test_an_s3_date_compaction_left_is_read_without_grouping_until_a_copy_of_a_span_arrives(s3_env, tmp_path):
    from auriko_obs import Store
    from auriko_obs.store._lake_lifecycle import compact

    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call(f"2026-06-01T10:00:{i:02d}Z") for i in range(6)]))
    lake = f"{s3_env.bucket('compacted')}/lake"

    def write(table):
        writer = LakeWriter(lake)
        writer.write(table)
        assert writer.flush()

    def read() -> tuple[int, bool]:
        store = Store(lake)
        plan = "".join(store.sql("EXPLAIN SELECT count(*) FROM spans")["explain_value"]).upper().replace("_", " ")
        return int(store.sql("SELECT count(*) AS n FROM spans")["n"][0]), "GROUP BY" in plan

    write(raw.slice(0, 3))
    write(raw.slice(3))
    assert compact(lake, grace_s=3600).days[0].files_out == 1
    assert read() == (6, False)  # the merged file alone; the two it replaced, still there, are not read
    write(raw.slice(0, 2))  # late copies of two spans
    assert read() == (6, True)


def s3_lake_of(s3, bucket: str, db: str) -> str:
    """Returns an S3 lake holding the spans of the store ``db``, written by the lake writer."""
    lake = f"{s3.bucket(bucket)}/lake"
    writer = LakeWriter(lake, flush_interval_s=3600)
    writer.write(raw_rows(db))
    assert writer.flush() is True
    return lake


def test_the_dashboard_over_an_s3_lake_shows_its_spans(s3_env, tmp_path):
    from auriko_obs import Store
    from auriko_obs.dashboard import make_server

    from .test_analysis import five_calls
    from .test_dashboard import DASHBOARDS

    lake = s3_lake_of(s3_env, "dashboard", make_store(str(tmp_path / "s.duckdb"), five_calls()))
    server = make_server(lake, port=0, folder=DASHBOARDS)
    try:
        assert server.app.db_path == lake
        data = json.loads(server.app.data("spend"))
    finally:
        server.server_close()
    expected = Store(lake).sql("SELECT count(*) AS n, max(end_time)::VARCHAR AS last FROM spans").iloc[0]
    assert data["spans"] == expected["n"] == 5
    assert data["version"] is not None and str(expected["last"]) in json.dumps(data["version"])


def test_refresh_prices_writes_an_s3_lakes_price_file_so_routing_savings_works(s3_env, sim, client, tmp_path):

    from auriko_obs import analysis

    db, lake = str(tmp_path / "spend.duckdb"), f"{s3_env.bucket('prices')}/lake"
    auriko_obs.instrument(db=db, lake=lake)
    try:
        for model in ("gpt-4o", "gpt-4o", "llama-3.3-70b"):
            client.chat.completions.create(model=model, messages=MESSAGES)
        assert auriko_obs.flush() is True
    finally:
        auriko_obs.uninstrument()
    for store in (lake, db):
        assert len(analysis.refresh_prices(store, sim.base_url, "ak_test")) > 2
    assert s3_env.keys("prices", "lake/_auriko_obs/") == ["lake/_auriko_obs/provider_prices.parquet"]
    fetched = [analysis.prices(store).drop(columns="fetched_at") for store in (lake, db)]
    pd.testing.assert_frame_equal(*fetched, check_dtype=False)
    savings = analysis.routing_savings(lake, by="model")
    assert savings["priced_calls"].sum() == 3
    pd.testing.assert_frame_equal(savings, analysis.routing_savings(db, by="model"), check_dtype=False)
