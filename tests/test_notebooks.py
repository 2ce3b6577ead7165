"""The notebooks in notebooks/: executed top to bottom in a real Jupyter kernel, and committed without outputs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "auriko-obs-tests"


def test_there_are_at_least_three_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert {"quickstart", "provider_mix_and_cache_savings", "budget_burn_and_forecast"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs"
        assert "attachments" not in cell or not cell.attachments


@pytest.fixture(scope="module")
def kernel_manager_factory(tmp_path_factory):
    """Returns a factory of kernel managers whose kernel runs this interpreter (not whatever `python3` is)."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(
        str(kernels / KERNEL_NAME),
        overrides={"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]},
    )
    specs = KernelSpecManager(kernel_dirs=[str(kernels)])

    def make() -> KernelManager:
        return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)

    return make


@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, kernel_manager_factory):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    store = tmp_path / "notebook.duckdb"
    env = {k: v for k, v in os.environ.items() if k not in ("AURIKO_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY")}
    env.update(AURIKO_OBS_DB=str(store), JPY_SESSION_NAME=str(path), PYTHONUNBUFFERED="1")
    km = kernel_manager_factory()
    client = NotebookClient(nb, km=km, timeout=120, allow_errors=False, resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)  # raises CellExecutionError on the first failing cell

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    footers = [o for o in outputs if "auriko-obs-footer" in o.get("data", {}).get("text/html", "")]
    assert footers, "no cell footer was shown"
    assert all("auriko-obs ·" in f["data"]["text/plain"] for f in footers)
    calls_cells = [c for c in nb.cells if c.cell_type == "code" and "client.chat" in c.source]
    assert len(footers) >= len(calls_cells) - 1  # the cleanup cell closes the client

    import auriko_obs

    rows = auriko_obs.Store(str(store)).calls()
    assert len(rows) > 0
    attrs = [json.loads(a) for a in rows["attributes"]]
    assert {a.get("auriko.notebook.path") for a in attrs} == {str(path)}
    assert rows["notebook_cell"].notna().all()
    _check_story(path.stem, nb, rows, outputs)


def _check_story(name, nb, rows, outputs):
    """Checks what each notebook is there to show actually happened."""
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    tables = "\n".join(o.get("data", {}).get("text/html", "") for o in outputs)
    figures = [
        o["data"]["application/vnd.plotly.v1+json"]["layout"].get("title", {}).get("text", "")
        for o in outputs
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    if name == "quickstart":
        assert len(rows) == 3 and rows["status"].eq("ok").all()
        assert any(
            "Store" in (o.get("data", {}).get("text/html", "") or "")
            or "auriko-obs store" in o.get("data", {}).get("text/html", "")
            for o in outputs
        )
    elif name == "provider_mix_and_cache_savings":
        assert rows["provider"].nunique() >= 3 and rows["cached_tokens"].sum() > 0
        # The analyses' tables and plots' figures (not hand-written SQL or Plotly).
        assert "off_default_calls" in tables and "cache_hit_ratio" in tables
        assert {"Spend by provider", "What routing saved (list prices)", "Prompt-cache savings"} <= set(figures)
        experiments = [json.loads(a).get("auriko.experiment") for a in rows["attributes"]]
        assert experiments.count("long-prompt") == experiments.count("short-prompt") == 3  # the latter awaited
    elif name == "budget_burn_and_forecast":
        assert (rows["error_code"] == "session_budget_exceeded").sum() == 1
        assert (rows["error_code"] == "budget_exhausted").sum() == 1
        assert "1 × session_budget_exceeded" in text and "1 × budget_exhausted" in text
        assert "exhaust_probability" in tables and "Budget burn-down: workspace, daily" in figures
        assert "Auriko said no: budget_exhausted" in text and "money: budget_burn said" in text
        assert "the forecast said" in text
