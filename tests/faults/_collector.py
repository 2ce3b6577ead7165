"""A real ``auriko-obs collect`` process and OTLP requests to send it, for the receiver's fault tests."""

from __future__ import annotations

import gzip
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_LISTENING = re.compile(r"127\.0\.0\.1:(\d+)/v1/traces")


class CollectProcess:
    """``auriko-obs collect`` in a child process; its stderr is read in the background (``.output``)."""

    def __init__(self, db: str | Path, *options: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from auriko_obs.cli import main; raise SystemExit(main())",
                "collect",
                "--db",
                str(db),
                "--port",
                "0",
                *options,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr
        first = self.stderr.readline()
        self.lines.append(first)
        match = _LISTENING.search(first)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"collect did not start: {first}{self.stderr.read()}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}/v1/traces"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.stderr:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def peak_rss_bytes(self) -> int:
        """Returns the most resident memory the process has had (VmHWM)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        assert match is not None, status
        return int(match.group(1)) * 1024

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(5)

    def stop(self) -> int:
        """Returns the exit code after SIGTERM."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(120)
        self._reader.join(5)
        return code


def post(url: str, body: bytes, *, timeout: float = 30, **headers: str) -> tuple[int, dict[str, str]]:
    """Returns (status, headers) of a protobuf POST; raises OSError when no answer came."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code, dict(exc.headers)


def request_bytes(trace_id: bytes, span_ids: range | list[int], *, service: str = "faults") -> bytes:
    """Returns an encoded ExportTraceServiceRequest with one span per id (each with a few attributes)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attribute = resource_spans.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", service
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests.faults"
    for span_id in span_ids:
        span = scope_spans.spans.add()
        span.trace_id = trace_id
        span.span_id = span_id.to_bytes(8, "big")
        span.name = "chat gpt-4o"
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + span_id
        span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
        for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4o")):
            kv = span.attributes.add()
            kv.key, kv.value.string_value = key, value
        kv = span.attributes.add()
        kv.key, kv.value.int_value = "gen_ai.usage.input_tokens", span_id % 1000
    return request.SerializeToString()


def tiny_spans_gzip(count: int) -> tuple[bytes, int]:
    """Returns (gzip body, decoded size) of a request with ``count`` minimal spans: ids and times only,
    about 48 bytes each on the wire (the shape that costs the most memory per byte received)."""
    trace_id = bytes(range(1, 17))
    start = (1_700_000_000_000_000_000).to_bytes(8, "little")
    spans = b"".join(
        b"\x12\x2e\x0a\x10" + trace_id + b"\x12\x08" + i.to_bytes(8, "big") + b"\x39" + start + b"\x41" + start
        for i in range(1, count + 1)
    )
    resource_spans = b"\x12" + _varint(len(spans)) + spans  # ResourceSpans.scope_spans = ScopeSpans{spans}
    body = b"\x0a" + _varint(len(resource_spans)) + resource_spans
    return gzip.compress(body, compresslevel=1), len(body)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
