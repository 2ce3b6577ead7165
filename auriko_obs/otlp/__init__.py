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

__all__ = ["normalize_attributes"]


def normalize_attributes(attributes: dict) -> dict:
    """Returns the attributes with auriko-obs/semconv names added for other instrumentations' names."""
    from ._mapping import normalize

    return normalize(attributes)
