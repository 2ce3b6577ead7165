"""Instrumentation of the ``openai`` SDK (and the ``auriko`` SDK when installed).

``instrument()`` patches ``OpenAI``/``AsyncOpenAI`` process-wide (subclasses such as the auriko SDK's
``AurikoAsyncOpenAI`` included, and ``auriko.Client``/``AsyncClient``): ``chat.completions.create``
and ``.parse`` (``.stream()`` and ``with_raw_response`` go through them), ``responses.create`` and
``.parse``, and ``embeddings.create``. Each call becomes one OpenTelemetry span, named
``"{operation} {model}"``, exported off the caller's thread.

Configuration:
- ``AURIKO_OBS_DB``: the store path when ``instrument(db=None)``.
- ``AURIKO_OBS_LAKE_FLUSH_MB`` / ``AURIKO_OBS_LAKE_FLUSH_S``: how much, and how long, ``instrument(lake=…)``
  buffers before it publishes a file; ``AWS_*``: how it reaches an ``s3://`` lake (``auriko_obs.store._lake_location``).
- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``: the spans' resource.
- ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``: record prompts and completions
  (off by default; ``capture_content=True`` does the same).
- ``OTEL_EXPORTER_OTLP_*``, ``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``, ``OTEL_BSP_*``:
  OTLP export (see ``instrument``); ``AURIKO_OBS_PROMETHEUS``: a Prometheus ``/metrics`` port.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ._call_record import EXTRA, INTERNAL_ERRORS, CallRecord
from ._patch import (
    AURIKO_TARGETS,
    HOOKS,
    HTTP_TARGETS,
    OPENAI_TARGETS,
    STREAM_HELPER_TARGETS,
    Patcher,
    StopCall,
    wrap_instance_methods,
)
from ._pipeline import Pipeline

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

__all__ = [
    "CallRecord",
    "Instrumentation",
    "StopCall",
    "add_before_call",
    "attributes",
    "before_call_hooks",
    "flush",
    "flush_store",
    "instrument",
    "remove_before_call",
    "stats",
    "uninstrument",
    "wrap",
]

_CAPTURE_VALUES = {"true", "1", "span_only", "span_and_event"}


class Instrumentation:
    """The active instrumentation: where spans go and how many got there."""

    def __init__(
        self,
        pipeline: Pipeline,
        db_path: str | None,
        service_name: str,
        capture_content: bool,
        lake: str | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.db_path = db_path
        self.lake = lake  # the lake's root, when spans are written to one
        self.service_name = service_name
        self.capture_content = capture_content
        self.export: Any = None  # auriko_obs.otlp._setup.Export: OTLP, metrics, the app's provider
        self.config: Any = None

    def __repr__(self) -> str:
        lake = f", lake={self.lake!r}" if self.lake else ""
        return f"Instrumentation(db={self.db_path!r}{lake}, service_name={self.service_name!r})"

    def flush(self, timeout_s: float | None = 30.0) -> bool:
        """Returns True once every finished call is in the store and sent over OTLP (spans and metrics).

        ``timeout_s`` bounds it all. A collector that is down or an export error makes it return False,
        never raise.
        """
        started = time.monotonic()
        done = self.flush_store(timeout_s)
        if self.export is not None:  # a span the store could not take still goes to the collector
            done = self.export.flush(_time_left(timeout_s, started)) and done
        return done

    def flush_store(self, timeout_s: float | None = 30.0) -> bool:
        """Returns True once every finished call is in the store (and in the lake's published files); it does not
        wait on a collector.

        False (never an exception) when ``timeout_s`` ran out, or when any call finished since the previous
        flush is not in the store: a span it refused, batches waiting in memory for a full disk…

        The store file is let go too (the writer holds it while batches keep coming): after a flush, any
        program may open it, even one that does not wait for it as auriko-obs's readers do."""
        started = time.monotonic()
        done = self.pipeline.flush(timeout_s)
        store = self.store_exporter
        if store is not None:  # batches held in memory for an unwritable store are tried once more
            done = store.force_flush() and done
            store.release()
        lake = self.lake_exporter
        if lake is not None:  # buffered rows become files now; files held for an unreachable lake are tried again
            done = lake.force_flush() and done
        if self.export is not None:  # other instrumentations' GenAI spans, from the app's provider
            done = self.export.flush_store(_time_left(timeout_s, started)) and done
        return done

    @property
    def store_exporter(self) -> Any:
        """Returns the exporter into the DuckDB store, or None (``instrument(db=False)``)."""
        return next((e for e in self.pipeline.exporters if hasattr(e, "spooled_spans")), None)

    @property
    def lake_exporter(self) -> Any:
        """Returns the exporter into the lake, or None (no ``instrument(lake=…)``)."""
        return next((e for e in self.pipeline.exporters if hasattr(e, "published_spans")), None)

    def stats(self) -> dict[str, Any]:
        """Returns counters: spans exported and dropped, export failures, internal errors, the store's.

        ``exported_spans`` counts spans that every exporter took (DuckDB: written, or spooled while another
        process held the file); ``export_failures`` the spans each exporter could not take, for DuckDB those
        not in the store (a file it cannot write, whose batches wait in the spool or in memory; rows it
        refused). ``store`` has the DuckDB writer's own counters (``StoreWriter.stats``), ``lake`` the lake
        writer's (``LakeWriter.stats``).
        """
        store = self.store_exporter
        lake = self.lake_exporter
        return {
            "exported_spans": self.pipeline.exported,
            "dropped_spans": self.pipeline.dropped,
            "export_failures": dict(self.pipeline.export_failures),
            "internal_errors": dict(INTERNAL_ERRORS.counts),
            "spooled_spans": getattr(store, "spooled_spans", 0),
            **({"store": store.stats()} if store is not None else {}),
            **({"lake": lake.stats()} if lake is not None else {}),
            **(self.export.stats() if self.export is not None else {}),
        }


def _time_left(timeout_s: float | None, started: float) -> float | None:
    return None if timeout_s is None else max(0.0, timeout_s - (time.monotonic() - started))


_lock = threading.RLock()
_active: Instrumentation | None = None
_patcher = Patcher()


def _capture_from_env() -> bool:
    return os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip().lower() in _CAPTURE_VALUES


def _resource(service_name: str | None) -> Resource:
    from opentelemetry.sdk.resources import Resource

    if service_name:
        return Resource.create({"service.name": service_name})
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c") else "python"
        resource = resource.merge(Resource.create({"service.name": script or "python"}))
    return resource


def _start(
    db: str | os.PathLike[str] | bool | None,
    service_name: str | None,
    capture: bool,
    otlp: Any = None,
    tracer_provider: Any = None,
    metrics: Any = None,
    prometheus: Any = None,
    lake: str | os.PathLike[str] | None = None,
) -> Instrumentation:
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from ..store import DuckDBSpanExporter, default_path

    exporters: list[Any] = []
    db_path = None
    if db is not False and not (lake is not None and db is None):
        exporter = DuckDBSpanExporter(default_path() if db is None or db is True else db)
        db_path = exporter.path
        exporters.append(exporter)
    lake_root = None
    if lake is not None:
        from ..store import LakeSpanExporter

        lake_exporter = LakeSpanExporter(lake)
        lake_root = lake_exporter.root
        exporters.append(lake_exporter)
    export = None
    if _wants_otel(otlp, tracer_provider, metrics, prometheus):
        from ..otlp import setup_export

        export = setup_export(
            otlp=otlp,
            tracer_provider=tracer_provider,
            metrics=metrics,
            prometheus=prometheus,
            store=exporters[0] if exporters else None,
            service_name=service_name,
            default_resource=lambda: _resource(service_name),
        )
    resource = export.resource if export is not None and export.resource is not None else _resource(service_name)
    if export is not None:
        exporters.extend(export.consumers)
    pipeline = Pipeline(exporters, resource, InstrumentationScope("auriko_obs", __version__), capture_content=capture)
    HOOKS.submit = pipeline.submit
    HOOKS.capture_content = capture
    active = Instrumentation(pipeline, db_path, str(resource.attributes.get("service.name")), capture, lake_root)
    active.export = export
    return active


def _wants_otel(otlp: Any, tracer_provider: Any, metrics: Any, prometheus: Any) -> bool:
    # Keeps `instrument()` from importing the OTLP machinery when nothing asks for it.
    if otlp not in (None, False) or tracer_provider not in (None, False) or metrics or prometheus is not None:
        return True
    if os.environ.get("AURIKO_OBS_PROMETHEUS"):
        return True
    if otlp is None and (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_TRACES_EXPORTER")
    ):
        return True
    if metrics is None:
        from opentelemetry import metrics as metrics_api

        if type(metrics_api.get_meter_provider()).__module__.startswith("opentelemetry.sdk"):
            return True
    if tracer_provider is None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        return isinstance(trace.get_tracer_provider(), TracerProvider)
    return False


def instrument(
    db: str | os.PathLike[str] | bool | None = None,
    *,
    lake: str | os.PathLike[str] | None = None,
    service_name: str | None = None,
    otlp: Any = None,
    capture_content: bool = False,
    tracer_provider: Any = None,
    metrics: Any = None,
    prometheus: int | str | None = None,
) -> Instrumentation:
    """Returns the active Instrumentation after patching the openai SDK process-wide.

    ``db``: the DuckDB store path (default ``$AURIKO_OBS_DB`` or ``./auriko_obs.duckdb``; ``False``
    for none). Calling it again is harmless; with different arguments it first flushes, then switches.

    ``lake``: also (or, without ``db``, only) write the spans into a lake: a folder, or ``s3://bucket/prefix``,
    of zstd Parquet files, one folder per UTC date, that many processes and hosts write at once and DuckDB,
    Spark or any Parquet reader read (``docs/guides/scaling-out.md``). Rows are published as files every
    ``$AURIKO_OBS_LAKE_FLUSH_S`` seconds (60) or ``$AURIKO_OBS_LAKE_FLUSH_MB`` MiB (64), and by ``flush()``.

    ``otlp``: also send spans (and GenAI metrics) to an OTLP collector. ``None`` (default): when the
    standard variables ask for it (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``..._TRACES_ENDPOINT`` set, or
    ``OTEL_TRACES_EXPORTER=otlp``; ``OTEL_TRACES_EXPORTER=none`` turns it off) and the application has
    no TracerProvider of its own. ``True``: on, configured by ``OTEL_*``. ``False``: off. A URL: the
    endpoint. A dict: ``endpoint``, ``protocol`` (``http/protobuf`` or ``grpc``), ``headers``,
    ``timeout``, ``metrics`` (default True). A ``SpanExporter``: used as is.

    ``tracer_provider``: the application's SDK TracerProvider (default: the global one, if it is an
    SDK provider; ``False``: ignore it). Our spans are handed to its span processors, and a processor
    is added to it that stores other instrumentations' GenAI spans in DuckDB. It is never replaced.

    ``metrics``: GenAI metrics (default: on when an OTLP exporter, a Prometheus port or an application
    MeterProvider is there to take them); an SDK ``MeterProvider`` given here is recorded into as well.
    ``prometheus``: serve ``/metrics`` on this port (or
    ``"host:port"``; 127.0.0.1 by default; ``$AURIKO_OBS_PROMETHEUS`` does the same).
    """
    global _active
    from ..store import default_path

    capture = capture_content or _capture_from_env()
    # The variable is read where it is used (a port it names that is taken is a warning, not an error);
    # here only to notice that it changed.
    config = (
        _key(otlp),
        _key(tracer_provider),
        _key(metrics),
        prometheus if prometheus is not None else os.environ.get("AURIKO_OBS_PROMETHEUS"),
    )
    with _lock:
        wanted_db = (
            None if db is False else os.path.abspath(os.fspath(default_path() if db is None or db is True else db))
        )
        if lake is not None and db is None:
            wanted_db = None
        wanted_lake = None if lake is None else _lake_root(lake)
        if _active is not None and (
            _active.db_path != wanted_db
            or _active.lake != wanted_lake
            or _active.capture_content != capture
            or (service_name and service_name != _active.service_name)
            or _active.config != config
        ):
            _shutdown(_active)
            _active = None
        if _active is None:
            _active = _start(db, service_name, capture, otlp, tracer_provider, metrics, prometheus, lake)
            _active.config = config
        _patcher.apply(OPENAI_TARGETS + AURIKO_TARGETS + HTTP_TARGETS + STREAM_HELPER_TARGETS)
        return _active


def _lake_root(lake: str | os.PathLike[str]) -> str:
    from ..store import lake_root

    return lake_root(lake)


def _key(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, dict):
        return repr(sorted(value.items(), key=lambda kv: kv[0]))
    return id(value)


def _shutdown(active: Instrumentation) -> None:
    active.pipeline.shutdown()
    if active.export is not None:
        active.export.close()


def uninstrument() -> None:
    """Restores every patched method and flushes what was recorded."""
    global _active
    with _lock:
        _patcher.revert()
        HOOKS.submit = None
        if _active is not None:
            _shutdown(_active)
            _active = None


def wrap(client: Any) -> Any:
    """Returns the same client with its own methods instrumented (other clients stay untouched)."""
    with _lock:
        global _active
        if _active is None:
            _active = _start(None, None, _capture_from_env())
        # Header capture and the stream helpers' close: no-ops for calls that are not being recorded.
        _patcher.apply(HTTP_TARGETS + STREAM_HELPER_TARGETS)
        wrap_instance_methods(client)
    return client


def add_before_call(hook: Callable[[CallRecord], None]) -> None:
    """Runs ``hook(record)`` on the caller's thread before each recorded call is sent, after the hooks
    added before it. A hook that raises ``StopCall`` (or a subclass) stops the call: it is recorded as a
    failed call and the exception reaches the caller. Any other exception is counted
    (``internal_errors["before_call"]``) and the call goes ahead. Adding a hook twice runs it once."""
    with _lock:
        if hook not in HOOKS.before_call:
            HOOKS.before_call = (*HOOKS.before_call, hook)


def remove_before_call(hook: Callable[[CallRecord], None]) -> None:
    """Stops running a hook added by ``add_before_call`` (one not added is fine)."""
    with _lock:
        HOOKS.before_call = tuple(h for h in HOOKS.before_call if h != hook)


def before_call_hooks() -> tuple[Callable[[CallRecord], None], ...]:
    """Returns the hooks run before each call, in order."""
    return HOOKS.before_call


def flush(timeout_s: float | None = 30.0) -> bool:
    """Returns True once every finished call is in the store and sent over OTLP (True at once when not
    instrumented); False when ``timeout_s`` ran out or a call finished since the previous flush could not
    be stored."""
    active = _active
    return active.flush(timeout_s) if active is not None else True


def flush_store(timeout_s: float | None = 30.0) -> bool:
    """Returns True once every finished call is in the store, without waiting on a collector."""
    active = _active
    return active.flush_store(timeout_s) if active is not None else True


def stats() -> dict[str, Any]:
    """Returns the active instrumentation's counters (empty when not instrumented)."""
    active = _active
    return active.stats() if active is not None else {}


def active() -> Instrumentation | None:
    """Returns the active Instrumentation, or None."""
    return _active


@contextlib.contextmanager
def attributes(values: Mapping[str, Any]) -> Iterator[None]:
    """Adds span attributes to every call made inside the block (in this thread or task)."""
    merged = dict(EXTRA.get() or {})
    merged.update(values)
    token = EXTRA.set(merged)
    try:
        yield
    finally:
        EXTRA.reset(token)
