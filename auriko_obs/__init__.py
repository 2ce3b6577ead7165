"""auriko-obs: make LLM spend and routing through the Auriko router visible.

```python
import auriko_obs, openai
auriko_obs.instrument()                      # or instrument(db="spend.duckdb")
client = openai.OpenAI(base_url=..., api_key=...)
client.chat.completions.create(model="gpt-4o", messages=[...])
auriko_obs.flush()
auriko_obs.Store("auriko_obs.duckdb").calls()   # a DataFrame, one row per call
```

Importing this package is light: pandas and plotly load only when a DataFrame or figure is made.
"""

from __future__ import annotations

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


def instrument(*args: Any, **kwargs: Any) -> Instrumentation:
    """Returns the active Instrumentation after patching the openai SDK.

    See ``auriko_obs.instrumentation.instrument``.
    """
    from .instrumentation import instrument as _instrument

    return _instrument(*args, **kwargs)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext auriko_obs``: instruments the kernel, adds a spend footer and magics (see ``auriko_obs.jupyter``)."""
    from .jupyter import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext auriko_obs``: restores the kernel as it was before loading."""
    from .jupyter import unload_ipython_extension as _unload

    _unload(ipython)


def __getattr__(name: str) -> Any:
    # Lazy: `import auriko_obs` must not pay for openai, OpenTelemetry or DuckDB until they are used.
    if name in ("uninstrument", "wrap", "flush", "stats", "attributes", "Instrumentation"):
        from . import instrumentation as _instrument_module

        return getattr(_instrument_module, name)
    if name == "Store":
        from .store import Store

        return Store
    raise AttributeError(f"module 'auriko_obs' has no attribute {name!r}")
