"""auriko-obs: make LLM spend and routing through the Auriko router visible.

```python
import auriko_obs, openai
auriko_obs.instrument()                      # or instrument(db="spend.duckdb")
client = openai.OpenAI(base_url=..., api_key=...)
client.chat.completions.create(model="gpt-4o", messages=[...])
auriko_obs.flush()
auriko_obs.Store("auriko_obs.duckdb").calls()   # a DataFrame, one row per call
```

Importing this package is light: openai, OpenTelemetry's SDK, DuckDB, pandas and plotly load only
when something is instrumented, stored, or drawn. The functions below carry their real signatures and
docstrings, and call the implementation in ``auriko_obs.instrumentation`` (``tests/test_import.py``
checks that both match); ``Instrumentation`` and ``Store`` load on first use.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .instrumentation import Instrumentation
    from .store import Store

__all__ = [
    "Instrumentation",
    "Store",
    "__version__",
    "attributes",
    "flush",
    "instrument",
    "stats",
    "uninstrument",
    "wrap",
]


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
    from . import instrumentation

    return instrumentation.instrument(
        db,
        lake=lake,
        service_name=service_name,
        otlp=otlp,
        capture_content=capture_content,
        tracer_provider=tracer_provider,
        metrics=metrics,
        prometheus=prometheus,
    )


def uninstrument() -> None:
    """Restores every patched method and flushes what was recorded."""
    from . import instrumentation

    instrumentation.uninstrument()


def wrap(client: Any) -> Any:
    """Returns the same client with its own methods instrumented (other clients stay untouched)."""
    from . import instrumentation

    return instrumentation.wrap(client)


def flush(timeout_s: float | None = 30.0) -> bool:
    """Returns True once every finished call is in the store and sent over OTLP (True at once when not
    instrumented); False when ``timeout_s`` ran out or a call finished since the previous flush could not
    be stored."""
    from . import instrumentation

    return instrumentation.flush(timeout_s)


def stats() -> dict[str, Any]:
    """Returns the active instrumentation's counters (empty when not instrumented)."""
    from . import instrumentation

    return instrumentation.stats()


@contextlib.contextmanager
def attributes(values: Mapping[str, Any]) -> Iterator[None]:
    """Adds span attributes to every call made inside the block (in this thread or task)."""
    from . import instrumentation

    with instrumentation.attributes(values):
        yield


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext auriko_obs``: instruments the kernel, adds a spend footer and magics (see ``auriko_obs.jupyter``)."""
    from .jupyter import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext auriko_obs``: restores the kernel as it was before loading."""
    from .jupyter import unload_ipython_extension as _unload

    _unload(ipython)


def __getattr__(name: str) -> Any:
    # The classes load on first use: `import auriko_obs` must not pay for OpenTelemetry or DuckDB.
    if name == "Instrumentation":
        from .instrumentation import Instrumentation

        return Instrumentation
    if name == "Store":
        from .store import Store

        return Store
    raise AttributeError(f"module 'auriko_obs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
