"""Soak: mixed load into one store, with crashes, and an exact count of what was acknowledged and stored.

Everything runs on 127.0.0.1 and stops after ``--minutes``:

- the local Auriko simulator (``auriko-obs simulate``, 1% of calls fail with a 5xx);
- three instrumented writer processes (``auriko_obs.instrument(db=STORE)``) calling the simulator through
  the openai SDK, plain and streamed chat completions: one on 4 threads, one on asyncio (8 tasks), and
  one mixing both (2 threads and 4 tasks), which is killed with ``kill -9`` every 15-40 s and restarted;
- ``auriko-obs collect`` into the same store, fed by OTLP senders: 2 threads posting protobuf requests
  of 200 spans and one thread using the official OTLP/HTTP exporter (batches of 512), each resending a
  request until it gets a 2xx, as exporters do. The collector is killed with ``kill -9`` every 10-30 s
  and restarted on the same port;
- every 20-45 s another process holds the store file open (DuckDB's lock) for 2-5 s, as a notebook
  would, so that writers must wait or spool.

What counts as acknowledged (and so must be in the store, once):
- an instrumented call, once a ``flush()`` that began after the call returned to its caller (or its
  stream was read to the end) has returned True. Each writer notes the X-Request-ID of every call that
  returns (``calls made``), and after each successful flush the ids of the calls finished before it
  began (``acknowledged``); the ids are matched with the store's ``request_id`` column. A writer killed
  with -9 loses the calls it had finished but not yet flushed: those are made but not acknowledged, and
  are reported apart (how many were stored anyway is shown too). Calls in flight at the kill never
  returned: they are not counted as made.
- an OTLP span, once the request carrying it got a 2xx (for the official exporter: ``export()``
  returned SUCCESS).

At the end the senders stop, the writers stop with SIGTERM (a last flush), the collector with SIGTERM,
and spooled batches are folded into the store. Missing = acknowledged but not in the store; duplicates
= rows sharing a (trace_id, span_id), or instrumented rows sharing a request id. Peak RSS is each
process's high-water mark (VmHWM, read just before a kill or a stop, or the process's own ru_maxrss).
The exit code is 1 when anything acknowledged is missing or duplicated.

    python benchmarks/soak.py --minutes 10 [--seed 1] [--json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

API_KEY = "ak_soak_local_only"
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4")
OTLP_SERVICE = "soak-otlp"
_PY = [sys.executable, "-c", "from auriko_obs.cli import main; raise SystemExit(main())"]


# ----------------------------------------------------------------------------------------- processes


def _vm_hwm(pid: int) -> int:
    """Returns a live process's peak resident memory in bytes (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) * 1024 if match else 0


class Child:
    """A child process whose stderr (and stdout) are read in the background, with its peak RSS noted."""

    def __init__(self, args: list[str], *, ready: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
        )
        self.lines: list[str] = []
        self.match: re.Match[str] | None = None
        got = threading.Event()
        pattern = re.compile(ready)

        def read() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                self.lines.append(line)
                if self.match is None and (found := pattern.search(line)):
                    self.match = found
                    got.set()
            got.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        got.wait(120)
        if self.match is None:
            self.proc.kill()
            raise RuntimeError(f"{args[-1]!r} did not start: {''.join(self.lines)[-2000:]}")
        self.peak_rss = 0

    def note_rss(self) -> None:
        self.peak_rss = max(self.peak_rss, _vm_hwm(self.proc.pid))

    def kill9(self) -> None:
        self.note_rss()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(60)
        self._reader.join(5)

    def stop(self, timeout_s: float = 300) -> int:
        self.note_rss()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self._reader.join(5)
        return code


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_collector(db: Path, port: int) -> Child:
    return Child([*_PY, "collect", "--db", str(db), "--port", str(port)], ready=r"127\.0\.0\.1:(\d+)/v1/traces")


def start_writer(name: str, mode: str, db: Path, base_url: str, out: Path) -> Child:
    args = [sys.executable, os.path.abspath(__file__), "--writer", name, "--mode", mode]
    args += ["--db", str(db), "--base-url", base_url, "--out", str(out)]
    return Child(args, ready=r"writer ready")


_HOLD_LOCK = """
import sys, time, duckdb
deadline = time.monotonic() + 60
while True:  # a writer may hold the file at this moment: wait for our turn, as a notebook user would
    try:
        con = duckdb.connect(sys.argv[1])
        break
    except duckdb.IOException:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
time.sleep(float(sys.argv[2]))
con.close()
"""


def hold_store_lock(db: Path, seconds: float) -> None:
    """Holds the store file open for writing in another process (DuckDB's lock), as a notebook would."""
    subprocess.run(
        [sys.executable, "-c", _HOLD_LOCK, str(db), str(seconds)],
        check=False,
        timeout=seconds + 120,
        capture_output=True,
    )


# ------------------------------------------------------------------------------------ writer process


def writer_main(name: str, mode: str, db: str, base_url: str, out: str) -> None:
    """An instrumented process: calls the simulator until SIGTERM, noting calls made and acknowledged."""
    import openai

    import auriko_obs

    auriko_obs.instrument(db=db, service_name=f"soak-{name}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = threading.Lock()
    pending: list[str] = []  # request ids of calls returned since the last successful flush
    made = open(os.path.join(out, f"{name}.made"), "a", encoding="utf-8")  # noqa: SIM115
    acked = open(os.path.join(out, f"{name}.acked"), "a", encoding="utf-8")  # noqa: SIM115

    def returned(request_id: str | None) -> None:
        if not request_id:
            return
        with lock:
            pending.append(request_id)
            made.write(request_id + "\n")
            made.flush()

    def request(i: int) -> dict[str, Any]:
        return {"model": MODELS[i % len(MODELS)], "messages": [{"role": "user", "content": f"soak {name} {i}"}]}

    def sync_call(client: openai.OpenAI, i: int) -> None:
        try:
            if i % 3 == 0:
                stream = client.chat.completions.create(**request(i), stream=True)
                request_id = None
                for chunk in stream:
                    request_id = "req_" + chunk.id.removeprefix("chatcmpl-")
                returned(request_id)
            else:
                returned(client.chat.completions.create(**request(i))._request_id)
        except openai.APIStatusError as exc:
            returned(exc.request_id)

    async def async_call(client: openai.AsyncOpenAI, i: int) -> None:
        try:
            if i % 3 == 0:
                stream = await client.chat.completions.create(**request(i), stream=True)
                request_id = None
                async for chunk in stream:
                    request_id = "req_" + chunk.id.removeprefix("chatcmpl-")
                returned(request_id)
            else:
                returned((await client.chat.completions.create(**request(i)))._request_id)
        except openai.APIStatusError as exc:
            returned(exc.request_id)

    counter = iter(range(10**12))

    def thread_load() -> None:
        with openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0) as client:
            while not stop.is_set():
                sync_call(client, next(counter))

    def asyncio_load(tasks: int) -> None:
        async def task(client: openai.AsyncOpenAI) -> None:
            while not stop.is_set():
                await async_call(client, next(counter))

        async def main() -> None:
            client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
            await asyncio.gather(*(task(client) for _ in range(tasks)))
            await client.close()

        asyncio.run(main())

    def flush_pending() -> None:
        with lock:
            batch = pending[:]
            del pending[:]
        if auriko_obs.flush(60):  # every call in the batch returned before this flush began
            acked.write("".join(r + "\n" for r in batch))
            acked.flush()
        else:
            with lock:
                pending[:0] = batch  # not known to be stored yet: acknowledged after a later flush

    def flusher() -> None:
        while not stop.wait(1.0):
            flush_pending()

    threads_n, tasks_n = {"threads": (4, 0), "asyncio": (0, 8), "mixed": (2, 4)}[mode]
    workers = [threading.Thread(target=thread_load) for _ in range(threads_n)]
    if tasks_n:
        workers.append(threading.Thread(target=asyncio_load, args=(tasks_n,)))
    workers.append(threading.Thread(target=flusher))
    for worker in workers:
        worker.start()
    print("writer ready", flush=True)
    stop.wait()
    for worker in workers:
        worker.join(120)
    flush_pending()  # the calls that returned since the last one
    with open(os.path.join(out, f"{name}.stats"), "w", encoding="utf-8") as file:
        json.dump({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}, file)
    made.close()
    acked.close()


# ------------------------------------------------------------------------------------- OTLP senders


def _otlp_request(trace_id: bytes, first: int, count: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    kv = resource_spans.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", OTLP_SERVICE
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "soak.raw"
    now = time.time_ns()
    for span_id in range(first, first + count):
        span = scope_spans.spans.add()
        span.trace_id, span.span_id = trace_id, span_id.to_bytes(8, "big")
        span.name = "chat gpt-4o"
        span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1_000_000
        for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4o")):
            attribute = span.attributes.add()
            attribute.key, attribute.value.string_value = key, value
        attribute = span.attributes.add()
        attribute.key, attribute.value.int_value = "gen_ai.usage.input_tokens", span_id % 1000
    return request.SerializeToString()


class RawSender(threading.Thread):
    """Posts requests of new spans, each until a 2xx, noting the spans acknowledged."""

    def __init__(self, number: int, url: list[str], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.trace_id = bytes([0xA0 + number]) * 16
        self.url, self.stop = url, stop
        self.acknowledged: list[tuple[str, int]] = []
        self.sent_requests = self.retries = 0
        self.unexpected: list[int] = []

    def run(self) -> None:
        first = 1
        while not self.stop.is_set():
            body = _otlp_request(self.trace_id, first, 200)
            while True:
                self.sent_requests += 1
                status = _post(self.url[0], body)
                if status == 200:
                    self.acknowledged.extend((self.trace_id.hex(), i) for i in range(first, first + 200))
                    break
                if status is not None and status != 503:
                    self.unexpected.append(status)
                    break
                self.retries += 1
                time.sleep(0.1)
            first += 200


def _post(url: str, body: bytes) -> int | None:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)
    except OSError:
        return None  # the collector is down, or starting again


class ExporterSender(threading.Thread):
    """Exports batches of 512 SDK spans with the official OTLP/HTTP exporter, each until SUCCESS."""

    def __init__(self, url: list[str], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, stop
        self.acknowledged: list[tuple[str, int]] = []
        self.batches = self.failed_exports = 0

    def run(self) -> None:
        import logging

        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # It logs each failed attempt while the collector is down; resends are counted instead.
        logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, TraceFlags

        resource_ = Resource.create({"service.name": OTLP_SERVICE})
        trace_id, first = 0xB0B0_0000_0000_0000_0000_0000_0000_0001, 1
        while not self.stop.is_set():
            now = time.time_ns()
            spans = [
                ReadableSpan(
                    name="chat gpt-4o-mini",
                    context=SpanContext(trace_id, span_id, False, TraceFlags(1)),
                    attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"},
                    resource=resource_,
                    start_time=now,
                    end_time=now + 2_000_000,
                )
                for span_id in range(first, first + 512)
            ]
            self.batches += 1
            while True:
                exporter = OTLPSpanExporter(endpoint=self.url[0], timeout=10)
                result = exporter.export(spans)
                exporter.shutdown()
                if result.name == "SUCCESS":
                    break
                self.failed_exports += 1
                time.sleep(0.2)
            self.acknowledged.extend((format(trace_id, "032x"), s) for s in range(first, first + 512))
            first += 512


# -------------------------------------------------------------------------------------- orchestrator


def _ids(path: Path) -> list[str]:
    """Returns the complete lines of a file (a writer killed mid-line leaves a partial last one)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    return [line for line in lines[:-1] if line]


def _fold_and_read(db: Path) -> tuple[Any, Any]:
    """Returns (instrumented rows, OTLP rows) after folding the spool into the store."""
    from auriko_obs.store import Spool, Store, connect, fold_spool, spool_dir

    with connect(db, read_only=False, wait_s=120) as con:  # readers would see the spool, but not fold it
        fold_spool(con, Spool(spool_dir(db)))
    store = Store(str(db), lock_wait_s=120)
    instrumented = store.sql("SELECT request_id, trace_id, span_id FROM spans WHERE service_name LIKE 'soak-writer-%'")
    otlp = store.sql("SELECT trace_id, span_id FROM spans WHERE service_name = ?", [OTLP_SERVICE])
    return instrumented, otlp


def run(minutes: float, seed: int, keep: str | None) -> dict[str, Any]:
    rng = random.Random(seed)
    folder = Path(keep or tempfile.mkdtemp(prefix="auriko-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    db, out = folder / "soak.duckdb", folder / "writers"
    out.mkdir(exist_ok=True)
    events: dict[str, int] = {"collector_kills": 0, "writer_kills": 0, "store_locks": 0}
    peaks: dict[str, int] = {"collector": 0, "writers": 0, "simulator": 0}

    simulator = Child(
        [*_PY, "simulate", "--port", "0", "--seed", str(seed), "--error-rate", "0.01", "--credits-usd", "1e9"],
        ready=r"(http://127\.0\.0\.1:\d+)",
    )
    base_url = simulator.match.group(1) + "/v1"  # type: ignore[union-attr]
    port = _free_port()
    collector = start_collector(db, port)
    url = [f"http://127.0.0.1:{port}/v1/traces"]
    writers = {
        "writer-threads": start_writer("writer-threads", "threads", db, base_url, out),
        "writer-asyncio": start_writer("writer-asyncio", "asyncio", db, base_url, out),
    }
    victim_number = 1
    victim = start_writer(f"writer-mixed-{victim_number}", "mixed", db, base_url, out)
    stop = threading.Event()
    senders: list[Any] = [RawSender(n, url, stop) for n in range(2)] + [ExporterSender(url, stop)]
    for sender in senders:
        sender.start()

    started = time.monotonic()
    end = started + minutes * 60
    next_collector_kill = started + rng.uniform(10, 30)
    next_writer_kill = started + rng.uniform(15, 40)
    next_lock = started + rng.uniform(20, 45)
    locker: threading.Thread | None = None
    while time.monotonic() < end:
        time.sleep(0.2)
        now = time.monotonic()
        if now >= next_collector_kill:
            collector.kill9()
            peaks["collector"] = max(peaks["collector"], collector.peak_rss)
            events["collector_kills"] += 1
            collector = start_collector(db, port)
            next_collector_kill = now + rng.uniform(10, 30)
        if now >= next_writer_kill:
            victim.kill9()
            peaks["writers"] = max(peaks["writers"], victim.peak_rss)
            events["writer_kills"] += 1
            victim_number += 1
            victim = start_writer(f"writer-mixed-{victim_number}", "mixed", db, base_url, out)
            next_writer_kill = now + rng.uniform(15, 40)
        if now >= next_lock and (locker is None or not locker.is_alive()):
            locker = threading.Thread(target=hold_store_lock, args=(db, rng.uniform(2, 5)), daemon=True)
            locker.start()
            events["store_locks"] += 1
            next_lock = now + rng.uniform(20, 45)

    # Wind down: senders finish their request (until a 2xx), writers flush, the collector writes all.
    stop.set()
    for sender in senders:
        sender.join(300)
    if locker is not None:
        locker.join(120)
    exit_codes = {}
    for name, child in [*writers.items(), (f"writer-mixed-{victim_number}", victim)]:
        exit_codes[name] = child.stop()
    collector_code = collector.stop()
    peaks["collector"] = max(peaks["collector"], collector.peak_rss)
    # A collector stopped while its writer was still busy (SIGTERM waits 60 s; replaying the logs of many
    # killed collectors on a loaded machine takes longer) leaves its log for the next start: what an
    # operator does, restart collect, and it replays them. Counted, so a report shows when it was needed.
    logged_at_stop = _logged_bytes(db)
    restarts = 0
    while _logged_bytes(db) and restarts < 5:
        restarts += 1
        again = start_collector(db, port)
        collector_code = collector_code or again.stop()
        peaks["collector"] = max(peaks["collector"], again.peak_rss)
    simulator.note_rss()
    peaks["simulator"] = simulator.peak_rss
    simulator.stop()
    for stats_file in out.glob("*.stats"):
        peaks["writers"] = max(peaks["writers"], json.loads(stats_file.read_text())["peak_rss"])
    elapsed = time.monotonic() - started

    instrumented, otlp = _fold_and_read(db)
    report = _account(out, instrumented, otlp, senders)
    report.update(
        minutes=round(elapsed / 60, 2),
        events=events,
        exit_codes={**exit_codes, "collector": collector_code},
        collector_last_stats=_last_stats_line(collector),
        request_log_bytes_left_at_stop=logged_at_stop,
        collector_restarts_to_replay_it=restarts,
        request_log_bytes_left=_logged_bytes(db),
        peak_rss_mib={
            **{k: round(v / 2**20) for k, v in peaks.items()},
            "soak (senders)": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        },
        spool_files_left=len(list(Path(f"{db}.spool").glob("*.parquet"))),
        folder=str(folder),
    )
    if keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def _logged_bytes(db: Path) -> int:
    """Returns the size of the request logs the collectors left beside the store (0: all of it stored)."""
    return sum(path.stat().st_size for path in Path(f"{db}.collect-log").glob("*/*.log"))


def _last_stats_line(collector: Child) -> str:
    lines = [line for line in collector.lines if "stopped;" in line]
    return lines[-1].strip() if lines else ""


def _account(out: Path, instrumented: Any, otlp: Any, senders: list[Any]) -> dict[str, Any]:
    made: set[str] = set()
    acknowledged: set[str] = set()
    made_by_victims: set[str] = set()
    for path in out.glob("*.made"):
        ids = set(_ids(path))
        made |= ids
        if not (out / f"{path.stem}.stats").exists():  # no stats: it was killed, not stopped
            made_by_victims |= ids
    for path in out.glob("*.acked"):
        acknowledged |= set(_ids(path))
    stored_ids = instrumented["request_id"].dropna()
    stored = set(stored_ids)
    unacknowledged = made - acknowledged
    span_dups = int(instrumented.groupby(["trace_id", "span_id"]).size().gt(1).sum())
    request_dups = int(stored_ids.value_counts().gt(1).sum())

    otlp_acknowledged = {ack for sender in senders for ack in sender.acknowledged}
    otlp_stored = {(row.trace_id, int(row.span_id, 16)) for row in otlp.itertuples()}
    otlp_dups = int(otlp.groupby(["trace_id", "span_id"]).size().gt(1).sum())
    return {
        "instrumented": {
            "calls_made": len(made),
            "acknowledged": len(acknowledged),
            "rows_stored": len(instrumented),
            "acknowledged_but_missing": len(acknowledged - stored),
            "duplicates": span_dups + request_dups,
            "made_not_acknowledged": len(unacknowledged),
            "made_not_acknowledged_stored_anyway": len(unacknowledged & stored),
            "made_by_killed_writers": len(made_by_victims),
            # A writer stopped with SIGTERM flushes at the end: any here means a last flush that failed.
            "made_not_acknowledged_by_stopped_writers": len(unacknowledged - made_by_victims),
        },
        "otlp": {
            "requests_sent": sum(getattr(s, "sent_requests", 0) for s in senders)
            + sum(getattr(s, "batches", 0) for s in senders),
            "resends": sum(getattr(s, "retries", 0) + getattr(s, "failed_exports", 0) for s in senders),
            "unexpected_statuses": [st for s in senders for st in getattr(s, "unexpected", [])],
            "spans_acknowledged": len(otlp_acknowledged),
            "rows_stored": len(otlp),
            "acknowledged_but_missing": len(otlp_acknowledged - otlp_stored),
            "duplicates": otlp_dups,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", metavar="DIR", help="keep the store and the writers' notes in DIR")
    parser.add_argument("--writer", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer_main(args.writer, args.mode, args.db, args.base_url, args.out)
        return 0
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    report = run(args.minutes, args.seed, args.keep)
    bad = sum(report[k]["acknowledged_but_missing"] + report[k]["duplicates"] for k in ("instrumented", "otlp"))
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if bad else 0
    i, o = report["instrumented"], report["otlp"]
    print(f"soak: {report['minutes']} min, events {report['events']}, exit codes {report['exit_codes']}")
    print(
        f"instrumented calls: {i['calls_made']:,} made, {i['acknowledged']:,} acknowledged (flushed), "
        f"{i['rows_stored']:,} rows stored; acknowledged but missing {i['acknowledged_but_missing']}, "
        f"duplicates {i['duplicates']}; made but not acknowledged {i['made_not_acknowledged']} "
        f"({i['made_not_acknowledged_by_stopped_writers']} by writers stopped cleanly, the rest by killed ones; "
        f"{i['made_not_acknowledged_stored_anyway']} of them stored anyway)"
    )
    print(
        f"OTLP spans via collect: {o['spans_acknowledged']:,} acknowledged (2xx), {o['rows_stored']:,} rows "
        f"stored; acknowledged but missing {o['acknowledged_but_missing']}, duplicates {o['duplicates']}; "
        f"{o['requests_sent']:,} requests, {o['resends']:,} resent; unexpected statuses {o['unexpected_statuses']}"
    )
    print(f"peak RSS (MiB): {report['peak_rss_mib']}; spool files left: {report['spool_files_left']}")
    print(f"last collector: {report['collector_last_stats']}")
    print(
        f"request logs at the last stop: {report['request_log_bytes_left_at_stop']:,} bytes, replayed by "
        f"{report['collector_restarts_to_replay_it']} restart(s) of collect; left: {report['request_log_bytes_left']:,}"
    )
    print("verdict:", "FAIL" if bad else "ok: nothing acknowledged was lost or stored twice")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
