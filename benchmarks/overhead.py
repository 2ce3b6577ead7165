"""Per-call overhead of auriko-obs against a bare openai client, OpenLLMetry and OpenInference; spans/s into DuckDB.

Run by hand (not a test). The peers are optional; without them their rows say "not installed":

    pip install -e ".[dev]"
    pip install opentelemetry-instrumentation-openai openinference-instrumentation-openai
    python benchmarks/overhead.py                 # table (5 rounds x 2000 calls per mode and shape)
    python benchmarks/overhead.py --json          # machine-readable
    python benchmarks/overhead.py --skip-peers --calls 500 --rounds 3 --spans 50000   # quick look

Calls go to an in-process mock transport (``httpx2.MockTransport``; ``httpx`` under openai 2.x) that
answers like Auriko: a chat completion with usage (``prompt_tokens_details.cached_tokens``),
``routing_metadata`` (provider, cost, ttft, warnings) and the x-request-id / x-ratelimit-* /
x-credits-balance-microdollars headers; a stream is 8 SSE chunks, a usage chunk (``choices: []``, usage,
routing_metadata) and ``data: [DONE]``. Only instrumentation is timed, never a network.

Every mode runs in its own subprocess (the instrumentations patch the same SDK, and the peers'
``uninstrument()`` does not undo everything), and each subprocess measures the bare client itself, so
every ratio is against a baseline from the same process:

- auriko-obs uninstruments cleanly, so its rounds alternate: bare loop, instrumented loop, ``flush()``.
  Its overhead is the median of the rounds' own differences, so that drift between rounds cancels.
- A peer runs all its bare rounds first, then instruments (an SDK ``TracerProvider`` with a
  ``BatchSpanProcessor`` into an exporter that discards, queue large enough that nothing is dropped)
  and runs its instrumented rounds. Its overhead is the difference of the two medians. The peers run
  with their defaults, which record prompts and completions; auriko-obs by default does not.

Columns, per call: ``bare`` and ``instr.`` are wall-clock µs the caller sees (auriko-obs's export worker
runs as usual meanwhile and competes for the GIL); ``deferred`` is the wall time of the ``flush()`` after
the timed loop divided by the calls (work still queued, which a caller never waits for but the machine
still does); ``cpu +`` is the extra process CPU per call (all threads, DuckDB's included, loop and flush
together), the total cost of the instrumentation. ``auriko-obs (hot path)`` is a diagnostic: the same
wrappers with the records thrown away, i.e. what the caller's thread alone pays.

The store benchmark builds spans from real call records through ``Pipeline._span`` (as the export
worker does), then times ``DuckDBSpanExporter.export`` per batch size, and separately its two halves:
row conversion (``spans_to_table``) and the DuckDB insert (``export_table``, which opens the file,
inserts in one transaction and closes it again).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

ROUTING = {
    "provider": "fireworks_ai",
    "provider_model_id": "accounts/fireworks/models/llama-v3p3-70b-instruct",
    "model_canonical": "llama-3.3-70b",
    "routing_strategy": "cost",
    "cost": {"usd": 0.000412, "cache_savings_usd": 0.0009, "cache_savings_percent": 68},
    "ttft_ms": 312.5,
    "throughput_tps": 84.1,
    "warnings": [{"type": "unsupported_parameter", "code": "top_k_ignored", "message": "dropped"}],
}
HEADERS = {
    "content-type": "application/json",
    "x-request-id": "req_0123456789abcdef01234567",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9998",
    "x-ratelimit-reset-requests": "2026-11-25T10:00:00Z",
    "x-credits-balance-microdollars": "98765432",
    "x-budget-daily-limit": "50.00",
    "x-budget-daily-spend": "12.34",
}
USAGE = {
    "prompt_tokens": 1380,
    "completion_tokens": 42,
    "total_tokens": 1422,
    "prompt_tokens_details": {"cached_tokens": 1280},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1764000000,
    "model": "llama-3.3-70b",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Fantasy and crime sold best last quarter."},
        }
    ],
    "usage": USAGE,
    "routing_metadata": ROUTING,
}
WORDS = ["Fantasy", "and", "crime", "sold", "best", "last", "quarter."]


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "llama-3.3-70b",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


# 8 chunks (role, 6 words, finish) and the usage chunk, then [DONE].
STREAM = (
    [_chunk({"role": "assistant", "content": ""})]
    + [_chunk({"content": w + " "}) for w in WORDS[:6]]
    + [_chunk({}, "stop")]
    + [
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1764000000,
            "model": "llama-3.3-70b",
            "choices": [],
            "usage": USAGE,
            "routing_metadata": ROUTING,
        }
    ]
)
STREAM_BODY = ("".join(f"data: {json.dumps(c)}\n\n" for c in STREAM) + "data: [DONE]\n\n").encode()
PLAIN_BODY = json.dumps(COMPLETION).encode()
MESSAGES = [{"role": "user", "content": "Which genres sold best last quarter?"}]
MODES = ("auriko-obs", "openllmetry", "openinference")
SHAPES = ("plain", "stream")
TARGET_OVERHEAD = 0.03
TARGET_SPANS_PER_S = 100_000


# ---------------------------------------------------------------- the client and the calls


def _client() -> Any:
    """Returns an openai client whose transport answers in-process like Auriko."""
    import openai

    try:
        import httpx2 as http
    except ImportError:  # openai 2.x
        import httpx as http

    def handler(request: Any) -> Any:
        if b'"stream":true' in request.content or b'"stream": true' in request.content:
            return http.Response(200, headers={**HEADERS, "content-type": "text/event-stream"}, content=STREAM_BODY)
        return http.Response(200, headers=HEADERS, content=PLAIN_BODY)

    return openai.OpenAI(
        base_url="https://api.auriko.ai/v1",
        api_key="ak_bench",
        http_client=http.Client(transport=http.MockTransport(handler)),
        max_retries=0,
    )


def _calls(client: Any) -> dict[str, Callable[[], Any]]:
    """Returns the call of each shape: a plain completion, and a stream iterated to its end."""

    def plain() -> Any:
        return client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)

    def stream() -> None:
        for _ in client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES, stream=True):
            pass

    return {"plain": plain, "stream": stream}


def _loop(call: Callable[[], Any], calls: int) -> float:
    """Returns the mean wall-clock µs per call of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def _measured(call: Callable[[], Any], calls: int, flush: Callable[[], Any], collect: bool = True) -> dict[str, float]:
    """Returns µs per call: wall of the loop, wall of the flush after it, process CPU of both."""
    if collect:
        gc.collect()
    cpu = time.process_time()
    wall = _loop(call, calls)
    start = time.perf_counter()
    flush()
    deferred = (time.perf_counter() - start) / calls * 1e6
    return {"wall": wall, "deferred": deferred, "cpu": (time.process_time() - cpu) / calls * 1e6}


# ---------------------------------------------------------------- instrumentations


class _Auriko:
    """auriko-obs, switched on and off between rounds (its uninstrument() restores every method)."""

    alternates = True

    def __init__(self, db: str) -> None:
        import auriko_obs

        self.db, self._obs = db, auriko_obs

    def on(self) -> None:
        self._obs.instrument(db=self.db, service_name="bench")

    def flush(self) -> None:
        self._obs.flush()

    def off(self) -> None:
        self._obs.uninstrument()

    def spans(self) -> int:
        return int(self._obs.Store(self.db).sql("SELECT count(*) AS n FROM llm_calls").iloc[0]["n"])


class _AurikoHotPath:
    """auriko-obs's wrappers with every record thrown away: what the caller's own thread pays.

    Switching is only patching and unpatching the methods, so bare and instrumented blocks of a few
    dozen calls can alternate, which cancels this VM's drift far better than long rounds do.
    """

    alternates = True

    def __init__(self, db: str) -> None:
        import auriko_obs
        from auriko_obs import instrumentation
        from auriko_obs.instrumentation import _patch

        auriko_obs.instrument(db=db, service_name="bench")
        instrumentation._patcher.revert()
        _patch.HOOKS.submit = lambda record: None
        self._patcher, self._targets = instrumentation._patcher, _patch.OPENAI_TARGETS + _patch.HTTP_TARGETS

    def on(self) -> None:
        self._patcher.apply(self._targets)

    def flush(self) -> None:
        pass

    def off(self) -> None:
        self._patcher.revert()

    def spans(self) -> int:
        return 0


class _Peer:
    """OpenLLMetry or OpenInference with an SDK TracerProvider, a BatchSpanProcessor and a discarding exporter."""

    alternates = False

    def __init__(self, mode: str) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        if mode == "openllmetry":
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        else:
            from openinference.instrumentation.openai import OpenAIInstrumentor
        seen = self._seen = [0]

        class Discard(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                seen[0] += len(spans)
                return SpanExportResult.SUCCESS

        self.provider = TracerProvider()
        # The default queue (2048) drops spans when calls outpace its worker; this one keeps them all.
        self.processor = BatchSpanProcessor(Discard(), max_queue_size=1_000_000)
        self.provider.add_span_processor(self.processor)
        self.instrumentor = OpenAIInstrumentor()

    def on(self) -> None:
        self.instrumentor.instrument(tracer_provider=self.provider)

    def flush(self) -> None:
        self.processor.force_flush()

    def off(self) -> None:
        raise NotImplementedError("peers are measured before/after, never switched off")

    def spans(self) -> int:
        self.flush()
        return self._seen[0]


def _instrumentation(mode: str, folder: str) -> Any:
    if mode == "auriko-obs":
        return _Auriko(os.path.join(folder, "bench.duckdb"))
    if mode == "auriko-obs-hot-path":
        return _AurikoHotPath(os.path.join(folder, "bench.duckdb"))
    return _Peer(mode)


# ---------------------------------------------------------------- one mode, in its own process


def _rounds_alternating(inst: Any, calls: dict, n: int, rounds: int) -> dict[str, tuple[list, list]]:
    bare: dict[str, list] = {s: [] for s in calls}
    instrumented: dict[str, list] = {s: [] for s in calls}
    for _ in range(rounds):
        for shape, call in calls.items():
            bare[shape].append(_measured(call, n, lambda: None))
            inst.on()
            _loop(call, 50)
            inst.flush()
            instrumented[shape].append(_measured(call, n, inst.flush))
            inst.off()
    return {s: (bare[s], instrumented[s]) for s in calls}


def _rounds_fine(inst: Any, calls: dict, n: int, rounds: int, block: int = 50) -> dict[str, tuple[list, list]]:
    """Alternates blocks of ``block`` bare and instrumented calls, ``rounds * n`` calls of each in all."""
    bare: dict[str, list] = {s: [] for s in calls}
    instrumented: dict[str, list] = {s: [] for s in calls}
    for _ in range(max(1, rounds * n // block)):
        for shape, call in calls.items():
            bare[shape].append(_measured(call, block, lambda: None, collect=False))
            inst.on()
            instrumented[shape].append(_measured(call, block, inst.flush, collect=False))
            inst.off()
    return {s: (bare[s], instrumented[s]) for s in calls}


def _rounds_before_after(inst: Any, calls: dict, n: int, rounds: int) -> dict[str, tuple[list, list]]:
    bare = {s: [_measured(c, n, lambda: None) for _ in range(rounds)] for s, c in calls.items()}
    inst.on()
    for call in calls.values():
        _loop(call, 50)
    inst.flush()
    return {s: (bare[s], [_measured(c, n, inst.flush) for _ in range(rounds)]) for s, c in calls.items()}


def _quartiles(values: list[float]) -> list[float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return [q[0], q[2]]


def _summary(bare: list[dict], instrumented: list[dict], paired: bool) -> dict[str, Any]:
    med = statistics.median
    bare_us, instr_us = med(b["wall"] for b in bare), med(i["wall"] for i in instrumented)
    diffs = [i["wall"] - b["wall"] for b, i in zip(bare, instrumented, strict=True)]
    overhead = med(diffs) if paired else instr_us - bare_us
    return {
        "bare_us": bare_us,
        "instrumented_us": instr_us,
        "overhead_us": overhead,
        "overhead_ratio": overhead / bare_us,
        "overhead_us_range": [min(diffs), max(diffs)] if paired else None,
        "overhead_us_iqr": _quartiles(diffs) if paired else None,
        "deferred_us": med(i["deferred"] for i in instrumented),
        "cpu_overhead_us": med(i["cpu"] for i in instrumented) - med(b["cpu"] for b in bare),
        "rounds_bare_us": [round(b["wall"], 1) for b in bare][:50],
        "rounds_instrumented_us": [round(i["wall"], 1) for i in instrumented][:50],
    }


def run_mode(mode: str, calls: int, rounds: int) -> dict[str, Any]:
    """Returns the bare and instrumented per-call figures of one mode, for each shape."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            inst = _instrumentation(mode, folder)
        except ImportError as exc:
            return {"mode": mode, "error": f"not installed ({exc.name})"}
        shaped = _calls(_client())
        for call in shaped.values():
            _loop(call, min(300, calls))
        load_before = os.getloadavg()[0]
        fine = isinstance(inst, _AurikoHotPath)
        run = _rounds_fine if fine else _rounds_alternating if inst.alternates else _rounds_before_after
        measured = run(inst, shaped, calls, rounds)
        method = (
            "alternating blocks of 50 calls"
            if fine
            else f"{rounds} alternating rounds"
            if inst.alternates
            else f"{rounds} bare rounds, then {rounds} instrumented"
        )
        result: dict[str, Any] = {
            "mode": mode,
            "method": method,
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
        for shape, (bare, instrumented) in measured.items():
            result[shape] = _summary(bare, instrumented, paired=inst.alternates)
        expected = len(SHAPES) * rounds * (calls + 50) if inst.alternates else len(SHAPES) * (rounds * calls + 50)
        result["spans"], result["expected_spans"] = inst.spans(), expected if mode != "auriko-obs-hot-path" else 0
    return result


# ---------------------------------------------------------------- the DuckDB store


def _spans_like_the_pipeline(count: int) -> tuple[list, float]:
    """Returns ``count`` ReadableSpans built by ``Pipeline._span`` from real call records (half plain,
    half streamed), and the µs that building one took."""
    import auriko_obs
    from auriko_obs.instrumentation import _patch

    with tempfile.TemporaryDirectory() as folder:
        active = auriko_obs.instrument(db=os.path.join(folder, "records.duckdb"), service_name="bench")
        records: list = []
        _patch.HOOKS.submit = records.append
        shaped = _calls(_client())
        for _ in range(1000):
            shaped["plain"]()
            shaped["stream"]()
        _patch.HOOKS.submit = active.pipeline.submit
        build = active.pipeline._span
        start = time.perf_counter()
        spans = [build(records[i % len(records)]) for i in range(count)]  # fresh ids and attributes each
        build_us = (time.perf_counter() - start) / count * 1e6
        auriko_obs.uninstrument()
    return spans, build_us


def _store_rate(spans: list, batch: int, folder: str) -> dict[str, Any]:
    """Returns spans/s through ``export`` and through its halves, at one batch size."""
    from auriko_obs.store import DuckDBSpanExporter, spans_to_table

    whole = DuckDBSpanExporter(os.path.join(folder, f"export-{batch}.duckdb"), lock_wait_s=60)
    halves = DuckDBSpanExporter(os.path.join(folder, f"halves-{batch}.duckdb"), lock_wait_s=60)
    chunks = [spans[i : i + batch] for i in range(0, len(spans), batch)]
    export_s = convert_s = insert_s = 0.0
    for chunk in chunks:
        gc.collect()
        start = time.perf_counter()
        whole.export(chunk)
        export_s += time.perf_counter() - start
        start = time.perf_counter()
        table = spans_to_table(chunk)
        convert_s += time.perf_counter() - start
        start = time.perf_counter()
        halves.export_table(table)
        insert_s += time.perf_counter() - start
    import auriko_obs

    stored = int(auriko_obs.Store(whole.path).sql("SELECT count(*) AS n FROM spans").iloc[0]["n"])
    n = len(spans)
    return {
        "batch": batch,
        "stored": stored,
        "export_spans_per_s": n / export_s,
        "convert_spans_per_s": n / convert_s,
        "insert_spans_per_s": n / insert_s,
        "halves_spans_per_s": n / (convert_s + insert_s),
        "spooled": whole.spooled_spans + halves.spooled_spans,
    }


def _batch_fixed_ms(folder: str, sample: list) -> float:
    """Returns the median ms of exporting one span: opening, migrating-check and closing the file."""
    from auriko_obs.store import DuckDBSpanExporter, spans_to_table

    exporter = DuckDBSpanExporter(os.path.join(folder, "fixed.duckdb"))
    table = spans_to_table(sample[:1])
    times = []
    for _ in range(7):
        start = time.perf_counter()
        exporter.export_table(table)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[1:])


def run_store(count: int, batches: list[int]) -> dict[str, Any]:
    """Returns span-building µs, the fixed cost of one batch, and spans/s into DuckDB per batch size."""
    spans, build_us = _spans_like_the_pipeline(count)
    with tempfile.TemporaryDirectory() as folder:
        fixed_ms = _batch_fixed_ms(folder, spans)
        rates = [_store_rate(spans, batch, folder) for batch in batches]
    return {
        "spans": count,
        "span_build_us": build_us,
        "batch_fixed_ms": fixed_ms,
        "rates": rates,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


# ---------------------------------------------------------------- the parent: run, print


def _subprocess(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in (
        "openai",
        "httpx2",
        "duckdb",
        "pyarrow",
        "opentelemetry-sdk",
        "auriko-obs",
        "opentelemetry-instrumentation-openai",
        "openinference-instrumentation-openai",
    ):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _mode_rows(r: dict[str, Any]) -> list[str]:
    label = "auriko-obs (hot path)" if r["mode"] == "auriko-obs-hot-path" else r["mode"]
    if "error" in r:
        return [f"{label:<22}{r['error']}"]
    rows = []
    for shape in SHAPES:
        s = r[shape]
        spread = ""
        if len(s["rounds_bare_us"]) >= 20:  # many short blocks: the quartiles say more than the extremes
            spread = f" IQR [{s['overhead_us_iqr'][0]:+.0f}..{s['overhead_us_iqr'][1]:+.0f}]"
        elif s["overhead_us_range"]:
            spread = f" [{s['overhead_us_range'][0]:+.0f}..{s['overhead_us_range'][1]:+.0f}]"
        else:
            spread = (
                f" bare [{min(s['rounds_bare_us']):.0f}..{max(s['rounds_bare_us']):.0f}]"
                f" instr. [{min(s['rounds_instrumented_us']):.0f}..{max(s['rounds_instrumented_us']):.0f}]"
            )
        rows.append(
            f"{label:<22}{shape:<7}{s['bare_us']:>9.1f}{s['instrumented_us']:>10.1f}"
            f"{s['overhead_us']:>+9.1f} ({s['overhead_ratio']:+6.1%}){s['deferred_us']:>10.1f}"
            f"{s['cpu_overhead_us']:>+9.1f}{spread}"
        )
    tail = f"{'':<22}{r['method']}, load avg {r['load_avg_1m'][0]:.2f} → {r['load_avg_1m'][1]:.2f}"
    if r.get("expected_spans"):
        tail += f", spans recorded {r['spans']:,} of {r['expected_spans']:,} calls"
    elif r["mode"] != "auriko-obs-hot-path":
        tail += f", spans recorded {r['spans']:,}"
    return [*rows, tail]


def _store_rows(store: dict[str, Any]) -> list[str]:
    if "error" in store:
        return [f"store benchmark failed: {store['error']}"]
    rows = [
        f"\nDuckDB store, {store['spans']:,} spans built by Pipeline._span ({store['span_build_us']:.1f} µs "
        f"each = {1e6 / store['span_build_us']:,.0f} spans/s); one export's fixed cost (open, schema check, "
        f"close): {store['batch_fixed_ms']:.1f} ms",
        f"{'batch':>8}{'stored':>10}{'convert/s':>12}{'insert/s':>12}{'both/s':>12}{'export()/s':>12}",
    ]
    for r in store["rates"]:
        rows.append(
            f"{r['batch']:>8,}{r['stored']:>10,}{r['convert_spans_per_s']:>12,.0f}"
            f"{r['insert_spans_per_s']:>12,.0f}{r['halves_spans_per_s']:>12,.0f}{r['export_spans_per_s']:>12,.0f}"
        )
    best = max(r["export_spans_per_s"] for r in store["rates"])
    rows.append(
        f"target ≥ {TARGET_SPANS_PER_S:,} spans/s stored: {'met' if best >= TARGET_SPANS_PER_S else 'NOT met'} "
        f"(best export() {best:,.0f}/s)"
    )
    return rows


def print_table(report: dict[str, Any]) -> None:
    v = report["versions"]
    print(
        f"openai {v['openai']}, duckdb {v['duckdb']}, OpenLLMetry {v['opentelemetry-instrumentation-openai']}, "
        f"OpenInference {v['openinference-instrumentation-openai']}; {report['calls_per_round']} calls × "
        f"{report['rounds']} rounds, medians; {os.cpu_count()} cores\n"
    )
    print(
        f"{'mode':<22}{'shape':<7}{'bare µs':>9}{'instr. µs':>10}{'overhead µs (%)':>19}{'deferred':>10}"
        f"{'cpu +':>9} [spread over rounds]"
    )
    for r in report["calls"]:
        print("\n".join(_mode_rows(r)))
    ours = next((r for r in report["calls"] if r["mode"] == "auriko-obs" and "error" not in r), None)
    if ours:
        verdict = ", ".join(f"{s} {ours[s]['overhead_ratio']:+.1%}" for s in SHAPES)
        met = all(ours[s]["overhead_ratio"] <= TARGET_OVERHEAD for s in SHAPES)
        print(f"target auriko-obs overhead ≤ {TARGET_OVERHEAD:.0%}: {'met' if met else 'NOT met'} ({verdict})")
    if report.get("store"):
        print("\n".join(_store_rows(report["store"])))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Peers: pip install opentelemetry-instrumentation-openai openinference-instrumentation-openai",
    )
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (default 2000)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds per mode and shape; medians are reported (default 5)"
    )
    parser.add_argument(
        "--skip-peers", action="store_true", help="measure auriko-obs only, not OpenLLMetry/OpenInference"
    )
    parser.add_argument(
        "--skip-hot-path", action="store_true", help="leave out the auriko-obs hot-path-only diagnostic"
    )
    parser.add_argument(
        "--spans", type=int, default=200_000, help="spans for the store benchmark (default 200000; 0 skips it)"
    )
    parser.add_argument(
        "--batches", default="4096,16384,50000", help="batch sizes for the store (default 4096,16384,50000)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if args.mode == "store":
        print(json.dumps(run_store(args.spans, batches)))
        return
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.calls, args.rounds)))
        return
    modes = ["auriko-obs"] + ([] if args.skip_hot_path else ["auriko-obs-hot-path"])
    modes += [] if args.skip_peers else list(MODES[1:])
    common = ["--calls", str(args.calls), "--rounds", str(args.rounds)]
    report: dict[str, Any] = {
        "versions": _versions(),
        "calls_per_round": args.calls,
        "rounds": args.rounds,
        "calls": [],
    }
    for mode in modes:
        print(f"measuring {mode} …", file=sys.stderr, flush=True)
        report["calls"].append({"mode": mode, **_subprocess(["--mode", mode, *common])})
    if args.spans:
        print("measuring the DuckDB store …", file=sys.stderr, flush=True)
        report["store"] = _subprocess(["--mode", "store", "--spans", str(args.spans), "--batches", args.batches])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
