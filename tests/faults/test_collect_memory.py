"""`auriko-obs collect`'s memory is bounded whatever arrives: limits checked before decoding, and a
fixed number of requests decoded at once."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

pytest.importorskip("opentelemetry.proto", reason="needs the otlp extra")

from auriko_obs.otlp._receiver import Receiver, start_grpc, start_http

from ._collector import CollectProcess, post, request_bytes, tiny_spans_gzip

TRACE_ID = bytes(range(1, 17))


def test_ten_requests_of_1_38_million_tiny_spans_at_once_keep_collect_under_1_gib(tmp_path):
    """Each is 3 MiB gzipped and 63 MiB decoded; decoded, one took a collector to 1.39 GiB."""
    body, decoded_size = tiny_spans_gzip(1_380_000)
    assert decoded_size > 60 << 20
    collector = CollectProcess(tmp_path / "memory.duckdb")
    try:
        answers: list[int | str] = []

        def send() -> None:
            try:
                answers.append(post(collector.url, body, timeout=300, **{"Content-Encoding": "gzip"})[0])
            except OSError as exc:
                answers.append(f"no answer: {exc}")

        senders = [threading.Thread(target=send) for _ in range(10)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(300)
        peak = collector.peak_rss_bytes()
        assert len(answers) == 10 and set(answers) <= {200, 413, 503}, answers
        assert peak < 1 << 30, f"peak RSS {peak / 2**20:.0f} MiB"
        assert post(collector.url, request_bytes(TRACE_ID, range(1, 4)))[0] == 200  # and it goes on
    finally:
        assert collector.stop() == 0


@pytest.fixture
def small_limits(tmp_path):
    receiver = Receiver(str(tmp_path / "limits.duckdb"), max_spans_per_request=10)
    http = start_http(receiver, port=0)
    grpc_server, grpc_port = start_grpc(receiver, port=0)
    yield receiver, f"http://127.0.0.1:{http.server_address[1]}/v1/traces", grpc_port
    http.shutdown()
    http.server_close()
    grpc_server.stop(None)
    receiver.close()


def _json_body(count: int) -> bytes:
    spans = [
        {
            "traceId": TRACE_ID.hex(),
            "spanId": f"{i:016x}",
            "name": "s",
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000001000000",
        }
        for i in range(1, count + 1)
    ]
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


def test_a_request_over_the_span_limit_gets_413_over_http_and_invalid_argument_over_grpc(small_limits):
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    receiver, url, grpc_port = small_limits
    assert post(url, request_bytes(TRACE_ID, range(1, 12)))[0] == 413
    assert post(url, _json_body(11), **{"Content-Type": "application/json"})[0] == 413
    assert post(url, request_bytes(TRACE_ID, range(1, 11)))[0] == 200
    assert post(url, _json_body(10), **{"Content-Type": "application/json"})[0] == 200
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(request_bytes(TRACE_ID, range(20, 31)))
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "more than 10 spans" in err.value.details()
    stats = receiver.stats()
    assert (stats["too_large_requests"], stats["accepted_spans"]) == (3, 20)


def test_bodies_being_read_are_bounded_in_bytes_and_a_request_past_the_budget_gets_503(tmp_path):
    receiver = Receiver(str(tmp_path / "budget.duckdb"))
    first = request_bytes(TRACE_ID, range(1, 4))
    http = start_http(receiver, port=0, body_budget=len(first) + 10)
    port = http.server_address[1]
    url = f"http://127.0.0.1:{port}/v1/traces"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            # A body still arriving holds its bytes of the budget…
            slow.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                b"Content-Length: " + str(len(first)).encode() + b"\r\n\r\n" + first[:5]
            )
            time.sleep(0.3)
            # … so the next request waits a second for room, then is told to come back.
            status, headers = post(url, request_bytes(TRACE_ID, range(4, 7)))
            assert (status, headers["Retry-After"]) == (503, "1")
            slow.sendall(first[5:])
            assert slow.recv(100).startswith(b"HTTP/1.1 200")
        assert post(url, request_bytes(TRACE_ID, range(4, 7)))[0] == 200  # the retry is taken
        assert receiver.flush(30)
        stats = receiver.stats()
        assert (stats["throttled_requests"], stats["written_spans"]) == (1, 6)
    finally:
        http.shutdown()
        http.server_close()
        receiver.close()


def test_a_request_past_the_decoding_slots_gets_503_with_retry_after_and_both_are_stored(tmp_path):
    receiver = Receiver(str(tmp_path / "slots.duckdb"), max_parsing=1, slot_wait_s=0.05)
    http = start_http(receiver, port=0)
    url = f"http://127.0.0.1:{http.server_address[1]}/v1/traces"
    big, _ = tiny_spans_gzip(99_000)  # decoding it takes a good part of a second, at least
    answers: list[int] = []
    try:
        sender = threading.Thread(target=lambda: answers.append(post(url, big, **{"Content-Encoding": "gzip"})[0]))
        sender.start()
        deadline = time.monotonic() + 30
        while receiver.stats()["parsing_requests"] < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        status, headers = post(url, request_bytes(TRACE_ID, range(200_001, 200_004)))
        assert (status, headers["Retry-After"]) == (503, "1")
        sender.join(120)
        assert answers == [200]
        assert post(url, request_bytes(TRACE_ID, range(200_001, 200_004)))[0] == 200  # the retry is taken
        assert receiver.flush(60)
        stats = receiver.stats()
        assert (stats["throttled_requests"], stats["written_spans"]) == (1, 99_003)
    finally:
        http.shutdown()
        http.server_close()
        receiver.close()
