"""`auriko-obs collect` answers 2xx only for spans that are durable: killed with -9 and restarted, it
has lost none it acknowledged, and stores none twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.proto", reason="needs the otlp extra")

from auriko_obs import Store
from auriko_obs.otlp._receiver import Receiver, start_http
from auriko_obs.otlp._request_log import KIND_JSON, KIND_PROTOBUF, RequestLog, log_root

from ._collector import CollectProcess, post, request_bytes

SPANS_PER_REQUEST = 100


class Sender(threading.Thread):
    """Sends requests of new spans, each until it gets a 2xx (as OTLP exporters retry), and keeps the
    ids of the spans acknowledged."""

    def __init__(self, number: int, collector: dict[str, CollectProcess], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.trace_id = bytes([number + 1]) * 16
        self.collector, self.stop = collector, stop
        self.acknowledged: list[int] = []
        self.unexpected: list[int] = []
        self.retries = 0

    def run(self) -> None:
        first = 1
        while not self.stop.is_set():
            ids = range(first, first + SPANS_PER_REQUEST)
            body = request_bytes(self.trace_id, ids)
            while True:
                try:
                    status = post(self.collector["current"].url, body, timeout=30)[0]
                except OSError:  # the collector was killed, or is starting again
                    status = None
                if status == 200:
                    self.acknowledged.extend(ids)
                    break
                if status not in (None, 503):
                    self.unexpected.append(status)
                    break
                self.retries += 1
                time.sleep(0.05)
            first += SPANS_PER_REQUEST


def test_kill_9_rounds_lose_no_acknowledged_span_and_store_none_twice(tmp_path):
    db = tmp_path / "killed.duckdb"
    collector = {"current": CollectProcess(db)}
    stop = threading.Event()
    senders = [Sender(n, collector, stop) for n in range(4)]
    for sender in senders:
        sender.start()
    try:
        for round_ in range(5):
            acknowledged = sum(len(s.acknowledged) for s in senders)
            deadline = time.monotonic() + 60
            while sum(len(s.acknowledged) for s in senders) < acknowledged + 2_000 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.1 * round_)  # mid-stream, at a different moment each round
            collector["current"].kill9()
            collector["current"] = CollectProcess(db)
        time.sleep(1)
    finally:
        stop.set()
        for sender in senders:
            sender.join(120)
        assert collector["current"].stop() == 0
    assert not any(s.is_alive() for s in senders)
    assert [s.unexpected for s in senders] == [[], [], [], []]
    assert sum(s.retries for s in senders) > 0  # requests did meet a dead collector
    frame = Store(db).sql("SELECT trace_id, span_id, count(*) AS n FROM spans GROUP BY ALL")
    stored = {(row.trace_id, int(row.span_id, 16)) for row in frame.itertuples()}
    acknowledged = {(s.trace_id.hex(), span_id) for s in senders for span_id in s.acknowledged}
    assert len(acknowledged) >= 10_000
    assert len(acknowledged - stored) == 0, f"{len(acknowledged - stored)} acknowledged spans were lost"
    assert int((frame["n"] > 1).sum()) == 0, "spans stored twice"
    assert not log_root(db).exists()  # the last collector stopped cleanly: no log left


def _stored_ids(db: str) -> list[int]:
    return sorted(int(span_id, 16) for span_id in Store(db).sql("SELECT span_id FROM spans")["span_id"])


def test_a_request_log_cut_short_by_a_crash_is_replayed_up_to_the_cut(tmp_path):
    db = str(tmp_path / "replay.duckdb")
    trace_id = bytes(range(1, 17))
    log = RequestLog(db)
    for first in (1, 11, 21):
        log.append(KIND_PROTOBUF, request_bytes(trace_id, range(first, first + 10)))
    json_span = {
        "traceId": trace_id.hex(),
        "spanId": f"{31:016x}",
        "name": "from json",
        "startTimeUnixNano": "1700000000000000031",
        "endTimeUnixNano": "1700000000001000031",
    }
    log.append(KIND_JSON, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [json_span]}]}]}).encode())
    [segment] = log.folder.glob("*.log")
    whole = segment.stat().st_size
    log.append(KIND_PROTOBUF, request_bytes(trace_id, range(100, 110)))
    log.close(remove=False)  # the process died (its lock went with it) while writing the last record:
    os.truncate(segment, whole + (segment.stat().st_size - whole) // 2)  # never acknowledged
    receiver = Receiver(db)
    try:
        assert receiver.flush(30)
        stats = receiver.stats()
    finally:
        receiver.close()
    assert _stored_ids(db) == list(range(1, 32))
    assert stats["replayed_spans"] == 31 and stats["unreadable_log_bytes"] > 0
    assert not log_root(db).exists()  # the replayed log, and the receiver's own, are gone


@pytest.mark.parametrize("damage", ["payload", "header"])
def test_a_damaged_record_mid_log_is_skipped_and_every_intact_record_after_it_is_replayed(tmp_path, caplog, damage):
    db = str(tmp_path / "damaged.duckdb")
    trace_id = bytes(range(1, 17))
    log = RequestLog(db)
    ends = []
    for first in (1, 11, 21, 31):
        log.append(KIND_PROTOBUF, request_bytes(trace_id, range(first, first + 10)))
        [segment] = log.folder.glob("*.log")
        ends.append(segment.stat().st_size)
    log.close(remove=False)  # the collector died with all four requests acknowledged
    data = bytearray(segment.read_bytes())
    if damage == "payload":  # a flipped byte in the second record's payload
        data[(ends[0] + ends[1]) // 2] ^= 0xFF
    else:  # the second record's header overwritten: its length, and so where the third begins, is lost
        data[ends[0] : ends[0] + 13] = b"\xff" * 13
    segment.write_bytes(bytes(data))
    receiver = Receiver(db)
    try:
        with caplog.at_level("WARNING", logger="auriko_obs"):
            assert receiver.flush(30)
        stats = receiver.stats()
    finally:
        receiver.close()
    assert _stored_ids(db) == [*range(1, 11), *range(21, 41)]  # before, only the first record's 1..10
    assert stats["replayed_spans"] == 30 and stats["unreadable_log_bytes"] == ends[1] - ends[0]
    assert stats["quarantined_log_segments"] == 1
    [kept] = (tmp_path / "damaged.duckdb.collect-log-quarantine").glob("*/*.log")
    assert kept.read_bytes() == bytes(data)  # kept as it was found, for someone to look at
    assert not log_root(db).exists()  # and the log folder itself is gone, so it is not replayed again
    assert any(r.levelname == "WARNING" and "damaged bytes" in r.getMessage() for r in caplog.records)


def test_a_live_collectors_log_is_left_alone_by_another_on_the_same_store(tmp_path):
    db = str(tmp_path / "two.duckdb")
    first = Receiver(db, flush_interval_s=3600)
    http = start_http(first, port=0)
    try:
        url = f"http://127.0.0.1:{http.server_address[1]}/v1/traces"
        assert post(url, request_bytes(bytes(range(1, 17)), range(1, 6)))[0] == 200
        second = Receiver(db)
        assert second.flush(30)
        second.close()
        assert second.stats()["replayed_spans"] == 0  # the first still holds its log, and writes it itself
        assert first.flush(30)
    finally:
        http.shutdown()
        http.server_close()
        first.close()
    assert _stored_ids(db) == [1, 2, 3, 4, 5]


def test_concurrent_requests_share_one_fsync(tmp_path):
    receiver = Receiver(str(tmp_path / "group.duckdb"), max_parsing=8)
    http = start_http(receiver, port=0)
    url = f"http://127.0.0.1:{http.server_address[1]}/v1/traces"
    statuses: list[int] = []

    def send(number: int) -> None:
        for k in range(25):
            first = k * 10 + 1
            statuses.append(post(url, request_bytes(bytes([number + 1]) * 16, range(first, first + 10)))[0])

    try:
        threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        stats = receiver.stats()
    finally:
        http.shutdown()
        http.server_close()
        receiver.close()
    assert statuses == [200] * 200
    assert stats["accepted_spans"] == 2000
    assert 0 < stats["log_syncs"] < 200


FULL_DISK = """
import resource, signal, sys
from auriko_obs.otlp._receiver import Busy, Receiver
from tests.faults._collector import request_bytes

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
receiver = Receiver(sys.argv[1], flush_interval_s=3600)
big, small = request_bytes(b"\\x01" * 16, range(1, 3001)), request_bytes(b"\\x02" * 16, range(1, 4))
resource.setrlimit(resource.RLIMIT_FSIZE, (len(big) // 2, resource.RLIM_INFINITY))  # as if the disk filled up
try:
    receiver.accept(big)
    print("big: accepted")
except Busy as exc:
    print("big: busy", exc)
receiver.accept(small)  # fits: the cut-off record was removed, so the log stays readable
print("small: accepted")
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space again
receiver.close()
print(receiver.stats()["log_failures"], receiver.stats()["written_spans"])
"""


def test_a_request_the_log_cannot_hold_gets_busy_not_acknowledged_and_the_log_stays_readable(tmp_path):
    db = str(tmp_path / "full.duckdb")
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, db],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("big: busy cannot write the request log")
    assert lines[1:] == ["small: accepted", "1 3"]
    assert _stored_ids(db) == [1, 2, 3]
