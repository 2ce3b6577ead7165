"""Renders the analysis guide's figure screenshots (docs/img/*.png) from a synthetic 30-day store.

    pip install kaleido && apt-get install chromium   # kaleido drives Debian's Chromium
    python docs/make_figures.py [--rows 200000] [--out docs/img] [--format png|html]

The store is made by ``benchmarks/analysis.py``'s generator, which spreads calls evenly over time. Real
spend comes in bursts, and a forecast band over even spend is a hairline, so the calls are then thinned
to bursts: in about a quarter of the 6-hour windows every call stays, in the others one in ten. The PNGs
are kept small (800 × 420). ``--format html`` writes the figures as HTML instead, without kaleido or
Chromium (what the smoke test runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings
from datetime import timedelta
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))

from analysis import END, build  # noqa: E402  (benchmarks/analysis.py)

from auriko_obs import analysis, plots  # noqa: E402
from auriko_obs.store import connect  # noqa: E402

# A 6-hour window is busy when its hash says so (1 in 4); outside busy windows 1 call in 10 stays.
THIN_TO_BURSTS = """
DELETE FROM spans
WHERE hash(epoch_us(start_time) // 21600000000) % 4 <> 0 AND hash(span_id) % 10 <> 0
"""
WEEKLY_LIMIT_SHARE = 0.15  # the weekly budget in the figure, as a share of the 30 days' spend


def build_bursty(path: str, rows: int) -> None:
    """Creates the store at ``path``: ``rows`` evenly spread synthetic calls, then thinned to bursts."""
    build(path, rows)
    with connect(path, read_only=False, wait_s=10) as con:
        con.execute(THIN_TO_BURSTS)
        con.execute("CHECKPOINT")


def figures(path: str) -> dict[str, Any]:
    """Returns the analysis guide's figures, by name, drawn from the store at ``path``."""
    now = END - timedelta(days=5, hours=12)  # a Thursday noon, 3.5 days into the week
    total_usd = float(analysis.cost_by("provider", path)["cost_usd"].sum())
    weekly = analysis.Budget("workspace weekly", round(total_usd * WEEKLY_LIMIT_SHARE), "weekly")
    return {
        "provider_mix": plots.provider_mix(analysis.provider_mix(path, period="day", since=END - timedelta(days=14))),
        "cache_savings": plots.cache_savings(analysis.cache_savings(path, by="model", period=None)),
        "budget_burn": plots.budget_burn(analysis.budget_burndown(weekly, path, now=now)),
        "latency": plots.latency(analysis.latency(path, by="provider")),
        "errors": plots.errors(analysis.errors(path, period="day", since=END - timedelta(days=10))),
        "cost_by": plots.cost_by(analysis.cost_by("tag", path, top=8)),
        "routing_savings": plots.routing_savings(analysis.routing_savings(path, by="model")),
    }


def write(figs: dict[str, Any], out: str, fmt: str) -> list[str]:
    """Returns the paths written: one ``<name>.<fmt>`` per figure in ``out`` (PNG through kaleido)."""
    os.makedirs(out, exist_ok=True)
    if fmt == "png":
        import kaleido

        if shutil.which("chromium"):  # Debian's Chromium, rather than a browser kaleido would download
            os.environ.setdefault("BROWSER_PATH", shutil.which("chromium"))
        kaleido.start_sync_server()  # one browser for every figure; plotly then warns that its options are unused
        warnings.filterwarnings("ignore", message="The kopts argument is ignored if using a server")
    written = []
    for name, fig in figs.items():
        target = os.path.join(out, f"{name}.{fmt}")
        if fmt == "png":
            fig.write_image(target, width=800, height=420, scale=1)
        else:
            fig.write_html(target, include_plotlyjs="cdn")
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="calls generated before thinning to bursts")
    parser.add_argument("--db", default="/tmp/auriko-obs-figures.duckdb")
    parser.add_argument("--out", default=os.path.join(HERE, "img"))
    parser.add_argument("--format", choices=("png", "html"), default="png")
    args = parser.parse_args()
    build_bursty(args.db, args.rows)
    for target in write(figures(args.db), args.out, args.format):
        print(f"{target}: {os.path.getsize(target) / 1024:.0f} KB")


if __name__ == "__main__":
    main()
