"""The look that every figure shares: one template, one colour per name, escaped labels, bucketed time axes.

- **One colour per name.** ``colour(name)`` is the same for a name in every figure, page, report and run:
  the providers Auriko routes to have fixed colours, and any other name (a model, a service, a tag) gets
  one from a hash of the name. So openai is the same blue in a bar chart, a pie and a stacked area.
- **Labels are text.** Plotly renders a subset of HTML in names, ticks, legends, hover labels and table
  cells (``<a href="javascript:…">clickme</a>`` shows as a link "clickme"). ``label(name)`` escapes
  ``& < >`` so that a name shows as written.
- **A time axis shows its buckets.** ``time_axis`` puts the ticks on bucket starts, formatted for the
  bucket size, and spans whole buckets, so that one hour of data reads "2026-11-24 06:00", not
  06:59:59.9996.
"""

from __future__ import annotations

import html
import itertools
import math
import zlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

TEMPLATE = "plotly_white"
MARGIN = dict(l=60, r=20, t=60, b=50)
NEUTRAL = "#636EFA"  # a series that stands for no name (spend over time, a single line)
ALERT = "#D62728"  # what needs attention: an anomaly, a limit
# plotly_white's ten colours, then five darker ones unlike any of them: Auriko routes to more than ten
# providers, and with ten colours the eleventh would look like the first.
COLORWAY = (
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
    "#8C564B",
    "#7F7F7F",
    "#BCBD22",
    "#22316C",
    "#2E7D32",
)
# The providers Auriko routes to, each with a colour no other of them has.
_PROVIDER_COLOURS = {
    name: COLORWAY[i]
    for i, name in enumerate(
        (
            "openai",
            "anthropic",
            "together",
            "groq",
            "azure",
            "deepinfra",
            "vertex_ai",
            "bedrock",
            "deepseek",
            "cerebras",
            "fireworks_ai",
            "mistral",
            "google",
            "xai",
            "openrouter",
        )
    )
}
_NO_VALUE = "#B0B0B0"  # "(none)", "(not routed)", "other": grey, whatever the figure


def colour(name: object) -> str:
    """Returns the colour of ``name``, the same in every figure and every run."""
    text = str(name)
    if text in _PROVIDER_COLOURS:
        return _PROVIDER_COLOURS[text]
    if (text.startswith("(") and text.endswith(")")) or text == "other":
        return _NO_VALUE
    return COLORWAY[zlib.crc32(text.encode()) % len(COLORWAY)]


def label(name: object) -> str:
    """Returns ``name`` as Plotly text that shows as written (no link, no markup)."""
    return html.escape(str(name), quote=False)


def layout(fig: go.Figure, title: str, x: str, y: str, **kw: Any) -> go.Figure:
    """Returns ``fig`` with the shared template, colours, margins and titles."""
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template=TEMPLATE,
        colorway=list(COLORWAY),
        hovermode="closest",
        legend_title_text=kw.pop("legend", None),
        margin=kw.pop("margin", MARGIN),
        **kw,
    )
    return fig


def empty(title: str, text: str = "no calls in this window", **kw: Any) -> go.Figure:
    """Returns a figure that says there is nothing to draw."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_annotation(
        text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=16, color="#667085")
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return layout(fig, title, "", "", **kw)


def moment(value: Any) -> datetime:
    """Returns a datetime, pandas Timestamp, numpy datetime64 or ISO-8601 text as a naive UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    elif not isinstance(value, datetime) and isinstance(value, date):
        value = datetime(value.year, value.month, value.day)
    elif not isinstance(value, datetime):  # numpy datetime64
        import pandas as pd

        value = pd.Timestamp(value).to_pydatetime()
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


BUCKETS = {
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
}


def _bucket_of(moments: Sequence[datetime]) -> timedelta:
    """Returns the bucket size of sorted distinct moments: their smallest gap, or for one moment its precision."""
    if len(moments) > 1:
        return min(b - a for a, b in itertools.pairwise(moments))
    only = moments[0]
    if (only.hour, only.minute, only.second, only.microsecond) == (0, 0, 0, 0):
        return BUCKETS["day"]
    if (only.minute, only.second, only.microsecond) == (0, 0, 0):
        return BUCKETS["hour"]
    if (only.second, only.microsecond) == (0, 0):
        return BUCKETS["minute"]
    return BUCKETS["second"]


def tick_format(bucket: timedelta, span: timedelta) -> str:
    """Returns the strftime format that names a bucket of this size, with the date where it changes."""
    if bucket >= BUCKETS["day"]:
        return "%Y-%m-%d"
    if bucket >= BUCKETS["minute"]:
        return "%Y-%m-%d %H:%M" if span >= BUCKETS["day"] or bucket >= BUCKETS["hour"] else "%H:%M"
    return "%H:%M:%S"


def time_axis(
    fig: go.Figure, starts: Iterable[Any], bucket: timedelta | str | None = None, axis: str = "x", max_ticks: int = 12
) -> go.Figure:
    """Returns ``fig`` with its time axis ticked at bucket starts and spanning whole buckets.

    ``bucket`` is the bucket size (a timedelta, or minute/hour/day/week/month); by default the smallest gap
    between ``starts``, or for a single start its precision (a whole hour is an hour bucket). Bars on the
    axis are drawn a bucket wide (less a gap), so a single bar is not a hairline."""
    moments = sorted({moment(s) for s in starts})
    if not moments:
        return fig
    size = BUCKETS[bucket] if isinstance(bucket, str) else bucket or _bucket_of(moments)
    fmt = tick_format(size, moments[-1] - moments[0])
    step = max(1, math.ceil(len(moments) / max_ticks))
    shown = moments[::step]
    settings = dict(
        type="date",
        range=[moments[0] - size * 0.6, moments[-1] + size * 0.6],
        tickmode="array",
        tickvals=shown,
        ticktext=[m.strftime(fmt) for m in shown],
    )
    fig.update_layout({f"{axis}axis": settings})
    width_ms = size.total_seconds() * 1000 * 0.8
    fig.update_traces(width=width_ms, selector=dict(type="bar"))
    return fig
