"""The worker side: turn queued call records into span rows (and spans) and hand them to the consumers.

The caller's thread only appends to a deque (``submit``). A daemon worker wakes every
``interval_s`` (or as soon as ``batch_size`` records wait, or on ``flush``), extracts each record's
attributes, and hands the batch to each consumer in the form it takes:

- a *row sink* (a consumer with ``export_rows(table, unencodable) -> int``: the DuckDB store, a lake)
  gets one Arrow table of span rows (``auriko_obs.store.RAW_SCHEMA``), encoded once for all of them;
- any other consumer (an OTLP exporter, the application's TracerProvider, metrics, the Jupyter ledger) is an
  OpenTelemetry ``SpanExporter`` and gets ``ReadableSpan`` objects, built only when such a consumer is there.

Both carry the same ids. Building ``ReadableSpan`` objects directly costs about 2 µs a span, against about
40 µs for a span started and ended through the SDK's tracer; with only the store, no span object is built.

``interval_s`` is the OpenTelemetry batch span processor's schedule delay: ``OTEL_BSP_SCHEDULE_DELAY``
milliseconds, 5000 by default. Each export has a fixed cost (about 8 ms of CPU for a DuckDB insert of a batch,
whatever its size), so that fewer, larger batches cost less a call: at 1,000 calls/s, batches of 300 rows cost
140 µs of CPU a call to extract, encode and store, batches of 4,096 rows 84 µs (issue 15). Readers in the same
process (the notebook extension, ``flush()``) flush first.

Nothing is dropped silently: if records arrive faster than ``max_pending`` can absorb, the excess is
counted in ``dropped`` and logged; exporter failures are counted per exporter, and ``flush`` returns False
when any span exported since the previous flush failed in an exporter.
"""

from __future__ import annotations

import _thread
import atexit
import logging
import os
import signal
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .._internal_errors import positive_setting
from ._call_record import INTERNAL_ERRORS, CallRecord
from ._extract import build_attributes
from ._streams import OPEN_STREAMS, end_open_streams

if TYPE_CHECKING:
    import pyarrow as pa

    from ..store import SpanRow

log = logging.getLogger("auriko_obs")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
_CLIENT = SpanKind.CLIENT.name


SCHEDULE_DELAY_ENV = "OTEL_BSP_SCHEDULE_DELAY"
DEFAULT_SCHEDULE_DELAY_S = 5.0


def schedule_delay_s() -> float:
    """Returns the seconds between exports when fewer than a batch of calls wait: ``OTEL_BSP_SCHEDULE_DELAY``
    (milliseconds, as the OpenTelemetry SDK reads it), 5 s when unset; a value that is not a positive number
    is reported once and the default used."""
    default_ms = DEFAULT_SCHEDULE_DELAY_S * 1000
    return positive_setting(SCHEDULE_DELAY_ENV, default_ms, "pipeline", " of milliseconds") / 1000


class _Finished:
    """One finished call, ready to be encoded: its span row, and its parent's span context."""

    __slots__ = ("parent", "row")

    def __init__(self, row: SpanRow, parent: SpanContext | None) -> None:
        self.row = row
        self.parent = parent


class _FlushMarker(threading.Event):
    """Queued by ``flush``; set by the worker once every record before it is exported, ``ok`` telling whether
    every exporter took every span since the previous marker."""

    ok = True


class Pipeline:
    """Queues call records and exports them as spans from a background thread."""

    def __init__(
        self,
        exporters: Sequence[Any],
        resource: Resource,
        scope: InstrumentationScope,
        *,
        capture_content: bool = False,
        interval_s: float | None = None,
        batch_size: int = 4096,
        max_pending: int = 250_000,
    ) -> None:
        self.exporters = list(exporters)
        self.resource = resource
        self.scope = scope
        self.capture_content = capture_content
        self.interval_s = schedule_delay_s() if interval_s is None else interval_s
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.exported = 0
        self.dropped = 0
        self.export_failures: dict[str, int] = {}
        self._failed_since_marker = 0  # worker thread only
        self._ids = RandomIdGenerator()
        self._origin: Any = None  # the rows' service, resource and scope, made when first needed
        self._make_row: Any = None
        self._reset_threading()
        _PIPELINES.add(self)
        _register_exit_flush()

    def _reset_threading(self) -> None:
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="auriko-obs-export", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ caller's thread

    def submit(self, record: CallRecord) -> None:
        queue = self._queue
        if len(queue) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning(
                    "auriko_obs: %d spans dropped: more than %d waiting to be exported", self.dropped, self.max_pending
                )
            return
        queue.append(record)
        if len(queue) >= self.batch_size:
            self._wake.set()

    def flush(self, timeout_s: float | None = 30.0) -> bool:
        """Returns True once every record submitted before the call has been exported, and every exporter
        took every span exported since the previous flush; False when one did not, or on timeout."""
        if not self._thread.is_alive():
            return not self._queue
        marker = _FlushMarker()
        self._queue.append(marker)
        self._wake.set()
        return marker.wait(timeout_s) and marker.ok

    def shutdown(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)
        for exporter in self.exporters:
            try:
                exporter.shutdown()
            except Exception as exc:
                INTERNAL_ERRORS.record("exporter.shutdown", exc)
        _PIPELINES.discard(self)

    # ------------------------------------------------------------ worker thread

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self._drain()
            except Exception as exc:  # the worker must outlive any bug of ours
                INTERNAL_ERRORS.record("pipeline", exc)

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            batch: list[CallRecord] = []
            markers: list[_FlushMarker] = []
            while queue and len(batch) < self.batch_size:
                item = queue.popleft()
                if isinstance(item, _FlushMarker):
                    markers.append(item)
                    break
                batch.append(item)
            if batch:
                self._export(batch)
            for marker in markers:
                marker.ok = not self._failed_since_marker
                self._failed_since_marker = 0
                marker.set()

    def _finished(self, record: CallRecord) -> _Finished | None:
        try:
            name, attributes, error = build_attributes(record, self.capture_content)
            current = trace.get_current_span(record.context).get_span_context()
            parent = current if current.is_valid else None
            trace_id = parent.trace_id if parent is not None else self._ids.generate_trace_id()
            make_row = self._make_row or self._load_rows()
            row = make_row(
                trace_id,
                self._ids.generate_span_id(),
                parent.span_id if parent is not None else None,
                record.t0_ns,
                record.t1_ns or record.t0_ns,
                name,
                _CLIENT,
                error is not None,
                error,
                attributes,
                None,
                self._origin,
            )
            return _Finished(row, parent)
        except Exception as exc:
            INTERNAL_ERRORS.record("extract", exc)
            return None

    def _load_rows(self) -> Any:
        # Span rows load pyarrow: only when the first call is recorded, never by `import auriko_obs`.
        from ..store import SpanRow, origin_of

        self._origin = origin_of(self.resource.attributes, self.scope.name)
        self._make_row = SpanRow
        return SpanRow

    def _span(self, done: _Finished) -> ReadableSpan:
        row = done.row
        status = Status(StatusCode.ERROR, row.status_message) if row.failed else _UNSET
        return ReadableSpan(
            name=row.name,
            context=SpanContext(row.trace_id, row.span_id, False, _SAMPLED),
            parent=done.parent,
            resource=self.resource,
            attributes=row.attributes,
            kind=SpanKind.CLIENT,
            status=status,
            start_time=row.start_ns,
            end_time=row.end_ns,
            instrumentation_scope=self.scope,
        )

    def encode_records(self, records: list[CallRecord]) -> pa.Table:
        """Returns the span rows of the records (those that can be extracted and encoded)."""
        from ..store import encode_isolating

        finished = [f for f in map(self._finished, records) if f is not None]
        return encode_isolating(finished, _rows_of)[0]

    def build_spans(self, records: list[CallRecord]) -> list[ReadableSpan]:
        """Returns the ReadableSpan of each record that can be extracted."""
        return [self._span(f) for f in map(self._finished, records) if f is not None]

    def _export(self, records: list[CallRecord]) -> None:
        finished = [f for f in map(self._finished, records) if f is not None]
        if not finished:
            return
        exporters = list(self.exporters)
        sinks = [e for e in exporters if hasattr(e, "export_rows")]
        consumers = [e for e in exporters if not hasattr(e, "export_rows")]
        failures = {type(e).__name__: 0 for e in exporters}
        if sinks:
            self._export_rows(finished, sinks, failures)
        if consumers:
            spans = [self._span(f) for f in finished]
            for consumer in consumers:
                name = type(consumer).__name__
                failures[name] += _export_to(consumer, spans, name)
        delivered = True
        for name, failed in failures.items():
            if failed:
                self.export_failures[name] = self.export_failures.get(name, 0) + failed
                self._failed_since_marker += failed
                delivered = False
        if delivered:  # `exported` counts spans that every exporter took
            self.exported += len(finished)

    def _export_rows(self, finished: list[_Finished], sinks: list[Any], failures: dict[str, int]) -> None:
        from ..store import encode_isolating

        try:
            table, unencodable = encode_isolating(finished, _rows_of)
        except Exception as exc:  # not one row could be made: every sink misses the batch
            INTERNAL_ERRORS.record("store.rows", exc)
            for sink in sinks:
                failures[type(sink).__name__] += len(finished)
            return
        for _, error in unencodable:
            INTERNAL_ERRORS.record("store.rows", error)
        for sink in sinks:
            name = type(sink).__name__
            try:
                failures[name] += int(sink.export_rows(table, len(unencodable)))
            except Exception as exc:
                INTERNAL_ERRORS.record(f"export.{name}", exc)
                failures[name] += len(finished)


def _rows_of(finished: list[_Finished]) -> list[SpanRow]:
    return [f.row for f in finished]


def _export_to(exporter: Any, spans: list[ReadableSpan], name: str) -> int:
    """Returns how many of the spans the exporter did not take: all of them for a plain SpanExporter that
    fails, just the failing ones for the store's (which stores the rest of a batch)."""
    try:
        counting = getattr(exporter, "export_counting_failures", None)
        if counting is not None:
            return int(counting(spans))
        result = exporter.export(spans)
        return 0 if getattr(result, "name", "SUCCESS") == "SUCCESS" else len(spans)
    except Exception as exc:
        INTERNAL_ERRORS.record(f"export.{name}", exc)
        return len(spans)


_PIPELINES: weakref.WeakSet[Pipeline] = weakref.WeakSet()


_exit_flush_started = False


def _flush_all_at_exit() -> None:
    global _exit_flush_started
    _exit_flush_started = True
    end_open_streams()
    for pipeline in list(_PIPELINES):
        try:
            pipeline.flush(10.0)
            for exporter in pipeline.exporters:  # consumers with a queue of their own (OTLP) drain too
                if hasattr(exporter, "force_flush"):
                    exporter.force_flush(5_000)
        except Exception:
            pass


def _after_fork_in_child() -> None:
    # The worker thread does not survive fork(); records queued in the parent belong to the parent, and
    # so do its open streams (the child's exit flush would otherwise record them a second time).
    global _exit_flush_started
    for pipeline in list(_PIPELINES):
        pipeline._reset_threading()
    OPEN_STREAMS.clear()
    _exit_flush_started = False


_exit_flush_registered = False


def _register_exit_flush() -> None:
    # atexit runs handlers last-registered-first, and DuckDB's own handler refuses Python callbacks
    # once it has run: registering after the exporters (and so DuckDB) are loaded makes ours run first.
    global _exit_flush_registered
    if not _exit_flush_registered:
        atexit.register(_flush_all_at_exit)
        _register_multiprocessing_exit_flush()
        _exit_flush_registered = True


class _ForkedWorkers:
    """What multiprocessing's after-fork registry holds on to (it keeps weak references)."""


_FORKED_WORKERS = _ForkedWorkers()


def _register_multiprocessing_exit_flush() -> None:
    # A process that multiprocessing forks (a Pool's worker, a Process) ends with os._exit, which runs no
    # atexit handler: its finished calls would be lost. multiprocessing runs its finalizers there instead;
    # it clears the ones inherited from the parent as the child starts, then calls its after-fork hooks,
    # where ours registers the flush for the child.
    # A process that instruments itself inside a multiprocessing worker (spawn, forkserver: as the pool's
    # initializer) registers the same for itself.
    from multiprocessing import parent_process, util

    util.register_after_fork(_FORKED_WORKERS, _flush_when_the_worker_ends)
    if parent_process() is not None:
        _flush_when_the_worker_ends(_FORKED_WORKERS)


def _flush_when_the_worker_ends(_: _ForkedWorkers) -> None:
    from multiprocessing import util

    util.Finalize(None, _flush_all_at_exit, exitpriority=0)
    # A Pool left by its `with` block is terminated: each worker gets SIGTERM, whose default action ends it
    # at once. Unless the process chose its own handler, the worker first exports what it finished (for at
    # most TERM_FLUSH_S), then ends by the same signal as it would have.
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _flush_then_terminate)
    except (ValueError, OSError):  # not the main thread, or no such signal here
        pass


TERM_FLUSH_S = 5.0


def _flush_then_terminate(signum: int, frame: Any) -> None:
    # The handler runs in the main thread, between two of its bytecodes: maybe inside Event.set() of the very
    # pipeline it would flush, holding that Event's lock. So the flush runs in a thread of its own, started
    # without the threading module's locks, and the handler waits for it at most TERM_FLUSH_S + 1 s: a flush
    # that blocks on a lock the main thread holds costs that wait, never a hang.
    if _exit_flush_started:  # the process is ending already, and exporting as it ends: let it
        return
    done = _thread.allocate_lock()
    done.acquire()

    def flush() -> None:
        try:
            for pipeline in list(_PIPELINES):
                pipeline.flush(TERM_FLUSH_S)
        except Exception as exc:
            INTERNAL_ERRORS.record("pipeline.sigterm", exc)
        finally:
            done.release()

    try:
        _thread.start_new_thread(flush, ())
        done.acquire(timeout=TERM_FLUSH_S + 1)
    finally:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
