"""Every figure auriko-obs draws: the analyses', the reports', the dashboards' and the notebook's.

```python
from auriko_obs import analysis, plots
fig = plots.provider_mix(analysis.provider_mix("auriko_obs.duckdb", period="hour"))
fig.show()                      # Jupyter; or fig.write_html("mix.html"), fig.write_image("mix.png")
```

Figures are plain ``plotly.graph_objects.Figure`` objects, so they work in Jupyter, in HTML files, and in
reports and dashboards. They share one look: one template, and one colour per name in every figure and
every run (``colour``: openai is the same blue in a report's bars, a dashboard's pie and a notebook's
stacked bars). Names are shown as written, never as markup (``label``), and a time axis is ticked at its
buckets (``time_axis``). Money is in USD and token counts are shown in hover text. Plotly is imported
when a figure is made, never at ``import auriko_obs``.
"""

from ._analysis import budget_burn, cache_savings, cost_by, errors, latency, provider_mix, routing_savings
from ._panels import PANEL_KINDS, budget_used, cost_bars, cost_over_time, panel, spend_per_bucket
from ._theme import COLORWAY, colour, label, time_axis

__all__ = [
    "COLORWAY",
    "PANEL_KINDS",
    "budget_burn",
    "budget_used",
    "cache_savings",
    "colour",
    "cost_bars",
    "cost_by",
    "cost_over_time",
    "errors",
    "label",
    "latency",
    "panel",
    "provider_mix",
    "routing_savings",
    "spend_per_bucket",
    "time_axis",
]
