"""Renders the README's figure screenshots (docs/img/*.png) from a synthetic 30-day store.

    pip install kaleido && apt-get install chromium   # kaleido drives Debian's Chromium
    python docs/make_figures.py

The store is made by ``benchmarks/analysis.py``'s generator (200,000 calls), so the pictures show what
the functions return on realistic volumes; the PNGs are kept small (800 × 420).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))

from analysis import END, build  # noqa: E402  (benchmarks/analysis.py)

from auriko_obs import analysis, plots  # noqa: E402


def main() -> None:
    import kaleido

    path = "/tmp/auriko-obs-figures.duckdb"
    build(path, 200_000)
    now = END - timedelta(days=5, hours=12)  # a Thursday noon, 3.5 days into the week
    figures = {
        "provider_mix": plots.provider_mix(analysis.provider_mix(path, period="day", since=END - timedelta(days=14))),
        "cache_savings": plots.cache_savings(analysis.cache_savings(path, by="model", period=None)),
        "budget_burn": plots.budget_burn(analysis.budget_burndown(
            analysis.Budget("workspace weekly", 400, "weekly"), path, now=now)),
        "latency": plots.latency(analysis.latency(path, by="provider")),
        "errors": plots.errors(analysis.errors(path, period="day", since=END - timedelta(days=10))),
        "cost_by": plots.cost_by(analysis.cost_by("tag", path, top=8)),
        "routing_savings": plots.routing_savings(analysis.routing_savings(path, by="model")),
    }
    out = os.path.join(HERE, "img")
    os.makedirs(out, exist_ok=True)
    kaleido.start_sync_server()
    for name, fig in figures.items():
        target = os.path.join(out, f"{name}.png")
        fig.write_image(target, width=800, height=420, scale=1)
        print(f"{target}: {os.path.getsize(target) / 1024:.0f} KB")


if __name__ == "__main__":
    main()
