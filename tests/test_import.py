"""`import auriko_obs` stays light, and still shows the public API with its real signatures."""

import inspect
import json
import subprocess
import sys

import pytest

import auriko_obs
from auriko_obs import instrumentation

# What `import auriko_obs` must not load: the SDK it patches, the exporter pipeline, the store, the analyses.
HEAVY = ("openai", "opentelemetry.sdk", "duckdb", "pyarrow", "numpy", "pandas", "plotly")


def _loaded_after(code: str) -> dict:
    """Returns what ``code`` printed as JSON, run in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    return json.loads(out)


def test_import_and_a_look_at_the_public_api_load_nothing_heavy_and_instrument_no_pandas(tmp_path):
    # One interpreter for both: each start-up imports what it checks (openai alone takes half a second).
    code = (
        "import inspect, json, sys, auriko_obs\n"
        "shown = {n: str(inspect.signature(getattr(auriko_obs, n))) for n in "
        "('instrument', 'uninstrument', 'wrap', 'flush', 'stats', 'attributes')}\n"
        "docs = all(getattr(auriko_obs, n).__doc__ for n in shown)\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        f"auriko_obs.instrument(db={str(tmp_path / 'x.duckdb')!r})\n"
        "drawing = sorted(m for m in ('pandas', 'plotly') if m in sys.modules)\n"
        "print(json.dumps({'dir': dir(auriko_obs), 'heavy': heavy, 'shown': shown, 'docs': docs, "
        "'drawing': drawing}))"
    )
    seen = _loaded_after(code)
    assert seen["heavy"] == []
    assert seen["drawing"] == []  # instrumenting loads no pandas or plotly either
    assert set(auriko_obs.__all__) <= set(seen["dir"])
    assert seen["docs"]
    instrument = seen["shown"]["instrument"]
    assert instrument.startswith("(db: ") and "service_name" in instrument and "kwargs" not in instrument


@pytest.mark.parametrize("name", ["instrument", "uninstrument", "wrap", "flush", "stats", "attributes"])
def test_public_function_has_the_signature_and_docstring_of_its_implementation(name):
    shown, implementation = getattr(auriko_obs, name), getattr(instrumentation, name)
    assert inspect.signature(shown) == inspect.signature(implementation)
    assert inspect.getdoc(shown) == inspect.getdoc(implementation)


def test_public_classes_are_the_implementations():
    from auriko_obs.store import Store

    assert auriko_obs.Store is Store and auriko_obs.Instrumentation is instrumentation.Instrumentation
    with pytest.raises(AttributeError, match="no attribute 'Stor'"):
        _ = auriko_obs.Stor
