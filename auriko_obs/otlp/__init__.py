"""OpenTelemetry in both directions: OTLP export of spans and GenAI metrics, and an OTLP receiver.

- ``auriko_obs.instrument(otlp=...)`` (or the standard ``OTEL_EXPORTER_OTLP_*`` variables) sends every
  span to a collector as well as to DuckDB, through a bounded queue of its own (``_export``).
- GenAI client metrics are recorded from the spans on the export worker (``_metrics``), exported over
  OTLP and, optionally, on a Prometheus scrape endpoint.
- ``auriko-obs collect`` receives OTLP traces (HTTP protobuf/JSON, gRPC) into the DuckDB store
  (``_receiver``), mapping other instrumentations' attribute names onto ours (``_mapping``).

Nothing here is imported by ``import auriko_obs``; the exporters, grpc and protobuf load on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._setup import Export

__all__ = ["normalize_attributes", "setup_export"]


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
    """Returns the OTLP export, metrics and application-provider forwarding that ``instrument()`` asked for
    (the rules are in ``_setup``); loads the exporters on first use."""
    from ._setup import setup_export as _setup_export

    return _setup_export(
        otlp=otlp,
        tracer_provider=tracer_provider,
        metrics=metrics,
        prometheus=prometheus,
        store=store,
        service_name=service_name,
        default_resource=default_resource,
    )


def normalize_attributes(attributes: dict) -> dict:
    """Returns the attributes with auriko-obs/semconv names added for other instrumentations' names."""
    from ._mapping import normalize

    return normalize(attributes)
