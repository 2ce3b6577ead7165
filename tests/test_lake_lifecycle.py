"""Issue 14, item 5: a lake's lifecycle. ``auriko-obs lake compact`` merges a day's small files and drops
duplicates while writers append and readers query; ``lake export`` moves a store into a lake; ``--keep``/``lake
prune`` drop old days; bad input exits 2 with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone

import pytest

from auriko_obs.cli import main
from auriko_obs.store import LakeWriter, StoreWriter
from auriko_obs.store._lake_lifecycle import compact, export_store

from ._lake_files import lake_rows, raw_rows, store_rows
from ._stores import call, make_store
from .test_lake_writer import ROOT, _frames_equal


def _distinct_spans(root: str) -> list[tuple[str, str]]:
    """Returns the spans the lake reader (``Store(lake)``, DuckDB) sees: one row per (date, trace_id, span_id)."""
    from auriko_obs import Store

    frame = Store(root + "/").sql("SELECT trace_id, span_id FROM spans")  # a lake, even before its folder exists
    return list(zip(frame["trace_id"], frame["span_id"], strict=True))


def _appender(lake: str, writer: int, files: int, rows: int) -> str:
    """A process that publishes ``files`` files of ``rows`` new spans, each fifth file again (a retry)."""
    return textwrap.dedent(
        f"""
        import sys, time
        sys.path[:0] = [{ROOT!r}]
        import pyarrow as pa
        from auriko_obs.store import LEGACY_RAW_SCHEMA as RAW_SCHEMA, LakeWriter
        writer = LakeWriter({lake!r}, flush_bytes=1, flush_interval_s=3600)
        previous = None
        for f in range({files}):
            ids = [f"{writer:08x}{{f:08x}}{{i:016x}}" for i in range({rows})]
            table = pa.table({{"trace_id": ids, "span_id": [i[-16:] for i in ids],
                "start_time": pa.array([1780 * 10**15 + i for i in range({rows})], pa.timestamp("ns", tz="UTC")),
                "attributes": ['{{"gen_ai.operation.name": "chat"}}'] * {rows}}})
            for field in RAW_SCHEMA:
                if field.name not in table.column_names:
                    table = table.append_column(field, pa.nulls({rows}, field.type))
            table = table.select(RAW_SCHEMA.names)
            writer.write(table)
            if f % 5 == 4:
                writer.write(previous)  # the previous file's spans again, in a file of their own
            previous = table
            time.sleep(0.05)
        assert writer.flush()
        """
    )


def test_compaction_while_writers_append_and_a_reader_counts_loses_no_row_and_counts_none_twice(tmp_path):
    lake = str(tmp_path / "lake")
    writers, files, rows = 2, 40, 100
    written = {
        (f"{w:08x}{f:08x}{i:016x}", f"{i:016x}") for w in range(writers) for f in range(files) for i in range(rows)
    }
    procs = [
        subprocess.Popen([sys.executable, "-c", _appender(lake, w, files, rows)], stderr=subprocess.PIPE)
        for w in range(writers)
    ]
    done = threading.Event()
    problems: list[str] = []
    reads: list[int] = []
    runs: list[int] = []

    def read() -> None:
        seen: set[tuple[str, str]] = set()
        while not done.is_set():
            try:
                spans = _distinct_spans(lake)
            except Exception as exc:  # a reader's failure is a problem too
                problems.append(f"read {len(reads)}: {type(exc).__name__}: {exc}")
                continue
            now = set(spans)
            if len(now) != len(spans):
                problems.append(f"read {len(reads)}: {len(spans) - len(now)} spans counted twice")
            if not seen <= now:
                problems.append(f"read {len(reads)}: {len(seen - now)} spans seen before are gone")
            if not now <= written:
                problems.append(f"read {len(reads)}: spans nobody wrote")
            seen = now
            reads.append(len(now))

    def compact_repeatedly() -> None:
        while not done.is_set():
            report = compact(lake, grace_s=0.5)
            runs.append(sum(d.files_in for d in report.days))
            time.sleep(0.1)

    threads = [threading.Thread(target=read), threading.Thread(target=compact_repeatedly)]
    for thread in threads:
        thread.start()
    try:
        for proc in procs:
            assert proc.wait(300) == 0, proc.stderr.read().decode()[-2000:]
        time.sleep(1.0)  # the last files get compacted and replaced ones deleted while the reader reads
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert problems == [], problems[:5]
    print(f"{len(reads)} reads, {len(runs)} compactions")
    assert len(reads) > 10 and reads[-1] == len(written) and sum(runs) > 0
    compact(lake, grace_s=0)
    final = lake_rows(lake, "trace_id, span_id")
    assert len(final) == len(written) and set(zip(final["trace_id"], final["span_id"], strict=True)) == written
    assert len(os.listdir(os.path.join(lake, "date=2026-05-28"))) == 1


def test_compaction_keeps_every_column_and_drops_the_copies_of_a_span(tmp_path):
    rows = [call(f"2026-06-01T10:00:{i:02d}Z", input_tokens=i, tags=["t"], warnings=[]) for i in range(20)]
    raw = raw_rows(make_store(str(tmp_path / "source.duckdb"), rows))
    db = str(tmp_path / "store.duckdb")
    StoreWriter(db).write(raw)  # the store types the same raw rows: the reference
    lake = str(tmp_path / "lake")
    for part in (raw.slice(0, 12), raw.slice(8, 12), raw.slice(5, 3)):  # overlapping writes: 7 copies
        writer = LakeWriter(lake)
        writer.write(part)
        writer.flush()
    assert len(lake_rows(lake)) == 27
    report = compact(lake, grace_s=0)
    assert [(d.files_in, d.rows_in, d.files_out, d.rows_out) for d in report.days] == [(3, 27, 1, 20)]
    assert report.deleted_files == 3 and report.waiting_files == 0
    _frames_equal(lake_rows(lake), store_rows(db))
    [name] = os.listdir(os.path.join(lake, "date=2026-06-01"))
    assert name.startswith("compacted-")


def test_files_replaced_by_compaction_stay_for_the_grace_period_then_a_later_run_deletes_them(tmp_path):
    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call(f"2026-06-01T10:00:0{i}Z") for i in range(4)]))
    lake = str(tmp_path / "lake")
    for part in (raw.slice(0, 2), raw.slice(2, 2)):
        writer = LakeWriter(lake)
        writer.write(part)
        writer.flush()
    folder = os.path.join(lake, "date=2026-06-01")
    small = sorted(os.listdir(folder))
    first = compact(lake, grace_s=3600)
    assert first.waiting_files == 2 and sorted(os.listdir(folder))[-2:] == small  # still there for readers
    assert len(_distinct_spans(lake)) == 4 and len(lake_rows(lake)) == 8  # readers count each span once
    second = compact(lake, grace_s=3600)
    assert second.days == [] and second.waiting_files == 2  # not merged again while they wait
    later = datetime.fromtimestamp(time.time() + 3601, timezone.utc)
    third = compact(lake, grace_s=3600, now=later)
    assert third.deleted_files == 2 and [n.split("-")[0] for n in os.listdir(folder)] == ["compacted"]
    assert len(lake_rows(lake)) == 4


def test_retention_drops_the_days_older_than_keep(tmp_path):
    days = ["2025-01-01", "2025-10-27", "2025-10-28", "2026-12-01"]
    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call(f"{d}T12:00:00Z") for d in days]))
    lake = str(tmp_path / "lake")
    writer = LakeWriter(lake)
    writer.write(raw)
    writer.flush()
    now = datetime(2026, 12, 2, 12, tzinfo=timezone.utc)
    report = compact(lake, keep_s=400 * 86400, now=now)  # keeps 2025-10-28 (400 days before) and later
    assert report.pruned_dates == ["2025-01-01", "2025-10-27"] and report.pruned_files == 2
    assert sorted(n for n in os.listdir(lake) if n.startswith("date=")) == ["date=2025-10-28", "date=2026-12-01"]


def test_export_moves_a_store_into_a_lake_with_every_row_and_column(tmp_path, capsys):
    rows = [call(f"2026-06-0{d}T23:59:59Z", input_tokens=d, warnings=["w"], tags=[]) for d in range(1, 4)]
    rows.append(call("2026-06-02T00:00:00Z", attributes={"k": 1}))
    db = make_store(str(tmp_path / "store.duckdb"), rows)
    lake = str(tmp_path / "lake")
    assert main(["lake", "export", "--db", db, "--to", lake]) == 0
    assert "exported 4 spans" in capsys.readouterr().out
    assert sorted(os.listdir(lake)) == ["_auriko_obs", "date=2026-06-01", "date=2026-06-02", "date=2026-06-03"]
    _frames_equal(lake_rows(lake), store_rows(db))
    assert export_store(db, lake, rows_per_file=1) == (4, 4)  # again, a file per span: copies readers count once
    assert len(lake_rows(lake)) == 8 and len(_distinct_spans(lake)) == 4


def test_export_brings_the_stores_cached_prices_so_routing_savings_reads_the_same(tmp_path):
    from auriko_obs import analysis
    from auriko_obs.store import Store, connect

    db = make_store(str(tmp_path / "store.duckdb"), [call("2026-06-01T10:00:00Z")])
    with connect(db, read_only=False, wait_s=10) as con:
        con.executemany(
            "INSERT INTO provider_prices VALUES (?, ?, ?, ?, ?, NULL, 'test', now())",
            [("gpt-4o", "openai", 0, 2.5, 10.0), ("gpt-4o", "azure", 1, 2.75, 11.0)],
        )
    lake = str(tmp_path / "lake")
    export_store(db, lake)
    import pandas as pd

    from_lake = analysis.prices(Store(lake))
    pd.testing.assert_frame_equal(from_lake, analysis.prices(Store(db)))
    assert len(from_lake) == 2


def test_the_compact_command_reports_what_it_did(tmp_path, capsys):
    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call(f"2026-06-01T10:00:0{i}Z") for i in range(4)]))
    lake = str(tmp_path / "lake")
    for part in (raw.slice(0, 2), raw.slice(2, 2)):
        writer = LakeWriter(lake)
        writer.write(part)
        writer.flush()
    assert main(["lake", "compact", lake, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["days"][0]["files_in"] == 2 and report["days"][0]["rows_out"] == 4 and report["waiting_files"] == 2
    assert main(["lake", "compact", lake, "--grace", "0s"]) == 0
    assert "deleted 2 files replaced earlier" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lake", "compact", "{tmp}/nowhere"], "no lake at"),
        (["lake", "compact", "{tmp}", "--grace", "soon"], "bad --grace"),
        (["lake", "compact", "{tmp}", "--keep", "-1d"], "bad --keep"),
        (["lake", "compact", "{tmp}", "--date", "June 1st"], "bad --date"),
        (["lake", "compact", "gs://bucket/lake"], "only local folders and s3:// lakes"),
        (["lake", "prune", "{tmp}", "--keep", "forever"], "bad --keep"),
        (["lake", "export", "--db", "{tmp}/missing.duckdb", "--to", "{tmp}/lake"], "no auriko-obs store"),
        (["lake", "export", "--db", "{tmp}/store.duckdb", "--to", "{tmp}/file.txt"], "is a file, not a folder"),
    ],
)
def test_lake_commands_refuse_bad_input_with_one_line(tmp_path, capsys, args, message):
    make_store(str(tmp_path / "store.duckdb"), [call("2026-06-01T10:00:00Z")])
    (tmp_path / "file.txt").write_text("not a lake")
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


# ------------------------------------------------------------- dates compaction found to hold each span once


def _written(lake: str, table) -> None:
    writer = LakeWriter(lake)
    writer.write(table)
    writer.flush()


def _compacted_lake(tmp_path, calls: int = 6, grace_s: float = 0):
    """Returns (lake, raw rows) of a lake of one date whose ``calls`` calls are in two files, compacted."""
    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call(f"2026-06-01T10:00:{i:02d}Z") for i in range(calls)]))
    lake = str(tmp_path / "lake")
    half = calls // 2
    _written(lake, raw.slice(0, half))
    _written(lake, raw.slice(half))
    assert compact(lake, grace_s=grace_s).days[0].files_out == 1
    return lake, raw


def _group_by_in_plan(lake: str) -> bool:
    from auriko_obs import Store

    plan = Store(lake + "/").sql("EXPLAIN SELECT count(*) FROM spans")
    return "GROUP BY" in "".join(plan["explain_value"]).upper().replace("_", " ")


def test_a_date_compaction_left_holding_each_span_once_is_read_without_grouping(tmp_path):
    lake, _ = _compacted_lake(tmp_path)
    assert not _group_by_in_plan(lake)
    assert len(_distinct_spans(lake)) == 6


def test_a_copy_of_a_span_written_after_compaction_counts_once(tmp_path):
    lake, raw = _compacted_lake(tmp_path)
    _written(lake, raw.slice(0, 2))  # late data: an exporter's retry, a second collector
    assert len(_distinct_spans(lake)) == 6
    assert _group_by_in_plan(lake)
    compact(lake, grace_s=0)  # the next run merges the copies away and the date is read as is again
    assert len(_distinct_spans(lake)) == 6 and len(lake_rows(lake)) == 6 and not _group_by_in_plan(lake)


def test_a_compacted_file_rewritten_under_its_name_with_copies_of_spans_counts_each_once(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake, _ = _compacted_lake(tmp_path)
    folder = os.path.join(lake, "date=2026-06-01")
    [name] = os.listdir(folder)
    table = pq.read_table(os.path.join(folder, name))
    pq.write_table(pa.concat_tables([table, table.slice(0, 3)]), os.path.join(folder, name))  # same name
    assert len(lake_rows(lake)) == 9
    assert len(_distinct_spans(lake)) == 6


def test_a_compacted_file_removed_while_the_files_it_replaced_wait_loses_none_of_their_spans(tmp_path):
    lake, _ = _compacted_lake(tmp_path, grace_s=3600)
    folder = os.path.join(lake, "date=2026-06-01")
    [merged] = [n for n in os.listdir(folder) if n.startswith("compacted-")]
    os.remove(os.path.join(folder, merged))  # by hand, or by a tool that knows nothing of the claim
    assert len(_distinct_spans(lake)) == 6  # the replaced files, still there, are read again


def test_a_file_added_to_a_date_compacted_before_is_read_with_its_date(tmp_path):
    lake, _ = _compacted_lake(tmp_path)
    later = raw_rows(make_store(str(tmp_path / "later.duckdb"), [call("2026-06-01T11:00:00Z")]))
    _written(lake, later)
    assert len(_distinct_spans(lake)) == 7


def test_files_are_written_a_batch_at_a_time_and_split_at_rows_per_file(tmp_path):
    """Each batch becomes a row group as it arrives (before: a whole file was held in memory, 16 GB of RSS to
    export 100M calls); a batch that crosses rows_per_file is split between two files, every row kept in order."""
    import pyarrow.parquet as pq

    from auriko_obs.store._lake_lifecycle import _write_stream
    from auriko_obs.store._lake_location import FileNames, LakeLocation
    from auriko_obs.store._lake_writer import lake_schema

    stamps = [f"2026-06-01T10:{i // 60:02d}:{i % 60:02d}Z" for i in range(50)]
    import pyarrow as pa

    frame = store_rows(make_store(str(tmp_path / "s.duckdb"), [call(t) for t in stamps]))
    table = pa.Table.from_pandas(frame, preserve_index=False).cast(lake_schema())
    batches = [b for i in range(0, 50, 10) for b in table.slice(i, 10).to_batches()]
    batches.insert(2, batches[0].slice(0, 0))  # an empty batch on the way changes nothing
    lake = LakeLocation(str(tmp_path / "lake"))
    published = _write_stream(lake, "date=2026-06-01", FileNames("test"), iter(batches), rows_per_file=25)
    assert [rows for _, rows, _ in published] == [25, 25]
    files = [pq.ParquetFile(path) for path, _, _ in published]
    assert [[f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)] for f in files] == [
        [10, 10, 5],
        [5, 10, 10],
    ]
    spans = [s for f in files for s in f.read(columns=["span_id"]).column("span_id").to_pylist()]
    assert spans == table.column("span_id").to_pylist()
