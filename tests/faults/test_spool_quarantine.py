"""Issue 11, item 2: an unreadable spool file is moved aside, counted and reported, and everything goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import auriko_obs
from auriko_obs import analysis

MESSAGES = [{"role": "user", "content": "hi"}]
AURIKO_OBS = [sys.executable, "-c", "import sys; from auriko_obs.cli import main; sys.exit(main(sys.argv[1:]))"]


def _bad_spool_files(db_path: str) -> list[Path]:
    """Returns two unreadable spool files made in the store's spool: one of 0 bytes, one of garbage, as a
    crash between writing and renaming (without fsync) or a failing disk leaves them."""
    from auriko_obs.store import spool_dir

    folder = spool_dir(db_path)
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "00000000000000000001-1-000001.parquet"
    empty.write_bytes(b"")
    garbage = folder / "00000000000000000002-1-000002.parquet"
    garbage.write_bytes(b"PAR1" + os.urandom(300))
    return [empty, garbage]


def _quarantined(db_path: str) -> list[str]:
    from auriko_obs.store import Spool, spool_dir

    return sorted(p.name for p in Spool(spool_dir(db_path)).quarantined())


def test_writes_go_on_and_unreadable_spool_files_are_quarantined_and_counted(instrumented, client):
    bad = _bad_spool_files(instrumented)
    for _ in range(20):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert auriko_obs.flush() is True
    stats = auriko_obs.stats()
    assert stats["store"]["quarantined_files"] == 2 and stats["store"]["stored_spans"] == 20
    assert stats["spooled_spans"] == 0 and stats["export_failures"] == {}
    assert _quarantined(instrumented) == sorted(f.name for f in bad)
    assert not any(f.exists() for f in bad)
    assert len(auriko_obs.Store(instrumented).calls()) == 20


def test_readers_analyses_and_reports_go_on_beside_an_unreadable_spool_file(instrumented, client, tmp_path):
    for _ in range(5):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert auriko_obs.flush()
    _bad_spool_files(instrumented)
    assert int(auriko_obs.Store(instrumented).sql("SELECT count(*) AS n FROM llm_calls")["n"].iloc[0]) == 5
    assert len(_quarantined(instrumented)) == 2  # the reader moved them aside
    _bad_spool_files(instrumented)
    frame = analysis.cost_by("model", instrumented)
    assert frame["calls"].sum() == 5
    _bad_spool_files(instrumented)
    from auriko_obs.cli import main

    out = tmp_path / "report.md"
    assert main(["report", "--db", instrumented, "--since", "1d", "--format", "md", "--out", str(out)]) == 0
    assert out.read_text().strip() and len(_quarantined(instrumented)) == 6


def test_the_command_line_says_which_spool_files_it_moved_to_quarantine(instrumented, client):
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert auriko_obs.flush()
    bad = _bad_spool_files(instrumented)
    ran = subprocess.run(
        [*AURIKO_OBS, "sql", "SELECT count(*) AS n FROM llm_calls", "--db", instrumented],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["n", "1"]
    warnings = [line for line in ran.stderr.splitlines() if "cannot be read" in line]
    assert len(warnings) == 2
    for file in bad:
        assert any(str(file) in line and "quarantine" in line for line in warnings)


def test_a_spool_file_whose_rows_the_store_refuses_is_set_aside_and_writes_go_on(instrumented, client):
    """A readable spool file with a row DuckDB refuses used to fail every later write (each batch then
    went to the spool too, behind it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from auriko_obs.store import RAW_SCHEMA, connect, spool_dir

    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert auriko_obs.flush()
    names = ", ".join(f'"{name}"' for name in RAW_SCHEMA.names)
    with connect(instrumented, read_only=True, wait_s=5) as con:
        rows = con.sql(f"SELECT {names} FROM span_rows").to_arrow_table().cast(RAW_SCHEMA)
    # The same spans under new ids, one with attributes that are not JSON.
    poisoned = rows.set_column(1, "span_id", pa.array([f"{i:016x}" for i in range(1, 4)], pa.string()))
    attributes = poisoned["extra_attributes"].to_pylist()
    attributes[1] = "{not json"
    column = RAW_SCHEMA.get_field_index("extra_attributes")
    poisoned = poisoned.set_column(column, "extra_attributes", pa.array(attributes))
    spool_dir(instrumented).mkdir()
    pq.write_table(poisoned, spool_dir(instrumented) / "00000000000000000003-1-000003.parquet")
    for _ in range(4):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush() is True
    stats = auriko_obs.stats()["store"]
    assert stats["stored_spans"] == 7 and stats["folded_spans"] == 2 and stats["refused_spans"] == 1
    assert auriko_obs.stats()["spooled_spans"] == 0 and not list(spool_dir(instrumented).glob("*.parquet"))
    assert len(auriko_obs.Store(instrumented).calls()) == 3 + 2 + 4
    [kept] = _quarantined(instrumented)
    assert kept.startswith("rejected-")


def test_spool_files_are_fsynced_before_the_rename_and_their_folder_after(tmp_path, monkeypatch):
    """A crash (or power loss) right after the rename must not leave a 0-byte file under the final name."""
    import pyarrow as pa

    from auriko_obs.store import RAW_SCHEMA, Spool

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("rename", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    spool = Spool(tmp_path / "s.duckdb.spool")
    published = spool.publish(pa.Table.from_pylist([], schema=RAW_SCHEMA))
    temporary = str(published.with_suffix(".tmp"))
    assert events == [("fsync", temporary), ("rename", str(published)), ("fsync", str(spool.folder))]


def _collect(db_path: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [*AURIKO_OBS, "collect", "--db", db_path, "--port", "0", "--flush-interval", "0.1"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "receiving OTLP traces on http://" in line, line
    return proc, line.split(" on ", 1)[1].split(" into ", 1)[0]


def _otlp_json(i: int) -> bytes:
    span = {
        "traceId": f"{i + 1:032x}",
        "spanId": f"{i + 1:016x}",
        "name": "chat gpt-4o",
        "kind": 3,
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
        "endTimeUnixNano": str(1_700_000_001_000_000_000 + i),
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}],
    }
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def test_collect_stores_every_acknowledged_span_beside_an_unreadable_spool_file(tmp_path):
    pytest.importorskip("opentelemetry.proto")
    db_path = str(tmp_path / "collected.duckdb")
    bad = _bad_spool_files(db_path)
    proc, url = _collect(db_path)
    try:
        for i in range(50):
            request = urllib.request.Request(url, data=_otlp_json(i), headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert int(auriko_obs.Store(db_path).sql("SELECT count(*) AS n FROM llm_calls")["n"].iloc[0]) == 50
    assert _quarantined(db_path) == sorted(f.name for f in bad)
    assert sum("cannot be read" in line and "quarantine" in line for line in stderr.splitlines()) == 2
    assert "quarantined_files=2" in stderr.splitlines()[-1]
