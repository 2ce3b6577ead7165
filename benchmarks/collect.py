"""OTLP benchmarks: what `auriko-obs collect` sustains, and what OTLP export costs an instrumented call.

1. Receiver: `auriko-obs collect` runs in its own process; 4 exporter processes, each with the official
   `opentelemetry-exporter-otlp-proto-http` exporter, send spans built by our pipeline from real call
   records (about 40 attributes each) in batches of 512. The rate is spans *written to DuckDB* per second,
   from the first request until the store holds them all. Target: >= 20,000 spans/s on 2 cores.
   On 2 cores the 4 exporter processes themselves (the official exporter encodes protobuf in Python)
   compete with the receiver for the CPU, so a second run has the same exporters' requests encoded
   before the clock starts (the official encoder, `encode_spans`) and POSTed as they are: that rate is
   what the receiver itself sustains (target: >= 50,000 spans/s, issue 15). It runs twice: with a reader
   counting the store's rows every 100 ms (each count makes the writer hand the file over), and waiting
   for the collector's exit after SIGTERM (nobody else opens the file). Each run reports the collector's
   CPU per span (`/proc/PID/stat` from the start, its rusage at exit), which moves less with the load.
2. Caller overhead: per-call µs of an instrumented `openai` client (in-process mock transport, as in
   `overhead.py`) with OTLP export off, on (to a running collector), and on with the collector down.
   Target: no increase in the caller's latency with the collector down (drops are counted).

    python benchmarks/collect.py [--spans-per-exporter 25000] [--calls 400] [--rounds 7] [--json]
        [--only receiver|preencoded|overhead] [--wait poll|exit|both]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TARGET_SPANS_PER_S = 20_000
TARGET_PREENCODED = 50_000  # issue 15: the receiver alone, on 2 cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_collector(db: str, *extra: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from auriko_obs.cli import main; raise SystemExit(main())",
            "collect",
            "--db",
            db,
            "--port",
            "0",
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()
    match = re.search(r"127\.0\.0\.1:(\d+)/v1/traces", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"collect did not start: {line}")
    return proc, int(match.group(1))


def _exporter_process(port: int, count: int, ready: Any, go: Any, out: Any, preencoded: bool = False) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from overhead import _spans_like_the_pipeline

    spans, _ = _spans_like_the_pipeline(count)
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=60)
    batches = [spans[i : i + 512] for i in range(0, count, 512)]
    bodies = []
    if preencoded:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        bodies = [encode_spans(batch).SerializeToString() for batch in batches]
    ready.set()
    go.wait()
    start = time.perf_counter()
    failed = 0
    if preencoded:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for batch, body in zip(batches, bodies, strict=True):
            while True:
                connection.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                response = connection.getresponse()
                response.read()
                if response.status not in (429, 503):
                    break
                time.sleep(float(response.getheader("Retry-After") or 1))
            failed += len(batch) if response.status != 200 else 0
    else:
        for batch in batches:
            if exporter.export(batch).name != "SUCCESS":
                failed += len(batch)
    out.put({"send_s": time.perf_counter() - start, "failed": failed})
    exporter.shutdown()


def _count(db: str) -> int:
    from auriko_obs import Store

    try:
        return int(Store(db).sql("SELECT count(*) AS n FROM spans")["n"][0])
    except Exception:
        return 0


def _cpu_s(pid: int) -> float:
    """Returns the CPU seconds (user + system, every thread) process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_exit(proc: subprocess.Popen) -> float:
    """Waits for the collector to exit; returns the CPU seconds it used in all (its rusage)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def run_receiver(per_exporter: int, exporters: int = 4, preencoded: bool = False, wait: str = "poll") -> dict[str, Any]:
    """``wait``: how the end is seen. ``poll``: a reader counts the store's rows every 100 ms (each count
    opens the store, so the collector hands the file over to it every time). ``exit``: once the senders
    are done, SIGTERM; the collector writes every acknowledged span and exits (nothing else opens the file)."""
    with tempfile.TemporaryDirectory() as folder:
        db = os.path.join(folder, "collected.duckdb")
        proc, port = _start_collector(db, "--flush-interval", "0.2")
        ctx = mp.get_context("spawn")
        ready = [ctx.Event() for _ in range(exporters)]
        go, out = ctx.Event(), ctx.Queue()
        workers = [
            ctx.Process(target=_exporter_process, args=(port, per_exporter, ready[i], go, out, preencoded))
            for i in range(exporters)
        ]
        for w in workers:
            w.start()
        for r in ready:
            r.wait(600)
        total = per_exporter * exporters
        cpu_before = _cpu_s(proc.pid)
        print(f"collect.py: senders ready, collector pid {proc.pid}", file=sys.stderr, flush=True)  # for a profiler
        start = time.perf_counter()
        go.set()
        sends = [out.get(timeout=600) for _ in workers]
        sent_s = time.perf_counter() - start
        if wait == "poll":
            while _count(db) < total and time.perf_counter() - start < 600:
                time.sleep(0.1)
            written_s = time.perf_counter() - start
            cpu_s = _cpu_s(proc.pid) - cpu_before
            proc.send_signal(signal.SIGTERM)
            summary = proc.stderr.read()
            proc.wait(60)
        else:
            proc.send_signal(signal.SIGTERM)
            summary = proc.stderr.read()
            cpu_s = _wait_exit(proc) - cpu_before
            written_s = time.perf_counter() - start
        stored = _count(db)
        for w in workers:
            w.join(60)
    return {
        "exporters": exporters,
        "preencoded": preencoded,
        "wait": wait,
        "spans": total,
        "stored": stored,
        "sent_s": round(sent_s, 2),
        "written_s": round(written_s, 2),
        "spans_per_s": round(stored / written_s),
        "collector_cpu_us_per_span": round(cpu_s / max(stored, 1) * 1e6, 1),
        "failed": sum(s["failed"] for s in sends),
        "collector": summary.strip().splitlines()[-1][:300],
    }


def _per_call_us(call: Any, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def run_overhead(calls: int, rounds: int) -> dict[str, Any]:
    from overhead import _calls, _client

    import auriko_obs

    results: dict[str, list[float]] = {"otlp off": [], "otlp on": [], "collector down": []}
    stats: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        proc, port = _start_collector(os.path.join(folder, "collector.duckdb"))
        dead = _free_port()
        configs = {
            "otlp off": False,
            "otlp on": {"endpoint": f"http://127.0.0.1:{port}", "metrics": False},
            "collector down": {"endpoint": f"http://127.0.0.1:{dead}", "metrics": False},
        }
        shaped = _calls(_client())
        for round_ in range(rounds):
            for mode, otlp in configs.items():
                auriko_obs.instrument(
                    db=os.path.join(folder, f"own-{round_}.duckdb"), otlp=otlp, service_name=f"bench-{mode}"
                )
                shaped["plain"]()  # warm
                results[mode].append(_per_call_us(shaped["plain"], calls))
                auriko_obs.flush(60)
                stats[mode] = auriko_obs.stats().get("otlp")
                auriko_obs.uninstrument()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    medians = {mode: round(statistics.median(v), 1) for mode, v in results.items()}
    base = medians["otlp off"]
    return {
        "calls": calls,
        "rounds": rounds,
        "median_us": medians,
        "overhead_us": {m: round(v - base, 1) for m, v in medians.items() if m != "otlp off"},
        "overhead_pct": {m: round((v - base) / base * 100, 1) for m, v in medians.items() if m != "otlp off"},
        "otlp_stats_last_round": stats,
        "spread_us": {m: [round(min(v)), round(max(v))] for m, v in results.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans-per-exporter", type=int, default=25_000)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=["receiver", "preencoded", "overhead"])
    parser.add_argument(
        "--wait",
        choices=["poll", "exit", "both"],
        default="both",
        help="how the pre-encoded run sees its end: a reader polling the store, the collector's exit, or both",
    )
    args = parser.parse_args()
    report: dict[str, Any] = {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    if args.only in (None, "receiver"):
        report["receiver"] = run_receiver(args.spans_per_exporter)
    if args.only in (None, "receiver", "preencoded"):
        for wait in ("poll", "exit") if args.wait == "both" else (args.wait,):
            report[f"receiver_preencoded_{wait}"] = run_receiver(args.spans_per_exporter, preencoded=True, wait=wait)
    if args.only in (None, "overhead"):
        report["overhead"] = run_overhead(args.calls, args.rounds)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, label, target in (
        ("receiver", "exporters encoding as they send", TARGET_SPANS_PER_S),
        ("receiver_preencoded_poll", "requests encoded before the clock starts, store polled", TARGET_PREENCODED),
        ("receiver_preencoded_exit", "requests encoded before the clock starts, until exit", TARGET_PREENCODED),
    ):
        if key not in report:
            continue
        r = report[key]
        verdict = "meets" if r["spans_per_s"] >= target else "misses"
        print(
            f"receiver ({label}): {r['stored']:,}/{r['spans']:,} spans from {r['exporters']} senders stored "
            f"in {r['written_s']} s = {r['spans_per_s']:,} spans/s ({verdict} the {target:,}/s target), "
            f"{r['collector_cpu_us_per_span']} µs of collector CPU a span; sending took {r['sent_s']} s; "
            f"collector: {r['collector']}"
        )
    if "overhead" in report:
        o = report["overhead"]
        print(f"caller, plain call, median of {o['rounds']} rounds x {o['calls']} calls:")
        for mode, us in o["median_us"].items():
            extra = "" if mode == "otlp off" else f"  ({o['overhead_us'][mode]:+} µs, {o['overhead_pct'][mode]:+}%)"
            print(f"  {mode:<15} {us:8.1f} µs{extra}   spread {o['spread_us'][mode]}")
        print(f"  OTLP queue, collector down: {o['otlp_stats_last_round'].get('collector down')}")
    print(f"load average {report['loadavg']}")


if __name__ == "__main__":
    main()
