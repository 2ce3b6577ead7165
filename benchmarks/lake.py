"""Lake benchmarks: what one process writes into a lake, what a call costs on disk, and synthetic lakes of 10M and
100M calls for the analyses.

1. ``writer``: one process (fresh, so that its peak RSS is its own) hands ``LakeWriter.write`` raw span rows
   (``RAW_SCHEMA``, as the pipeline and the OTLP receiver build them) in batches of ``--batch`` rows: rows
   of real calls built by our pipeline (about 40 attributes each, half plain, half streamed), with fresh ids
   and times. Reports spans/s (wall and CPU), the share of the time spent typing rows (DuckDB) and writing
   Parquet (zstd), peak RSS, files, and bytes per call on disk. Target: >= 100,000 spans/s per process.
   The same rows into a DuckDB store file (``StoreWriter``) for comparison.
2. ``collect``: ``auriko-obs collect --lake`` in its own process, fed by ``--exporters`` processes POSTing
   requests encoded before the clock starts (512 spans each, the official encoder): spans *published in the
   lake* per second, from the first request until every span is in a file (``AURIKO_OBS_LAKE_FLUSH_S=1``).
3. ``generate``: a store of ``--rows`` synthetic calls made by ``benchmarks/analysis.py`` (30 days, every kind
   of call), moved into a lake by ``auriko-obs lake export`` and compacted once (which records that each date
   holds each span once, so that readers need not group it); reports the export rate, the compaction's time
   and bytes per call on disk, then the analyses run on it with
   ``python benchmarks/analysis.py --engine lake --lake DIR --db DB --reuse`` (and ``--engine spark``).

    python benchmarks/lake.py writer [--spans 1000000] [--batch 50000]
    python benchmarks/lake.py collect [--spans-per-exporter 50000] [--exporters 2]
    python benchmarks/lake.py generate [--rows 10000000] [--db /tmp/lake-bench.duckdb] [--lake /tmp/lake-bench]

Storage price used for dollars per billion calls: S3 Standard, first 50 TB, us-east-1: $0.023 per GB-month.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

S3_USD_PER_GB_MONTH = 0.023
TARGET_SPANS_PER_S = 100_000


def peak_rss_mb() -> float:
    """Returns this process's peak RSS. /proc's VmHWM where there is one: getrusage's ru_maxrss survives exec on
    Linux, so a spawned child would report its parent's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_bytes(root: str) -> tuple[int, int]:
    """Returns (bytes, files) of the data files under a lake folder."""
    total = files = 0
    for folder, _, names in os.walk(root):
        if os.path.basename(folder).startswith("date="):
            for name in names:
                if name.endswith(".parquet") and not name.startswith("."):
                    total += os.path.getsize(os.path.join(folder, name))
                    files += 1
    return total, files


def storage(bytes_per_call: float) -> dict[str, float]:
    gb = bytes_per_call * 1e9 / 1e9
    return {"gb_per_billion_calls": round(gb, 1), "usd_per_billion_calls_month": round(gb * S3_USD_PER_GB_MONTH, 2)}


# ---------------------------------------------------------------------------------------------- 1. writer


def raw_rows(spans: int) -> Any:
    """Returns ``spans`` raw rows of real calls: the pipeline's spans of 2,000 calls (about 40 attributes each),
    repeated with fresh ids, times one millisecond apart, and the values that differ from call to call in real
    traffic drawn anew (request and response ids, token counts, cost, latencies, rate-limit and credit headers),
    so that compression is not flattered by repeats."""
    import random

    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc
    from overhead import _spans_like_the_pipeline

    from auriko_obs.store import encode_spans

    built, _ = _spans_like_the_pipeline(2000)
    base, failures = encode_spans(built)
    assert not failures
    table = pa.concat_tables([base] * (spans // base.num_rows + 1)).slice(0, spans)
    rng = random.Random(14)
    attributes = []
    for text in table["attributes"].to_pylist():
        a = orjson.loads(text)
        a["auriko.request_id"] = f"req_{rng.getrandbits(96):024x}"
        a["gen_ai.response.id"] = f"chatcmpl-{rng.getrandbits(120):030x}"
        inp, out = rng.randint(50, 8000), rng.randint(1, 1500)
        a.update(
            {
                "gen_ai.usage.input_tokens": inp,
                "gen_ai.usage.output_tokens": out,
                "auriko.usage.total_tokens": inp + out,
            }
        )
        a["gen_ai.usage.cache_read.input_tokens"] = rng.choice((0, 0, 1024, 2048))
        a["auriko.cost.usd"] = round((inp * 2.5 + out * 10) / 1e6, 8)
        a["auriko.routing.ttft_ms"] = round(rng.uniform(80, 2000), 1)
        a["auriko.routing.throughput_tps"] = round(rng.uniform(20, 250), 1)
        a["auriko.ratelimit.remaining_requests"] = rng.randint(0, 10000)
        a["auriko.credits.balance_usd"] = round(rng.uniform(0, 1000), 6)
        if "gen_ai.response.time_to_first_chunk" in a:
            a["gen_ai.response.time_to_first_chunk"] = rng.uniform(0.05, 2.0)
        attributes.append(orjson.dumps(a).decode())
    numbers = range(spans)
    table = table.set_column(table.schema.get_field_index("attributes"), "attributes", pa.array(attributes))
    table = table.set_column(0, "trace_id", pa.array([f"{rng.getrandbits(128):032x}" for _ in numbers]))
    table = table.set_column(1, "span_id", pa.array([f"{rng.getrandbits(64):016x}" for _ in numbers]))
    start = pa.array([1_780_000_000_000_000_000 + i * 1_000_000 for i in numbers], pa.timestamp("ns", tz="UTC"))
    table = table.set_column(table.schema.get_field_index("start_time"), "start_time", start)
    durations = [rng.randint(100_000_000, 20_000_000_000) for _ in numbers]
    end = pc.add(start, pa.array(durations, pa.duration("ns")))
    table = table.set_column(table.schema.get_field_index("end_time"), "end_time", end)
    return table.set_column(
        table.schema.get_field_index("duration_ms"), "duration_ms", pa.array([d / 1e6 for d in durations])
    )


def _writer_child(spans: int, batch: int, folder: str, out: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(os.path.join(folder, "raw.parquet"))  # made by the parent, read batch by batch
    from auriko_obs.store import LakeWriter, StoreWriter
    from auriko_obs.store import _lake_writer as lake_writer

    writer = LakeWriter(os.path.join(folder, "lake"), flush_interval_s=3600)
    typed_s = [0.0]
    typed = writer._typed

    def timed(table: Any) -> Any:
        began = time.perf_counter()
        try:
            return typed(table)
        finally:
            typed_s[0] += time.perf_counter() - began

    writer._typed = timed  # type: ignore[method-assign]
    rss_before = peak_rss_mb()
    wall = cpu = 0.0
    for record_batch in source.iter_batches(batch_size=batch):
        table = pa.Table.from_batches([record_batch])
        began, began_cpu = time.perf_counter(), time.process_time()
        writer.write(table)
        wall += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
    began, began_cpu = time.perf_counter(), time.process_time()
    assert writer.flush()
    wall += time.perf_counter() - began
    cpu += time.process_time() - began_cpu
    on_disk, files = folder_bytes(os.path.join(folder, "lake"))
    result = {
        "spans": spans,
        "batch": batch,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "spans_per_s": round(spans / wall),
        "spans_per_cpu_s": round(spans / cpu),
        "typing_share": round(typed_s[0] / wall, 2),
        "files": files,
        "bytes_per_call": round(on_disk / spans, 1),
        "flush_mb": writer.flush_bytes >> 20,
        "parquet": {k: lake_writer.PARQUET_OPTIONS[k] for k in ("compression", "compression_level")},
        "peak_rss_mb_before_writing": round(rss_before),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    store = StoreWriter(os.path.join(folder, "store.duckdb"), lock_wait_s=60)
    wall = 0.0
    for record_batch in source.iter_batches(batch_size=batch):
        table = pa.Table.from_batches([record_batch])
        began = time.perf_counter()
        store.write(table)
        wall += time.perf_counter() - began
    result["store_file_spans_per_s"] = round(spans / wall)
    out.put(result)


def run_writer(spans: int, batch: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory() as folder:
        import pyarrow.parquet as pq

        pq.write_table(raw_rows(spans), os.path.join(folder, "raw.parquet"))
        child = ctx.Process(target=_writer_child, args=(spans, batch, folder, out))
        child.start()
        result = out.get(timeout=3600)
        child.join(60)
    return {**result, **storage(result["bytes_per_call"])}


# ---------------------------------------------------------------------------------------------- 2. collect


def _start_collector(lake: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "auriko_obs", "collect", "--lake", lake, "--port", "0", "--flush-interval", "0.2"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AURIKO_OBS_LAKE_FLUSH_S": "1"},
    )
    line = proc.stderr.readline()
    match = re.search(r"127\.0\.0\.1:(\d+)/v1/traces", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"collect did not start: {line}")
    return proc, int(match.group(1))


def _published(lake: str) -> int:
    import pyarrow.parquet as pq

    rows = 0
    for folder, _, names in os.walk(lake):
        for name in names:
            if name.endswith(".parquet") and not name.startswith(".") and "date=" in folder:
                rows += pq.read_metadata(os.path.join(folder, name)).num_rows
    return rows


def run_collect(per_exporter: int, exporters: int) -> dict[str, Any]:
    from collect import _exporter_process

    with tempfile.TemporaryDirectory() as folder:
        lake = os.path.join(folder, "lake")
        proc, port = _start_collector(lake)
        ctx = mp.get_context("spawn")
        ready = [ctx.Event() for _ in range(exporters)]
        go, out = ctx.Event(), ctx.Queue()
        workers = [
            ctx.Process(target=_exporter_process, args=(port, per_exporter, ready[i], go, out, True))
            for i in range(exporters)
        ]
        for w in workers:
            w.start()
        for r in ready:
            r.wait(1200)
        total = per_exporter * exporters
        start = time.perf_counter()
        go.set()
        sends = [out.get(timeout=1200) for _ in workers]
        while _published(lake) < total and time.perf_counter() - start < 1200:
            time.sleep(0.2)
        published_s = time.perf_counter() - start
        published = _published(lake)
        for w in workers:
            w.join(60)
        proc.send_signal(signal.SIGTERM)
        summary = proc.stderr.read()
        proc.wait(60)
    return {
        "exporters": exporters,
        "spans": total,
        "published": published,
        "published_s": round(published_s, 2),
        "spans_per_s": round(published / published_s),
        "failed": sum(s["failed"] for s in sends),
        "collector": summary.strip().splitlines()[-1][:400],
    }


# ---------------------------------------------------------------------------------------------- 3. generate


def run_generate(rows: int, db: str, lake: str, reuse: bool) -> dict[str, Any]:
    from analysis import build

    from auriko_obs.store._lake_lifecycle import export_store

    result: dict[str, Any] = {"rows": rows}
    if not (reuse and os.path.exists(db)):
        result["generate_s"] = round(build(db, rows), 1)
    result["store_file_bytes_per_call"] = round(os.path.getsize(db) / rows, 1)
    shutil.rmtree(lake, ignore_errors=True)
    wall, cpu = time.perf_counter(), time.process_time()
    exported, files = export_store(db, lake)
    wall = time.perf_counter() - wall
    on_disk, _ = folder_bytes(lake)
    from auriko_obs.store._lake_lifecycle import compact

    # The readers' fast path: compaction records that each date holds each span once (docs: Scaling out).
    compacted = time.perf_counter()
    compact(lake)
    result["first_compaction_s"] = round(time.perf_counter() - compacted, 1)
    result.update(
        {
            "exported": exported,
            "files": files,
            "export_s": round(wall, 1),
            "export_cpu_s_main_thread": round(time.process_time() - cpu, 1),
            "export_rows_per_s": round(exported / wall),
            "lake_gb": round(on_disk / 1e9, 2),
            "bytes_per_call": round(on_disk / exported, 1),
            "peak_rss_mb": round(peak_rss_mb()),
            "analyses": f"python benchmarks/analysis.py --reuse --db {db} --engine lake --lake {lake}",
        }
    )
    return {**result, **storage(result["bytes_per_call"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    writer = sub.add_parser("writer")
    writer.add_argument("--spans", type=int, default=1_000_000)
    writer.add_argument("--batch", type=int, default=50_000)
    collect = sub.add_parser("collect")
    collect.add_argument("--spans-per-exporter", type=int, default=50_000)
    collect.add_argument("--exporters", type=int, default=2)
    generate = sub.add_parser("generate")
    generate.add_argument("--rows", type=int, default=10_000_000)
    generate.add_argument("--db", default="/tmp/auriko-obs-lake-bench.duckdb")
    generate.add_argument("--lake", default="/tmp/auriko-obs-lake-bench")
    generate.add_argument("--reuse", action="store_true", help="keep an existing store at --db")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if args.what == "writer":
        result = run_writer(args.spans, args.batch)
    elif args.what == "collect":
        result = run_collect(args.spans_per_exporter, args.exporters)
    else:
        result = run_generate(args.rows, args.db, args.lake, args.reuse)
    result["load_average"] = f"{load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
