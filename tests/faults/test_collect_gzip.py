"""`auriko-obs collect` decodes every member of a gzip body (RFC 1952 lets a body hold several)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto", reason="needs the otlp extra")

from auriko_obs import Store
from auriko_obs.otlp._receiver import Receiver, start_http

from ._collector import post, request_bytes


@contextmanager
def _collector(db: str, **options: Any) -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver(db, **options)
    http = start_http(receiver, port=0)
    try:
        yield receiver, f"http://127.0.0.1:{http.server_address[1]}/v1/traces"
    finally:
        http.shutdown()
        http.server_close()
        receiver.close()


@pytest.fixture
def collector(tmp_path):
    with _collector(str(tmp_path / "gzip.duckdb")) as running:
        yield running


def _stored_span_ids(receiver: Receiver) -> list[int]:
    assert receiver.flush(30)
    frame = Store(receiver.path).sql("SELECT span_id FROM spans ORDER BY span_id")
    return [int(span_id, 16) for span_id in frame["span_id"]]


def test_every_member_of_a_multi_member_gzip_body_is_stored(collector):
    receiver, url = collector
    trace_id = bytes(range(1, 17))
    # Two encoded requests one after the other are one request holding both (protobuf merges them).
    body = gzip.compress(request_bytes(trace_id, range(1, 4))) + gzip.compress(request_bytes(trace_id, range(4, 9)))
    assert post(url, body, **{"Content-Encoding": "gzip"})[0] == 200
    assert _stored_span_ids(receiver) == list(range(1, 9))


def test_bytes_after_the_last_gzip_member_that_are_not_gzip_get_400_and_nothing_is_stored(collector):
    receiver, url = collector
    body = gzip.compress(request_bytes(bytes(range(1, 17)), range(1, 4))) + b"trailing junk"
    assert post(url, body, **{"Content-Encoding": "gzip"})[0] == 400
    assert receiver.flush(30)
    stats = receiver.stats()
    assert (stats["malformed_requests"], stats["accepted_spans"], stats["written_spans"]) == (1, 0, 0)


def test_zero_padding_after_the_last_member_is_ignored(collector):
    receiver, url = collector
    body = gzip.compress(request_bytes(bytes(range(1, 17)), range(1, 4))) + b"\0" * 64
    assert post(url, body, **{"Content-Encoding": "gzip"})[0] == 200
    assert _stored_span_ids(receiver) == [1, 2, 3]


def test_the_decoded_size_limit_counts_every_member_together(tmp_path):
    member = gzip.compress(b"\0" * (600 << 10))  # 600 KiB each, 1.2 MiB in all: over the 1 MiB limit
    with _collector(str(tmp_path / "limit.duckdb"), max_decoded=1 << 20) as (receiver, url):
        assert post(url, member, **{"Content-Encoding": "gzip"})[0] == 400  # fits; zeros are no request
        assert post(url, member + member, **{"Content-Encoding": "gzip"})[0] == 413
        assert receiver.stats()["too_large_requests"] == 1
