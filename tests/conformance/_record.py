"""Records a replayed call through the official OpenTelemetry OpenAI instrumentation, or through ours.

Each side gets its own in-memory span exporter and metric reader (the SDK's), so the two see the same
recorded HTTP answer and nothing else. The comparison keeps the attribute families the conventions
define for these spans: ``gen_ai.*``, ``openai.*``, ``server.*`` and ``error.type``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auriko_obs

from ._replay import Call, Outcome, replay

COMPARED_PREFIXES = ("gen_ai.", "openai.", "server.")
COMPARED_NAMES = {"error.type"}
METRICS = ("gen_ai.client.token.usage", "gen_ai.client.operation.duration")


@dataclass
class Recorded:
    """One side's record of a call: its span, its metric points and what the caller saw."""

    span: ReadableSpan
    metrics: dict[str, Any]  # name → {"unit", "boundaries", "points": [(attributes, count, sum)]}
    outcome: Outcome


def compared(attributes: Any) -> dict[str, Any]:
    """Returns the attributes the conventions define for these spans, arrays as tuples."""
    return {
        k: tuple(v) if isinstance(v, (list, tuple)) else v
        for k, v in dict(attributes).items()
        if k.startswith(COMPARED_PREFIXES) or k in COMPARED_NAMES
    }


def _metrics(reader: InMemoryMetricReader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name not in METRICS or not isinstance(metric.data, Histogram):
                    continue
                points = sorted(
                    ((tuple(sorted((p.attributes or {}).items())), p.count, p.sum) for p in metric.data.data_points),
                    key=repr,
                )
                boundaries = {tuple(p.explicit_bounds) for p in metric.data.data_points}
                out[metric.name] = {"unit": metric.unit, "boundaries": boundaries, "points": points}
    return out


def _only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def official(call: Call) -> Recorded:
    """Returns the official instrumentation's record of the call."""
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        outcome = replay(call)
    finally:
        instrumentor.uninstrument()
    return Recorded(_only_span(exporter), _metrics(reader), outcome)


def ours(call: Call, db_path: str) -> Recorded:
    """Returns our record of the call, its row written into the store at ``db_path`` (which several calls may
    share: ``rows_by_span_id`` reads them back)."""
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    auriko_obs.instrument(
        db=db_path, otlp=exporter, tracer_provider=False, metrics=MeterProvider(metric_readers=[reader])
    )
    try:
        outcome = replay(call)
        assert auriko_obs.flush(30)
    finally:
        auriko_obs.uninstrument()
    return Recorded(_only_span(exporter), _metrics(reader), outcome)


def rows_by_span_id(db_path: str) -> dict[str, dict[str, Any]]:
    """Returns the store's ``llm_calls`` rows by span id, checking that no span id has two rows."""
    rows = auriko_obs.Store(db_path).calls().to_dict("records")
    by_span_id = {str(row["span_id"]): {str(k): v for k, v in row.items()} for row in rows}
    assert len(by_span_id) == len(rows), "a span id with two rows"
    return by_span_id
