"""Draws Plotly figures in headless Chromium (Debian's package) and reads back what plotly.js put on screen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import system_program

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_READ = """figs => figs.map(id => {
  const el = document.getElementById(id);
  const texts = sel => [...el.querySelectorAll(sel)].map(t => t.textContent);
  return {
    xticks: texts('.xtick text'), yticks: texts('.ytick text'), legend: texts('.legendtext'),
    slices: texts('.slicetext'), cells: texts('.cell-text'), anchors: el.querySelectorAll('svg a').length,
    text: [...el.querySelectorAll('text')].map(t => t.textContent).join('\\n'),
  };
})"""


def chromium() -> str:
    """Returns Debian's chromium, for a test marked ``browser`` (conftest.py skips it when chromium is missing)."""
    path = system_program("browser")
    assert path is not None, "a test that drives chromium must be marked browser"
    return path


def drawn(figures: list[Any], tmp_path: Path) -> list[dict]:
    """Returns, per figure, the tick, legend, slice and table-cell texts plotly.js drew, the number of links
    (``<a>``) in its SVG, and all its text."""
    import plotly
    from playwright.sync_api import sync_playwright

    executable = chromium()
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    ids = [f"fig{i}" for i in range(len(figures))]
    scripts = "".join(
        f'<div id="{i}" style="width:900px;height:420px"></div>'
        f"<script>Plotly.newPlot({json.dumps(i)}, {fig.to_json()}.data, {fig.to_json()}.layout)</script>"
        for i, fig in zip(ids, figures, strict=True)
    )
    page_path = tmp_path / "figures.html"
    page_path.write_text(
        f"<html><head><script src='{plotly_js.as_uri()}'></script></head><body>{scripts}</body></html>"
    )
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(page_path.as_uri())
            page.wait_for_function(
                f"{json.dumps(ids)}.every(id => document.getElementById(id).querySelector('.main-svg'))",
                timeout=60_000,
            )
            result = page.evaluate(_READ, ids)
        finally:
            browser.close()
    assert problems == []
    return result
