"""Plotly figures of a report dict (they read only the dict, so a saved JSON report can be redrawn)."""

from __future__ import annotations

from typing import Any

from ._render import exhaustion

_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=50, b=50), height=360)


def spend_figure(report: dict) -> Any:
    """Returns bars of spend per hour or day of the period, anomalies in red."""
    import plotly.graph_objects as go

    a = report["anomalies"]
    flagged = {x["bucket_start"] for x in a["items"]}
    xs = [p["bucket_start"] for p in a["series"]]
    ys = [p["cost_usd"] for p in a["series"]]
    colors = ["#d62728" if x in flagged else "#1f77b4" for x in xs]
    fig = go.Figure(
        go.Bar(x=xs, y=ys, marker_color=colors, name="spend", hovertemplate="%{x}<br>$%{y:,.4f}<extra></extra>")
    )
    fig.update_layout(
        title=f"Spend per {a['granularity']} (anomalies in red)", yaxis_title="USD", yaxis_tickprefix="$", **_LAYOUT
    )
    return fig


def cost_by_figure(report: dict, dim: str) -> Any:
    """Returns horizontal bars of cost by one dimension (top N and "other")."""
    import plotly.graph_objects as go

    rows = list(reversed(report["cost_by"].get(dim) or []))
    fig = go.Figure(
        go.Bar(
            x=[r["cost_usd"] for r in rows],
            y=[r["key"] for r in rows],
            orientation="h",
            customdata=[[r["share_pct"], r["calls"], r["tokens"]] for r in rows],
            hovertemplate="%{y}: $%{x:,.4f} (%{customdata[0]:.1f}%)<br>%{customdata[1]:,} calls, "
            "%{customdata[2]:,} tokens<extra></extra>",
        )
    )
    fig.update_layout(title=f"Cost by {dim}", xaxis_title="USD", xaxis_tickprefix="$", **_LAYOUT)
    return fig


def budget_figure(report: dict) -> Any:
    """Returns bars of each budget's percent used, coloured by state, with the 100% limit line."""
    import plotly.graph_objects as go

    budgets = report["budgets"]
    names = [b["name"] for b in budgets]
    colors = {"ok": "#12b76a", "warning": "#f79009", "critical": "#d92d20"}
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[b["percent_used"] for b in budgets],
            marker_color=[colors[b["state"]] for b in budgets],
            customdata=[[b["spend_usd"], b["limit_usd"], exhaustion(b)] for b in budgets],
            hovertemplate="%{x}: %{y:.1f}% ($%{customdata[0]:,.2f} of $%{customdata[1]:,.2f})<br>runs out: "
            "%{customdata[2]}<extra></extra>",
        )
    )
    fig.add_hline(y=100, line_color="#d62728", annotation_text="limit")
    fig.update_layout(title="Budget used (current periods)", yaxis_title="% of limit", **_LAYOUT)
    return fig


def report_figures(report: dict) -> list[Any]:
    """Returns the figures of the HTML report, in page order."""
    figures = [spend_figure(report), cost_by_figure(report, "provider"), cost_by_figure(report, "model")]
    if report["budgets"]:
        figures.append(budget_figure(report))
    return figures
