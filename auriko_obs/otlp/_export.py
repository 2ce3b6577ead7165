"""Span export beside DuckDB: to an OTLP collector, and into an application's own TracerProvider.

Every object here is a *consumer* that the pipeline's worker thread calls with each finished batch
(``export(spans)``), never the caller's thread. A consumer that talks to the network (``QueuedExporter``)
only appends to its own bounded queue there; its own thread does the network I/O, so a collector that
is slow or down delays nobody, and what does not fit in the queue is dropped and counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._internal_errors import INTERNAL_ERRORS, positive_setting

log = logging.getLogger("auriko_obs.otlp")

SCOPE_NAME = "auriko_obs"
PROTOCOLS = ("http/protobuf", "grpc")


# ------------------------------------------------------------------------ choosing the exporter


def otlp_enabled_by_env() -> bool:
    """Whether the standard variables ask for OTLP trace export when ``instrument(otlp=None)``.

    An endpoint variable turns it on; ``OTEL_TRACES_EXPORTER=none`` (or a list without ``otlp``)
    turns it off. Without any of them nothing is sent, so that a process without a collector does
    not retry against ``localhost:4318`` forever.
    """
    exporters = os.environ.get("OTEL_TRACES_EXPORTER")
    if exporters is not None:
        names = {n.strip().lower() for n in exporters.split(",") if n.strip()}
        return "otlp" in names
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def protocol_from_env(signal: str = "TRACES") -> str:
    """Returns the protocol the ``OTEL_*`` variables name; one we cannot use falls back to http/protobuf.

    A variable must not keep the application from starting: ``http/json``, valid for OpenTelemetry but
    not offered by its Python exporters, or a typo, is logged once and counted in ``stats()``.
    """
    name = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    if not os.environ.get(name):
        name = "OTEL_EXPORTER_OTLP_PROTOCOL"
    protocol = (os.environ.get(name) or "http/protobuf").strip().lower()
    if protocol not in PROTOCOLS:
        INTERNAL_ERRORS.warn(
            "setup.otlp_protocol",
            f"{name}={protocol} is not supported (the OpenTelemetry "
            "Python exporters offer http/protobuf and grpc); using http/protobuf",
        )
        return "http/protobuf"
    return protocol


def _check_protocol(protocol: str) -> str:
    if protocol == "http/json":
        raise ValueError(
            "OTLP protocol http/json is not offered by the OpenTelemetry Python exporters; use http/protobuf or grpc"
        )
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown OTLP protocol {protocol!r}: use http/protobuf or grpc")
    return protocol


_SIGNAL_PATHS = ("/v1/traces", "/v1/metrics")


def _signal_url(endpoint: str, path: str) -> str:
    """Returns the URL of one signal (``path``: ``/v1/traces`` or ``/v1/metrics``) for an ``otlp=`` endpoint.

    A base URL (``http://host:4318``, ``http://host/otlp``) gets the signal's path appended, as the spec
    says for ``OTEL_EXPORTER_OTLP_ENDPOINT``. A URL that already ends in a signal's path is that signal's
    endpoint as it is, and the other signal's path replaces it for the other one.
    """
    parts = urlsplit(endpoint)
    base = parts.path.rstrip("/")
    if base.endswith(path):
        return endpoint
    for signal_path in _SIGNAL_PATHS:
        if base.endswith(signal_path):
            base = base[: -len(signal_path)]
            break
    return urlunsplit(parts._replace(path=base + path))


_EXPORTERS = {  # signal → (OTEL_* signal name, URL path, gRPC exporter, HTTP exporter) as (module, class)
    "traces": (
        "TRACES",
        "/v1/traces",
        ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
        ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    ),
    "metrics": (
        "METRICS",
        "/v1/metrics",
        ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
        ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
    ),
}


def _make_exporter(
    signal: str, endpoint: str | None, protocol: str | None, headers: dict[str, str] | None, timeout: float | None
) -> Any:
    import importlib

    env_name, path, grpc, http = _EXPORTERS[signal]
    protocol = _check_protocol(protocol.lower()) if protocol else protocol_from_env(env_name)
    kwargs: dict[str, Any] = {}
    if headers:
        kwargs["headers"] = dict(headers)
    if timeout is not None:
        kwargs["timeout"] = timeout
    module, name = grpc if protocol == "grpc" else http
    if endpoint and protocol == "grpc":
        kwargs["endpoint"] = endpoint
        kwargs["insecure"] = urlsplit(endpoint).scheme != "https"
    elif endpoint:
        kwargs["endpoint"] = _signal_url(endpoint, path)
    try:
        exporter_class = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(
            f"OTLP export needs the otlp extra: pip install 'auriko-obs[otlp]' ({exc.name} is missing)", name=exc.name
        ) from exc
    return exporter_class(**kwargs)


def make_span_exporter(
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
) -> SpanExporter:
    """Returns the official OTLP span exporter for the protocol; unset options come from ``OTEL_*``."""
    return _make_exporter("traces", endpoint, protocol, headers, timeout)


def make_metric_exporter(
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Any:
    """Returns the official OTLP metric exporter (cumulative temporality unless ``OTEL_*`` says otherwise)."""
    return _make_exporter("metrics", endpoint, protocol, headers, timeout)


# ------------------------------------------------------------------------ the bounded queue


def _spans_setting(name: str, default: int) -> float:
    """A count of spans from the environment: a whole number above 0 (a bad one is reported, the default used)."""
    return positive_setting(name, default, "otlp", " of spans", integer=True)


class QueuedExporter:
    """Hands span batches to a (slow, network) SpanExporter from a thread of its own.

    ``export`` only appends to a bounded deque and returns; spans beyond ``max_queue_size`` are dropped
    and counted in ``dropped_spans``. Batches of up to ``max_batch_size`` go out every ``delay_s``
    (``OTEL_BSP_MAX_QUEUE_SIZE``, ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` and ``OTEL_BSP_SCHEDULE_DELAY``
    set the three; the queue defaults to 20,000 spans, not the SDK's 2,048). A value that is not a positive
    number (a whole one for the two sizes) is reported once and its default used: a negative delay would make
    the thread spin, a negative queue size would drop every span.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int | None = None,
        max_batch_size: int | None = None,
        delay_s: float | None = None,
        name: str = "otlp",
    ) -> None:
        self.exporter = exporter
        self.name = name
        self.max_queue_size = max_queue_size or int(_spans_setting("OTEL_BSP_MAX_QUEUE_SIZE", 20_000))
        self.max_batch_size = max_batch_size or int(_spans_setting("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))
        if delay_s is None:
            delay_s = positive_setting("OTEL_BSP_SCHEDULE_DELAY", 1000, "otlp", " of milliseconds") / 1000
        self.delay_s = delay_s
        self.exported_spans = 0
        self.dropped_spans = 0
        self.failed_spans = 0
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"auriko-obs-{name}", daemon=True)
        self._thread.start()

    def stats(self) -> dict[str, int]:
        return {
            "exported_spans": self.exported_spans,
            "dropped_spans": self.dropped_spans,
            "failed_spans": self.failed_spans,
            "queued_spans": len(self._queue),
        }

    # called on the pipeline's worker thread
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        room = self.max_queue_size - len(self._queue)
        if room < len(spans):
            lost = len(spans) - max(room, 0)
            if self.dropped_spans == 0 or (self.dropped_spans + lost) // 10_000 > self.dropped_spans // 10_000:
                log.warning(
                    "auriko_obs: %s queue full (%d spans): %d spans dropped so far",
                    self.name,
                    self.max_queue_size,
                    self.dropped_spans + lost,
                )
            self.dropped_spans += lost
            spans = spans[: max(room, 0)]
        self._queue.extend(spans)
        if len(self._queue) >= self.max_batch_size:
            self._wake.set()
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Returns True once every span queued before the call has been handed to the exporter."""
        if not self._thread.is_alive():
            return not self._queue
        marker = threading.Event()
        self._queue.append(marker)
        self._wake.set()
        return marker.wait(timeout_millis / 1000)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self.force_flush(int(timeout_s * 1000))
        self._stopping = True
        self._wake.set()
        try:
            self.exporter.shutdown()  # interrupts a retry back-off against a collector that is down
        except Exception as exc:
            INTERNAL_ERRORS.record(f"{self.name}.shutdown", exc)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.delay_s)
            self._wake.clear()
            try:
                self._drain()
            except Exception as exc:
                INTERNAL_ERRORS.record(self.name, exc)

    def _drain(self) -> None:
        queue = self._queue
        while queue and not self._stopping:
            batch: list[ReadableSpan] = []
            marker = None
            while queue and len(batch) < self.max_batch_size:
                item = queue.popleft()
                if isinstance(item, threading.Event):
                    marker = item
                    break
                batch.append(item)
            if batch:
                try:
                    result = self.exporter.export(batch)
                    ok = getattr(result, "name", "SUCCESS") == "SUCCESS"
                except Exception as exc:
                    INTERNAL_ERRORS.record(f"export.{self.name}", exc)
                    ok = False
                if ok:
                    self.exported_spans += len(batch)
                else:
                    self.failed_spans += len(batch)
            if marker is not None:
                marker.set()


# ------------------------------------------------------------------------ the application's provider


def sdk_tracer_provider(explicit: Any = None) -> Any:
    """Returns the SDK TracerProvider to join: ``explicit``, else the global one if it is an SDK provider."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    if explicit is not None:
        if not isinstance(explicit, TracerProvider):
            raise TypeError("tracer_provider must be an opentelemetry.sdk.trace.TracerProvider")
        return explicit
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


class ProviderForwarder:
    """Hands our finished spans to the span processors of the application's TracerProvider.

    So whatever the application exports to (its collector, its vendor) receives the LLM spans, inside
    the application's traces. The provider's sampler is respected: a span under a parent that was not
    sampled is not forwarded; a root span is forwarded when the sampler says so. (DuckDB gets them all.)
    """

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.forwarded_spans = 0
        self.unsampled_spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        processor = self.provider._active_span_processor  # the SDK's (stable) multi-processor
        sampler = getattr(self.provider, "sampler", None)
        for span in spans:
            parent = span.parent
            if parent is not None:
                sampled = parent.trace_flags.sampled
            elif sampler is not None:
                decision = sampler.should_sample(None, span.context.trace_id, span.name, span.kind, span.attributes)
                sampled = decision.decision.is_sampled()
            else:
                sampled = True
            if not sampled:
                self.unsampled_spans += 1
                continue
            processor.on_end(span)
            self.forwarded_spans += 1
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        return None  # the provider belongs to the application


class ForeignGenAIProcessor(SpanProcessor):
    """A span processor that auriko-obs adds to the application's TracerProvider.

    It stores in DuckDB the GenAI spans that *other* instrumentations (OpenLLMetry, OpenInference,
    Logfire…) produce through that provider, their attribute names mapped onto our columns, so that
    they show up in ``llm_calls`` next to ours. Spans without GenAI attributes (HTTP, database…) and
    our own spans (which reach DuckDB directly) are ignored. ``on_end`` only appends to the target's
    bounded queue. The SDK cannot remove a processor, so ``uninstrument()`` detaches it (a no-op).
    """

    def __init__(self) -> None:
        self.target: Any = None  # a QueuedExporter over the DuckDB exporter, or None when detached

    def on_end(self, span: ReadableSpan) -> None:
        target = self.target
        if target is None:
            return
        try:
            scope = span.instrumentation_scope
            if scope is not None and scope.name == SCOPE_NAME:
                return
            from ._mapping import is_genai, normalize

            attributes = dict(span.attributes or {})
            if not is_genai(attributes):
                return
            target.export([_with_attributes(span, normalize(attributes))])
        except Exception as exc:
            INTERNAL_ERRORS.record("foreign_span", exc)

    def shutdown(self) -> None:
        self.target = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        target = self.target
        return target.force_flush(timeout_millis) if target is not None else True


def _with_attributes(span: ReadableSpan, attributes: dict) -> ReadableSpan:
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


_ATTACHED: weakref.WeakKeyDictionary[Any, ForeignGenAIProcessor] = weakref.WeakKeyDictionary()
_attach_lock = threading.Lock()


def attach_foreign_processor(provider: Any, target: Any) -> ForeignGenAIProcessor:
    """Adds (once per provider) our processor to the provider and points it at ``target``."""
    with _attach_lock:
        processor = _ATTACHED.get(provider)
        if processor is None:
            processor = ForeignGenAIProcessor()
            provider.add_span_processor(processor)
            _ATTACHED[provider] = processor
        processor.target = target
        return processor


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
