"""`import auriko_obs` stays light."""

import subprocess
import sys


def test_import_does_not_load_pandas_plotly_or_openai():
    code = (
        "import sys, auriko_obs; print(sorted(m for m in ('pandas', 'plotly', 'openai', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_instrument_does_not_load_pandas_or_plotly(tmp_path):
    code = (
        f"import sys, auriko_obs; auriko_obs.instrument(db={str(tmp_path / 'x.duckdb')!r}); "
        "print(sorted(m for m in ('pandas', 'plotly') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
