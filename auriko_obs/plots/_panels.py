"""Figures of reports, dashboard panels and the notebook's ``%auriko_obs report``, drawn from plain values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._theme import ALERT, NEUTRAL, colour, empty, label, layout, time_axis

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

PANEL_KINDS = ("indicator", "line", "area", "bar", "hbar", "pie", "scatter", "table")
_PANEL_MARGIN = dict(l=50, r=20, t=30, b=40)
_STATE_COLOURS = {"ok": "#12B76A", "warning": "#F79009", "critical": ALERT}


def spend_per_bucket(
    starts: Sequence[Any], costs: Sequence[float], granularity: str, flagged: Sequence[Any] = (), **kw: Any
) -> go.Figure:
    """Returns bars of spend per ``granularity`` bucket (hour, day…), the ``flagged`` buckets in red."""
    import plotly.graph_objects as go

    title = f"Spend per {granularity} (anomalies in red)"
    if not starts:
        return empty(title, **kw)
    marked = set(flagged)
    fig = go.Figure(
        go.Bar(
            x=list(starts),
            y=list(costs),
            marker_color=[ALERT if s in marked else NEUTRAL for s in starts],
            name="spend",
            hovertemplate="%{x}<br>$%{y:,.4f}<extra></extra>",
        )
    )
    time_axis(fig, starts, granularity)
    return layout(fig, title, f"{granularity} (UTC)", "USD", yaxis_tickprefix="$", **kw)


def cost_bars(
    dim: str, keys: Sequence[Any], costs: Sequence[float], details: Sequence[Sequence[Any]] = (), **kw: Any
) -> go.Figure:
    """Returns horizontal bars of cost per value of ``dim``, largest on top, each value in its own colour.

    ``details`` holds, per value, (share %, calls, tokens) for the hover text."""
    import plotly.graph_objects as go

    title = f"Cost by {dim}"
    if not keys:
        return empty(title, **kw)
    order = list(reversed(range(len(keys))))  # Plotly draws the first bar at the bottom
    fig = go.Figure(
        go.Bar(
            x=[costs[i] for i in order],
            y=[label(keys[i]) for i in order],
            orientation="h",
            marker_color=[colour(keys[i]) for i in order],
            customdata=[list(details[i]) for i in order] if details else None,
            hovertemplate="%{y}: $%{x:,.4f}"
            + (" (%{customdata[0]:.1f}%)<br>%{customdata[1]:,} calls, %{customdata[2]:,} tokens" if details else "")
            + "<extra></extra>",
        )
    )
    return layout(fig, title, "USD", "", xaxis_tickprefix="$", yaxis_type="category", **kw)


def budget_used(
    names: Sequence[str],
    percent_used: Sequence[float],
    states: Sequence[str],
    details: Sequence[Sequence[Any]],
    **kw: Any,
) -> go.Figure:
    """Returns bars of each budget's percent used, coloured by state (ok, warning, critical), with the limit.

    ``details`` holds, per budget, (spend USD, limit USD, when it runs out) for the hover text."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Bar(
            x=[label(n) for n in names],
            y=list(percent_used),
            marker_color=[_STATE_COLOURS[s] for s in states],
            customdata=[list(d) for d in details],
            hovertemplate="%{x}: %{y:.1f}% ($%{customdata[0]:,.2f} of $%{customdata[1]:,.2f})<br>runs out: "
            "%{customdata[2]}<extra></extra>",
        )
    )
    fig.add_hline(y=100, line_color=ALERT, annotation_text="limit")
    return layout(fig, "Budget used (current periods)", "", "% of limit", **kw)


def cost_over_time(series: pd.DataFrame, by: str, unit: str, **kw: Any) -> go.Figure:
    """Returns stacked bars of ``cost_usd`` per ``period`` (buckets of one ``unit``), one series per ``by`` value.

    ``series`` has the columns period, ``by``, calls and cost_usd."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, part in series.groupby(by, sort=True, dropna=False):
        fig.add_trace(
            go.Bar(
                x=part["period"],
                y=part["cost_usd"],
                name=label(name),
                marker_color=colour(name),
                customdata=part[["calls"]].to_numpy(),
                hovertemplate=f"%{{x}}<br>{label(by)}: {label(name)}<br>cost: $%{{y:.4f}}"
                "<br>calls: %{customdata[0]}<extra></extra>",
            )
        )
    time_axis(fig, series["period"], unit)
    return layout(
        fig,
        f"Cost per {unit} by {label(by)}",
        f"time (UTC, per {unit})",
        "cost (USD)",
        barmode="stack",
        legend=label(by),
        yaxis_tickprefix="$",
        **kw,
    )


def panel(
    kind: str,
    frame: pd.DataFrame,
    *,
    x: str | None = None,
    y: str | None = None,
    color: str | None = None,
    prefix: str = "",
    **kw: Any,
) -> go.Figure:
    """Returns the figure of a dashboard panel of ``kind`` over a query result ``frame``.

    Without ``x``/``y`` the first column is x and the second y; a table shows every column. Raises
    ValueError naming a column that the frame lacks."""
    import plotly.graph_objects as go

    if kind not in PANEL_KINDS:
        raise ValueError(f"a panel is one of {', '.join(PANEL_KINDS)}, not {kind!r}")
    kw.setdefault("margin", _PANEL_MARGIN)  # the page shows the panel's title above the figure
    if kind == "table":
        return _table(frame, **kw)
    x, y = _xy(frame, x, y, color)
    if kind == "indicator":
        value = frame[y].iloc[0] if len(frame) else 0
        fig = go.Figure(
            go.Indicator(
                mode="number",
                value=float(value if value == value else 0),
                number=dict(prefix=prefix, valueformat=",.4~f"),
            )
        )
        return layout(fig, "", "", "", **{**kw, "height": 130, "margin": dict(l=10, r=10, t=10, b=10)})
    if not len(frame):
        return empty("", "no data yet", **kw)
    if kind == "pie":
        fig = go.Figure(
            go.Pie(
                labels=[label(v) for v in frame[x]],
                values=frame[y],
                marker_colors=[colour(v) for v in frame[x]],
                hole=0.45,
                sort=False,
            )
        )
        return layout(fig, "", "", "", **kw)
    return _xy_figure(kind, frame, x, y, color, prefix, **kw)


def _xy(frame: pd.DataFrame, x: str | None, y: str | None, color: str | None) -> tuple[str, str]:
    columns = list(frame.columns)
    x = x or columns[0]
    y = y or (columns[1] if len(columns) > 1 else columns[0])
    for name in (x, y, color):
        if name is not None and name not in columns:
            raise ValueError(f"column {name!r} is not in the query result ({', '.join(columns)})")
    return x, y


def _is_time(values: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_datetime64_any_dtype(values))


def _is_text(values: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values))


def _xy_figure(kind: str, frame: pd.DataFrame, x: str, y: str, color: str | None, prefix: str, **kw: Any) -> go.Figure:
    """Returns line, area, bar, hbar or scatter traces of ``y`` along ``x``: one per ``color`` value, or, for
    bars of categories, one whose bars each take their category's colour. An hbar lays ``x`` vertically."""
    import plotly.graph_objects as go

    horizontal = kind == "hbar"
    time, text = _is_time(frame[x]), _is_text(frame[x])
    groups = list(frame.groupby(color, sort=True, dropna=False)) if color else [(None, frame)]
    fig = go.Figure()
    for name, part in groups:
        along = [label(v) for v in part[x]] if text else part[x]
        xy = {"x": part[y], "y": along, "orientation": "h"} if horizontal else {"x": along, "y": part[y]}
        named = {"name": label(name), "showlegend": True} if color else {"name": label(y), "showlegend": False}
        if kind in ("bar", "hbar"):
            fill: Any = colour(name) if color else [colour(v) for v in part[x]] if text else NEUTRAL
            fig.add_trace(go.Bar(marker_color=fill, **xy, **named))
        else:
            line = colour(name) if color else NEUTRAL
            fig.add_trace(
                go.Scatter(
                    mode="markers" if kind == "scatter" else "lines+markers",
                    line_color=line,
                    marker_color=line,
                    stackgroup="one" if kind == "area" else None,
                    **xy,
                    **named,
                )
            )
    if kind in ("bar", "hbar"):
        fig.update_layout(barmode="stack")
    if time:
        time_axis(fig, frame[x], axis="y" if horizontal else "x")
    elif text:  # names that look like numbers (HTTP codes) are still names
        fig.update_layout({("yaxis" if horizontal else "xaxis"): dict(type="category")})
    if prefix:
        fig.update_layout({("xaxis" if horizontal else "yaxis"): dict(tickprefix=prefix)})
    titles = (label(y), label(x)) if horizontal else (label(x), label(y))
    return layout(fig, "", *titles, legend=label(color) if color else None, **kw)


def _table(frame: pd.DataFrame, **kw: Any) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Table(
            header=dict(values=[label(c) for c in frame.columns], align="left", fill_color="#F2F4F7"),
            cells=dict(values=[[label(v) for v in frame[c].astype(str)] for c in frame.columns], align="left"),
        )
    )
    settings = {**kw, "height": min(640, 60 + 26 * len(frame)), "margin": dict(l=0, r=0, t=0, b=0)}
    return layout(fig, "", "", "", **settings)
