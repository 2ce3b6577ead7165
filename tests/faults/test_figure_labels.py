"""Names drawn by Plotly (bars, slices, legends, ticks, table cells) show as written: no links, no markup."""

from __future__ import annotations

import json

import plotly.io
import pytest

from auriko_obs import analysis, plots
from auriko_obs.dashboard._web_app import DashboardApp
from auriko_obs.jupyter._report import report as notebook_report
from auriko_obs.reports import build_report, report_period
from auriko_obs.reports._render import report_figures

from ..browser import drawn
from .hostile import IMG_HTML, LINK_HTML, NOW, hostile_store

PANELS = """
title = "hostile"
[[panels]]
title = "pie"
type = "pie"
sql = "SELECT provider, sum(cost_usd) AS cost_usd FROM llm_calls GROUP BY ALL"
[[panels]]
title = "bars by colour"
type = "bar"
x = "model"
y = "cost_usd"
color = "provider"
sql = "SELECT model_canonical AS model, provider, sum(cost_usd) AS cost_usd FROM llm_calls GROUP BY ALL"
[[panels]]
title = "hbar"
type = "hbar"
x = "provider"
y = "cost_usd"
sql = "SELECT provider, sum(cost_usd) AS cost_usd FROM llm_calls GROUP BY ALL"
[[panels]]
title = "table"
type = "table"
sql = "SELECT provider, model_canonical, user_id FROM llm_calls"
"""


@pytest.mark.browser
def test_hostile_names_in_every_figure_are_drawn_as_text_not_links(db_path, tmp_path):
    hostile_store(db_path)
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "hostile.toml").write_text(PANELS)
    report = build_report(db_path, report_period("day", now=NOW), now=NOW)
    dashboard = json.loads(DashboardApp(db_path, tmp_path / "dashboards").data("hostile"))
    _, notebook_figure = notebook_report(db_path, by="provider")
    figures = [
        *report_figures(report),
        *(plotly.io.from_json(json.dumps(p["figure"])) for p in dashboard["panels"]),
        notebook_figure,
        plots.provider_mix(analysis.provider_mix(db_path, by="provider")),
        plots.cost_by(analysis.cost_by("provider", db_path)),
        plots.latency(analysis.latency(db_path, by="provider")),
    ]
    assert all("error" not in p for p in dashboard["panels"]), dashboard["panels"]
    shown = drawn(figures, tmp_path)
    for i, figure in enumerate(shown):
        assert figure["anchors"] == 0, (i, figure)  # before: a link "clickme" to javascript:alert(1)
    # the names are shown as written, in the figures that show providers or models
    with_link_name = [i for i, f in enumerate(shown) if LINK_HTML in f["text"]]
    assert len(with_link_name) >= 7, [f["text"][:300] for f in shown]
    assert any(IMG_HTML in f["text"] for f in shown)
    assert any(LINK_HTML in f["cells"] for f in shown)  # the dashboard's table
    assert any(LINK_HTML in f["slices"] or LINK_HTML in f["legend"] for f in shown)  # the pie
