"""One figure layer: reports, dashboards, notebooks and analyses draw through auriko_obs.plots, with one colour
per name and time axes ticked at their buckets."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from auriko_obs import analysis, plots
from auriko_obs.dashboard._web_app import DashboardApp
from auriko_obs.jupyter._report import report as notebook_report
from auriko_obs.reports import build_report, report_period
from auriko_obs.reports._render import report_figures

from .browser import drawn
from .spend_history import call, insert_calls, utc

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"
PROVIDERS = ("openai", "anthropic", "together", "groq", "azure", "mystery-cloud")


def _name_colours(figure: dict) -> set[tuple[str, str]]:
    """Returns the (name, colour) pairs a figure (as Plotly JSON) draws: per bar, slice, or named trace."""
    pairs = set()
    for trace in figure["data"]:
        marker = trace.get("marker") or {}
        if trace["type"] == "pie":
            pairs |= set(zip(trace["labels"], marker["colors"], strict=True))
        elif isinstance(marker.get("color"), list):
            categories = trace["y"] if trace.get("orientation") == "h" else trace["x"]
            pairs |= set(zip(categories, marker["color"], strict=True))
        elif trace.get("showlegend", True) and trace.get("name"):
            pairs.add((trace["name"], marker.get("color") or (trace.get("line") or {}).get("color")))
    return {(html.unescape(name), colour) for name, colour in pairs}


def _figures_json(figures) -> list[dict]:
    return [json.loads(f.to_json()) for f in figures]


@pytest.fixture
def recent_store(db_path):
    """Calls to six providers in the last few hours (the shipped dashboards look at the last 24 hours)."""
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    rows = [
        call(now - timedelta(hours=h, minutes=10), cost_usd=0.1 * (i + 1) + h, provider=p, service_name=f"svc-{i % 2}")
        for h in range(3)
        for i, p in enumerate(PROVIDERS)
    ]
    insert_calls(db_path, rows)
    return db_path


def test_a_provider_has_one_colour_in_every_figure_of_a_report_a_dashboard_page_and_a_notebook(recent_store):
    now = datetime.now(timezone.utc)
    report = build_report(recent_store, report_period("day", since=now - timedelta(hours=6), until=now), now=now)
    dashboard = json.loads(DashboardApp(recent_store, DASHBOARDS).data("spend"))
    _, notebook_figure = notebook_report(recent_store, by="provider")
    figures = {
        "report": _figures_json(report_figures(report)),
        "dashboard": [p["figure"] for p in dashboard["panels"]],
        "notebook": _figures_json([notebook_figure]),
        "analysis": _figures_json(
            [
                plots.provider_mix(analysis.provider_mix(recent_store, period="hour")),
                plots.cost_by(analysis.cost_by("provider", recent_store)),
            ]
        ),
    }
    seen: dict[str, set[tuple[str, str]]] = {}
    for where, figs in figures.items():
        for i, fig in enumerate(figs):
            for name, colour in _name_colours(fig):
                if name in PROVIDERS:
                    seen.setdefault(name, set()).add((colour, f"{where}[{i}]"))
    # each provider appears in several figures of each kind of page, always in the same colour
    for provider in PROVIDERS:
        places = seen[provider]
        assert len({colour for colour, _ in places}) == 1, (provider, places)
        assert {where.split("[")[0] for _, where in places} == set(figures), (provider, places)
        assert len(places) >= 6
    # and no two of the providers Auriko routes to share a colour (other names take one by hash, so two of
    # them may)
    known = [p for p in PROVIDERS if p != "mystery-cloud"]
    assert len({next(iter(seen[p]))[0] for p in known}) == len(known)


def test_dashboard_bar_and_pie_give_openai_the_same_colour(recent_store):
    panels = {
        p["title"]: p["figure"] for p in json.loads(DashboardApp(recent_store, DASHBOARDS).data("spend"))["panels"]
    }
    bar = dict(_name_colours(panels["Spend per hour, by provider"]))
    pie = dict(_name_colours(panels["Spend by provider"]))
    assert bar["openai"] == pie["openai"] == plots.colour("openai")


def test_a_names_colour_is_the_same_in_every_process():
    code = "from auriko_obs import plots; print(plots.colour('team-search'), plots.colour('gpt-4o-mini'))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": seed}, check=True
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1 and outputs.pop().split() == [plots.colour("team-search"), plots.colour("gpt-4o-mini")]


@pytest.fixture
def one_hour(db_path):
    insert_calls(db_path, [call(utc(2026, 11, 24, 6, m), cost_usd=0.5) for m in (5, 20, 40)])
    return db_path


@pytest.mark.browser
def test_a_report_with_one_hour_of_data_shows_that_hour_on_its_axis(one_hour, tmp_path):
    period = report_period("day", since=utc(2026, 11, 24, 6), until=utc(2026, 11, 24, 7))
    report = build_report(one_hour, period, now=utc(2026, 11, 24, 8))
    spend = report_figures(report)[0]
    assert spend.layout.title.text.startswith("Spend per hour")
    axis = spend.layout.xaxis
    assert list(axis.tickvals) == [datetime(2026, 11, 24, 6)] and list(axis.ticktext) == ["2026-11-24 06:00"]
    low, high = (datetime.fromisoformat(str(v)) for v in axis.range)
    assert low < datetime(2026, 11, 24, 6) and high > datetime(2026, 11, 24, 6) and high - low <= timedelta(hours=2)
    assert spend.data[0].width == pytest.approx(0.8 * 3600 * 1000)  # a bar an hour wide, not a hairline
    # and what Chromium draws from it: one tick, the hour
    [shown] = drawn([spend], tmp_path)
    assert shown["xticks"] == ["2026-11-24 06:00"]


@pytest.mark.browser
def test_a_dashboard_and_a_notebook_with_one_bucket_tick_that_bucket(db_path, tmp_path):
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    calls = [call(hour + timedelta(minutes=5, seconds=s), cost_usd=0.5, provider="openai") for s in (1, 40)]
    insert_calls(db_path, calls)  # one hour, and one minute: the notebook's bucket for a short span
    panels = {p["title"]: p["figure"] for p in json.loads(DashboardApp(db_path, DASHBOARDS).data("spend"))["panels"]}
    per_hour = panels["Spend per hour, by provider"]
    expected = hour.replace(tzinfo=None)
    assert per_hour["layout"]["xaxis"]["tickvals"] == [expected.isoformat()]
    assert per_hour["layout"]["xaxis"]["ticktext"] == [expected.strftime("%Y-%m-%d %H:%M")]
    _, notebook_figure = notebook_report(db_path, by="provider")
    [dash, notebook] = drawn(
        [plots.panel("bar", _frame(hour), x="hour", y="cost_usd", color="provider"), notebook_figure], tmp_path
    )
    assert dash["xticks"] == [expected.strftime("%Y-%m-%d %H:%M")]
    assert notebook["xticks"] == [(hour + timedelta(minutes=5)).strftime("%H:%M")]


def _frame(hour: datetime):
    import pandas as pd

    return pd.DataFrame({"hour": [pd.Timestamp(hour)], "provider": ["openai"], "cost_usd": [1.0]})


def test_time_axis_ticks_whole_buckets_and_thins_them_out():
    import plotly.graph_objects as go

    days = [datetime(2026, 11, 1) + timedelta(days=d) for d in range(30)]
    fig = plots.time_axis(go.Figure(go.Bar(x=days, y=list(range(30)))), days)
    assert len(fig.layout.xaxis.tickvals) <= 12 and fig.layout.xaxis.ticktext[0] == "2026-11-01"
    assert all(
        t.endswith(("-01", "-04", "-07", "-10", "-13", "-16", "-19", "-22", "-25", "-28"))
        for t in fig.layout.xaxis.ticktext
    )


def test_panel_names_that_look_like_numbers_stay_names_and_numbers_stay_numbers():
    import pandas as pd

    codes = plots.panel("bar", pd.DataFrame({"code": ["429", "500"], "calls": [3, 1]}))
    assert codes.layout.xaxis.type == "category" and list(codes.data[0].x) == ["429", "500"]
    assert list(codes.data[0].marker.color) == [plots.colour("429"), plots.colour("500")]
    points = plots.panel("scatter", pd.DataFrame({"input_tokens": [10, 2000], "cost_usd": [0.1, 0.3]}))
    assert points.layout.xaxis.type is None and list(points.data[0].x) == [10, 2000]
