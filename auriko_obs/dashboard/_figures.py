"""Plotly figures of dashboard panels, built from the panel's query result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ._definitions import Panel

_LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=40, b=40), height=320)


def _xy(panel: Panel, frame: pd.DataFrame) -> tuple[str, str]:
    columns = list(frame.columns)
    x = panel.x or columns[0]
    y = panel.y or (columns[1] if len(columns) > 1 else columns[0])
    for name in (x, y, panel.color):
        if name is not None and name not in columns:
            raise ValueError(f"column {name!r} is not in the query result ({', '.join(columns)})")
    return x, y


def panel_figure(panel: Panel, frame: pd.DataFrame) -> Any:
    """Returns the figure of ``panel`` over its query result ``frame``."""
    import plotly.express as px
    import plotly.graph_objects as go

    if panel.type == "table":
        fig = go.Figure(
            go.Table(
                header=dict(values=list(frame.columns), align="left", fill_color="#f2f4f7"),
                cells=dict(values=[frame[c].astype(str).tolist() for c in frame.columns], align="left"),
            )
        )
    elif panel.type == "indicator":
        x, y = _xy(panel, frame)
        value = frame[y].iloc[0] if len(frame) else 0
        fig = go.Figure(
            go.Indicator(
                mode="number",
                value=float(value if value == value else 0),
                number=dict(prefix=panel.prefix, valueformat=",.4~f"),
            )
        )
    elif panel.type == "pie":
        x, y = _xy(panel, frame)
        fig = px.pie(frame, names=x, values=y, hole=0.45)
    else:
        x, y = _xy(panel, frame)
        kind = {"line": px.line, "area": px.area, "bar": px.bar, "hbar": px.bar, "scatter": px.scatter}[panel.type]
        extra: dict[str, Any] = {"orientation": "h", "x": y, "y": x} if panel.type == "hbar" else {"x": x, "y": y}
        if panel.type in ("line", "area"):
            extra["markers"] = True
        fig = kind(frame, color=panel.color, **extra)
        if panel.prefix:
            fig.update_layout(**{("xaxis" if panel.type == "hbar" else "yaxis"): dict(tickprefix=panel.prefix)})
    fig.update_layout(**_LAYOUT)
    if panel.type == "indicator":
        fig.update_layout(height=130, margin=dict(l=10, r=10, t=10, b=10))
    elif panel.type == "table":
        fig.update_layout(height=min(640, 60 + 26 * len(frame)), margin=dict(l=0, r=0, t=0, b=0))
    if panel.type != "table" and not len(frame):
        fig.add_annotation(text="no data yet", showarrow=False, font=dict(size=16, color="#667085"))
    return fig
