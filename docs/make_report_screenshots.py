"""Makes the docs' report and dashboard screenshots (docs/img/report.png, docs/img/dashboard.png).

A synthetic store of 35 days of calls (the tests' generator, with a burst of expensive calls yesterday at
15:00 UTC), prices from the local simulator's /v1/models, two budgets; the HTML report of yesterday and
the live dashboard, photographed by headless Chromium (Debian's ``chromium``). Run from the repository
root: ``python docs/make_report_screenshots.py``. Needs ``pip install -e ".[dev]" pillow``.
"""

from __future__ import annotations

import io
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from auriko_obs import analysis  # noqa: E402
from auriko_obs.dashboard import make_server  # noqa: E402
from auriko_obs.reports import build_report, render, report_period  # noqa: E402
from auriko_obs.simulator import Simulator, SimulatorConfig  # noqa: E402
from tests.browser import CHROMIUM_FLAGS  # noqa: E402
from tests.spend_history import history, insert_calls  # noqa: E402

MAX_BYTES = 200_000


def save_png(raw: bytes, path: Path) -> None:
    """Saves a screenshot as an optimised palette PNG under MAX_BYTES."""
    from PIL import Image

    image = Image.open(io.BytesIO(raw)).convert("RGB")
    for colors in (256, 128, 64):
        out = io.BytesIO()
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
        if out.tell() < MAX_BYTES:
            break
    path.write_bytes(out.getvalue())
    print(f"{path}: {out.tell():,} bytes, {image.size[0]}x{image.size[1]}")


def main() -> None:
    from playwright.sync_api import sync_playwright

    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    yesterday = (now - timedelta(days=1)).replace(hour=15, minute=20)
    work = Path(tempfile.mkdtemp())
    db = str(work / "spend.duckdb")
    insert_calls(db, history(now, calls_per_day=60, spike_at=yesterday, seed=4))
    with Simulator(SimulatorConfig(seed=1)) as sim:
        analysis.refresh_prices(db, sim.base_url, "ak_docs")
    budgets = [
        analysis.Budget("workspace monthly", 90.0, "monthly"),
        analysis.Budget("research daily", 1.5, "daily", scope="tag", match="team:research"),
        analysis.Budget("search weekly", 6.0, "weekly", scope="tag", match="team:search"),
    ]
    report = build_report(db, report_period("day", now=now), now=now, budgets=budgets)
    html = work / "report.html"
    html.write_text(render(report, "html"))
    server = make_server(db, port=0, folder=ROOT / "dashboards")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(work / "profile"),
            executable_path="/usr/bin/chromium",
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1150, "height": 1500},
        )
        page = browser.new_page()
        page.goto(html.as_uri())
        page.wait_for_function("document.querySelectorAll('.main-svg').length >= 4")
        save_png(page.screenshot(clip={"x": 0, "y": 0, "width": 1150, "height": 1500}), ROOT / "docs/img/report.png")
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/d/spend")
        page.wait_for_function("[...document.querySelectorAll('.panel')].every(p => p.dataset.state === 'rendered')")
        height = page.evaluate("document.querySelector('main').getBoundingClientRect().bottom + 12")
        save_png(
            page.screenshot(clip={"x": 0, "y": 0, "width": 1150, "height": height}), ROOT / "docs/img/dashboard.png"
        )
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
