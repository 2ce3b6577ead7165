"""Times `auriko-obs report` on a large synthetic store: building the report for a day, a week and a month,
and rendering each format. Usage: python benchmarks/report.py [--rows 2000000]."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from auriko_obs.reports import build_report, render, report_period
from benchmarks.analysis import END, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--db", default="/tmp/auriko-obs-report-bench.duckdb")
    args = parser.parse_args()
    print(f"store: {args.rows:,} calls over 30 days, built in {build(args.db, args.rows):.1f} s")
    now = END - timedelta(hours=1)
    for kind in ("day", "week", "month"):
        began = time.perf_counter()
        report = build_report(args.db, report_period(kind, now=now), now=now)
        built = time.perf_counter() - began
        timings = []
        for fmt in ("html", "md", "csv", "json"):
            began = time.perf_counter()
            size = len(render(report, fmt))
            timings.append(f"{fmt} {time.perf_counter() - began:.2f} s ({size / 1e6:.1f} MB)")
        print(
            f"{kind:>5}: {report['totals']['calls']:>9,} calls, built in {built:.2f} s; rendered " + ", ".join(timings)
        )


if __name__ == "__main__":
    main()
