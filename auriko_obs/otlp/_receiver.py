"""``auriko-obs collect``: an OTLP trace receiver (HTTP protobuf/JSON, gzip; optional gRPC) into DuckDB.

The request threads decode and convert each request to Arrow rows, put them on a bounded queue and
answer at once; one writer thread appends the queue to the store in large batches, through the same
``DuckDBSpanExporter`` our instrumentation uses (so several writers share the file, and a locked file
spools). A span is *accepted* once it is on the queue, and ``close()`` (SIGTERM) writes every accepted
span before returning.

Status codes follow the OTLP/HTTP spec: 200 with an ``ExportTraceServiceResponse`` (``partial_success``
when spans with invalid ids, or times past what the store holds, were rejected); 400 for a payload that
cannot be decoded or converted; 413 for a body over the limit (compressed or not, sized or chunked); 415
for another content type; 401 without the bearer token; 503 with ``Retry-After`` when the queue is full
(the exporters retry; nothing is dropped silently; a request larger than the whole queue is taken when
the queue is empty). The HTTP
server is the standard library's ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive: OTLP
exporters send few, large requests (512 spans each by default), so per-request cost does not matter,
and it keeps the receiver free of a web framework. gRPC uses ``grpcio`` with the generated OTLP service.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import zlib
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa

from ..store import DuckDBSpanExporter
from ._convert import REJECTED_MESSAGE, MalformedRequest, count_spans, parse_json, parse_protobuf, request_to_table

log = logging.getLogger("auriko_obs.collect")

TRACES_PATH = "/v1/traces"
DEFAULT_MAX_BODY = 16 * 1024 * 1024  # bytes on the wire
DEFAULT_MAX_DECODED = 64 * 1024 * 1024  # bytes after gunzip


class QueueFull(Exception):
    pass


class Receiver:
    """The bounded queue and the writer thread, shared by the HTTP and gRPC front ends."""

    def __init__(
        self,
        db_path: str,
        *,
        max_queue_spans: int = 200_000,
        batch_spans: int = 50_000,
        flush_interval_s: float = 0.5,
        retry_after_s: int = 1,
    ) -> None:
        self.exporter = DuckDBSpanExporter(db_path)
        self.path = self.exporter.path
        self.max_queue_spans = max_queue_spans
        self.batch_spans = batch_spans
        self.flush_interval_s = flush_interval_s
        self.retry_after_s = retry_after_s
        self.received_requests = 0
        self.accepted_spans = 0
        self.rejected_spans = 0  # invalid ids (reported as partial success)
        self.throttled_requests = 0  # answered 503/UNAVAILABLE: the queue was full
        self.malformed_requests = 0
        self.written_spans = 0
        self.failed_spans = 0
        self._queued = 0
        self._queue: deque[pa.Table] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._idle = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="auriko-obs-collect-writer", daemon=True)
        self._thread.start()

    def stats(self) -> dict[str, int]:
        return {
            "received_requests": self.received_requests,
            "accepted_spans": self.accepted_spans,
            "written_spans": self.written_spans,
            "queued_spans": self._queued,
            "rejected_spans": self.rejected_spans,
            "throttled_requests": self.throttled_requests,
            "malformed_requests": self.malformed_requests,
            "failed_spans": self.failed_spans,
            "spooled_spans": self.exporter.spooled_spans,
            "quarantined_files": self.exporter.spool.quarantined_files,
        }

    def offer(self, request: Any) -> int:
        """Queues the request's spans; returns how many were rejected.

        Raises QueueFull when they do not fit, and MalformedRequest when they cannot be converted to
        rows. A request larger than the whole queue is taken while the queue is empty (else it could
        never get in); the body size limit bounds it.
        """
        n = count_spans(request)
        with self._lock:
            self.received_requests += 1
            if self._closing:
                raise QueueFull("shutting down")
            if not n:
                return 0
            if self._queued and self._queued + n > self.max_queue_spans:
                self.throttled_requests += 1
                raise QueueFull(f"{self._queued} spans waiting to be written")
            self._queued += n  # reserved, so that requests converting at the same time cannot overfill the queue
        try:
            table, rejected = request_to_table(request)
        except Exception as exc:
            log.warning("auriko_obs collect: %d spans could not be converted to rows", n, exc_info=True)
            self._unreserve(n, malformed=True)
            raise MalformedRequest(f"spans cannot be stored: {type(exc).__name__}: {exc}") from None
        with self._lock:
            if not self._closing:
                self._queue.append(table)
                self._queued += table.num_rows - n
                self.accepted_spans += table.num_rows
                self.rejected_spans += rejected
                if self._queued >= self.batch_spans:
                    self._wake.set()
                return rejected
        self._unreserve(n)
        raise QueueFull("shutting down")

    def _unreserve(self, n: int, *, malformed: bool = False) -> None:
        with self._lock:
            self._queued -= n
            self.malformed_requests += malformed
            self._idle.notify_all()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Returns True once every span accepted so far is written."""
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        with self._lock:
            while self._queued:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
                self._wake.set()
        return True

    def close(self, timeout_s: float = 60.0) -> None:
        """Stops accepting, writes everything accepted, stops the writer."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            closing = self._closing
            self._write_all()
            if closing:
                return

    def _write_all(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._idle.notify_all()
                    return
                tables, rows = [], 0
                while self._queue and rows < self.batch_spans:
                    table = self._queue.popleft()
                    tables.append(table)
                    rows += table.num_rows
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
            try:
                result = self.exporter.export_table(table)
                ok = result.name == "SUCCESS"
            except Exception:
                log.exception("auriko_obs collect: writing %d spans failed", rows)
                ok = False
            with self._lock:
                self._queued -= rows
                if ok:
                    self.written_spans += rows
                else:
                    self.failed_spans += rows
                self._idle.notify_all()


# ------------------------------------------------------------------------------------------- HTTP


def _status_body(code: int, message: str, as_json: bool) -> bytes:
    if as_json:
        import orjson

        return orjson.dumps({"code": code, "message": message})
    try:
        from google.rpc.status_pb2 import Status

        return Status(code=code, message=message).SerializeToString()
    except ImportError:  # googleapis-common-protos comes with the OTLP exporters; be safe anyway
        return message.encode()


def _export_response(rejected: int, as_json: bool) -> bytes:
    if as_json:
        import orjson

        if not rejected:
            return b"{}"
        return orjson.dumps({"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": REJECTED_MESSAGE}})
    return _proto_response(rejected).SerializeToString()


def _proto_response(rejected: int) -> Any:
    """Returns the ExportTraceServiceResponse for a request, with ``partial_success`` when spans were rejected."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = REJECTED_MESSAGE
    return response


_GRPC_CODES = {400: 3, 401: 16, 404: 5, 405: 12, 411: 3, 413: 8, 415: 3, 501: 12, 503: 14}  # google.rpc.Code


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise OverflowError
    if not inflater.eof:
        raise MalformedRequest("truncated gzip body")
    return out


def _bearer_matches(authorization: str | None, token: str) -> bool:
    """Returns whether an Authorization value carries the bearer token (the scheme is case-insensitive)."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


def _drain_limit(max_body: int) -> int:
    """Returns how many bytes of an oversized body are read and dropped, so that the client gets the 413
    rather than a reset; past it the rest is left unread and the connection closed."""
    return max(4 * max_body, 64 << 20)


def _discard(rfile: Any, length: int) -> int:
    """Returns how many of ``length`` bytes it read and dropped (fewer when the client stopped sending)."""
    left = length
    while left > 0:
        chunk = rfile.read(min(left, 1 << 20))
        if not chunk:
            break
        left -= len(chunk)
    return length - left


def _chunk_size(line: bytes) -> int:
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        size = -1
    if size < 0:
        raise MalformedRequest(f"bad chunk size line {line[:40]!r}")
    return size


def _read_chunked(rfile: Any, limit: int) -> bytes:
    """Returns a chunked request body (RFC 9112, 7.1). Raises MalformedRequest for broken framing, and
    OverflowError for a body over ``limit`` bytes (read to its end first, up to the drain limit)."""
    parts, total = [], 0
    while size := _chunk_size(rfile.readline(1024)):
        total += size
        if total > _drain_limit(limit):
            raise OverflowError
        if total <= limit:
            chunk = rfile.read(size)
            parts.append(chunk)
            complete = len(chunk) == size
        else:
            parts.clear()
            complete = _discard(rfile, size) == size
        if not complete or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise MalformedRequest("truncated chunked body")
    for _ in range(100):  # trailer fields, ignored, up to the empty line
        if rfile.readline(8192) in (b"\r\n", b"\n", b""):
            break
    else:
        raise MalformedRequest("too many trailer fields")
    if total > limit:
        raise OverflowError
    return b"".join(parts)


def make_handler(receiver: Receiver, token: str | None, max_body: int, max_decoded: int) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "auriko-obs-collect"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str, as_json: bool, headers: dict[str, str] | None = None) -> None:
            content_type = "application/json" if as_json else "application/x-protobuf"
            self._send(status, _status_body(_GRPC_CODES.get(status, 2), message, as_json), content_type, headers)

        def do_GET(self) -> None:
            self.close_connection = True
            self._error(
                405 if self.path.split("?")[0] == TRACES_PATH else 404,
                "POST OTLP traces to /v1/traces",
                True,
                {"Allow": "POST"},
            )

        def _read_body(self, as_json: bool) -> bytes | None:
            """Returns the request body, or None once it has answered 400, 411, 413 or 501."""
            transfer = (self.headers.get("Transfer-Encoding") or "").strip().lower()
            if transfer:
                return self._read_chunked_body(transfer, as_json)
            length_text = self.headers.get("Content-Length")
            if length_text is None or not length_text.strip().isdigit():
                self.close_connection = True
                self._error(411, "Content-Length or chunked Transfer-Encoding required", as_json)
                return None
            length = int(length_text)
            if length > max_body:
                if length > _drain_limit(max_body) or _discard(self.rfile, length) < length:
                    self.close_connection = True
                self._error(413, f"body of {length} bytes is over the {max_body}-byte limit", as_json)
                return None
            return self.rfile.read(length)

        def _read_chunked_body(self, transfer: str, as_json: bool) -> bytes | None:
            # After an error, where the next request begins is not known: the connection closes.
            if transfer != "chunked":
                self.close_connection = True
                self._error(501, f"unsupported Transfer-Encoding {transfer[:50]!r}", as_json)
                return None
            try:
                return _read_chunked(self.rfile, max_body)
            except OverflowError:
                self.close_connection = True
                self._error(413, f"chunked body is over the {max_body}-byte limit", as_json)
            except MalformedRequest as exc:
                receiver.malformed_requests += 1
                self.close_connection = True
                self._error(400, str(exc), as_json)
            return None

        def do_POST(self) -> None:
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            as_json = content_type == "application/json"
            if self.path.split("?")[0] != TRACES_PATH:
                self.close_connection = True
                return self._error(404, f"unknown path {self.path[:100]}; traces go to {TRACES_PATH}", as_json)
            if token and not _bearer_matches(self.headers.get("Authorization"), token):
                self.close_connection = True
                return self._error(
                    401, "missing or wrong bearer token", as_json, {"WWW-Authenticate": 'Bearer realm="auriko-obs"'}
                )
            body = self._read_body(as_json)
            if body is None:
                return None
            if content_type not in ("application/x-protobuf", "application/json"):
                return self._error(415, "Content-Type must be application/x-protobuf or application/json", as_json)
            encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
            try:
                if encoding == "gzip":
                    body = _gunzip(body, max_decoded)
                elif encoding not in ("identity", ""):
                    return self._error(415, f"unsupported Content-Encoding {encoding!r}", as_json)
                request = parse_json(body) if as_json else parse_protobuf(body)
            except OverflowError:
                receiver.malformed_requests += 1
                return self._error(413, f"decompressed body is over the {max_decoded}-byte limit", as_json)
            except (MalformedRequest, zlib.error) as exc:
                receiver.malformed_requests += 1
                return self._error(400, str(exc)[:500], as_json)
            try:
                rejected = receiver.offer(request)
            except MalformedRequest as exc:
                return self._error(400, str(exc)[:500], as_json)
            except QueueFull as exc:
                return self._error(
                    503, f"receiver busy ({exc}); retry later", as_json, {"Retry-After": str(receiver.retry_after_s)}
                )
            self._send(
                200, _export_response(rejected, as_json), "application/json" if as_json else "application/x-protobuf"
            )

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def start_http(
    receiver: Receiver,
    host: str = "127.0.0.1",
    port: int = 4318,
    *,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_decoded: int = DEFAULT_MAX_DECODED,
) -> ThreadingHTTPServer:
    """Starts serving in a daemon thread; returns the server (``.server_address`` has the bound port)."""
    server = _Server((host, port), make_handler(receiver, token, max_body, max_decoded))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="auriko-obs-collect-http", daemon=True
    )
    thread.start()
    return server


# ------------------------------------------------------------------------------------------- gRPC


def start_grpc(
    receiver: Receiver,
    host: str = "127.0.0.1",
    port: int = 4317,
    *,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_DECODED,
    workers: int = 8,
) -> tuple[Any, int]:
    """Starts the OTLP gRPC trace service; returns (server, bound port)."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            if token:
                metadata = dict(context.invocation_metadata())
                if not _bearer_matches(metadata.get("authorization"), token):
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
            try:
                rejected = receiver.offer(request)
            except MalformedRequest as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)[:500])
            except QueueFull as exc:
                context.set_trailing_metadata((("retry-after", str(receiver.retry_after_s)),))
                context.abort(grpc.StatusCode.UNAVAILABLE, f"receiver busy ({exc}); retry later")
            return _proto_response(rejected)

    # Without so_reuseport=0, gRPC binds a port that another receiver already serves, and the two split
    # the traffic between them.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="auriko-obs-grpc"),
        options=[("grpc.max_receive_message_length", max_body), ("grpc.so_reuseport", 0)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio raises where older versions returned 0
        bound = 0
    if not bound:
        raise OSError(f"{host}:{port} is in use or not an address of this machine")
    server.start()
    return server, bound
