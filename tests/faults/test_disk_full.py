"""Issue 11, item 10: a full disk. Readers read read-only; writers hold batches in memory, bounded, until
space returns; what does not fit is counted and reported.

The file system is a real 2 MiB tmpfs (``small_fs``, root only), filled to its last byte by a ballast file.
"""

from __future__ import annotations

import logging
import time

import pyarrow as pa
import pyarrow.parquet as pq

import auriko_obs
from auriko_obs import analysis

from .conftest import fill

MESSAGES = [{"role": "user", "content": "hi"}]


def _call(client, n: int) -> None:
    for i in range(n):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"hi {i}"}])


def _wait_until_flushed(timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if auriko_obs.flush(10):
            return True
        time.sleep(0.2)
    return False


def test_on_a_full_disk_batches_wait_in_memory_and_are_stored_once_space_returns(small_fs, client):
    db_path = str(small_fs / "calls.duckdb")
    auriko_obs.instrument(db=db_path, service_name="full-disk")
    try:
        _call(client, 10)
        assert auriko_obs.flush() is True
        ballast = fill(small_fs)
        _call(client, 300)
        assert auriko_obs.flush() is False  # not in the store: flush says so
        stats = auriko_obs.stats()["store"]
        assert stats["held_spans"] == 300 and stats["lost_spans"] == 0
        assert 0 < stats["held_bytes"] <= stats["max_held_bytes"]
        assert len(auriko_obs.Store(db_path).calls()) == 10  # readers still read, on the full disk
        ballast.unlink()  # space returns
        assert _wait_until_flushed(60)
        stats = auriko_obs.stats()["store"]
    finally:
        auriko_obs.uninstrument()
    assert stats["held_spans"] == 0 and stats["lost_spans"] == 0 and stats["stored_spans"] == 310
    calls = auriko_obs.Store(db_path).calls()
    assert len(calls) == 310 and calls["span_id"].is_unique


def test_the_held_batches_are_stored_by_the_retry_thread_without_another_call(small_fs, client):
    db_path = str(small_fs / "calls.duckdb")
    auriko_obs.instrument(db=db_path, service_name="full-disk")
    try:
        _call(client, 1)
        assert auriko_obs.flush() is True
        ballast = fill(small_fs)
        _call(client, 50)
        assert auriko_obs.flush() is False
        ballast.unlink()
        deadline = time.monotonic() + 60
        while auriko_obs.stats()["store"]["held_spans"] and time.monotonic() < deadline:
            time.sleep(0.2)  # nothing calls flush() or the SDK here
        assert auriko_obs.stats()["store"]["held_spans"] == 0
    finally:
        auriko_obs.uninstrument()
    assert len(auriko_obs.Store(db_path).calls()) == 51


def test_beyond_the_memory_bound_spans_are_lost_counted_and_reported(small_fs, client, monkeypatch, caplog):
    monkeypatch.setenv("AURIKO_OBS_MAX_HELD_MB", "0.02")  # 20 KiB: a few dozen spans
    db_path = str(small_fs / "calls.duckdb")
    auriko_obs.instrument(db=db_path, service_name="full-disk")
    try:
        _call(client, 1)
        assert auriko_obs.flush() is True
        fill(small_fs)
        for _ in range(20):
            _call(client, 10)
            auriko_obs.flush()  # twenty batches
        stats = auriko_obs.stats()
    finally:
        auriko_obs.uninstrument()
    store = stats["store"]
    assert store["max_held_bytes"] == int(0.02 * (1 << 20))
    assert 0 < store["held_spans"] < 200 and store["held_bytes"] <= store["max_held_bytes"]
    assert store["lost_spans"] == 200 - store["held_spans"]
    assert stats["export_failures"] == {"DuckDBSpanExporter": 200}
    assert stats["internal_errors"]["store.lost"] > 0
    lost_warnings = [r for r in caplog.records if "spans lost" in r.getMessage()]
    assert len(lost_warnings) == 1 and "AURIKO_OBS_MAX_HELD_MB" in lost_warnings[0].getMessage()
    # uninstrument() could not store the held ones either: they are lost too, and logged
    assert any("are lost" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_readers_and_analyses_work_on_a_full_disk_with_batches_in_the_spool(small_fs, client, tmp_path):
    """Readers used to fold the spool in, which needs a writable file: on a full disk they failed."""
    from auriko_obs.store import RAW_SCHEMA, connect, spool_dir

    db_path = str(small_fs / "calls.duckdb")
    auriko_obs.instrument(db=db_path, service_name="full-disk")
    try:
        _call(client, 6)
        assert auriko_obs.flush() is True
    finally:
        auriko_obs.uninstrument()
    names = ", ".join(f'"{name}"' for name in RAW_SCHEMA.names)
    with connect(db_path, read_only=True, wait_s=5) as con:
        rows = con.sql(f"SELECT {names} FROM spans ORDER BY start_time").to_arrow_table().cast(RAW_SCHEMA)
    # Two spans as a writer locked out of the file spools them: a new one, and one stored already (a crash
    # between COMMIT and deleting the spool file). Readers must show each span once.
    new = rows.slice(5, 1).set_column(1, "span_id", pa.array(["00000000000000aa"]))
    spooled = pa.concat_tables([rows.slice(4, 1), new])
    spool_dir(db_path).mkdir()
    pq.write_table(spooled, spool_dir(db_path) / "00000000000000000001-1-000001.parquet")
    fill(small_fs)
    store = auriko_obs.Store(db_path)
    calls = store.calls()
    assert len(calls) == 7 and calls["span_id"].is_unique
    assert analysis.cost_by("model", db_path)["calls"].sum() == 7
    assert list(spool_dir(db_path).glob("*.parquet"))  # left for the next writer
