"""Per-call overhead of auriko-obs against a bare openai client, OpenLLMetry and OpenInference; spans/s into DuckDB.

Run by hand (not a test):

    pip install -e ".[dev]" opentelemetry-instrumentation-openai openinference-instrumentation-openai
    python benchmarks/overhead.py                 # table
    python benchmarks/overhead.py --json          # machine-readable

Every mode runs in its own subprocess (the instrumentations patch the same SDK and cannot all be undone
cleanly), and each subprocess first measures the bare client, then instruments it and measures again, so
every ratio is against a baseline from the same process. Calls go to an in-process mock transport
(httpx2.MockTransport, or httpx for openai 2.x) that returns a realistic Auriko response, so the figures
are the instrumentation's own cost, not network time.

For auriko-obs two figures matter: the per-call time the caller sees while the export worker runs as
usual (it competes for the GIL with a CPU-bound caller), and the work still queued at the end of the
loop (the time `flush()` takes, per call), which a real, network-bound caller never waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

ROUTING = {"provider": "fireworks_ai", "provider_model_id": "accounts/fireworks/models/llama-v3p3-70b-instruct",
           "model_canonical": "llama-3.3-70b", "routing_strategy": "cost",
           "cost": {"usd": 0.000412, "cache_savings_usd": 0.0009, "cache_savings_percent": 68},
           "ttft_ms": 312.5, "throughput_tps": 84.1,
           "warnings": [{"type": "unsupported_parameter", "code": "top_k_ignored", "message": "dropped"}]}
HEADERS = {"content-type": "application/json", "x-request-id": "req_0123456789abcdef01234567",
           "x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "9998",
           "x-ratelimit-reset-requests": "2026-11-25T10:00:00Z", "x-credits-balance-microdollars": "98765432",
           "x-budget-daily-limit": "50.00", "x-budget-daily-spend": "12.34"}
USAGE = {"prompt_tokens": 1380, "completion_tokens": 42, "total_tokens": 1422,
         "prompt_tokens_details": {"cached_tokens": 1280}, "completion_tokens_details": {"reasoning_tokens": 0}}
COMPLETION = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 1764000000, "model": "llama-3.3-70b",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "Fantasy and crime sold best last quarter."}}],
              "usage": USAGE, "routing_metadata": ROUTING}


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764000000,
            "model": "llama-3.3-70b", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


STREAM = [_chunk({"role": "assistant", "content": ""})] + [_chunk({"content": w + " "}) for w in
          "Fantasy and crime sold best".split()] + [_chunk({}, "stop")] + [
    {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764000000, "model": "llama-3.3-70b",
     "choices": [], "usage": USAGE, "routing_metadata": ROUTING}]
STREAM_BODY = ("".join(f"data: {json.dumps(c)}\n\n" for c in STREAM) + "data: [DONE]\n\n").encode()
PLAIN_BODY = json.dumps(COMPLETION).encode()
MESSAGES = [{"role": "user", "content": "Which genres sold best last quarter?"}]


def _client() -> Any:
    import openai

    try:
        import httpx2 as http
    except ImportError:  # openai 2.x
        import httpx as http

    def handler(request: Any) -> Any:
        if b'"stream":true' in request.content or b'"stream": true' in request.content:
            return http.Response(200, headers={**HEADERS, "content-type": "text/event-stream"}, content=STREAM_BODY)
        return http.Response(200, headers=HEADERS, content=PLAIN_BODY)

    return openai.OpenAI(base_url="https://api.auriko.ai/v1", api_key="ak_bench_key",
                         http_client=http.Client(transport=http.MockTransport(handler)), max_retries=0)


def _loop(call: Callable[[], Any], calls: int) -> float:
    """Returns the mean per-call microseconds of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


class _Switch:
    """Turns one instrumentation on and off, so that bare and instrumented rounds can alternate."""

    def __init__(self, mode: str, db: str) -> None:
        self.mode, self.db = mode, db
        self.flush: Callable[[], Any] = lambda: None
        if mode == "auriko-obs":
            import auriko_obs  # noqa: F401
            return
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class Discard(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        self.provider = TracerProvider()
        processor = BatchSpanProcessor(Discard(), max_queue_size=1_000_000)
        self.provider.add_span_processor(processor)
        self.flush = lambda: processor.force_flush()
        if mode == "openllmetry":
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        else:
            from openinference.instrumentation.openai import OpenAIInstrumentor
        self.instrumentor = OpenAIInstrumentor()

    def on(self) -> None:
        if self.mode == "auriko-obs":
            import auriko_obs

            auriko_obs.instrument(db=self.db, service_name="bench")
            self.flush = auriko_obs.flush
        else:
            self.instrumentor.instrument(tracer_provider=self.provider)

    def off(self) -> None:
        if self.mode == "auriko-obs":
            import auriko_obs

            auriko_obs.uninstrument()
        else:
            self.instrumentor.uninstrument()


def _timed_round(switch: _Switch, call: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Returns (instrumented µs per call, deferred µs per call) of one round with the instrumentation on."""
    _loop(call, 50)
    switch.flush()
    instrumented = _loop(call, calls)
    start = time.perf_counter()
    switch.flush()
    return instrumented, (time.perf_counter() - start) / calls * 1e6


def _alternating(switch: _Switch, call: Callable[[], Any], calls: int, rounds: int) -> tuple[list, list, list]:
    bare, instrumented, deferred = [], [], []
    for _ in range(rounds):
        bare.append(_loop(call, calls))
        switch.on()
        timed, queued = _timed_round(switch, call, calls)
        switch.off()
        instrumented.append(timed)
        deferred.append(queued)
    return bare, instrumented, deferred


def run_mode(mode: str, calls: int, rounds: int) -> dict:
    """Returns bare and instrumented per-call µs (plain and streamed).

    For auriko-obs each round times the bare client, then the instrumented one, then flushes (untimed,
    reported as deferred work); overheads are the median over rounds of each round's own difference, so
    that the machine's drift between rounds cancels out. Peers are timed bare first, then instrumented.
    """
    client = _client()

    def plain() -> Any:
        return client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)

    def streamed() -> Any:
        for _ in client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES, stream=True):
            pass

    # auriko-obs uninstruments cleanly, so its rounds alternate; the peers' uninstrument() leaves
    # wrappers behind, so for them every bare round comes first, then every instrumented one.
    alternate = mode == "auriko-obs"
    result: dict[str, Any] = {"mode": mode, "method": "alternating" if alternate else "before/after"}
    with tempfile.TemporaryDirectory() as folder:
        try:
            switch = _Switch(mode, os.path.join(folder, "bench.duckdb"))
        except ImportError as exc:
            return {"mode": mode, "error": f"not installed ({exc.name})"}
        shapes = {"plain": plain, "stream": streamed}
        for call in shapes.values():
            _loop(call, min(300, calls))
        if alternate:
            measured = {shape: _alternating(switch, call, calls, rounds) for shape, call in shapes.items()}
        else:
            bare_rounds = {shape: [_loop(call, calls) for _ in range(rounds)] for shape, call in shapes.items()}
            switch.on()
            measured = {}
            for shape, call in shapes.items():
                rounds_on = [_timed_round(switch, call, calls) for _ in range(rounds)]
                measured[shape] = (bare_rounds[shape], [r[0] for r in rounds_on], [r[1] for r in rounds_on])
        for shape, (bare, instrumented, deferred) in measured.items():
            result[f"bare_{shape}_us"] = statistics.median(bare)
            result[f"{shape}_us"] = statistics.median(instrumented)
            result[f"{shape}_overhead_us"] = statistics.median(i - b for i, b in zip(instrumented, bare))
            result[f"{shape}_overhead_ratio"] = statistics.median(i / b - 1 for i, b in zip(instrumented, bare))
            result[f"{shape}_deferred_us"] = statistics.median(deferred)
        if mode == "auriko-obs":
            import auriko_obs

            result["rows"] = int(auriko_obs.Store(os.path.join(folder, "bench.duckdb")).sql(
                "SELECT count(*) AS n FROM llm_calls").iloc[0]["n"])
            result["expected_rows"] = 2 * rounds * (calls + 50)
    return result


def run_store(spans: int, batch: int) -> dict:
    """Returns spans/s for row conversion and for the DuckDB insert, with spans built as the pipeline builds them."""
    import auriko_obs
    from auriko_obs.instrumentation import _patch
    from auriko_obs.store import DuckDBSpanExporter, spans_to_table

    with tempfile.TemporaryDirectory() as folder:
        instrumentation = auriko_obs.instrument(db=os.path.join(folder, "warm.duckdb"))
        records: list = []
        submit, _patch.HOOKS.submit = _patch.HOOKS.submit, records.append
        client = _client()
        for _ in range(2000):
            client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
        _patch.HOOKS.submit = submit
        pipeline = instrumentation.pipeline
        start = time.perf_counter()
        template = [pipeline._span(r) for r in records]
        build_us = (time.perf_counter() - start) / len(records) * 1e6
        auriko_obs.uninstrument()
        all_spans = (template * (spans // len(template) + 1))[:spans]
        exporter = DuckDBSpanExporter(os.path.join(folder, "store.duckdb"), lock_wait_s=30)
        convert_s = insert_s = 0.0
        for offset in range(0, spans, batch):
            chunk = all_spans[offset:offset + batch]
            start = time.perf_counter()
            table = spans_to_table(chunk)
            convert_s += time.perf_counter() - start
            start = time.perf_counter()
            exporter.export_table(table)
            insert_s += time.perf_counter() - start
        stored = int(auriko_obs.Store(exporter.path).sql("SELECT count(*) AS n FROM spans").iloc[0]["n"])
    return {"spans": spans, "batch": batch, "stored": stored, "span_build_us": build_us,
            "convert_spans_per_s": spans / convert_s, "insert_spans_per_s": spans / insert_s,
            "store_spans_per_s": spans / (convert_s + insert_s)}


def _subprocess(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print_table(results: list[dict], store: dict) -> None:
    print(f"{'mode':<14}{'shape':<8}{'bare µs':>10}{'instr. µs':>11}{'overhead':>18}{'deferred µs':>13}")
    for r in results:
        if "error" in r:
            print(f"{r['mode']:<14}{r['error']}")
            continue
        for shape in ("plain", "stream"):
            bare, instr = r[f"bare_{shape}_us"], r[f"{shape}_us"]
            print(f"{r['mode']:<14}{shape:<8}{bare:>10.1f}{instr:>11.1f}{r[f'{shape}_overhead_us']:>+10.1f} "
                  f"({r[f'{shape}_overhead_ratio']:+6.1%}){r[f'{shape}_deferred_us']:>13.1f}")
        if "rows" in r:
            print(f"{'':<14}rows stored {r['rows']:,} of {r['expected_rows']:,} calls made")
    print("\noverhead: median over rounds of (instrumented − bare); auriko-obs alternates bare and instrumented")
    print("rounds, peers (whose uninstrument is unreliable) run all bare rounds first. deferred µs: background")
    print("work still queued after each timed loop, per call (the flush() that follows, which a network-bound")
    print("caller never waits for).")
    if store:
        print(f"\nDuckDB store: {store['stored']:,} spans in batches of {store['batch']:,}: "
              f"row conversion {store['convert_spans_per_s']:,.0f} spans/s, insert {store['insert_spans_per_s']:,.0f} "
              f"spans/s, together {store['store_spans_per_s']:,.0f} spans/s "
              f"(building each span from a call record: {store['span_build_us']:.1f} µs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported (default 5)")
    parser.add_argument("--skip-peers", action="store_true", help="measure auriko-obs only")
    parser.add_argument("--spans", type=int, default=200_000, help="spans for the store benchmark (default 200000)")
    parser.add_argument("--batch", type=int, default=50_000, help="spans per DuckDB batch (default 50000)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "store":
        print(json.dumps(run_store(args.spans, args.batch)))
        return
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.calls, args.rounds)))
        return
    modes = ["auriko-obs"] + ([] if args.skip_peers else ["openllmetry", "openinference"])
    common = ["--calls", str(args.calls), "--rounds", str(args.rounds)]
    results = []
    for mode in modes:
        print(f"measuring {mode} …", file=sys.stderr, flush=True)
        results.append({"mode": mode, **_subprocess(["--mode", mode, *common])})
    print("measuring the DuckDB store …", file=sys.stderr, flush=True)
    store = _subprocess(["--mode", "store", "--spans", str(args.spans), "--batch", str(args.batch)])
    if args.json:
        print(json.dumps({"calls": results, "store": store}, indent=2))
    else:
        _print_table(results, store if "error" not in store else {})
        if "error" in store:
            print(f"store benchmark failed: {store['error']}")


if __name__ == "__main__":
    main()
