"""`auriko-obs collect` times out stalled clients and caps its connections (one thread each)."""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest

pytest.importorskip("opentelemetry.proto", reason="needs the otlp extra")

from auriko_obs.otlp._receiver import Receiver, start_http

from ._collector import CollectProcess, post, request_bytes

TRACE_ID = bytes(range(1, 17))


@pytest.fixture
def receiver(tmp_path):
    receiver = Receiver(str(tmp_path / "connections.duckdb"))
    yield receiver
    receiver.close()


@pytest.fixture
def server(receiver):
    http = start_http(receiver, port=0, read_timeout_s=1.0, max_connections=10)
    yield http
    http.shutdown()
    http.server_close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def _request_head(length: int) -> bytes:
    return (
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: " + str(length).encode() + b"\r\n\r\n"
    )


def test_stalled_clients_are_dropped_after_the_read_timeout_and_connections_past_the_cap_get_503(receiver, server):
    port = server.server_address[1]
    threads_before = threading.active_count()
    stalled = [_connect(port) for _ in range(10)]
    time.sleep(0.3)  # the ten are taken (one thread each) before more arrive
    refused = [_connect(port) for _ in range(20)]
    started = time.monotonic()
    for sock in refused:
        answer = _read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
    assert time.monotonic() - started < 5  # refused at once, not after the stalled ones time out
    assert threading.active_count() <= threads_before + 10
    for sock in stalled:  # the server closes each once it has been silent for the read timeout
        assert _read_until_closed(sock) == b""
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads_before
    assert receiver.stats()["refused_connections"] == 20
    url = f"http://127.0.0.1:{port}/v1/traces"
    assert post(url, request_bytes(TRACE_ID, range(1, 4)))[0] == 200
    for sock in stalled + refused:
        sock.close()


def test_a_body_that_stops_arriving_gets_408_and_nothing_is_stored(receiver, server):
    body = request_bytes(TRACE_ID, range(1, 4))
    with _connect(server.server_address[1]) as sock:
        sock.sendall(_request_head(len(body)) + body[:10])
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert receiver.stats()["timed_out_requests"] == 1
    assert receiver.flush(30) and receiver.stats()["accepted_spans"] == 0


def test_a_body_trickling_in_must_still_arrive_whole_within_the_read_timeout(receiver, server):
    body = request_bytes(TRACE_ID, range(1, 4))  # about 300 bytes: a minute at a byte every 0.2 s
    with _connect(server.server_address[1]) as sock:
        sock.sendall(_request_head(len(body)))
        started = time.monotonic()
        for byte in body:  # each read gets a byte well within the 1 s timeout
            if select.select([sock], [], [], 0.2)[0]:
                break  # the server answered
            sock.sendall(bytes([byte]))
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 4


def test_collect_takes_the_read_timeout_and_the_connection_cap_from_its_options(tmp_path):
    collector = CollectProcess(tmp_path / "cli.duckdb", "--read-timeout", "1", "--max-connections", "2")
    try:
        held = [_connect(collector.port) for _ in range(2)]
        time.sleep(0.3)
        with _connect(collector.port) as third:
            assert _read_until_closed(third).startswith(b"HTTP/1.1 503")
        for sock in held:
            assert _read_until_closed(sock) == b""  # after the 1 s read timeout
            sock.close()
        assert post(collector.url, request_bytes(TRACE_ID, range(1, 4)))[0] == 200
    finally:
        assert collector.stop() == 0
    assert "refused_connections=1" in collector.output
