"""Issue 14, item 1: ``auriko-obs collect --lake URI``. Collectors write a lake the rows a collector writes into a
store; several collector processes share one lake; SIGTERM publishes every accepted span; bad input exits 2."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="needs the otlp extra")

from auriko_obs.otlp._receiver import Receiver, start_http

from ._lake_files import lake_rows, store_rows
from .test_collect import ATTRIBUTES, _post, _proto_request, _provider
from .test_lake_writer import _frames_equal


def test_a_collector_writes_into_a_lake_the_rows_a_collector_writes_into_a_store(tmp_path):
    db, lake = str(tmp_path / "collected.duckdb"), str(tmp_path / "lake")
    genai = {"gen_ai.operation.name": "chat", "llm.model_name": "gpt-4o-mini", "llm.token_count.prompt": 12}
    requests = [_proto_request(3, ATTRIBUTES, 1), _proto_request(4, genai, 2), _proto_request(2, ATTRIBUTES, 1)]
    for receiver in (Receiver(db), Receiver(None, lake=lake, log_dir=str(tmp_path / "log"))):
        http = start_http(receiver, port=0)
        url = f"http://127.0.0.1:{http.server_address[1]}/v1/traces"
        try:
            for body in requests:  # the third resends spans of the first, as an exporter's retry does
                assert _post(url, body, token=None)[0] == 200
                assert receiver.flush(30)  # into a lake: a file each
        finally:
            http.shutdown()
            http.server_close()
            receiver.close()
    lake_frame = lake_rows(lake)
    # The lake keeps both copies of a resent span (readers count it once); the store keeps one.
    assert len(lake_frame) == 9 and lake_frame[["trace_id", "span_id"]].drop_duplicates().shape[0] == 7
    once = lake_frame.drop_duplicates(["trace_id", "span_id"]).sort_values(["start_time", "span_id", "trace_id"])
    _frames_equal(once, store_rows(db))


def _start_collector(lake: str, log_dir: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from auriko_obs.cli import main; raise SystemExit(main())",
            "collect",
            "--lake",
            lake,
            "--log-dir",
            log_dir,
            "--port",
            "0",
            "--flush-interval",
            "0.05",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"127\.0\.0\.1:(\d+)/v1/traces", line)
    assert match, line
    return proc, int(match.group(1))


def test_collector_processes_share_one_lake_and_sigterm_publishes_every_accepted_span(tmp_path):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    lake = str(tmp_path / "lake")
    collectors = [_start_collector(lake, str(tmp_path / f"log{n}")) for n in range(2)]
    try:
        for n, (_, port) in enumerate(collectors):
            tp = _provider(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=10), f"svc{n}")
            tracer = tp.get_tracer("t")
            for i in range(300):
                with tracer.start_as_current_span(f"s{i}"):
                    pass
            tp.shutdown()  # acknowledged; the rows wait in memory for their file (60 s by default)
        assert lake_rows(lake).empty
        for proc, _ in collectors:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in collectors:
            assert proc.wait(60) == 0
            summary = proc.stderr.read()
            assert (
                "accepted_spans=300" in summary and "lake_published_files=1" in summary and "failed_spans=0" in summary
            )
    finally:
        for proc, _ in collectors:
            if proc.poll() is None:
                proc.kill()
    rows = lake_rows(lake, "span_id, trace_id, service_name")
    assert len(rows) == 600 and rows.groupby("service_name").size().to_dict() == {"svc0": 300, "svc1": 300}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lake", "{tmp}/file.txt"], "is a file, not a folder"),
        (["--lake", "gs://bucket/lake"], "only local folders and s3:// lakes can be written"),
        (["--lake", "s3://"], "needs a bucket"),
        (["--lake", "{tmp}/lake", "--db", "{tmp}/x.duckdb"], "give --db or --lake, not both"),
        (["--log-dir", "{tmp}/log"], "--log-dir goes with --lake"),
    ],
)
def test_collect_refuses_a_lake_it_cannot_write_with_one_line(tmp_path, args, message):
    (tmp_path / "file.txt").write_text("not a lake")
    argv = [a.format(tmp=tmp_path) for a in args]
    done = subprocess.run(
        [sys.executable, "-c", "from auriko_obs.cli import main; raise SystemExit(main())", "collect", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_a_lake_collector_killed_after_acknowledging_loses_nothing_the_next_one_replays_it(tmp_path):
    """The request log keeps what was acknowledged until the lake files holding it are published."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    lake, log_dir = str(tmp_path / "lake"), str(tmp_path / "log")
    proc, port = _start_collector(lake, log_dir)
    try:
        tp = _provider(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=10))
        tracer = tp.get_tracer("t")
        for i in range(200):
            with tracer.start_as_current_span(f"s{i}"):
                pass
        tp.shutdown()  # acknowledged: in the request log, and in memory waiting for a file (60 s)
    finally:
        proc.kill()  # kill -9: the rows in memory are gone
        proc.wait(30)
    assert lake_rows(lake).empty
    again, _ = _start_collector(lake, log_dir)  # replays the dead collector's log into the lake
    again.send_signal(signal.SIGTERM)
    assert again.wait(60) == 0
    assert "replayed_spans=200" in again.stderr.read()
    rows = lake_rows(lake, "trace_id, span_id")
    assert len(rows) == 200 and len(rows.drop_duplicates()) == 200
    assert [n for n in os.listdir(log_dir) if not n.startswith(".")] in ([], ["lake.collect-log"])
