"""Decides, from ``instrument()``'s arguments and the ``OTEL_*`` variables, where spans and metrics go.

The rules (also in docs/guides/otlp.md):

- The application has an SDK ``TracerProvider`` (passed as ``tracer_provider=``, or set globally):
  our spans are handed to its span processors, so they reach whatever it exports to, inside its
  traces, under its resource (its ``service.name`` unless ``service_name=`` is given). It is never
  replaced. We add one processor to it, which stores other instrumentations' GenAI spans in DuckDB.
  We do not also export over OTLP ourselves unless ``otlp=`` says so explicitly (else the
  application's exporter would receive every span twice).
- Otherwise OTLP export is on when ``otlp=`` says so, or, with ``otlp=None``, when the standard
  variables ask for it (an ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, or ``OTEL_TRACES_EXPORTER=otlp``).
  ``otlp=False`` or ``OTEL_TRACES_EXPORTER=none`` turns it off; ``db=False`` turns DuckDB off.
- Metrics go wherever spans go over OTLP (``OTEL_METRICS_EXPORTER=none`` or ``otlp={"metrics": False}``
  turns that off), to a Prometheus endpoint when ``prometheus=`` is given, and into the application's
  SDK ``MeterProvider`` when it set one globally. ``metrics=False`` turns them all off.
- A setting that comes from the environment and cannot be used (the exporter is not installed, the
  Prometheus port is taken by another worker process) is logged once and counted in
  ``stats()["internal_errors"]``, and the application starts without it: calls still go to DuckDB.
  The same problem with an explicit argument raises, saying what stands in the way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from .._internal_errors import INTERNAL_ERRORS
from ._export import (
    ProviderForwarder,
    QueuedExporter,
    attach_foreign_processor,
    make_metric_exporter,
    make_span_exporter,
    otlp_enabled_by_env,
    sdk_tracer_provider,
)


class Export:
    """What ``instrument()`` set up beside DuckDB: pipeline consumers, and how to flush and close them."""

    def __init__(self) -> None:
        self.consumers: list[Any] = []
        self.resource: Any = None
        self.otlp: QueuedExporter | None = None
        self.metrics: Any = None
        self.forwarder: ProviderForwarder | None = None
        self.foreign: Any = None  # the processor added to the application's provider
        self.foreign_queue: QueuedExporter | None = None

    @property
    def prometheus_port(self) -> int | None:
        return getattr(self.metrics, "prometheus_port", None)

    def flush_store(self, timeout_s: float | None = 30.0) -> bool:
        """Waits for the foreign GenAI spans bound for DuckDB (not for any network exporter)."""
        if self.foreign_queue is None:
            return True
        return self.foreign_queue.force_flush(int((timeout_s if timeout_s is not None else 3600) * 1000))

    def flush(self, timeout_s: float | None = 30.0) -> bool:
        """Returns True once everything is sent: the OTLP span queue, the application's provider, the metrics.

        ``timeout_s`` bounds them all together; an exporter's error is recorded and makes it return False.
        """
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else 3600)
        done = True
        for name, consumer in (
            ("otlp", self.otlp),
            ("foreign-genai", self.foreign_queue),
            ("tracer_provider", self.forwarder),
            ("metrics", self.metrics),
        ):
            if consumer is None:
                continue
            millis = max(0, int((deadline - time.monotonic()) * 1000))
            try:
                done = bool(consumer.force_flush(millis)) and done
            except Exception as exc:  # the SDK's MeterProvider raises when the time is up
                INTERNAL_ERRORS.record(f"{name}.flush", exc)
                done = False
        return done

    def close(self) -> None:
        # The pipeline's shutdown already shut down its consumers (otlp, metrics).
        if self.foreign is not None:
            self.foreign.target = None
        if self.foreign_queue is not None:
            self.foreign_queue.shutdown()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.otlp is not None:
            out["otlp"] = self.otlp.stats()
        if self.forwarder is not None:
            out["tracer_provider"] = {
                "forwarded_spans": self.forwarder.forwarded_spans,
                "unsampled_spans": self.forwarder.unsampled_spans,
            }
        if self.foreign_queue is not None:
            out["foreign_genai"] = self.foreign_queue.stats()
        if self.metrics is not None:
            out["metrics"] = {"recorded_spans": self.metrics.recorded_spans, "prometheus_port": self.prometheus_port}
        return out


def _otlp_options(otlp: Any) -> dict[str, Any]:
    if isinstance(otlp, str):
        return {"endpoint": otlp}
    if isinstance(otlp, dict):
        unknown = set(otlp) - {"endpoint", "protocol", "headers", "timeout", "metrics"}
        if unknown:
            raise TypeError(f"unknown otlp option(s): {', '.join(sorted(unknown))}")
        return dict(otlp)
    return {}


def _unless_from_env(from_env: bool, where: str, setting: str, make: Callable[[], Any]) -> Any:
    """Returns ``make()``; for a setting from the environment, a failure is logged once, counted, and gives None."""
    if not from_env:
        return make()
    try:
        return make()
    except (ImportError, OSError, ValueError) as exc:
        INTERNAL_ERRORS.warn(where, f"{setting} is ignored: {exc}. Calls are still recorded in the DuckDB store.")
        return None


_OTLP_ENV = "OTLP export (OTEL_EXPORTER_OTLP_*)"


def setup_export(
    *,
    otlp: Any,
    tracer_provider: Any,
    metrics: Any,
    prometheus: Any,
    store: Any,
    service_name: str | None,
    default_resource: Callable[[], Any],
) -> Export:
    """Returns what goes beside DuckDB; ``default_resource()`` makes the resource of metrics when the
    application has no provider of its own."""
    from opentelemetry.sdk.trace.export import SpanExporter

    export = Export()
    provider = None if tracer_provider is False else sdk_tracer_provider(tracer_provider)
    if provider is not None:
        export.resource = provider.resource
        if service_name:
            from opentelemetry.sdk.resources import Resource

            export.resource = provider.resource.merge(Resource.create({"service.name": service_name}))
    elif service_name is None:
        export.resource = None  # the instrumentation's own default

    # ---- traces over OTLP
    want_otlp = (provider is None and otlp_enabled_by_env()) if otlp is None else otlp is not False
    options = _otlp_options(otlp)
    if want_otlp:
        if isinstance(otlp, SpanExporter):
            span_exporter = otlp
        else:
            span_exporter = _unless_from_env(
                otlp is None,
                "setup.otlp",
                _OTLP_ENV,
                lambda: make_span_exporter(
                    options.get("endpoint"), options.get("protocol"), options.get("headers"), options.get("timeout")
                ),
            )
        want_otlp = span_exporter is not None
    if want_otlp:
        export.otlp = QueuedExporter(span_exporter, name="otlp")
        export.consumers.append(export.otlp)

    # ---- the application's provider
    if provider is not None:
        export.forwarder = ProviderForwarder(provider)
        export.consumers.append(export.forwarder)
        if store is not None:
            export.foreign_queue = QueuedExporter(store, name="foreign-genai", delay_s=0.5)
            export.foreign = attach_foreign_processor(provider, export.foreign_queue)

    # ---- metrics
    if metrics is not False:
        from ._metrics import build_metrics, sdk_meter_provider

        metric_exporter = None
        metrics_env = {n.strip().lower() for n in os.environ.get("OTEL_METRICS_EXPORTER", "otlp").split(",")}
        if want_otlp and options.get("metrics", True) and "otlp" in metrics_env and not isinstance(otlp, SpanExporter):
            metric_exporter = _unless_from_env(
                otlp is None,
                "setup.otlp",
                _OTLP_ENV,
                lambda: make_metric_exporter(
                    options.get("endpoint"), options.get("protocol"), options.get("headers"), options.get("timeout")
                ),
            )
        elif metrics and want_otlp is False and otlp_enabled_by_env() and "otlp" in metrics_env:
            metric_exporter = _unless_from_env(True, "setup.otlp", _OTLP_ENV, make_metric_exporter)
        resource = export.resource
        if resource is None:
            resource = default_resource()

        # An SDK MeterProvider passed as `metrics=` is recorded into, as the global one would be.
        app_provider = metrics if hasattr(metrics, "get_meter") else sdk_meter_provider()

        def build(listen: Any) -> Any:
            return build_metrics(
                otlp_exporter=metric_exporter, prometheus=listen, app_provider=app_provider, resource=resource
            )

        env_listen = os.environ.get("AURIKO_OBS_PROMETHEUS") if prometheus is None else None
        if env_listen:  # a port taken by another worker process must not stop this one
            export.metrics = _unless_from_env(
                True, "setup.prometheus", f"AURIKO_OBS_PROMETHEUS={env_listen}", lambda: build(env_listen)
            )
            export.metrics = export.metrics or build(None)
        else:
            export.metrics = build(prometheus)
        if export.metrics is not None:
            export.consumers.append(export.metrics)
    return export
