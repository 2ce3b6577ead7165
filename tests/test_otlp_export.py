"""`instrument(otlp=...)` and the OTEL_* variables: spans to a collector as well as DuckDB, metrics, and an
application's own TracerProvider joined rather than replaced."""

from __future__ import annotations

import json
import socket
import statistics
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="needs the otlp extra")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auriko_obs
from auriko_obs import Store
from auriko_obs.otlp._metrics import DURATION_BUCKETS, TOKEN_BUCKETS
from auriko_obs.otlp._receiver import Receiver, start_grpc, start_http

from .conftest import calls
from .receivers import serve_in_background

TOKEN = "export-token"
OTEL_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "AURIKO_OBS_PROMETHEUS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    yield
    auriko_obs.uninstrument()


@pytest.fixture
def collector(tmp_path):
    receiver = Receiver(str(tmp_path / "collector.duckdb"), flush_interval_s=0.05)
    http = start_http(receiver, port=0, token=TOKEN)
    grpc_server, grpc_port = start_grpc(receiver, port=0, token=TOKEN)
    receiver.http_base = f"http://127.0.0.1:{http.server_address[1]}"
    receiver.grpc_base = f"http://127.0.0.1:{grpc_port}"
    yield receiver
    http.shutdown()
    http.server_close()
    grpc_server.stop(None)
    receiver.close()


def collected(receiver: Receiver, n: int):
    deadline = time.monotonic() + 20
    while receiver.stats()["accepted_spans"] < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert receiver.flush(20)
    return Store(receiver.path).sql("SELECT * FROM spans ORDER BY start_time")


LONG_SYSTEM = "You answer questions about an online bookshop's orders. " * 120  # long enough to be cached


def _chat(client, content="hello", **kw):
    return client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": content}],
        **kw,
    )


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_standard_variables_send_spans_to_the_collector_and_duckdb_nested_in_the_user_trace(
    monkeypatch, collector, client, db_path, protocol
):
    base = collector.http_base if protocol == "http/protobuf" else collector.grpc_base
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer {TOKEN}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,team=search")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    auriko_obs.instrument(db=db_path)

    # the user's own span, from their own tracer (exported by them to the same collector)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    user_tp = TracerProvider()
    user_tp.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=collector.http_base + "/v1/traces", headers={"authorization": f"Bearer {TOKEN}"})
        )
    )
    with user_tp.get_tracer("app").start_as_current_span("handle request") as user_span:
        _chat(client)
        _chat(client, "stream please", stream=True).close()
    user_tp.shutdown()
    assert auriko_obs.flush(30)

    rows = collected(collector, 3)
    assert len(rows) == 3
    user_row = rows[rows["name"] == "handle request"].iloc[0]
    llm = rows[rows["name"] == "chat gpt-4o"]
    assert len(llm) == 2
    assert set(llm["trace_id"]) == {user_row["trace_id"]}
    assert set(llm["parent_span_id"]) == {format(user_span.get_span_context().span_id, "016x")}
    assert set(llm["service_name"]) == {"checkout"}
    resource = json.loads(llm.iloc[0]["resource"])
    assert resource["deployment.environment"] == "staging" and resource["team"] == "search"
    # the same spans, with the same ids, are in our own store
    local = calls(db_path)
    assert sorted(local["span_id"]) == sorted(llm["span_id"])
    assert list(Store(collector.path).calls().sort_values("span_id")["input_tokens"]) == list(
        local.sort_values("span_id")["input_tokens"]
    )
    assert auriko_obs.stats()["otlp"]["exported_spans"] == 2


def _rows_by_span(db: str, table: str) -> dict[str, dict]:
    """Returns the rows of a store's view by span id, JSON columns parsed and every missing value None."""
    import pandas as pd

    rows = Store(db).sql(f"SELECT * FROM {table}").to_dict("records")
    out = {}
    for row in rows:
        for name, value in row.items():
            if isinstance(value, str) and name in ("attributes", "extra_attributes", "events", "resource"):
                row[name] = json.loads(value)
            elif not hasattr(value, "__len__") and pd.isna(value):
                row[name] = None
            elif hasattr(value, "tolist"):
                row[name] = value.tolist()
        out[row["span_id"]] = row
    return out


def test_the_collector_stores_the_rows_the_local_store_does_for_the_same_calls(collector, client, db_path):
    """Our spans over OTLP into `collect` (typed by DuckDB from the attributes JSON) and the same spans into the
    instrumented process's own store (typed in Python): every column of `spans` and `llm_calls` is the same,
    but for `extra_attributes`, which holds every attribute in the collector's rows and only those without a
    column in the pipeline's: `attributes` merges both layouts into the same object."""
    auriko_obs.instrument(
        db=db_path,
        service_name="side-by-side",
        otlp={"endpoint": collector.http_base, "headers": {"authorization": f"Bearer {TOKEN}"}, "metrics": False},
    )
    _chat(client)
    _chat(client, "again", temperature=0.2, max_tokens=50, user="u-7")
    for _ in _chat(client, "stream please", stream=True):
        pass
    client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    client.responses.create(model="gpt-4o", input="Name a colour.")
    assert auriko_obs.flush(30)
    local_spans = _rows_by_span(db_path, "spans")
    assert len(collected(collector, len(local_spans))) == len(local_spans) == 5
    collected_spans = _rows_by_span(collector.path, "spans")
    for rows in (local_spans, collected_spans):
        for row in rows.values():
            del row["extra_attributes"]
    assert collected_spans == local_spans
    local_calls = _rows_by_span(db_path, "llm_calls")
    assert len(local_calls) == 5 and _rows_by_span(collector.path, "llm_calls") == local_calls


def test_otlp_argument_and_each_destination_can_be_turned_off(monkeypatch, collector, client, db_path, tmp_path):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.http_base)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer {TOKEN}")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    auriko_obs.instrument(db=db_path, otlp=False)  # env says export, the argument says no
    _chat(client)
    assert auriko_obs.flush(30) and "otlp" not in auriko_obs.stats()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")  # the standard switch
    auriko_obs.instrument(db=db_path, otlp=None)
    _chat(client)
    assert auriko_obs.flush(30) and "otlp" not in auriko_obs.stats()
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    # no DuckDB, only the collector (endpoint and headers as arguments)
    active = auriko_obs.instrument(
        db=False, otlp={"endpoint": collector.http_base, "headers": {"authorization": f"Bearer {TOKEN}"}}
    )
    assert active.db_path is None
    _chat(client)
    assert auriko_obs.flush(30)
    assert len(collected(collector, 1)) == 1
    assert len(calls(db_path)) == 2  # the first two calls only


def test_an_application_tracer_provider_is_joined_not_replaced(client, db_path):
    app_spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(app_spans))
    auriko_obs.instrument(db=db_path, tracer_provider=tp, service_name="shop")
    tracer = tp.get_tracer("app")
    with tracer.start_as_current_span("checkout") as user_span:
        _chat(client)
        # another instrumentation's GenAI span (OpenInference names) and an unrelated span, through the app's provider
        with tracer.start_as_current_span(
            "llm",
            attributes={
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.token_count.prompt": 11,
                "llm.token_count.completion": 3,
            },
        ):
            pass
        with tracer.start_as_current_span("GET /cart", attributes={"http.request.method": "GET"}):
            pass
    assert auriko_obs.flush(30)

    exported = {s.name: s for s in app_spans.get_finished_spans()}
    assert set(exported) == {"checkout", "chat gpt-4o", "llm", "GET /cart"}  # ours reached the app's exporter
    ours = exported["chat gpt-4o"]
    assert ours.parent.span_id == user_span.get_span_context().span_id
    assert ours.context.trace_id == user_span.get_span_context().trace_id
    assert ours.resource.attributes["service.name"] == "shop"
    rows = calls(db_path).set_index("request_model")
    assert set(rows.index) == {"gpt-4o", "gpt-4o-mini"}  # ours, and the foreign GenAI span
    assert (rows.loc["gpt-4o-mini", "input_tokens"], rows.loc["gpt-4o-mini", "output_tokens"]) == (11, 3)
    assert Store(db_path).sql("SELECT count(*) AS n FROM spans")["n"][0] == 2  # not the HTTP or the user span
    stats = auriko_obs.stats()
    assert stats["tracer_provider"]["forwarded_spans"] == 1 and "otlp" not in stats

    # instrumenting again does not stack a second processor; uninstrument detaches it
    auriko_obs.instrument(db=db_path, tracer_provider=tp, service_name="shop2")
    processors = tp._active_span_processor._span_processors
    assert sum(type(p).__name__ == "ForeignGenAIProcessor" for p in processors) == 1
    auriko_obs.uninstrument()
    with tracer.start_as_current_span(
        "late", attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "late-model"}
    ):
        pass
    time.sleep(0.3)
    assert "late-model" not in set(Store(db_path).calls()["request_model"])


def test_a_collector_that_is_down_costs_the_caller_nothing_and_drops_are_counted(monkeypatch, client, db_path):
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "10")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5")

    def timed(n):
        out = []
        for i in range(n):
            t0 = time.perf_counter()
            _chat(client, f"q{i % 3}")
            out.append(time.perf_counter() - t0)
        return statistics.median(out)

    auriko_obs.instrument(db=db_path, otlp=False)
    _chat(client)
    baseline = timed(40)
    auriko_obs.instrument(db=db_path, otlp={"endpoint": f"http://127.0.0.1:{dead}", "metrics": False, "timeout": 30})
    down = timed(40)
    t0 = time.perf_counter()
    assert not auriko_obs.flush(1)  # flush() waits on the collector only as long as it is told
    assert time.perf_counter() - t0 < 5
    stats = auriko_obs.stats()["otlp"]
    assert stats["dropped_spans"] > 0
    assert stats["exported_spans"] == 0
    assert stats["dropped_spans"] + stats["queued_spans"] + stats["failed_spans"] + 5 >= 40
    from auriko_obs.instrumentation import flush_store

    assert flush_store(30)
    assert len(Store(db_path).calls()) == 81  # DuckDB got every call regardless
    # the caller never waits on the collector: a blocked caller would wait out export timeouts (seconds);
    # the bound is generous because the export thread shares the CPU with the caller
    assert down < baseline * 2 + 0.005, (baseline, down)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def _samples(text: str, name: str) -> list[tuple[dict, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out.append((sample.labels, sample.value))
    return out


def test_metrics_on_a_prometheus_endpoint_match_the_store(sim, client, db_path):
    active = auriko_obs.instrument(db=db_path, prometheus=0, otlp=False)
    port = active.export.prometheus_port
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"]
    for i in range(9):
        client.chat.completions.create(
            model=models[i % 3],
            messages=[{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": f"m{i % 2}"}],
            extra_body={"gateway": {"routing": {"optimize": ["cost", "speed"][i % 2]}}},
        )
    assert auriko_obs.flush(30)
    rows = calls(db_path)
    text = _scrape(port)

    cost = _samples(text, "auriko_cost_usd_total")
    assert sum(v for _, v in cost) == pytest.approx(rows["cost_usd"].sum(), rel=1e-9)
    labels = {(s["gen_ai_request_model"], s["gen_ai_provider_name"], s["auriko_routing_strategy"]) for s, _ in cost}
    assert labels == set(zip(rows["request_model"], rows["provider"], rows["routing_strategy"], strict=True))
    savings = _samples(text, "auriko_cache_savings_usd_total")
    assert rows["cache_savings_usd"].sum() > 0
    assert sum(v for _, v in savings) == pytest.approx(rows["cache_savings_usd"].fillna(0).sum(), rel=1e-9)

    tokens = _samples(text, "gen_ai_client_token_usage_sum")
    by_type = {t: sum(v for s, v in tokens if s["gen_ai_token_type"] == t) for t in ("input", "output")}
    assert by_type == {"input": rows["input_tokens"].sum(), "output": rows["output_tokens"].sum()}
    buckets = sorted({float(s["le"]) for s, _ in _samples(text, "gen_ai_client_token_usage_bucket")})
    assert buckets[:-1] == TOKEN_BUCKETS and buckets[-1] == float("inf")
    duration_buckets = sorted(
        {float(s["le"]) for s, _ in _samples(text, "gen_ai_client_operation_duration_seconds_bucket")}
    )
    assert duration_buckets[:-1] == DURATION_BUCKETS
    count = sum(v for _, v in _samples(text, "gen_ai_client_operation_duration_seconds_count"))
    assert count == len(rows)
    total_s = sum(v for _, v in _samples(text, "gen_ai_client_operation_duration_seconds_sum"))
    assert total_s == pytest.approx(rows["duration_ms"].sum() / 1000, rel=1e-6)
    balance = _samples(text, "auriko_credits_balance_usd")
    assert balance and min(v for _, v in balance) == pytest.approx(
        rows.sort_values("end_time")["credits_balance_usd"].iloc[-1]
    )


class _MetricsSink(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_metrics_go_out_over_otlp_with_the_semconv_names_and_buckets(monkeypatch, client, db_path, collector):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    _MetricsSink.received = []
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _MetricsSink)
    stop = serve_in_background(sink)
    try:
        auriko_obs.instrument(db=db_path, otlp=f"http://127.0.0.1:{sink.server_address[1]}")
        for _ in range(3):
            _chat(client)
        auriko_obs.uninstrument()  # the final collection is exported at shutdown
    finally:
        stop()
    requests = [ExportMetricsServiceRequest.FromString(b) for p, b in _MetricsSink.received if p == "/v1/metrics"]
    assert requests
    metrics = {m.name: m for r in requests for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "auriko.cost.usd",
        "auriko.cache_savings.usd",
        "auriko.credits.balance.usd",
    } <= set(metrics)
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s" and list(duration.histogram.data_points[0].explicit_bounds) == DURATION_BUCKETS
    usage = metrics["gen_ai.client.token.usage"]
    assert usage.unit == "{token}" and list(usage.histogram.data_points[0].explicit_bounds) == TOKEN_BUCKETS
    token_types = {
        kv.value.string_value
        for dp in usage.histogram.data_points
        for kv in dp.attributes
        if kv.key == "gen_ai.token.type"
    }
    assert token_types == {"input", "output"}
    assert sum(dp.count for dp in duration.histogram.data_points) == 3
    assert sum(p == "/v1/traces" for p, _ in _MetricsSink.received) >= 1  # the spans went to the same endpoint


@pytest.fixture
def otlp_sink():
    """A local OTLP/HTTP server that records each request's path and body; yields its base URL."""
    _MetricsSink.received = []
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _MetricsSink)
    stop = serve_in_background(sink)
    yield f"http://127.0.0.1:{sink.server_address[1]}"
    auriko_obs.uninstrument()  # while the sink still listens: shutting down flushes to it
    stop()


@pytest.mark.parametrize(
    "otlp, env, traces_path, metrics_path",
    [
        ("{base}", {}, "/v1/traces", "/v1/metrics"),
        ("{base}/v1/traces", {}, "/v1/traces", "/v1/metrics"),  # the traces URL as it is, metrics beside it
        ("{base}/otlp", {}, "/otlp/v1/traces", "/otlp/v1/metrics"),  # a base URL with a path gets the signal paths
        (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "{base}/otlp/"}, "/otlp/v1/traces", "/otlp/v1/metrics"),
        (
            None,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "{base}/otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{base}/my/traces"},
            "/my/traces",
            "/otlp/v1/metrics",
        ),  # the per-signal variable is used as it is
    ],
)
def test_traces_and_metrics_go_to_the_paths_the_spec_gives(
    monkeypatch, client, db_path, otlp_sink, otlp, env, traces_path, metrics_path
):
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(base=otlp_sink))
    auriko_obs.instrument(db=db_path, otlp=otlp.format(base=otlp_sink) if otlp else None)
    _chat(client)
    auriko_obs.uninstrument()
    assert {path for path, _ in _MetricsSink.received} == {traces_path, metrics_path}


def test_flush_returns_once_spans_and_metrics_have_reached_the_collector(monkeypatch, client, db_path, otlp_sink):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # left alone, spans would wait ten minutes …
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")  # … and metrics too
    auriko_obs.instrument(db=db_path, otlp=otlp_sink)
    _chat(client)
    assert auriko_obs.flush(30)
    received = list(_MetricsSink.received)
    spans = [
        span.name
        for path, body in received
        if path == "/v1/traces"
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert spans == ["chat gpt-4o"]
    metrics = {
        m.name
        for path, body in received
        if path == "/v1/metrics"
        for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert "gen_ai.client.operation.duration" in metrics


def test_bad_otel_bsp_settings_are_reported_and_the_export_queue_keeps_its_defaults(monkeypatch):
    """Before: a negative OTEL_BSP_MAX_QUEUE_SIZE dropped every span, a negative OTEL_BSP_SCHEDULE_DELAY made the
    queue's thread spin (it exported at once instead of every second), and neither was reported."""
    from auriko_obs._internal_errors import INTERNAL_ERRORS
    from auriko_obs.otlp._export import QueuedExporter

    bad = {"OTEL_BSP_MAX_QUEUE_SIZE": "-1", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2.5", "OTEL_BSP_SCHEDULE_DELAY": "-1000"}
    for name, value in bad.items():
        monkeypatch.setenv(name, value)
    before = {name: INTERNAL_ERRORS.counts.get(f"otlp.{name}", 0) for name in bad}
    made = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(made))
    for i in range(3):
        provider.get_tracer("tests").start_span(f"call {i}").end()
    received = InMemorySpanExporter()
    queue = QueuedExporter(received)
    try:
        queue.export(made.get_finished_spans())
        time.sleep(0.3)  # the default schedule (1 s) keeps fewer spans than a batch (512) waiting
        assert received.get_finished_spans() == ()
        assert queue.force_flush(10_000)
        assert [s.name for s in received.get_finished_spans()] == ["call 0", "call 1", "call 2"]
        assert queue.stats()["dropped_spans"] == 0
    finally:
        queue.shutdown()
    assert {name: INTERNAL_ERRORS.counts.get(f"otlp.{name}", 0) - before[name] for name in bad} == dict.fromkeys(bad, 1)
