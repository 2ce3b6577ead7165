"""What shows the analyses to people runs as written: docs/make_figures.py and benchmarks/analysis.py (the examples
of the analysis guide run in test_docs.py)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

ANALYSIS_GUIDE = ROOT / "docs" / "guides" / "analysis.md"


@pytest.fixture
def make_figures(monkeypatch):
    """Yields docs/make_figures.py as a module; the sys.path entries it adds and the benchmark module it
    imports (as ``analysis``) are gone after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "docs" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("analysis", None)


def test_make_figures_draws_each_figure_of_the_analysis_guide_with_a_visible_forecast_band(make_figures, tmp_path):
    path = str(tmp_path / "figures.duckdb")
    make_figures.build_bursty(path, 20_000)
    figs = make_figures.figures(path)
    assert set(figs) == set(re.findall(r"\.\./img/(\w+)\.png", ANALYSIS_GUIDE.read_text()))
    assert all(fig.data for fig in figs.values())
    burn = {t.name: t for t in figs["budget_burn"].data}
    spent, median = burn["spent"].y[-1], burn["forecast (median)"].y[-1]
    low, high = burn["forecast 10–90%"].y[-1], figs["budget_burn"].data[0].y[-1]
    # Over evenly spread calls the band is 2–5% of the spend still to come; the bursts make it far wider.
    assert high - low > 0.25 * (median - spent)
    mix = figs["provider_mix"]
    assert len(mix.data) == 11 and len(set(mix.layout.colorway)) >= 11  # no two providers share a colour
    written = make_figures.write(figs, str(tmp_path / "html"), "html")
    assert len(written) == len(figs) and all(Path(p).stat().st_size > 1000 for p in written)


@pytest.mark.browser
def test_make_figures_renders_png_with_kaleido_and_chromium(make_figures, tmp_path):
    if importlib.util.find_spec("kaleido") is None:
        pytest.skip("needs kaleido (pip install kaleido)")
    path = str(tmp_path / "figures.duckdb")
    make_figures.build_bursty(path, 5_000)
    figs = make_figures.figures(path)
    for target in make_figures.write({"budget_burn": figs["budget_burn"]}, str(tmp_path / "png"), "png"):
        assert Path(target).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analysis_benchmark_runs_every_case_on_a_tiny_store(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "analysis.py"),
            "--rows",
            "20000",
            "--repeat",
            "1",
            "--db",
            str(tmp_path / "bench.duckdb"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "generated 20,000 calls" in result.stdout and lines[-1].startswith("peak RSS")
    for case in (
        "provider_mix(period=day)",
        "budget_burn(3 budgets)",
        "latency(provider, model)",
        "errors(hour)",
        "routing_savings(model, provider)",
    ):
        assert any(line.startswith(case) for line in lines), case
