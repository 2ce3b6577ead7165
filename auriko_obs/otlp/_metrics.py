"""GenAI client metrics, recorded from finished spans on the export worker (never the caller's thread).

Instruments (OpenTelemetry GenAI semantic conventions, plus Auriko's money):

| instrument | kind | unit | Prometheus name |
|---|---|---|---|
| ``gen_ai.client.token.usage`` (1) | histogram | ``{token}`` | ``gen_ai_client_token_usage`` |
| ``gen_ai.client.operation.duration`` | histogram | ``s`` | ``gen_ai_client_operation_duration_seconds`` |
| ``gen_ai.client.operation.time_to_first_chunk`` (2) | histogram | ``s`` | (3) |
| ``auriko.cost.usd`` | counter | ``{USD}`` | ``auriko_cost_usd_total`` |
| ``auriko.cache_savings.usd`` | counter | ``{USD}`` | ``auriko_cache_savings_usd_total`` |
| ``auriko.credits.balance.usd`` (last balance seen) | gauge | ``{USD}`` | ``auriko_credits_balance_usd`` |

(1) with ``gen_ai.token.type`` = input / output; (2) streams only; (3)
``gen_ai_client_operation_time_to_first_chunk_seconds``.

Attributes on every instrument: ``gen_ai.operation.name``, ``gen_ai.provider.name`` (the provider that
served the call), ``gen_ai.request.model``, ``gen_ai.response.model``, ``auriko.routing.strategy``,
``server.address``, ``server.port``, ``openai.response.service_tier`` and
``openai.response.system_fingerprint`` (the OpenAI conventions' metric attributes), and ``error.type`` on
failed calls. The histograms use the bucket boundaries the semantic conventions recommend (tokens 1, 4,
16 … 67108864; seconds 0.01, 0.02 … 81.92).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace.export import SpanExportResult

from .._internal_errors import INTERNAL_ERRORS

log = logging.getLogger("auriko_obs.otlp")

TOKEN_BUCKETS = [4.0**i for i in range(14)]  # 1, 4, 16, … 67108864
DURATION_BUCKETS = [round(0.01 * 2**i, 2) for i in range(14)]  # 0.01, 0.02, … 81.92

METRIC_ATTRIBUTES = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "auriko.routing.strategy",
    "server.address",
    "server.port",
    "openai.response.service_tier",
    "openai.response.system_fingerprint",
    "error.type",
)
_ERROR_TYPE_FALLBACK = "auriko.error.type"


class _Instruments:
    def __init__(self, meter: Any) -> None:
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.ttfc = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from the request to the first chunk of a streamed response",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.cost = meter.create_counter(
            "auriko.cost.usd",
            unit="{USD}",
            description="Cost of the calls in US dollars (router-reported, else estimated)",
        )
        self.savings = meter.create_counter(
            "auriko.cache_savings.usd", unit="{USD}", description="Saved by prompt caching, in US dollars"
        )
        self.balance = meter.create_gauge(
            "auriko.credits.balance.usd", unit="{USD}", description="Auriko credit balance reported with the last call"
        )


class GenAIMetrics:
    """A pipeline consumer: ``export(spans)`` records the metrics of each GenAI span into every meter."""

    def __init__(
        self,
        meter_providers: Sequence[Any],
        *,
        owned: Sequence[Any] = (),
        servers: Sequence[Any] = (),
        flushable: Sequence[Any] = (),
    ) -> None:
        from .._version import __version__

        self._instruments = [_Instruments(mp.get_meter("auriko_obs", __version__)) for mp in meter_providers]
        self._owned = list(owned)  # providers we made (shut down with us)
        self._servers = list(servers)  # Prometheus HTTP servers we started
        self._flushable = list(flushable)  # providers whose readers push (OTLP)
        self.recorded_spans = 0

    @property
    def prometheus_port(self) -> int | None:
        """Returns the port of the Prometheus endpoint this serves, or None when it serves none."""
        return int(self._servers[0].server_address[1]) if self._servers else None

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        for span in spans:
            try:
                self._record(span)
            except Exception as exc:
                INTERNAL_ERRORS.record("metrics", exc)
        return SpanExportResult.SUCCESS

    def _record(self, span: Any) -> None:
        attributes = getattr(span, "_attributes", None) or span.attributes or {}
        operation = attributes.get("gen_ai.operation.name")
        if operation is None:
            return
        labels = {}
        for key in METRIC_ATTRIBUTES:
            value = attributes.get(key)
            if value is not None:
                labels[key] = value
        if "error.type" not in labels and span.status is not None and span.status.status_code.name == "ERROR":
            labels["error.type"] = attributes.get(_ERROR_TYPE_FALLBACK) or "_OTHER"
        duration_s = (span.end_time - span.start_time) / 1e9 if span.end_time and span.start_time else None
        input_tokens = attributes.get("gen_ai.usage.input_tokens")
        output_tokens = attributes.get("gen_ai.usage.output_tokens")
        ttfc = attributes.get("gen_ai.response.time_to_first_chunk")
        cost = attributes.get("auriko.cost.usd")
        savings = attributes.get("auriko.cost.cache_savings_usd")
        balance = attributes.get("auriko.credits.balance_usd")
        for inst in self._instruments:
            if duration_s is not None:
                inst.duration.record(duration_s, labels)
            if isinstance(input_tokens, (int, float)):
                inst.tokens.record(input_tokens, {**labels, "gen_ai.token.type": "input"})
            if isinstance(output_tokens, (int, float)):
                inst.tokens.record(output_tokens, {**labels, "gen_ai.token.type": "output"})
            if isinstance(ttfc, (int, float)):
                inst.ttfc.record(ttfc, labels)
            if isinstance(cost, (int, float)) and cost >= 0:
                inst.cost.add(cost, labels)
            if isinstance(savings, (int, float)) and savings >= 0:
                inst.savings.add(savings, labels)
            if isinstance(balance, (int, float)):
                inst.balance.set(balance, labels)
        self.recorded_spans += 1

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(mp.force_flush(timeout_millis) for mp in self._flushable)

    def shutdown(self) -> None:
        for server in self._servers:
            try:
                server.shutdown()
                server.server_close()
            except Exception as exc:
                INTERNAL_ERRORS.record("prometheus.shutdown", exc)
        for mp in self._owned:
            try:
                mp.shutdown(timeout_millis=5_000)
            except Exception as exc:
                INTERNAL_ERRORS.record("metrics.shutdown", exc)


def parse_listen(value: Any) -> tuple[str, int]:
    """``9464`` or ``"9464"`` → 127.0.0.1:9464; ``"0.0.0.0:9464"`` → as given."""
    text = str(value)
    if ":" in text:
        host, _, port = text.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)
    return "127.0.0.1", int(text)


def build_metrics(
    *, otlp_exporter: Any = None, prometheus: Any = None, app_provider: Any = None, resource: Any = None
) -> GenAIMetrics | None:
    """Returns the metrics consumer, or None when no destination is asked for.

    ``otlp_exporter``: an OTLP metric exporter (read every ``OTEL_METRIC_EXPORT_INTERVAL`` ms, default
    60 s). ``prometheus``: a port or ``host:port`` to serve ``/metrics`` on (127.0.0.1 unless said).
    ``app_provider``: the application's own SDK MeterProvider, recorded into as well.
    """
    from opentelemetry.sdk.metrics import MeterProvider

    providers, owned, servers, flushable = [], [], [], []
    extra = {"resource": resource} if resource is not None else {}
    # Prometheus first: when its port is taken, nothing has been started yet that would need stopping.
    if prometheus is not None and prometheus is not False:
        server = _start_prometheus(prometheus)
        servers.append(server)
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        # A provider of its own: flushing it would queue a collection that the exporter (0.5x) then
        # emits twice on the next scrape, so only the OTLP provider is flushed.
        provider = MeterProvider(metric_readers=[PrometheusMetricReader()], **extra)
        providers.append(provider)
        owned.append(provider)
    if otlp_exporter is not None:
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(otlp_exporter)], **extra)
        providers.append(provider)
        owned.append(provider)
        flushable.append(provider)
    if app_provider is not None:
        providers.append(app_provider)
    if not providers:
        return None
    return GenAIMetrics(providers, owned=owned, servers=servers, flushable=flushable)


def _start_prometheus(listen: Any) -> Any:
    """Returns the HTTP server serving ``/metrics``; raises ImportError or OSError saying what stands in the way."""
    try:
        import opentelemetry.exporter.prometheus  # noqa: F401
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise ImportError(
            f"Prometheus metrics need the otlp extra: pip install 'auriko-obs[otlp]' ({exc.name} is missing)",
            name=exc.name,
        ) from exc
    host, port = parse_listen(listen)
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve Prometheus /metrics on {host}:{port}: {exc.strerror or exc}") from exc
    return server


def sdk_meter_provider() -> Any:
    """Returns the global MeterProvider when the application set an SDK one, else None."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider

    provider = metrics.get_meter_provider()
    return provider if isinstance(provider, MeterProvider) else None
