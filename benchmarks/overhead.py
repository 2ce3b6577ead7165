"""Per-call overhead of auriko-obs and of its peers against a bare openai client; spans/s into the store.

Run by hand (not a test). The peers are optional; without them their rows say "not installed":

    pip install -e ".[dev]"
    pip install opentelemetry-instrumentation-openai openinference-instrumentation-openai logfire langfuse
    python benchmarks/overhead.py                 # table (7 rounds x 1000 calls per mode and shape)
    python benchmarks/overhead.py --json          # machine-readable
    python benchmarks/overhead.py --skip-peers --calls 300 --rounds 5 --spans 50000   # quick look

Calls go to an in-process mock transport (``httpx2.MockTransport``; ``httpx`` under openai 2.x) that
answers like Auriko: a chat completion with usage (``prompt_tokens_details.cached_tokens``),
``routing_metadata`` (provider, cost, ttft, warnings) and the x-request-id / x-ratelimit-* /
x-credits-balance-microdollars headers; a stream is 8 SSE chunks, a usage chunk (``choices: []``, usage,
routing_metadata) and ``data: [DONE]``. Only instrumentation is timed, never a network. Four shapes:
plain and streamed calls, through ``OpenAI`` and through ``AsyncOpenAI`` (awaited one after another).

The modes, each in its own subprocess (the instrumentations patch the same SDK, and the peers'
``uninstrument()`` does not undo everything), each measuring the bare client itself, so that every ratio is
against a baseline from the same process and the same minutes:

- ``auriko-obs``: ``instrument()`` into a ``.duckdb`` file, default settings. It uninstruments cleanly, so
  its rounds alternate: bare loop, instrumented loop and ``flush()``, and the store connection released (so
  that the checkpoint DuckDB writes when it closes the file is counted too). Overheads are medians of the
  rounds' own differences, so that drift between rounds cancels.
- ``auriko-obs (hot path)``: a diagnostic, the same wrappers with every record thrown away: what the
  caller's thread alone pays.
- The peers: OpenLLMetry and OpenInference (an SDK ``TracerProvider`` with a ``BatchSpanProcessor``),
  Pydantic Logfire (``logfire.configure(send_to_logfire=False, console=False)`` and
  ``logfire.instrument_openai()``) and Langfuse's OpenAI integration (``langfuse.openai``, a ``Langfuse``
  client whose span exporter is ours), each exporting into an exporter that discards, through a queue large
  enough that nothing is dropped. A peer runs its bare rounds first, then instruments and runs its
  instrumented rounds; its overheads are differences of medians. The peers run with their defaults, which
  record prompts and completions; auriko-obs by default does not.

Columns, per call: ``bare`` and ``instr.`` are wall-clock µs the caller sees, and ``wall +`` the
difference; ``cpu +`` is the extra process CPU per call (``time.process_time``: every thread, the export
worker's and DuckDB's included, over the loop and the flush until every span is stored or exported), the
total cost of the instrumentation: what a busy service pays once every core is in use. The load average
is printed with each mode: on a shared machine, wall-clock figures move with it, CPU figures much less.

The store benchmark (``--spans``) stores span rows through the public writer: ``encode_spans`` (the
ReadableSpans a TracerProvider gives) and ``DuckDBSpanExporter.export``, and the rows the pipeline
builds from call records (``encode_records``) through ``StoreWriter.write(fresh=True)``, as the pipeline writes
them, one batch after another into one ``.duckdb`` file (the writer holds its connection across batches),
then releases the file.
"""

from __future__ import annotations

import argparse
import asyncio
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
PEERS = ("openllmetry", "openinference", "logfire", "langfuse")
SHAPES = ("plain", "stream", "async plain", "async stream")
TARGET_WALL = {"plain": 0.03, "stream": 0.05, "async plain": 0.03, "async stream": 0.05}
TARGET_CPU_US = 50.0
TARGET_SPANS_PER_S = 100_000


# ---------------------------------------------------------------- the clients and the calls


def _transport_module() -> Any:
    try:
        import httpx2 as http
    except ImportError:  # openai 2.x
        import httpx as http
    return http


def _answer(request: Any) -> Any:
    http = _transport_module()
    if b'"stream":true' in request.content or b'"stream": true' in request.content:
        return http.Response(200, headers={**HEADERS, "content-type": "text/event-stream"}, content=STREAM_BODY)
    return http.Response(200, headers=HEADERS, content=PLAIN_BODY)


def _client() -> Any:
    """Returns an openai client whose transport answers in-process like Auriko."""
    import openai

    http = _transport_module()
    return openai.OpenAI(
        base_url="https://api.auriko.ai/v1",
        api_key="ak_bench",
        http_client=http.Client(transport=http.MockTransport(_answer)),
        max_retries=0,
    )


def _async_client() -> Any:
    import openai

    http = _transport_module()

    async def answer(request: Any) -> Any:
        return _answer(request)

    return openai.AsyncOpenAI(
        base_url="https://api.auriko.ai/v1",
        api_key="ak_bench",
        http_client=http.AsyncClient(transport=http.MockTransport(answer)),
        max_retries=0,
    )


class Loops:
    """Runs ``n`` calls of a shape one after another; returns wall-clock seconds of the calls alone."""

    def __init__(self) -> None:
        self.client = _client()
        self.aclient = _async_client()
        self.loop = asyncio.new_event_loop()

    def run(self, shape: str, n: int) -> float:
        if shape.startswith("async"):
            return self.loop.run_until_complete(self._async(shape == "async stream", n))
        create = self.client.chat.completions.create
        start = time.perf_counter()
        if shape == "stream":
            for _ in range(n):
                for _ in create(model="llama-3.3-70b", messages=MESSAGES, stream=True):
                    pass
        else:
            for _ in range(n):
                create(model="llama-3.3-70b", messages=MESSAGES)
        return time.perf_counter() - start

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.aclient.close())
        self.loop.close()
        self.client.close()

    async def _async(self, stream: bool, n: int) -> float:
        create = self.aclient.chat.completions.create
        start = time.perf_counter()
        if stream:
            for _ in range(n):
                async for _ in await create(model="llama-3.3-70b", messages=MESSAGES, stream=True):
                    pass
        else:
            for _ in range(n):
                await create(model="llama-3.3-70b", messages=MESSAGES)
        return time.perf_counter() - start


def _measured(loops: Loops, shape: str, n: int, flush: Callable[[], Any]) -> dict[str, float]:
    """Returns µs per call: wall of the calls, and process CPU (every thread) of the calls and the flush."""
    gc.collect()
    cpu = time.process_time()
    wall = loops.run(shape, n)
    flush()
    return {"wall": wall / n * 1e6, "cpu": (time.process_time() - cpu) / n * 1e6}


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
        active = self._obs.instrumentation.active()
        store = active.store_exporter if active is not None else None
        release = getattr(store, "release", None)
        if release is not None:  # count the checkpoint of closing the file too
            release()

    def off(self) -> None:
        self._obs.uninstrument()

    def spans(self) -> int:
        return int(self._obs.Store(self.db).sql("SELECT count(*) AS n FROM llm_calls").iloc[0]["n"])


class _AurikoHotPath:
    """auriko-obs's wrappers with every record thrown away: what the caller's own thread pays."""

    alternates = True

    def __init__(self, db: str) -> None:
        import auriko_obs
        from auriko_obs import instrumentation
        from auriko_obs.instrumentation import _patch

        auriko_obs.instrument(db=db, service_name="bench")
        instrumentation._patcher.revert()
        _patch.HOOKS.submit = lambda record: None
        self._patcher = instrumentation._patcher
        self._targets = _patch.OPENAI_TARGETS + _patch.HTTP_TARGETS + _patch.STREAM_HELPER_TARGETS

    def on(self) -> None:
        self._patcher.apply(self._targets)

    def flush(self) -> None:
        pass

    def off(self) -> None:
        self._patcher.revert()

    def spans(self) -> int:
        return 0


def _discarding_processor(seen: list[int]) -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            seen[0] += len(spans)
            return SpanExportResult.SUCCESS

    # The default queue (2048) drops spans when calls outpace its worker; this one keeps them all.
    return BatchSpanProcessor(Discard(), max_queue_size=1_000_000)


class _Peer:
    """A peer instrumentation exporting into a discarding exporter; measured before/after, never switched off."""

    alternates = False

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._seen = [0]
        self._flush: Callable[[], Any] = lambda: None
        if mode in ("openllmetry", "openinference"):  # fail now if not installed
            if mode == "openllmetry":
                from opentelemetry.instrumentation.openai import OpenAIInstrumentor
            else:
                from openinference.instrumentation.openai import OpenAIInstrumentor
            self._instrumentor = OpenAIInstrumentor
        elif mode == "logfire":
            import logfire  # noqa: F401
        elif mode == "langfuse":
            import langfuse  # noqa: F401

    def on(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider

        if self.mode in ("openllmetry", "openinference"):
            provider = TracerProvider()
            processor = _discarding_processor(self._seen)
            provider.add_span_processor(processor)
            self._instrumentor().instrument(tracer_provider=provider)
            self._flush = processor.force_flush
        elif self.mode == "logfire":
            import logfire

            logfire.configure(
                send_to_logfire=False,
                console=False,
                additional_span_processors=[_discarding_processor(self._seen)],
            )
            logfire.instrument_openai()
            self._flush = logfire.force_flush
        elif self.mode == "langfuse":
            from langfuse import Langfuse

            from_exporter = _discarding_processor(self._seen).span_exporter
            client = Langfuse(
                public_key="pk-lf-bench",
                secret_key="sk-lf-bench",
                host="http://127.0.0.1:9",  # never reached: the span exporter is ours
                tracer_provider=TracerProvider(),
                span_exporter=from_exporter,
                flush_at=512,
            )
            import langfuse.openai  # noqa: F401  (patches the openai SDK on import)

            self._flush = client.flush

    def flush(self) -> None:
        self._flush()

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


def _nothing() -> None:
    pass


def _rounds_alternating(inst: Any, loops: Loops, n: int, rounds: int) -> dict[str, tuple[list, list]]:
    bare: dict[str, list] = {s: [] for s in SHAPES}
    instrumented: dict[str, list] = {s: [] for s in SHAPES}
    for _ in range(rounds):
        for shape in SHAPES:
            bare[shape].append(_measured(loops, shape, n, _nothing))
            inst.on()
            loops.run(shape, 20)
            inst.flush()
            instrumented[shape].append(_measured(loops, shape, n, inst.flush))
            inst.off()
    return {s: (bare[s], instrumented[s]) for s in SHAPES}


def _rounds_before_after(inst: Any, loops: Loops, n: int, rounds: int) -> dict[str, tuple[list, list]]:
    bare = {s: [_measured(loops, s, n, _nothing) for _ in range(rounds)] for s in SHAPES}
    inst.on()
    for shape in SHAPES:
        loops.run(shape, 50)
    inst.flush()
    return {s: (bare[s], [_measured(loops, s, n, inst.flush) for _ in range(rounds)]) for s in SHAPES}


def _summary(bare: list[dict], instrumented: list[dict], paired: bool) -> dict[str, Any]:
    med = statistics.median
    bare_us, instr_us = med(b["wall"] for b in bare), med(i["wall"] for i in instrumented)
    bare_cpu, instr_cpu = med(b["cpu"] for b in bare), med(i["cpu"] for i in instrumented)
    if paired:
        wall = med(i["wall"] - b["wall"] for b, i in zip(bare, instrumented, strict=True))
        cpu = med(i["cpu"] - b["cpu"] for b, i in zip(bare, instrumented, strict=True))
    else:
        wall, cpu = instr_us - bare_us, instr_cpu - bare_cpu
    return {
        "bare_us": bare_us,
        "instrumented_us": instr_us,
        "overhead_us": wall,
        "overhead_ratio": wall / bare_us,
        "bare_cpu_us": bare_cpu,
        "cpu_overhead_us": cpu,
        "cpu_overhead_ratio": cpu / bare_cpu,
        "rounds_bare_us": [round(b["wall"], 1) for b in bare],
        "rounds_instrumented_us": [round(i["wall"], 1) for i in instrumented],
        "rounds_cpu_overhead_us": [round(i["cpu"] - b["cpu"], 1) for b, i in zip(bare, instrumented, strict=True)],
    }


def run_mode(mode: str, calls: int, rounds: int) -> dict[str, Any]:
    """Returns the bare and instrumented per-call figures of one mode, for each shape."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            inst = _instrumentation(mode, folder)
        except ImportError as exc:
            return {"mode": mode, "error": f"not installed ({exc.name})"}
        loops = Loops()
        for shape in SHAPES:
            loops.run(shape, min(200, calls))
        load_before = os.getloadavg()[0]
        run = _rounds_alternating if inst.alternates else _rounds_before_after
        measured = run(inst, loops, calls, rounds)
        method = (
            f"{rounds} alternating rounds" if inst.alternates else f"{rounds} bare rounds, then {rounds} instrumented"
        )
        result: dict[str, Any] = {
            "mode": mode,
            "method": method,
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
        for shape, (bare, instrumented) in measured.items():
            result[shape] = _summary(bare, instrumented, paired=inst.alternates)
        loops.close()
        expected = len(SHAPES) * rounds * (calls + 20) if inst.alternates else len(SHAPES) * (rounds * calls + 50)
        result["spans"], result["expected_spans"] = inst.spans(), expected if mode != "auriko-obs-hot-path" else 0
    return result


# ---------------------------------------------------------------- the store


def _call_records(count: int) -> list[Any]:
    """Returns ``count`` call records of real calls (half plain, half streamed), as the pipeline receives them."""
    import auriko_obs
    from auriko_obs.instrumentation import _patch

    with tempfile.TemporaryDirectory() as folder:
        auriko_obs.instrument(db=os.path.join(folder, "records.duckdb"), service_name="bench")
        records: list[Any] = []
        submit, _patch.HOOKS.submit = _patch.HOOKS.submit, records.append
        loops = Loops()
        for _ in range(count // 2):
            loops.run("plain", 1)
            loops.run("stream", 1)
        _patch.HOOKS.submit = submit
        auriko_obs.uninstrument()
    return records


def _spans_like_the_pipeline(count: int) -> tuple[list[Any], float]:
    """Returns ``count`` ReadableSpans built by the pipeline (``build_spans``) from real call records (half
    plain, half streamed), fresh ids each, and the µs that building one took (``collect.py`` and ``lake.py``
    send or write them)."""
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from auriko_obs.instrumentation import _pipeline, _resource

    records = _call_records(min(count, 2000))
    pipeline = _pipeline.Pipeline([], _resource("bench"), InstrumentationScope("auriko_obs", "bench"))
    pipeline.shutdown()
    start = time.perf_counter()
    spans = pipeline.build_spans([records[i % len(records)] for i in range(count)])
    return spans, (time.perf_counter() - start) / count * 1e6


def _timed(work: Callable[[], Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_store(count: int, batch: int, rounds: int) -> dict[str, Any]:
    """Returns spans/s (wall and CPU) of span rows stored in batches through the public writer."""
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from auriko_obs.instrumentation import _pipeline, _resource
    from auriko_obs.store import DuckDBSpanExporter, StoreWriter

    records = _call_records(min(count, 2000))
    pipeline = _pipeline.Pipeline([], _resource("bench"), InstrumentationScope("auriko_obs", "bench"))
    pipeline.shutdown()
    build_rows = pipeline.encode_records
    build_spans = pipeline.build_spans
    picks = [records[i % len(records)] for i in range(count)]  # fresh ids for each
    chunks = [picks[i : i + batch] for i in range(0, count, batch)]
    results: dict[str, list[dict[str, float]]] = {"exporter": [], "writer": [], "encode_records": []}
    with tempfile.TemporaryDirectory() as folder:
        for r in range(rounds):
            spans = [build_spans(chunk) for chunk in chunks]
            exporter = DuckDBSpanExporter(os.path.join(folder, f"export-{r}.duckdb"), lock_wait_s=60)

            def export(exporter: Any = exporter, spans: list = spans) -> None:
                for part in spans:
                    exporter.export(part)
                exporter.release()

            wall, cpu = _timed(export)
            results["exporter"].append({"wall": wall, "cpu": cpu})
            exporter.shutdown()
            tables: list[Any] = []
            wall, cpu = _timed(lambda tables=tables: tables.extend(build_rows(chunk) for chunk in chunks))
            results["encode_records"].append({"wall": wall, "cpu": cpu})
            writer = StoreWriter(os.path.join(folder, f"write-{r}.duckdb"), lock_wait_s=60)

            def write(writer: Any = writer, tables: list = tables) -> None:
                for table in tables:
                    writer.write(table, fresh=True)  # as the pipeline writes its own rows
                writer.release()

            wall, cpu = _timed(write)
            results["writer"].append({"wall": wall, "cpu": cpu})
            writer.close()
        import auriko_obs

        stored = int(
            auriko_obs.Store(os.path.join(folder, "write-0.duckdb")).sql("SELECT count(*) AS n FROM spans")["n"][0]
        )
    med = statistics.median
    return {
        "spans": count,
        "batch": batch,
        "rounds": rounds,
        "stored": stored,
        **{f"{name}_spans_per_s": count / med(x["wall"] for x in rows) for name, rows in results.items()},
        **{f"{name}_cpu_us_per_span": med(x["cpu"] for x in rows) / count * 1e6 for name, rows in results.items()},
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
        "duckdb",
        "pyarrow",
        "opentelemetry-sdk",
        "auriko-obs",
        "opentelemetry-instrumentation-openai",
        "openinference-instrumentation-openai",
        "logfire",
        "langfuse",
    ):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _label(mode: str) -> str:
    return "auriko-obs (hot path)" if mode == "auriko-obs-hot-path" else mode


def _mode_rows(r: dict[str, Any]) -> list[str]:
    label = _label(r["mode"])
    if "error" in r:
        return [f"{label:<22}{r['error']}"]
    rows = []
    for shape in SHAPES:
        s = r[shape]
        rows.append(
            f"{label:<22}{shape:<13}{s['bare_us']:>9.1f}{s['instrumented_us']:>10.1f}"
            f"{s['overhead_us']:>+9.1f} ({s['overhead_ratio']:+6.1%}){s['cpu_overhead_us']:>+10.1f}"
            f"  cpu/round [{min(s['rounds_cpu_overhead_us']):+.0f}..{max(s['rounds_cpu_overhead_us']):+.0f}]"
        )
    tail = f"{'':<22}{r['method']}, load avg {r['load_avg_1m'][0]:.2f} → {r['load_avg_1m'][1]:.2f}"
    if r.get("expected_spans"):
        tail += f", spans recorded {r['spans']:,} of {r['expected_spans']:,} calls"
    return [*rows, tail]


def _verdict(report: dict[str, Any]) -> list[str]:
    modes = {r["mode"]: r for r in report["calls"] if "error" not in r}
    ours = modes.get("auriko-obs")
    if ours is None:
        return []
    lines = []
    for shape in SHAPES:
        wall, cpu = ours[shape]["overhead_ratio"], ours[shape]["cpu_overhead_us"]
        peers = [modes[p][shape] for p in PEERS if p in modes]
        below_peers = all(wall < p["overhead_ratio"] and cpu < p["cpu_overhead_us"] for p in peers)
        met = wall <= TARGET_WALL[shape] and cpu <= TARGET_CPU_US
        lines.append(
            f"{shape:<13} wall {wall:+.1%} (target ≤ {TARGET_WALL[shape]:.0%}), cpu {cpu:+.1f} µs (target ≤ "
            f"{TARGET_CPU_US:.0f}): {'met' if met else 'NOT met'}; below every peer measured: "
            f"{'yes' if below_peers else 'no'} ({len(peers)} peers)"
        )
    return lines


def _store_rows(store: dict[str, Any]) -> list[str]:
    if "error" in store:
        return [f"store benchmark failed: {store['error']}"]
    return [
        f"\nStore: {store['spans']:,} spans in batches of {store['batch']:,}, median of {store['rounds']} rounds, "
        f"load avg {store['load_avg_1m']:.2f}; {store['stored']:,} stored",
        f"  DuckDBSpanExporter.export(ReadableSpans):          {store['exporter_spans_per_s']:>10,.0f} spans/s, "
        f"{store['exporter_cpu_us_per_span']:.1f} µs CPU a span",
        f"  StoreWriter.write(call records' rows, fresh=True): {store['writer_spans_per_s']:>10,.0f} spans/s, "
        f"{store['writer_cpu_us_per_span']:.1f} µs CPU a span",
        f"  encoding call records into rows:                   {store['encode_records_spans_per_s']:>10,.0f} spans/s, "
        f"{store['encode_records_cpu_us_per_span']:.1f} µs CPU a span",
        f"  target ≥ {TARGET_SPANS_PER_S:,} spans/s through the exporter: "
        f"{'met' if store['exporter_spans_per_s'] >= TARGET_SPANS_PER_S else 'NOT met'}",
    ]


def print_table(report: dict[str, Any]) -> None:
    v = report["versions"]
    print(
        f"auriko-obs {v['auriko-obs']}, openai {v['openai']}, duckdb {v['duckdb']}, OpenLLMetry "
        f"{v['opentelemetry-instrumentation-openai']}, OpenInference {v['openinference-instrumentation-openai']}, "
        f"Logfire {v['logfire']}, Langfuse {v['langfuse']}; {report['calls_per_round']} calls × "
        f"{report['rounds']} rounds, medians; {os.cpu_count()} cores\n"
    )
    print(f"{'mode':<22}{'shape':<13}{'bare µs':>9}{'instr. µs':>10}{'wall + µs (%)':>19}{'cpu + µs':>10}")
    for r in report["calls"]:
        print("\n".join(_mode_rows(r)))
    print("\n".join(_verdict(report)))
    if report.get("store"):
        print("\n".join(_store_rows(report["store"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per mode and shape; medians (default 7)")
    parser.add_argument("--skip-peers", action="store_true", help="measure auriko-obs only")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"peers to measure (default {','.join(PEERS)})")
    parser.add_argument("--skip-hot-path", action="store_true", help="leave out the hot-path-only diagnostic")
    parser.add_argument(
        "--spans", type=int, default=200_000, help="spans for the store benchmark (default 200000; 0 skips it)"
    )
    parser.add_argument("--batch", type=int, default=4096, help="store batch size (default 4096, the pipeline's)")
    parser.add_argument("--store-rounds", type=int, default=5, help="store rounds; medians (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "store":
        print(json.dumps(run_store(args.spans, args.batch, args.store_rounds)))
        return
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.calls, args.rounds)))
        return
    modes = ["auriko-obs"] + ([] if args.skip_hot_path else ["auriko-obs-hot-path"])
    modes += [] if args.skip_peers else [p for p in args.peers.split(",") if p]
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
        print("measuring the store …", file=sys.stderr, flush=True)
        report["store"] = _subprocess(
            [
                "--mode",
                "store",
                "--spans",
                str(args.spans),
                "--batch",
                str(args.batch),
                "--store-rounds",
                str(args.store_rounds),
            ]
        )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
