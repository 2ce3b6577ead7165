"""Issue 14, item 1: the lake writer. ``instrument(lake=…)`` writes the store's rows as zstd Parquet, one folder per
UTC date, in files published whole under names no other writer uses; bad rows cost only themselves; batches wait
in memory, bounded, while the lake cannot be written; many processes write one lake without coordination."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import auriko_obs
from auriko_obs.store import LakeWriter, StoreWriter

from ._lake_files import lake_rows, raw_rows, store_rows
from ._stores import call, make_store
from .conftest import API_KEY

MESSAGES = [{"role": "user", "content": "hi"}]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _as_list(value):
    return list(value) if hasattr(value, "__iter__") and not isinstance(value, str) else None


def _frames_equal(lake: pd.DataFrame, store: pd.DataFrame) -> None:
    lake = lake.drop(columns=["date", "file"]).reset_index(drop=True)
    store = store.reset_index(drop=True)
    assert list(lake.columns) == list(store.columns)
    for column in store.columns:  # one column at a time, so that a failure names it
        left, right = lake[column], store[column]
        if any(_as_list(v) is not None for v in [*left, *right] if not isinstance(v, str)):
            left, right = left.map(_as_list), right.map(_as_list)
        pd.testing.assert_series_equal(left, right, check_dtype=False, check_names=False, obj=column)


def test_instrumented_calls_land_in_the_lake_with_the_rows_the_store_gets(sim, client, tmp_path):
    db, lake = str(tmp_path / "spend.duckdb"), str(tmp_path / "lake")
    auriko_obs.instrument(db=db, lake=lake, service_name="tests")
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        for _ in client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            pass
        client.embeddings.create(model="text-embedding-3-small", input="hi")
        client.responses.create(model="gpt-4o", input="hi")
        sim.inject("rate_limit_exceeded")
        with pytest.raises(Exception):  # noqa: B017  (the caller's own error; what is recorded is the subject)
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush() is True
        stats = auriko_obs.stats()
    finally:
        auriko_obs.uninstrument()
    assert stats["lake"]["published_spans"] == 5 and stats["lake"]["lost_spans"] == 0
    rows = lake_rows(lake)
    _frames_equal(rows, store_rows(db))
    assert set(rows["streaming"]) == {True, False} and set(rows["api"]) >= {"chat_completions", "embeddings"}
    assert rows["date"].astype(str).tolist() == rows["start_time"].dt.strftime("%Y-%m-%d").tolist()


def test_analyses_of_the_written_lake_equal_those_of_the_store(sim, client, tmp_path):
    from auriko_obs import Store, analysis

    db, lake = str(tmp_path / "spend.duckdb"), str(tmp_path / "lake")
    auriko_obs.instrument(db=db, lake=lake)
    try:
        for model in ("gpt-4o", "gpt-4o-mini", "gpt-4o"):
            client.chat.completions.create(model=model, messages=MESSAGES)
        sim.inject("upstream_error")
        with pytest.raises(Exception):  # noqa: B017  (the caller's own error; what is recorded is the subject)
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush() is True
    finally:
        auriko_obs.uninstrument()
    in_lake, in_file = Store(lake), Store(db)
    assert in_lake.is_lake and in_lake.calls().equals(in_file.calls())
    cases = {
        "provider_mix": analysis.provider_mix,
        "errors": analysis.errors,
        "latency": analysis.latency,
        "cost_by model": lambda s: analysis.cost_by("model", s),
        "summary": lambda s: s.summary(),
    }
    for name, run in cases.items():
        pd.testing.assert_frame_equal(run(in_lake), run(in_file), obj=name)


def test_lake_only_instrumentation_makes_no_store_file(sim, client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AURIKO_OBS_DB", raising=False)
    active = auriko_obs.instrument(lake=str(tmp_path / "lake"))
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush() is True
        assert active.db_path is None and active.lake == str(tmp_path / "lake")
        assert "store" not in auriko_obs.stats()
    finally:
        auriko_obs.uninstrument()
    assert not os.path.exists(tmp_path / "auriko_obs.duckdb")
    assert len(lake_rows(str(tmp_path / "lake"))) == 1


def test_each_call_lands_in_the_folder_of_its_utc_date(tmp_path):
    rows = [
        call("2026-06-01T23:59:59.999999Z", input_tokens=1),
        call("2026-06-02T00:00:00Z", input_tokens=2),
        call("2026-06-02T01:30:00+02:00", input_tokens=3),  # 23:30 UTC on June 1st
    ]
    db = make_store(str(tmp_path / "store.duckdb"), rows)
    writer = LakeWriter(tmp_path / "lake")
    writer.write(raw_rows(db))
    assert writer.flush() is True
    assert sorted(os.listdir(tmp_path / "lake")) == ["date=2026-06-01", "date=2026-06-02"]
    lake = lake_rows(str(tmp_path / "lake"))
    by_date = lake.groupby(lake["date"].astype(str))["span_id"].apply(sorted).to_dict()
    assert by_date == {
        "2026-06-01": sorted([rows[0]["span_id"], rows[2]["span_id"]]),
        "2026-06-02": [rows[1]["span_id"]],
    }


def test_files_are_zstd_parquet_typed_as_the_store_under_names_unique_to_the_writer(tmp_path):
    db = make_store(str(tmp_path / "store.duckdb"), [call("2026-06-01T10:00:00Z", http_status=200)])
    for _ in range(2):  # two writers of one process: different random parts
        writer = LakeWriter(tmp_path / "lake")
        writer.write(raw_rows(db))
        writer.flush()
    names = sorted(os.listdir(tmp_path / "lake" / "date=2026-06-01"))
    assert len(names) == 2 and len({n.rsplit("-", 2)[1] for n in names}) == 2  # the random part
    host_pid = f"-{os.getpid()}-"
    assert all(n.startswith("part-") and n.endswith(".parquet") and host_pid in n for n in names)
    metadata = pq.ParquetFile(tmp_path / "lake" / "date=2026-06-01" / names[0]).metadata
    assert {metadata.row_group(0).column(i).compression for i in range(metadata.num_columns)} == {"ZSTD"}
    schema = pq.read_schema(tmp_path / "lake" / "date=2026-06-01" / names[0])
    assert schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert schema.field("http_status").type == pa.int32() and schema.field("input_tokens").type == pa.int64()
    assert schema.field("warnings").type == pa.list_(pa.string()) and schema.field("attributes").type == pa.string()
    assert "date" not in schema.names  # the partition is the folder


def test_a_value_out_of_its_columns_type_is_null_in_the_lake_as_in_the_store_and_kept_in_attributes(tmp_path):
    hostile = {"gen_ai.usage.input_tokens": 2**64, "gen_ai.usage.output_tokens": "many", "auriko.cost.usd": "1.5"}
    rows = [call("2026-06-01T10:00:00Z"), call("2026-06-01T10:00:01Z", attributes=hostile)]
    raw = raw_rows(make_store(str(tmp_path / "source.duckdb"), rows))
    db = str(tmp_path / "store.duckdb")
    StoreWriter(db).write(raw)  # the store types the same raw rows: the reference
    writer = LakeWriter(tmp_path / "lake")
    outcome = writer.write(raw)
    assert writer.flush() is True and (outcome.stored, outcome.refused, outcome.lost) == (2, 0, 0)
    lake, store = lake_rows(str(tmp_path / "lake")), store_rows(db)
    _frames_equal(lake, store)
    bad = lake[lake["span_id"] == rows[1]["span_id"]].iloc[0]
    assert pd.isna(bad["input_tokens"]) and json.loads(bad["attributes"])["gen_ai.usage.input_tokens"] == 2**64


def test_rows_the_lake_refuses_are_set_aside_in_its_quarantine_and_the_rest_is_written(tmp_path):
    rows = [call(f"2026-06-01T10:00:0{i}Z") for i in range(5)]
    raw = raw_rows(make_store(str(tmp_path / "source.duckdb"), rows))
    attributes = raw["extra_attributes"].to_pylist()
    attributes[2] = '{"gen_ai.operation.name": "chat", '  # cut short: not JSON
    column = raw.schema.get_field_index("extra_attributes")
    raw = raw.set_column(column, "extra_attributes", pa.array(attributes, pa.string()))
    writer = LakeWriter(tmp_path / "lake")
    outcome = writer.write(raw)
    assert (outcome.stored, outcome.refused, outcome.lost) == (4, 1, 0)
    assert writer.flush() is False  # a row written since the last flush is not in the lake's data
    assert writer.flush() is True
    assert lake_rows(str(tmp_path / "lake"))["span_id"].tolist() == [r["span_id"] for i, r in enumerate(rows) if i != 2]
    [kept] = os.listdir(tmp_path / "lake" / "_auriko_obs" / "quarantine")
    refused = pq.read_table(tmp_path / "lake" / "_auriko_obs" / "quarantine" / kept)
    assert refused["extra_attributes"].to_pylist() == [attributes[2]]
    assert writer.stats()["refused_spans"] == 1


def test_a_span_that_cannot_be_encoded_costs_only_itself_and_flush_says_so(sim, client, tmp_path):
    lake = str(tmp_path / "lake")
    auriko_obs.instrument(lake=lake)
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with pytest.raises(UnicodeEncodeError):  # the SDK refuses it; its span's name cannot be UTF-8 in Arrow
            client.chat.completions.create(model="gpt-4o-\ud800", messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush() is False
        stats = auriko_obs.stats()
        assert stats["lake"]["lost_spans"] == 1 and stats["export_failures"] == {"LakeSpanExporter": 1}
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush() is True
    finally:
        auriko_obs.uninstrument()
    assert len(lake_rows(lake)) == 3


def test_rows_wait_for_a_file_until_enough_bytes_or_seconds_have_gathered(tmp_path):
    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call(f"2026-06-01T10:00:{i:02d}Z") for i in range(40)]))
    sizing = LakeWriter(tmp_path / "sizing", flush_interval_s=3600)
    sizing.write(raw.slice(0, 10))
    ten_rows = sizing.stats()["buffered_bytes"]  # what 10 rows take in memory
    by_size = LakeWriter(tmp_path / "by-size", flush_bytes=ten_rows * 2 - 1, flush_interval_s=3600)
    for start in range(0, 30, 10):
        by_size.write(raw.slice(start, 10))
    assert by_size.stats()["published_files"] == 1 and len(lake_rows(str(tmp_path / "by-size"))) == 20
    assert by_size.stats()["buffered_spans"] == 10

    by_time = LakeWriter(tmp_path / "by-time", flush_interval_s=0.3)
    by_time.write(raw)
    assert by_time.stats()["published_files"] == 0
    deadline = time.monotonic() + 10
    while by_time.stats()["published_files"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert by_time.stats()["published_spans"] == 40 and len(lake_rows(str(tmp_path / "by-time"))) == 40


def test_rows_of_a_write_are_reported_published_only_once_their_file_is_visible(tmp_path):
    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call("2026-06-01T10:00:00Z"), call("2026-06-02T10:00:00Z")]))
    seen: list[int] = []
    writer = LakeWriter(tmp_path / "lake", flush_interval_s=3600)
    writer.write(raw, on_published=lambda: seen.append(len(lake_rows(str(tmp_path / "lake")))))
    assert seen == []
    writer.flush()
    assert seen == [2]


def _writer_script(lake: str, rows_per_write: int, writes: int, seed: int) -> str:
    return textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{ROOT!r}]
        import pyarrow as pa
        from auriko_obs.store import LEGACY_RAW_SCHEMA as RAW_SCHEMA, LakeWriter
        writer = LakeWriter({lake!r}, flush_bytes=1, flush_interval_s=3600)  # a file per write
        for w in range({writes}):
            n = {rows_per_write}
            ids = [f"{{{seed}:08x}}{{w:08x}}{{i:016x}}" for i in range(n)]
            table = pa.table({{
                "trace_id": ids, "span_id": [i[-16:] for i in ids],
                "start_time": pa.array([1780 * 10**15 + i * 1000 for i in range(n)], pa.timestamp("ns", tz="UTC")),
                "attributes": ['{{"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 7}}'] * n,
                "status": ["ok"] * n,
            }})
            missing = [f for f in RAW_SCHEMA if f.name not in table.column_names]
            for f in missing:
                table = table.append_column(f, pa.nulls(n, f.type))
            writer.write(table.select(RAW_SCHEMA.names))
        assert writer.flush()
        """
    )


def test_many_processes_write_one_lake_without_coordination(tmp_path):
    lake = str(tmp_path / "lake")
    procs = [
        subprocess.Popen([sys.executable, "-c", _writer_script(lake, 500, 8, seed)], stderr=subprocess.PIPE)
        for seed in range(4)
    ]
    for proc in procs:
        assert proc.wait(120) == 0, proc.stderr.read().decode()[-2000:]
    rows = lake_rows(lake, "trace_id, span_id, input_tokens, start_time")
    assert len(rows) == 4 * 8 * 500 and rows["trace_id"].is_unique and (rows["input_tokens"] == 7).all()
    files = os.listdir(os.path.join(lake, "date=2026-05-28"))
    assert len(files) == 32 and len({f.rsplit("-", 3)[1] for f in files}) == 4  # 4 processes, one file per write


def test_a_writer_killed_mid_write_leaves_only_complete_files(tmp_path):
    lake = str(tmp_path / "lake")
    proc = subprocess.Popen([sys.executable, "-c", _writer_script(lake, 20_000, 1000, 1)], stderr=subprocess.DEVNULL)
    folder = os.path.join(lake, "date=2026-05-28")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(os.listdir(folder) if os.path.isdir(folder) else []) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    names = os.listdir(folder)
    published = [n for n in names if n.endswith(".parquet") and not n.startswith(".")]
    assert len(published) >= 2
    for name in published:  # every visible file is whole
        assert pq.read_table(os.path.join(folder, name)).num_rows == 20_000
    assert all(n.startswith(".") and n.endswith(".tmp") for n in set(names) - set(published))


def test_a_reader_never_sees_half_a_file(tmp_path):
    lake = tmp_path / "lake"
    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call(f"2026-06-01T10:00:{i:02d}Z") for i in range(50)]))
    big = pa.concat_tables([raw] * 200)  # the same 50 spans, many times: 10,000 rows a file
    stop, problems, reads = threading.Event(), [], [0]

    def read() -> None:
        folder = lake / "date=2026-06-01"
        while not stop.is_set():
            for name in os.listdir(folder) if folder.is_dir() else []:
                if name.endswith(".parquet") and not name.startswith("."):
                    try:
                        rows = pq.read_metadata(folder / name).num_rows
                    except FileNotFoundError:
                        continue
                    except Exception as exc:
                        problems.append(f"{name}: {exc}")
                    else:
                        reads[0] += 1
                        if rows != 50:
                            problems.append(f"{name}: {rows} rows")

    reader = threading.Thread(target=read)
    reader.start()
    writer = LakeWriter(lake, flush_bytes=1)
    try:
        for _ in range(15):
            writer.write(big)
    finally:
        stop.set()
        reader.join()
    assert problems == [] and reads[0] > 0 and writer.stats()["published_files"] == 15


def test_rows_buffered_when_the_process_exits_are_published(tmp_path):
    lake = str(tmp_path / "lake")
    script = _writer_script(lake, 100, 1, 3).replace("assert writer.flush()", "")
    assert subprocess.run([sys.executable, "-c", script], timeout=120).returncode == 0
    assert len(lake_rows(lake)) == 100


def test_instrument_with_a_lake_in_a_forked_child_writes_its_own_files(sim, tmp_path):
    """A forked worker (gunicorn, multiprocessing) writes under its own pid, and its parent's rows stay its parent's."""
    lake = str(tmp_path / "lake")
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path[:0] = [{ROOT!r}]
        import openai, auriko_obs
        auriko_obs.instrument(lake={lake!r})
        client = openai.OpenAI(base_url={sim.base_url!r}, api_key={API_KEY!r}, max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "parent"}}])
        pid = os.fork()
        if pid == 0:
            client.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "child"}}])
            os._exit(0 if auriko_obs.flush() else 3)
        _, status = os.waitpid(pid, 0)
        assert auriko_obs.flush() and status == 0, status
        print(os.getpid(), pid)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    parent, child = out.stdout.split()
    rows = lake_rows(lake)
    assert len(rows) == 2 and rows["span_id"].is_unique
    pids = sorted(os.path.basename(f).rsplit("-", 3)[1] for f in rows["file"])
    assert pids == sorted([parent, child])


def test_a_process_that_wrote_a_lake_can_still_start_programs_that_fork(tmp_path):
    """Before: the child of a fork (subprocess with preexec_fn, as pyspark starts Java) closed the DuckDB connection
    it inherited from the lake writer, and crashed."""
    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call("2026-06-01T10:00:00Z")]))
    writer = LakeWriter(tmp_path / "lake")
    writer.write(raw)  # the writer's DuckDB connection is open now
    assert writer.flush()
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", "print('ran')"], preexec_fn=lambda: None, capture_output=True)
        assert done.returncode == 0 and done.stdout.strip() == b"ran"


@pytest.mark.parametrize("value", ["2.5", "0", "-1", "inf", "soon"])
def test_the_lake_flush_interval_is_read_from_its_variable_and_a_bad_one_is_reported(tmp_path, monkeypatch, value):
    from auriko_obs._internal_errors import INTERNAL_ERRORS
    from auriko_obs.store._lake_writer import DEFAULT_FLUSH_S, FLUSH_S_ENV

    monkeypatch.setenv(FLUSH_S_ENV, value)
    before = INTERNAL_ERRORS.counts.get(f"lake.{FLUSH_S_ENV}", 0)
    writer = LakeWriter(tmp_path / "lake")
    try:
        interval = writer.flush_interval_s
    finally:
        writer.close()
    usable = value == "2.5"
    assert interval == (2.5 if usable else DEFAULT_FLUSH_S)
    assert INTERNAL_ERRORS.counts.get(f"lake.{FLUSH_S_ENV}", 0) == before + (not usable)
