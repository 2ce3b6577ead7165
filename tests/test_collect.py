"""`auriko-obs collect`: the OTLP receiver, fed by the official OpenTelemetry exporters and by OpenLLMetry."""

from __future__ import annotations

import gzip
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pandas as pd
import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="needs the otlp extra")

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from auriko_obs import Store
from auriko_obs.otlp._receiver import Receiver, start_grpc, start_http

from .conftest import API_KEY

TOKEN = "s3cret-t0ken"

# every attribute type OTLP carries
ATTRIBUTES = {
    "s": "text",
    "i": 42,
    "big": 2**53 + 1,
    "f": 1.25,
    "b": True,
    "ls": ["a", "b"],
    "li": [1, 2, 3],
    "lf": [0.5, 1.5],
    "lb": [True, False],
    "neg": -7,
    "unicode": "é✓",
}


class Collector:
    def __init__(self, db: str, token: str | None = None, **kw) -> None:
        self.db = db
        self.receiver = Receiver(db, **{"max_decoded": 4 << 20, **kw})
        self.http = start_http(self.receiver, port=0, token=token, max_body=1 << 20)
        self.grpc, self.grpc_port = start_grpc(self.receiver, port=0, token=token)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1/traces"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.grpc.stop(None)
        self.receiver.close()

    def rows(self, sql: str = "SELECT * FROM spans ORDER BY start_time"):
        assert self.receiver.flush(30)
        return Store(self.db).sql(sql)


@pytest.fixture
def collector(tmp_path):
    c = Collector(str(tmp_path / "collected.duckdb"), token=TOKEN)
    yield c
    c.close()


def _provider(exporter, service="interop") -> TracerProvider:
    tp = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def _official_exporter(kind: str, collector: Collector, token: str | None = TOKEN):
    headers = {"authorization": f"Bearer {token}"} if token else None
    if kind == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter(endpoint=collector.url, headers=headers, timeout=10)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter(
        endpoint=f"127.0.0.1:{collector.grpc_port}",
        insecure=True,
        headers=tuple(headers.items()) if headers else None,
        timeout=10,
    )


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_official_exporters_deliver_every_span_with_attributes_intact(collector, kind):
    tp = _provider(_official_exporter(kind, collector))
    tracer = tp.get_tracer("interop.test", "1.2.3")
    with tracer.start_as_current_span("outer", kind=SpanKind.SERVER) as outer:
        for i in range(5):
            with tracer.start_as_current_span(f"child {i}", attributes={**ATTRIBUTES, "n": i}) as child:
                child.add_event("something", {"k": "v", "n": i})
        with tracer.start_as_current_span("failing") as failing:
            failing.set_status(Status(StatusCode.ERROR, "it broke"))
    tp.shutdown()

    rows = collector.rows()
    assert len(rows) == 7
    assert set(rows["trace_id"]) == {format(outer.get_span_context().trace_id, "032x")}
    children = rows[rows["name"].str.startswith("child")].sort_values("name")
    for i, (_, row) in enumerate(children.iterrows()):
        assert json.loads(row["attributes"]) == {**ATTRIBUTES, "n": i}
        assert json.loads(row["events"])[0]["attributes"] == {"k": "v", "n": i}
        assert row["parent_span_id"] == format(outer.get_span_context().span_id, "016x")
        assert row["scope_name"] == "interop.test" and row["service_name"] == "interop"
        assert json.loads(row["resource"])["deployment.environment"] == "test"
    outer_row = rows[rows["name"] == "outer"].iloc[0]
    assert outer_row["kind"] == "SERVER" and pd.isna(outer_row["parent_span_id"])
    failing_row = rows[rows["name"] == "failing"].iloc[0]
    assert (failing_row["status"], failing_row["status_message"]) == ("error", "it broke")
    assert collector.receiver.stats()["accepted_spans"] == 7


def _proto_request(n: int = 3, attributes: dict | None = None, trace_byte: int = 1) -> bytes:
    """A real ExportTraceServiceRequest, encoded by the exporter package's own encoder."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, TraceFlags

    spans = []
    for i in range(n):
        ctx = SpanContext(int.from_bytes(bytes([trace_byte]) * 16, "big"), i + 1, False, TraceFlags(1))
        spans.append(
            ReadableSpan(
                name=f"s{i}",
                context=ctx,
                attributes=attributes or {"i": i},
                resource=Resource.create({"service.name": "raw"}),
                start_time=1_000 + i,
                end_time=2_000_000 + i,
            )
        )
    return encode_spans(spans).SerializeToString()


def _post(
    url: str, body: bytes, content_type: str = "application/x-protobuf", token: str | None = TOKEN, **headers: str
) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type, **headers})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_json_and_gzip_requests(collector):
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    payload = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "json.scope"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "chat gpt-4o",
                                "kind": 3,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                                    {"key": "ratio", "value": {"doubleValue": 0.5}},
                                    {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "x"}]}}},
                                ],
                                "status": {"code": 2, "message": "bad"},
                                "someFutureField": 1,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    status, headers, body = _post(collector.url, json.dumps(payload).encode(), "application/json")
    assert status == 200 and headers["Content-Type"] == "application/json" and json.loads(body) == {}
    status, _, _ = _post(collector.url, gzip.compress(_proto_request(4, trace_byte=9)), **{"Content-Encoding": "gzip"})
    assert status == 200
    status, _, _ = _post(
        collector.url,
        gzip.compress(json.dumps(payload).encode().replace(b"eee19b7ec3c1b174", b"eee19b7ec3c1b175")),
        "application/json",
        **{"Content-Encoding": "gzip"},
    )
    assert status == 200

    rows = collector.rows()
    assert len(rows) == 6
    json_row = rows[rows["span_id"] == span_id].iloc[0]
    assert (json_row["trace_id"], json_row["kind"], json_row["status"], json_row["service_name"]) == (
        trace_id,
        "CLIENT",
        "error",
        "json-svc",
    )
    assert json.loads(json_row["attributes"]) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 12,
        "ratio": 0.5,
        "tags": ["x"],
    }
    calls = Store(collector.db).calls()
    assert list(calls["input_tokens"]) == [12, 12]


def test_bad_requests_get_the_spec_status_and_the_receiver_keeps_running(collector):
    url = collector.url
    assert _post(url, b"\xff\xff\xff garbage")[0] == 400
    assert _post(url, b"{not json", "application/json")[0] == 400
    assert (
        _post(url, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json")[0]
        == 400
    )
    assert _post(url, b"\x1f\x8b not gzip", **{"Content-Encoding": "gzip"})[0] == 400
    assert _post(url, b"x" * ((1 << 20) + 1))[0] == 413  # over --max-request-mb
    bomb = gzip.compress(b"\0" * (8 << 20))  # 8 MiB inflated, 8 KiB sent
    assert _post(url, bomb, **{"Content-Encoding": "gzip"})[0] == 413
    assert _post(url, _proto_request(), "text/plain")[0] == 415
    assert _post(url.replace("/v1/traces", "/v1/nothing"), _proto_request())[0] == 404
    status, headers, _ = _post(url, _proto_request(), token=None)
    assert status == 401 and "Bearer" in headers["WWW-Authenticate"]
    assert _post(url, _proto_request(), token="wrong")[0] == 401
    # spans with an all-zero trace id are rejected one by one: partial success, not an error
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    status, _, body = _post(url, _proto_request(2, trace_byte=0))
    assert status == 200 and ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans == 2
    assert _post(url, _proto_request(3))[0] == 200
    assert len(collector.rows()) == 3
    stats = collector.receiver.stats()
    assert (stats["malformed_requests"], stats["too_large_requests"]) == (4, 2)


def test_grpc_rejects_a_wrong_token(collector):
    exporter = _official_exporter("grpc", collector, token="wrong")
    tp = _provider(exporter)
    with tp.get_tracer("t").start_as_current_span("x"):
        pass
    tp.shutdown()
    assert collector.receiver.stats()["accepted_spans"] == 0


def test_a_full_queue_answers_503_with_retry_after_and_loses_nothing(tmp_path):
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    c = Collector(str(tmp_path / "full.duckdb"), max_queue_spans=5, flush_interval_s=3600)
    try:
        assert _post(c.url, _proto_request(4, trace_byte=1), token=None)[0] == 200
        status, headers, _ = _post(c.url, _proto_request(4, trace_byte=2), token=None)
        assert status == 503 and headers["Retry-After"] == "1"
        with grpc.insecure_channel(f"127.0.0.1:{c.grpc_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(_proto_request(4, trace_byte=3))
            with pytest.raises(grpc.RpcError) as err:
                stub.Export(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert c.receiver.stats()["throttled_requests"] == 2
        assert c.receiver.flush(30)  # the writer drains the queue …
        assert _post(c.url, _proto_request(4, trace_byte=2), token=None)[0] == 200  # … and the retry is taken
        assert len(c.rows()) == 8
    finally:
        c.close()


def test_sigterm_writes_every_accepted_span(tmp_path):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    db = str(tmp_path / "sigterm.duckdb")
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
            "--flush-interval",
            "3600",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)/v1/traces", line).group(1))
        tp = _provider(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=10))
        tracer = tp.get_tracer("t")
        for i in range(300):
            with tracer.start_as_current_span(f"s{i}"):
                pass
        tp.shutdown()  # every span acknowledged with 200; the writer waits an hour to write them
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        summary = proc.stderr.read()
        assert "accepted_spans=300" in summary and "written_spans=300" in summary
    finally:
        if proc.poll() is None:
            proc.kill()
    assert Store(db).sql("SELECT count(*) AS n FROM spans")["n"][0] == 300


def test_other_conventions_map_onto_llm_calls_columns(collector):
    tp = _provider(_official_exporter("http", collector))
    tracer = tp.get_tracer("foreign")
    openinference = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.provider": "azure",
        "llm.system": "openai",
        "llm.token_count.prompt": 100,
        "llm.token_count.completion": 20,
        "llm.token_count.total": 120,
        "llm.token_count.prompt_details.cache_read": 64,
        "llm.token_count.prompt_details.cache_write": 8,
        "llm.token_count.completion_details.reasoning": 5,
        "llm.cost.total": 0.0042,
    }
    openllmetry_old = {
        "llm.request.type": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.prompt_tokens": 30,
        "gen_ai.usage.completion_tokens": 7,
        "llm.usage.total_tokens": 37,
        "gen_ai.usage.cache_read_input_tokens": 16,
        "gen_ai.usage.reasoning_tokens": 2,
        "gen_ai.is_streaming": True,
    }
    logfire = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4.1",
        "gen_ai.usage.input_tokens": 9,
        "gen_ai.usage.output_tokens": 3,
        "operation.cost": 0.001,
    }
    openlit_embedding = {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.request.model": "text-embedding-3-small",
        "gen_ai.usage.input_tokens": 4,
        "gen_ai.usage.cost": 0.00002,
    }
    official_responses = {  # opentelemetry-instrumentation-genai-openai 1.3b0, a Responses API call
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "o4-mini",
        "openai.api.type": "responses",
        "openai.response.service_tier": "flex",
        "gen_ai.usage.input_tokens": 50,
        "gen_ai.usage.cache_write.input_tokens": 8,
    }
    for name, attrs in [
        ("openinference", openinference),
        ("openllmetry", openllmetry_old),
        ("logfire", logfire),
        ("openlit", openlit_embedding),
        ("official", official_responses),
        ("not genai", {"http.method": "GET"}),
    ]:
        with tracer.start_as_current_span(name, attributes=attrs):
            pass
    tp.shutdown()
    collector.receiver.flush(30)
    calls = Store(collector.db).calls().set_index("service_name", drop=False)
    rows = {
        json.loads(r["attributes"]).get("openinference.span.kind", r["request_model"]): r for _, r in calls.iterrows()
    }
    assert len(calls) == 5  # the HTTP span is stored in `spans` only
    oi = rows["LLM"]
    assert (
        oi["operation"],
        oi["request_model"],
        oi["provider"],
        oi["input_tokens"],
        oi["output_tokens"],
        oi["total_tokens"],
        oi["cached_tokens"],
        oi["cache_write_tokens"],
        oi["reasoning_tokens"],
        oi["cost_usd"],
        oi["cost_source"],
    ) == ("chat", "gpt-4o-mini", "azure", 100, 20, 120, 64, 8, 5, 0.0042, "reported")
    ol = rows["gpt-4o"]
    assert (
        ol["operation"],
        ol["response_model"],
        ol["input_tokens"],
        ol["output_tokens"],
        ol["total_tokens"],
        ol["cached_tokens"],
        ol["reasoning_tokens"],
        ol["streaming"],
    ) == ("chat", "gpt-4o-2024-08-06", 30, 7, 37, 16, 2, True)
    lf = rows["gpt-4.1"]
    assert (lf["input_tokens"], lf["output_tokens"], lf["cost_usd"]) == (9, 3, 0.001)
    assert rows["text-embedding-3-small"]["operation"] == "embeddings"
    assert rows["text-embedding-3-small"]["cost_usd"] == pytest.approx(0.00002)
    official = rows["o4-mini"]
    assert (official["api"], official["service_tier"], official["cache_write_tokens"]) == ("responses", "flex", 8)
    assert rows["text-embedding-3-small"]["api"] == "embeddings" and pd.isna(rows["gpt-4.1"]["api"])  # unknown
    assert not official["streaming"]  # unset gen_ai.request.stream means not streamed


OPENLLMETRY_SCRIPT = """
import sys, openai
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

base_url, endpoint, token, key = sys.argv[1:5]
tp = TracerProvider(resource=Resource.create({"service.name": "openllmetry-app"}))
tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint,
                                                           headers={"authorization": "Bearer " + token})))
OpenAIInstrumentor().instrument(tracer_provider=tp)
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
for model in ("gpt-4o", "claude-sonnet-4", "gpt-4o-mini"):
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello " + model}])
stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "stream"}],
                                        stream=True, stream_options={"include_usage": True})
for _ in stream:
    pass
tp.shutdown()
"""


def test_openllmetry_spans_from_the_simulator_land_in_llm_calls(collector, sim):
    """The real OpenLLMetry instrumentation, the real OTLP exporter, our receiver.

    In a child process: OpenLLMetry patches the openai SDK, and its uninstrument() does not restore
    everything our own instrumentation relies on in this test process.
    """
    done = subprocess.run(
        [sys.executable, "-c", OPENLLMETRY_SCRIPT, sim.base_url, collector.url, TOKEN, API_KEY],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    collector.receiver.flush(30)
    calls = Store(collector.db).calls().sort_values("start_time")
    ledger = sim.ledger()
    assert len(calls) == 4
    assert set(calls["operation"]) == {"chat"} and set(calls["service_name"]) == {"openllmetry-app"}
    assert list(calls["request_model"]) == ["gpt-4o", "claude-sonnet-4", "gpt-4o-mini", "gpt-4o"]
    assert calls["input_tokens"].notna().all() and calls["output_tokens"].notna().all()
    assert list(calls["input_tokens"]) == [e["input_tokens"] for e in ledger]
    assert list(calls["output_tokens"]) == [e["output_tokens"] for e in ledger]


def _json_request(*spans: dict) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                    "scopeSpans": [{"spans": list(spans)}],
                }
            ]
        }
    ).encode()


def _json_span(span_id: str, start: str = "1544712660000000000", end: str = "1544712661000000000") -> dict:
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "name": "chat gpt-4o",
        "startTimeUnixNano": start,
        "endTimeUnixNano": end,
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
        ],
    }


def test_a_span_time_past_what_the_store_holds_is_rejected_and_the_rest_stored(collector):
    """uint64 nanoseconds reach 2554; the store's int64 ones end in 2262."""
    last_uint64 = str(2**64 - 1)
    body = _json_request(
        _json_span("eee19b7ec3c1b174"),
        _json_span("eee19b7ec3c1b175", start=last_uint64),
        _json_span("eee19b7ec3c1b176", end=last_uint64),
    )
    status, _, answer = _post(collector.url, body, "application/json")
    assert status == 200
    assert json.loads(answer)["partialSuccess"]["rejectedSpans"] == "2"
    assert _post(collector.url, _proto_request(2))[0] == 200  # the connection, the receiver live on
    rows = collector.rows()
    assert sorted(rows["span_id"]) == ["0000000000000001", "0000000000000002", "eee19b7ec3c1b174"]
    assert collector.receiver.stats()["rejected_spans"] == 2


def test_a_negative_token_count_from_another_instrumentation_is_null_and_kept_in_attributes(collector):
    span = _json_span("eee19b7ec3c1b174")
    span["attributes"] = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "-5"}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "7"}},
        {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": "-1"}},
    ]
    assert _post(collector.url, _json_request(span), "application/json")[0] == 200
    [row] = collector.rows(
        "SELECT input_tokens, output_tokens, cached_tokens, "
        "attributes ->> '$.\"gen_ai.usage.input_tokens\"' AS raw_input FROM spans"
    ).itertuples()
    assert pd.isna(row.input_tokens) and pd.isna(row.cached_tokens)  # before, -5 and -1 were summed into spend
    assert row.output_tokens == 7 and row.raw_input == "-5"


def test_spans_that_cannot_be_converted_get_400_and_the_receiver_keeps_running(collector, monkeypatch):
    """No payload that decodes is known to fail conversion any more; a failing converter stands in for
    whatever may."""
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    from auriko_obs.otlp import _receiver

    def broken(request):
        raise OverflowError("Python int too large to convert to C long")

    monkeypatch.setattr(_receiver, "request_to_table", broken)
    status, _, body = _post(collector.url, _proto_request(2))
    assert status == 400
    from google.rpc.status_pb2 import Status

    assert "OverflowError" in Status.FromString(body).message
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(_proto_request(2))
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(request, timeout=10, metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    monkeypatch.undo()
    assert _post(collector.url, _proto_request(2))[0] == 200
    assert len(collector.rows()) == 2
    stats = collector.receiver.stats()
    assert stats["malformed_requests"] == 2 and stats["queued_spans"] == 0


def test_the_same_request_delivered_twice_is_one_llm_calls_row(collector):
    body = _json_request(_json_span("eee19b7ec3c1b174"))
    for _ in range(2):  # an exporter retrying after a timeout sends the same spans again
        assert _post(collector.url, body, "application/json")[0] == 200
        assert collector.receiver.flush(30)
    assert len(Store(collector.db).calls()) == 1
    assert collector.receiver.stats()["written_spans"] == 2


def test_a_retried_request_in_the_same_batch_as_the_next_one_loses_nothing(tmp_path):
    # An exporter that times out resends R1, then sends R2; all three arrive before one write.
    c = Collector(str(tmp_path / "retry.duckdb"), flush_interval_s=3600)
    try:
        r1 = _json_request(_json_span("00000000000000a1"), _json_span("00000000000000a2"))
        r2 = _json_request(_json_span("00000000000000b1"), _json_span("00000000000000b2"))
        for body in (r1, r1, r2):
            assert _post(c.url, body, "application/json", token=None)[0] == 200
        assert c.receiver.flush(30)
        ids = sorted(Store(c.db).sql("SELECT span_id FROM spans")["span_id"])
    finally:
        c.close()
    assert ids == ["00000000000000a1", "00000000000000a2", "00000000000000b1", "00000000000000b2"]


def test_a_request_larger_than_the_whole_queue_is_taken_when_the_queue_is_empty(tmp_path):
    c = Collector(str(tmp_path / "small.duckdb"), max_queue_spans=10, flush_interval_s=3600)
    try:
        assert _post(c.url, _proto_request(20, trace_byte=1), token=None)[0] == 200
        status, headers, _ = _post(c.url, _proto_request(20, trace_byte=2), token=None)
        assert status == 503 and headers["Retry-After"] == "1"  # 20 spans wait: the queue is full
        assert c.receiver.flush(30)
        assert _post(c.url, _proto_request(20, trace_byte=2), token=None)[0] == 200
        assert len(c.rows()) == 40
    finally:
        c.close()


def test_requests_arriving_together_cannot_overfill_the_queue(tmp_path, monkeypatch):
    """Each request's room in the queue is taken under the lock, before its spans are converted."""
    import threading

    from auriko_obs.otlp import _convert, _receiver

    def slow_conversion(request):
        time.sleep(0.2)  # every request is between its size check and its append at once
        return _convert.request_to_table(request)

    monkeypatch.setattr(_receiver, "request_to_table", slow_conversion)
    receiver = Receiver(str(tmp_path / "race.duckdb"), max_queue_spans=10, flush_interval_s=3600, max_parsing=6)
    try:
        requests = [_proto_request(4, trace_byte=i + 1) for i in range(6)]
        outcomes = []

        def offer(request):
            try:
                receiver.accept(request)
                outcomes.append("accepted")
            except _receiver.QueueFull:
                outcomes.append("busy")

        threads = [threading.Thread(target=offer, args=(r,)) for r in requests]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert outcomes.count("accepted") == 2 and outcomes.count("busy") == 4  # 8 of 10 places, then full
        assert receiver.stats()["queued_spans"] == 8
    finally:
        receiver.close()


def test_the_bearer_scheme_is_case_insensitive(collector):
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    for i, scheme in enumerate(("bearer", "BEARER", "Bearer")):
        status, _, _ = _post(
            collector.url, _proto_request(1, trace_byte=i + 1), token=None, Authorization=f"{scheme} {TOKEN}"
        )
        assert status == 200, scheme
    assert _post(collector.url, _proto_request(1), token=None, Authorization=f"Basic {TOKEN}")[0] == 401
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(_proto_request(1, trace_byte=9))
        stub.Export(request, timeout=10, metadata=(("authorization", f"bearer {TOKEN}"),))
    assert len(collector.rows()) == 4


def _chunked_post(connection, body_parts, **headers) -> tuple[int, bytes]:
    connection.request(
        "POST",
        "/v1/traces",
        body=iter(body_parts),
        encode_chunked=True,
        headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}", **headers},
    )
    response = connection.getresponse()
    return response.status, response.read()


def test_chunked_request_bodies_are_accepted_up_to_the_size_limit(collector):
    import http.client

    port = collector.http.server_address[1]
    body = _proto_request(3, trace_byte=1)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        assert _chunked_post(connection, [body[:10], body[10:50], body[50:]])[0] == 200
        gzipped = gzip.compress(_proto_request(2, trace_byte=2))  # the same connection carries the next one
        assert _chunked_post(connection, [gzipped[:7], gzipped[7:]], **{"Content-Encoding": "gzip"})[0] == 200
        assert _chunked_post(connection, [b"x" * (512 << 10)] * 3)[0] == 413  # over 1 MiB
    finally:
        connection.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # broken framing
        raw.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    assert len(collector.rows()) == 5


def _collect_stderr(*args: str, code: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code + "from auriko_obs.cli import main; raise SystemExit(main())", "collect", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("missing", ["google.protobuf", "opentelemetry.proto"])
def test_collect_without_the_otlp_extra_says_so_in_one_line(tmp_path, missing):
    done = _collect_stderr(
        "--db", str(tmp_path / "x.duckdb"), "--port", "0", code=f"import sys; sys.modules[{missing!r}] = None\n"
    )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("auriko-obs: collect needs the otlp extra: pip install 'auriko-obs[otlp]' (" + missing)


def test_collect_on_a_busy_grpc_port_says_so_in_one_line(tmp_path, collector):
    done = _collect_stderr("--db", str(tmp_path / "x.duckdb"), "--port", "0", "--grpc-port", str(collector.grpc_port))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"auriko-obs: cannot listen for gRPC: 127.0.0.1:{collector.grpc_port} is in "
        "use or not an address of this machine"
    ]
