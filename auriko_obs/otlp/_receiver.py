"""``auriko-obs collect``: an OTLP trace receiver (HTTP protobuf/JSON, gzip; optional gRPC) into DuckDB or a lake.

A request is taken in four steps. *Admission*: HTTP bodies held in memory at once are limited in
bytes (``4 × max_body``), and at most ``max_parsing`` requests are decoded at once; a request waits up
to ``slot_wait_s`` for room, then gets 503 + ``Retry-After``. That bounds memory, whatever arrives.
*Checks before decoding*: the body is gunzipped (every gzip member) up to
``max_decoded`` bytes, and its spans are counted on the protobuf wire format, without decoding it, up
to ``max_spans_per_request`` (413 past either). *Decoding*: the spans become Arrow rows, and take room
in a bounded queue (503 when ``max_queue_spans`` wait). *Durability*: the body is appended to this
process's request log (``_request_log``), and the 2xx goes out only once the log is fsynced; concurrent
requests share one fsync (group commit). One writer thread appends the queue to the store in large
batches, through the store's ``StoreWriter`` (the writer under our instrumentation's exporter: several
writers share the file, and a locked file spools), and drops log segments whose requests are all
durable in the store, its spool or its quarantine. A collector that
starts replays the logs of collectors that died (``kill -9``, power loss) before they wrote what they
acknowledged; the store keeps one row per span, so nothing is stored twice. ``close()`` (SIGTERM) writes
every accepted span before returning.

Into a lake (``lake=``), the writer thread hands its batches to a ``LakeWriter`` instead, which publishes them
as Parquet files by size and time; a log segment is released only once the files holding its requests are
published, so a collector that dies loses nothing it acknowledged (readers count a replayed span once). The
request log is then on this host's disk, under ``log_dir``.

Status codes follow the OTLP/HTTP spec: 200 with an ``ExportTraceServiceResponse`` (``partial_success``
when spans with invalid ids, or times past what the store holds, were rejected); 400 for a payload that
cannot be decoded or converted; 408 for a body that did not arrive within the read timeout; 413 for a
body over the limits (on the wire, decoded, spans); 415 for another content type; 401 without the bearer
token; 503 with ``Retry-After`` when the receiver is busy (decoding slots or the queue full, or the log
cannot be written), and to a connection over ``max_connections``. The HTTP server is the standard
library's ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive: OTLP exporters send few, large
requests (512 spans each by default), so per-request cost does not matter, and it keeps the receiver
free of a web framework. Every socket read has a timeout, and a body must arrive whole within it. gRPC
uses ``grpcio``, handing us the request's bytes so that both front ends take the same steps.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..store import LakeWriter, StoreWriter
from ._convert import (
    REJECTED_MESSAGE,
    MalformedRequest,
    RequestTooLarge,
    check_protobuf_spans,
    count_spans,
    parse_json,
    parse_protobuf,
    request_to_table,
)
from ._request_log import (
    KIND_JSON,
    KIND_PROTOBUF,
    Orphan,
    ReadResult,
    RequestLog,
    Ticket,
    orphaned_logs,
    quarantine_segment,
    read_segment,
)

log = logging.getLogger("auriko_obs.collect")

TRACES_PATH = "/v1/traces"
DEFAULT_MAX_BODY = 16 * 1024 * 1024  # bytes on the wire
DEFAULT_MAX_DECODED = 64 * 1024 * 1024  # bytes after gunzip
DEFAULT_MAX_SPANS = 100_000  # spans in one request (OTLP exporters send 512 by default)
DEFAULT_MAX_PARSING = 2  # requests read and decoded at once
DEFAULT_READ_TIMEOUT_S = 30.0
DEFAULT_MAX_CONNECTIONS = 256
# Into a lake, the request log is on this host's disk: here, relative to the working folder, unless log_dir says.
DEFAULT_LAKE_LOG_DIR = "auriko-obs-collect"


class Busy(Exception):
    """The request cannot be taken now; the sender should retry (503 + Retry-After, gRPC UNAVAILABLE)."""


class QueueFull(Busy):
    pass


@dataclass
class Taken:
    """A request whose spans are queued and whose log record is written (not yet synced)."""

    ticket: Ticket | None  # None for a request without spans: nothing to log
    spans: int
    rejected: int


class Receiver:
    """The admission slots, the request log, the bounded queue and the writer thread, shared by the HTTP
    and gRPC front ends."""

    def __init__(
        self,
        db_path: str | None,
        *,
        lake: str | None = None,
        log_dir: str | None = None,
        max_queue_spans: int = 200_000,
        batch_spans: int = 50_000,
        flush_interval_s: float = 0.5,
        retry_after_s: int = 1,
        slot_wait_s: float | None = None,
        max_decoded: int = DEFAULT_MAX_DECODED,
        max_spans_per_request: int = DEFAULT_MAX_SPANS,
        max_parsing: int = DEFAULT_MAX_PARSING,
        sync: bool = True,
    ) -> None:
        self.lake: LakeWriter | None = None
        if lake is not None:
            # Files that cannot be published now are held in memory and tried again (an S3 blip); what does not
            # fit stays in the request log, for the next start.
            self.lake = LakeWriter(lake)
            self.path = self.lake.root
            log_base = os.path.join(os.path.abspath(log_dir or DEFAULT_LAKE_LOG_DIR), "lake")
        else:
            # Batches the store cannot take stay in the request log (for the next start), not in memory.
            self.writer = StoreWriter(db_path, max_held_bytes=0)
            self.path = log_base = self.writer.path
        self.max_queue_spans = max_queue_spans
        self.batch_spans = batch_spans
        self.flush_interval_s = flush_interval_s
        self.retry_after_s = retry_after_s
        self.slot_wait_s = retry_after_s if slot_wait_s is None else slot_wait_s
        self.max_decoded = max_decoded
        self.max_spans_per_request = max_spans_per_request
        self.max_parsing = max_parsing
        self.log_base = log_base
        self.log = RequestLog(log_base, sync=sync)
        self.counts = dict.fromkeys(
            (
                "received_requests",
                "accepted_spans",  # acknowledged: queued, and their request synced to the log
                "written_spans",
                "rejected_spans",  # invalid ids (reported as partial success)
                "throttled_requests",  # answered 503/UNAVAILABLE: decoding slots or the queue full
                "malformed_requests",
                "too_large_requests",
                "timed_out_requests",  # a body that stopped arriving
                "refused_connections",  # over max_connections
                "log_failures",  # the request log could not be written or synced: answered 503
                "failed_spans",  # neither the store nor its spool could take them: they wait in the log
                "refused_spans",  # rows the store refused, set aside in its quarantine
                "replayed_spans",  # from the logs of collectors that died
                "unreadable_log_bytes",  # records cut short by a crash (never acknowledged) or damaged
                "quarantined_log_segments",  # replayed segments holding damage, moved aside instead of deleted
            ),
            0,
        )
        self._queued = 0
        self._queue: deque[tuple[pa.Table, int]] = deque()  # (rows, the log segment of their request)
        self._parsing = 0
        self._slots = threading.BoundedSemaphore(max_parsing)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._replayed = threading.Event()  # the logs of collectors that died are in the store (or given up)
        self._idle = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="auriko-obs-collect-writer", daemon=True)
        self._thread.start()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                **self.counts,
                "queued_spans": self._queued,
                "parsing_requests": self._parsing,
                **self._sink_stats(),
                "log_syncs": self.log.syncs,
                "log_bytes": self.log.appended_bytes,
            }

    def _sink_stats(self) -> dict[str, int]:
        if self.lake is None:
            return {
                "spooled_spans": self.writer.spooled_spans,
                "quarantined_files": self.writer.spool.quarantined_files,
            }
        lake = self.lake.stats()  # rows become files by size and time, and at close
        return {f"lake_{name}": lake[name] for name in ("published_files", "buffered_spans", "held_spans")}

    @contextmanager
    def admission(self) -> Iterator[None]:
        """Holds one of the ``max_parsing`` slots for decoding a request; raises Busy when none frees up
        within ``slot_wait_s``."""
        if not self._slots.acquire(timeout=self.slot_wait_s):
            self.count("throttled_requests")
            raise Busy(f"{self.max_parsing} requests are being decoded")
        with self._lock:
            self._parsing += 1
        try:
            yield
        finally:
            with self._lock:
                self._parsing -= 1
            self._slots.release()

    def accept(self, body: bytes, *, json: bool = False, gzip: bool = False) -> int:
        """Takes a request body and returns once its spans are durable; returns how many were rejected.

        Raises Busy (retry later), RequestTooLarge, or MalformedRequest.
        """
        with self.admission():
            taken = self.take(body, json=json, gzip=gzip)
        self.wait_durable(taken)
        return taken.rejected

    def take(self, body: bytes | bytearray, *, json: bool = False, gzip: bool = False) -> Taken:
        """Decodes a request body, queues its spans and appends it to the request log (call it in
        ``admission()``, then ``wait_durable``). Raises Busy, RequestTooLarge or MalformedRequest."""
        self.count("received_requests")
        try:
            data = _gunzip(body, self.max_decoded) if gzip else body
            if len(data) > self.max_decoded:
                raise RequestTooLarge(f"decoded body is over the {self.max_decoded}-byte limit")
            if json:
                request = parse_json(data, self.max_spans_per_request)
                n = count_spans(request)
            else:
                n = check_protobuf_spans(data, self.max_spans_per_request)
                request = None
        except RequestTooLarge:
            self.count("too_large_requests")
            raise
        except (MalformedRequest, zlib.error) as exc:
            self.count("malformed_requests")
            raise MalformedRequest(str(exc)) from None
        if not n:  # nothing to store, but a body that is not a request still gets 400
            if request is None:
                try:
                    parse_protobuf(data)
                except MalformedRequest:
                    self.count("malformed_requests")
                    raise
            return Taken(None, 0, 0)
        self._reserve(n)
        try:
            if request is None:
                request = parse_protobuf(data)
            table, rejected = request_to_table(request)
        except MalformedRequest:
            self._unreserve(n, malformed=True)
            raise
        except Exception as exc:
            log.warning("auriko_obs collect: %d spans could not be converted to rows", n, exc_info=True)
            self._unreserve(n, malformed=True)
            raise MalformedRequest(f"spans cannot be stored: {type(exc).__name__}: {exc}") from None
        del request
        try:
            ticket = self.log.append(KIND_JSON if json else KIND_PROTOBUF, data)
        except OSError as exc:
            self._unreserve(n, log_failure=True)
            raise Busy(f"cannot write the request log: {exc}") from None
        with self._lock:
            if not self._closing:
                self._queue.append((table, ticket.segment))
                self._queued += table.num_rows - n
                if self._queued >= self.batch_spans:
                    self._wake.set()
                return Taken(ticket, table.num_rows, rejected)
        self.log.done(ticket.segment)
        self._unreserve(n)
        raise Busy("shutting down")

    def wait_durable(self, taken: Taken) -> None:
        """Returns once the request's log record is on disk; raises Busy when syncing failed."""
        if taken.ticket is None:
            return
        try:
            self.log.wait_durable(taken.ticket)
        except OSError as exc:
            self.count("log_failures")
            raise Busy(f"cannot sync the request log: {exc}") from None
        with self._lock:
            self.counts["accepted_spans"] += taken.spans
            self.counts["rejected_spans"] += taken.rejected

    def _reserve(self, n: int) -> None:
        """Takes room for n spans in the queue, before they are converted, so that requests converting
        at the same time cannot overfill it. A request larger than the whole queue is taken while the
        queue is empty (else it could never get in); the per-request limits bound it."""
        with self._lock:
            if self._closing:
                raise Busy("shutting down")
            if self._queued and self._queued + n > self.max_queue_spans:
                self.counts["throttled_requests"] += 1
                raise QueueFull(f"{self._queued} spans waiting to be written")
            self._queued += n

    def _unreserve(self, n: int, *, malformed: bool = False, log_failure: bool = False) -> None:
        with self._lock:
            self._queued -= n
            self.counts["malformed_requests"] += malformed
            self.counts["log_failures"] += log_failure
            self._idle.notify_all()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Returns True once every span accepted so far, and every span replayed from the logs of
        collectors that died, is written (into a lake: in published files)."""
        deadline = time.monotonic() + timeout_s
        if not self._replayed.wait(timeout_s):
            return False
        self._wake.set()
        with self._lock:
            while self._queued:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
                self._wake.set()
        return self.lake.flush() if self.lake is not None else True

    def close(self, timeout_s: float = 60.0) -> None:
        """Stops accepting, writes everything accepted, stops the writer. The request log is deleted
        when every span in it is in the store; otherwise the next collector replays it."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout_s)
        with self._lock:
            everything_stored = not self._thread.is_alive() and not self._queued and not self.counts["failed_spans"]
        if self.lake is not None:  # the last rows become files now; the log stays for whatever is not in one
            everything_stored = self.lake.flush() and everything_stored
        self.log.close(remove=everything_stored)
        if self.lake is not None:
            self.lake.close()
        else:
            self.writer.close()

    def _run(self) -> None:
        try:
            self._replay_orphans()
        finally:
            self._replayed.set()
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            closing = self._closing
            self._write_all()
            if closing:
                return

    def _export(self, tables: list[pa.Table], on_durable: Callable[[], None] | None = None) -> bool:
        """Returns whether every row is durable outside the request log: in the store, in its (fsynced)
        spool, or set aside in its quarantine because the store refused it. Into a lake: whether the rows are
        on their way to a file; ``on_durable`` is called once they are in one (or in its quarantine)."""
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if self.lake is not None:
            outcome = self.lake.write(table, on_published=on_durable)
            self.count("refused_spans", outcome.refused)
            self.count("failed_spans", outcome.lost)
            return not outcome.lost
        try:
            outcome = self.writer.write(table)
        except Exception:  # write() reports instead of raising; should it raise all the same, the log keeps them
            log.exception("auriko_obs collect: writing %d spans failed", table.num_rows)
            self.count("failed_spans", table.num_rows)
            return False
        self.count("refused_spans", outcome.refused)
        self.count("failed_spans", outcome.held + outcome.lost)
        ok = not (outcome.held or outcome.lost)
        if ok and on_durable is not None:
            on_durable()
        return ok

    def _write_all(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._idle.notify_all()
                    break
                items, rows = [], 0
                while self._queue and rows < self.batch_spans:
                    item = self._queue.popleft()
                    items.append(item)
                    rows += item[0].num_rows
            segments = [segment for _, segment in items]
            # A failed batch's requests stay in the log, for the next collector to replay.
            ok = self._export([table for table, _ in items], functools.partial(self._release, segments))
            with self._lock:
                self._queued -= rows
                self.counts["written_spans"] += rows if ok else 0
                self._idle.notify_all()
        try:
            self.log.rotate_if_idle()
        except OSError:
            log.warning("auriko_obs collect: cannot start a new request log segment", exc_info=True)

    def _release(self, segments: list[int]) -> None:
        for segment in segments:
            self.log.done(segment)

    def _replay_orphans(self) -> None:
        for orphan in orphaned_logs(self.log_base, self.log.folder):
            try:
                replayed = self._replay(orphan)
            except Exception:
                log.exception("auriko_obs collect: replaying %s failed; the next start tries again", orphan.folder)
                replayed = False
            if replayed:
                orphan.remove()
            else:
                orphan.release()

    def _replay(self, orphan: Orphan) -> bool:
        """Returns whether every request in a dead collector's log is now in the store."""
        result = ReadResult()
        pending: list[pa.Table] = []
        rows = stored = 0
        damaged: list[tuple[Path, int]] = []
        for segment in orphan.segments():
            damaged_before = result.damaged_bytes
            for record in read_segment(segment, result):  # finished even when closing: these were acknowledged
                try:
                    request = parse_json(record.payload) if record.kind == KIND_JSON else parse_protobuf(record.payload)
                    table, _ = request_to_table(request)
                except Exception:  # it was converted once before being logged: count it, and go on
                    log.warning("auriko_obs collect: a logged request cannot be converted", exc_info=True)
                    self.count("malformed_requests")
                    continue
                pending.append(table)
                rows += table.num_rows
                if rows >= self.batch_spans:
                    if not self._export(pending):
                        return False
                    stored, pending, rows = stored + rows, [], 0
            if result.damaged_bytes > damaged_before:
                damaged.append((segment, result.damaged_bytes - damaged_before))
        if pending and not self._export(pending):
            return False
        if self.lake is not None and not self.lake.flush():  # the dead collector's log goes once its rows are in files
            return False
        stored += rows
        self.count("replayed_spans", stored)
        self.count("unreadable_log_bytes", result.unreadable_bytes)
        for segment, damaged_bytes in damaged:
            self._quarantine(segment, damaged_bytes)
        log.info(
            "auriko_obs collect: replayed %d requests (%d spans) left in %s by a collector that stopped",
            result.records,
            stored,
            orphan.folder,
        )
        return True

    def _quarantine(self, segment: Path, damaged_bytes: int) -> None:
        """Moves a replayed segment that held damage aside, rather than deleting it with its folder."""
        self.count("quarantined_log_segments")
        try:
            target: Path | str = quarantine_segment(segment)
        except OSError:
            log.warning("auriko_obs collect: cannot move the damaged log segment %s aside", segment, exc_info=True)
            target = "nowhere (it is deleted with its folder)"
        log.warning(
            "auriko_obs collect: %d damaged bytes in the request log segment %s were skipped (the records after "
            "them were replayed); the segment is kept in %s",
            damaged_bytes,
            segment,
            target,
        )


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


_GRPC_CODES = {
    400: 3,
    401: 16,
    404: 5,
    405: 12,
    408: 4,
    411: 3,
    413: 8,
    415: 3,
    501: 12,
    503: 14,
}  # google.rpc.Code


def _gunzip(body: bytes | bytearray, limit: int) -> bytes:
    """Returns the decoded body: every gzip member of it, in order (RFC 1952 allows several; ``gzip -d``
    joins them). Raises RequestTooLarge past ``limit`` decoded bytes, MalformedRequest for a truncated
    member, and zlib.error for bytes after a member that are not gzip (zero padding is ignored)."""
    parts: list[bytes] = []
    total = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        part = inflater.decompress(rest, limit + 1 - total)
        total += len(part)
        if total > limit or inflater.unconsumed_tail:
            raise RequestTooLarge(f"decompressed body is over the {limit}-byte limit")
        if not inflater.eof:
            raise MalformedRequest("truncated gzip body")
        parts.append(part)
        rest = inflater.unused_data
        if not rest.strip(b"\0"):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _bearer_matches(authorization: str | None, token: str) -> bool:
    """Returns whether an Authorization value carries the bearer token (the scheme is case-insensitive)."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


def _drain_limit(max_body: int) -> int:
    """Returns how many bytes of a body that is not taken are read and dropped, so that the client gets
    the answer rather than a reset; past it the rest is left unread and the connection closed."""
    return max(4 * max_body, 64 << 20)


def _discard(rfile: Any, length: int, before_read: Any = None) -> int:
    """Returns how many of ``length`` bytes it read and dropped (fewer when the client stopped sending)."""
    left = length
    while left > 0:
        if before_read is not None:
            before_read()
        chunk = rfile.read(min(left, 1 << 20))
        if not chunk:
            break
        left -= len(chunk)
    return length - left


class _BodyLeftUnread(OverflowError):
    """A body over the drain limit: the rest of it was not read, so the connection cannot be reused."""


def _chunk_size(line: bytes) -> int:
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        size = -1
    if size < 0:
        raise MalformedRequest(f"bad chunk size line {line[:40]!r}")
    return size


def _read_chunked(rfile: Any, limit: int, before_read: Any) -> bytes:
    """Returns a chunked request body (RFC 9112, 7.1), calling ``before_read`` before each read. Raises
    MalformedRequest for broken framing, and OverflowError for a body over ``limit`` bytes (read to its
    end first, or _BodyLeftUnread past the drain limit)."""
    parts, total = [], 0
    while True:
        before_read()
        size = _chunk_size(rfile.readline(1024))
        if not size:
            break
        total += size
        if total > _drain_limit(limit):
            raise _BodyLeftUnread
        if total <= limit:
            chunk = rfile.read(size)
            parts.append(chunk)
            complete = len(chunk) == size
        else:
            parts.clear()
            complete = _discard(rfile, size, before_read) == size
        if not complete or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise MalformedRequest("truncated chunked body")
    for _ in range(100):  # trailer fields, ignored, up to the empty line
        before_read()
        if rfile.readline(8192) in (b"\r\n", b"\n", b""):
            break
    else:
        raise MalformedRequest("too many trailer fields")
    if total > limit:
        raise OverflowError
    return b"".join(parts)


class _ByteBudget:
    """Bytes of request bodies held in memory at once, over all connections."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, n: int, timeout_s: float) -> bool:
        """Returns whether n bytes were taken within the timeout (a body over the whole budget is taken
        when nothing else is held)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.used and self.used + n > self.limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


class _BodyNotTaken(Exception):
    """The request was answered (or the connection is to be dropped) without taking its body."""


def make_handler(
    receiver: Receiver, token: str | None, max_body: int, read_timeout_s: float, body_budget: _ByteBudget
) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "auriko-obs-collect"
        sys_version = ""
        timeout = read_timeout_s  # every socket read: request line, headers, body

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

        def _busy(self, message: str, as_json: bool) -> None:
            retry = {"Retry-After": str(receiver.retry_after_s)}
            self._error(503, f"receiver busy ({message}); retry later", as_json, retry)

        def do_GET(self) -> None:
            self.close_connection = True
            self._error(
                405 if self.path.split("?")[0] == TRACES_PATH else 404,
                "POST OTLP traces to /v1/traces",
                True,
                {"Allow": "POST"},
            )

        def _framing(self, as_json: bool) -> tuple[str, int]:
            """Returns (transfer coding, Content-Length); raises _BodyNotTaken once it answered 411 or 501."""
            transfer = (self.headers.get("Transfer-Encoding") or "").strip().lower()
            if transfer:
                if transfer != "chunked":
                    self.close_connection = True
                    self._error(501, f"unsupported Transfer-Encoding {transfer[:50]!r}", as_json)
                    raise _BodyNotTaken
                return transfer, -1
            length_text = self.headers.get("Content-Length")
            if length_text is None or not length_text.strip().isdigit():
                self.close_connection = True
                self._error(411, "Content-Length or chunked Transfer-Encoding required", as_json)
                raise _BodyNotTaken
            return "", int(length_text)

        def _deadline_setter(self) -> Any:
            """Returns a function to call before each read of a body: the body must arrive whole within
            the read timeout (a client sending a byte now and then cannot hold a decoding slot)."""
            deadline = time.monotonic() + read_timeout_s

            def before_read() -> None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the body did not arrive within the read timeout")
                self.connection.settimeout(left)

            return before_read

        def _drain(self, transfer: str, length: int) -> None:
            """Reads and drops a body that is not taken; closes the connection when that cannot be done."""
            try:
                if transfer:
                    try:
                        _read_chunked(self.rfile, 0, self._deadline_setter())
                    except _BodyLeftUnread:
                        raise
                    except OverflowError:  # over 0 bytes, and read to its end: dropped
                        pass
                elif length > _drain_limit(max_body) or _discard(self.rfile, length, self._deadline_setter()) < length:
                    self.close_connection = True
            except (_BodyLeftUnread, MalformedRequest, TimeoutError):
                self.close_connection = True
            finally:
                self.connection.settimeout(read_timeout_s)

        def _read_body(self, transfer: str, length: int, as_json: bool) -> bytes | bytearray:
            """Returns the body; raises _BodyNotTaken once it answered 400 or 413, and TimeoutError."""
            before_read = self._deadline_setter()
            try:
                if transfer:
                    try:
                        return _read_chunked(self.rfile, max_body, before_read)
                    except OverflowError:
                        self.close_connection = True
                        self._error(413, f"chunked body is over the {max_body}-byte limit", as_json)
                    except MalformedRequest as exc:
                        receiver.count("malformed_requests")
                        self.close_connection = True
                        self._error(400, str(exc), as_json)
                    raise _BodyNotTaken
                body = bytearray(length)
                view, got = memoryview(body), 0
                while got < length:
                    before_read()
                    n = self.rfile.readinto1(view[got:])
                    if not n:  # the client went away mid-body: nobody to answer
                        self.close_connection = True
                        raise _BodyNotTaken
                    got += n
                return body
            finally:
                self.connection.settimeout(read_timeout_s)

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
            try:
                transfer, length = self._framing(as_json)
            except _BodyNotTaken:
                return None
            encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
            if content_type not in ("application/x-protobuf", "application/json"):
                self._drain(transfer, length)
                return self._error(415, "Content-Type must be application/x-protobuf or application/json", as_json)
            if encoding not in ("gzip", "identity", ""):
                self._drain(transfer, length)
                return self._error(415, f"unsupported Content-Encoding {encoding!r}", as_json)
            if length > max_body:
                self._drain(transfer, length)
                receiver.count("too_large_requests")
                return self._error(413, f"body of {length} bytes is over the {max_body}-byte limit", as_json)
            # Reading a body takes as long as the client takes to send it: it holds room in the byte budget,
            # not one of the few decoding slots.
            reserved = max_body if transfer else length
            if not body_budget.acquire(reserved, receiver.slot_wait_s):
                receiver.count("throttled_requests")
                self._drain(transfer, length)
                return self._busy(f"{body_budget.used} bytes of request bodies are being read", as_json)
            try:
                body = self._read_body(transfer, length, as_json)
                with receiver.admission():
                    taken = receiver.take(body, json=as_json, gzip=encoding == "gzip")
                del body
            except _BodyNotTaken:
                return None
            except TimeoutError:
                receiver.count("timed_out_requests")
                self.close_connection = True
                return self._error(408, "the request body did not arrive within the read timeout", as_json)
            except Busy as exc:
                return self._busy(str(exc), as_json)
            except RequestTooLarge as exc:
                return self._error(413, str(exc)[:500], as_json)
            except MalformedRequest as exc:
                return self._error(400, str(exc)[:500], as_json)
            finally:
                body_budget.release(reserved)
            try:
                receiver.wait_durable(taken)
            except Busy as exc:
                return self._busy(str(exc), as_json)
            content_type = "application/json" if as_json else "application/x-protobuf"
            self._send(200, _export_response(taken.rejected, as_json), content_type)

    return Handler


_REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` at once: past that, a connection gets a
    503 (``Retry-After: 1``) and is closed at once, instead of holding a thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, receiver: Receiver, max_connections: int) -> None:
        self.receiver = receiver
        self._connections = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._connections.acquire(blocking=False):
            self.receiver.count("refused_connections")
            try:
                request.setblocking(False)
                request.send(_REFUSAL)  # a new connection's send buffer has room: this never waits
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn's, with the slot given back before the connection is closed: a client that sees its
        # connection end and connects again at once finds the slot free (released after the close, the new
        # connection could arrive first and be refused with a 503).
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self._connections.release()
            self.shutdown_request(request)


def start_http(
    receiver: Receiver,
    host: str = "127.0.0.1",
    port: int = 4318,
    *,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    body_budget: int | None = None,
) -> ThreadingHTTPServer:
    """Starts serving in a daemon thread; returns the server (``.server_address`` has the bound port).

    ``body_budget``: bytes of request bodies read into memory at once (default ``4 × max_body``).
    """
    budget = _ByteBudget(body_budget if body_budget is not None else 4 * max_body)
    handler = make_handler(receiver, token, max_body, read_timeout_s, budget)
    server = _Server((host, port), handler, receiver, max_connections)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="auriko-obs-collect-http", daemon=True
    )
    thread.start()
    return server


# ------------------------------------------------------------------------------------------- gRPC

_TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def start_grpc(
    receiver: Receiver,
    host: str = "127.0.0.1",
    port: int = 4317,
    *,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_DECODED,
    workers: int = 8,
) -> tuple[Any, int]:
    """Starts the OTLP gRPC trace service; returns (server, bound port).

    The service is registered by hand, without a request deserializer, so that the request's bytes go
    through the same checks as HTTP bodies before anything decodes them.
    """
    from concurrent import futures

    import grpc

    def export(body: bytes, context: Any) -> Any:
        if token:
            metadata = dict(context.invocation_metadata())
            if not _bearer_matches(metadata.get("authorization"), token):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            rejected = receiver.accept(body)
        except (MalformedRequest, RequestTooLarge) as exc:  # neither helps when retried
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)[:500])
        except Busy as exc:
            context.set_trailing_metadata((("retry-after", str(receiver.retry_after_s)),))
            context.abort(grpc.StatusCode.UNAVAILABLE, f"receiver busy ({exc}); retry later")
        return _proto_response(rejected)

    handler = grpc.method_handlers_generic_handler(
        _TRACE_SERVICE,
        {"Export": grpc.unary_unary_rpc_method_handler(export, response_serializer=lambda r: r.SerializeToString())},
    )
    # Without so_reuseport=0, gRPC binds a port that another receiver already serves, and the two split
    # the traffic between them.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="auriko-obs-grpc"),
        handlers=[handler],
        options=[("grpc.max_receive_message_length", max_body), ("grpc.so_reuseport", 0)],
    )
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio raises where older versions returned 0
        bound = 0
    if not bound:
        raise OSError(f"{host}:{port} is in use or not an address of this machine")
    server.start()
    return server, bound
