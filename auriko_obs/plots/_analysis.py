"""Figures of the analyses: each drawn from the DataFrame that one ``auriko_obs.analysis`` function returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

from ._theme import colour, empty, label, layout, time_axis

_USD = "$%{y:,.4f}"
_MIX_VALUES = {"cost_usd": ("Spend", "USD"), "calls": ("Calls", "calls"), "total_tokens": ("Tokens", "tokens")}


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def _require(frame: pd.DataFrame, figure: str, source: str, columns: Sequence[str]) -> None:
    """Raises ValueError naming the analysis whose frame a figure draws, when ``frame`` lacks its columns."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"plots.{figure} draws the frame of auriko_obs.analysis.{source}(); this frame has no "
            f"column {', '.join(missing)}"
        )


def _dims(frame: pd.DataFrame, first_metric: str) -> list[str]:
    """Returns the grouping columns of an analysis frame: those before its first metric column, period_start aside.

    Every analysis puts its groups first; telling them apart by position rather than by name lets a
    dimension share its name with another analysis's metric (``cost_by("http_status")``)."""
    columns = list(frame.columns)
    return [c for c in columns[: columns.index(first_metric)] if c != "period_start"]


def _label(frame: pd.DataFrame, dims: list[str]) -> pd.Series:
    if not dims:
        return frame.index.to_series(index=frame.index).map(lambda _: "all calls")
    return frame[dims].astype(str).agg(" · ".join, axis=1)


def provider_mix(frame: pd.DataFrame, value: str = "cost_usd") -> go.Figure:
    """Returns a stacked area chart of ``analysis.provider_mix``: ``value`` (cost_usd, calls or
    total_tokens) per group over time, or bars per group for a frame made with ``period=None``; hover
    shows calls, tokens, cost, share and off-default calls."""
    if value not in _MIX_VALUES:
        raise ValueError(f"value must be one of {', '.join(_MIX_VALUES)}, not {value!r}")
    _require(
        frame, "provider_mix", "provider_mix", ["calls", "total_tokens", "cost_usd", "cost_share", "off_default_calls"]
    )
    by = _dims(frame, "calls")[0]
    what, unit = _MIX_VALUES[value]
    title = f"{what} by {by}"
    if frame.empty:
        return empty(title)
    go = _go()
    over_time = "period_start" in frame
    share_of = "the period" if over_time else "the total"
    fig = go.Figure()
    for name, part in frame.groupby(by, sort=True):
        custom = part[["calls", "total_tokens", "cost_usd", "cost_share", "off_default_calls"]].astype(float)
        hover = (
            f"<b>{label(name)}</b><br>%{{x}}<br>calls %{{customdata[0]:,.0f}}"
            "<br>tokens %{customdata[1]:,.0f}<br>cost $%{customdata[2]:,.4f}"
            f" (%{{customdata[3]:.1%}} of {share_of})<br>off default provider "
            "%{customdata[4]:,.0f}<extra></extra>"
        )
        trace = dict(y=part[value], name=label(name), customdata=custom.to_numpy(), hovertemplate=hover)
        if over_time:
            fig.add_trace(
                go.Scatter(x=part["period_start"], stackgroup="one", mode="lines", line_color=colour(name), **trace)
            )
        else:
            fig.add_trace(go.Bar(x=[label(name)], marker_color=colour(name), **trace))
    if over_time:
        time_axis(fig, frame["period_start"])
        return layout(fig, title, "period start (UTC)", f"{unit} per period", legend=by)
    return layout(fig, title, by, f"{unit} in the window", legend=by)


def cost_by(frame: pd.DataFrame) -> go.Figure:
    """Returns horizontal bars of ``analysis.cost_by`` (USD per value, most expensive on top)."""
    _require(frame, "cost_by", "cost_by", ["rank", "calls", "input_tokens", "output_tokens", "cost_usd"])
    dim = _dims(frame, "rank")[0]
    title = f"Spend by {dim}"
    if frame.empty:
        return empty(title)
    go = _go()
    totals = frame.groupby(dim, sort=False)[["calls", "input_tokens", "output_tokens", "cost_usd"]].sum()
    totals = totals.sort_values("cost_usd")
    fig = go.Figure(
        go.Bar(
            x=totals["cost_usd"],
            y=[label(v) for v in totals.index],
            orientation="h",
            marker_color=[colour(v) for v in totals.index],
            customdata=totals[["calls", "input_tokens", "output_tokens"]].to_numpy(),
            hovertemplate=(
                "<b>%{y}</b><br>cost $%{x:,.4f}<br>calls %{customdata[0]:,.0f}"
                "<br>input tokens %{customdata[1]:,.0f}<br>output tokens %{customdata[2]:,.0f}"
                "<extra></extra>"
            ),
        )
    )
    return layout(fig, title, "cost (USD)", dim)


def _group_totals(frame: pd.DataFrame, dims: list[str], columns: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Returns the columns summed per group of ``dims`` (one row, "all calls", for no dims) and a label per group
    (escaped for Plotly)."""
    if not dims:
        return frame[columns].sum().to_frame().T, ["all calls"]
    totals = frame.groupby(dims, sort=True)[columns].sum()
    labels = [label(" · ".join(map(str, k)) if isinstance(k, tuple) else k) for k in totals.index]
    return totals, labels


def cache_savings(frame: pd.DataFrame) -> go.Figure:
    """Returns stacked bars of ``analysis.cache_savings`` per group: USD paid plus USD the cache saved
    (together, what the traffic would have cost without caching); hover shows cache tokens and hit ratio."""
    title = "Prompt-cache savings"
    sums = ["calls", "input_tokens", "cached_tokens", "cache_write_tokens", "cost_usd", "cache_savings_usd"]
    _require(frame, "cache_savings", "cache_savings", sums)
    if frame.empty:
        return empty(title)
    go = _go()
    dims = _dims(frame, "calls")
    totals, labels = _group_totals(frame, dims, sums)
    ratio = (totals["cached_tokens"] / totals["input_tokens"].where(totals["input_tokens"] > 0)).fillna(0)
    custom = list(
        zip(
            totals["cached_tokens"],
            totals["input_tokens"],
            ratio,
            totals["cache_write_tokens"],
            totals["cost_usd"] + totals["cache_savings_usd"],
            strict=True,
        )
    )
    hover = (
        "<b>%{x}</b><br>%{fullData.name} $%{y:,.4f}<br>cached %{customdata[0]:,.0f} of "
        "%{customdata[1]:,.0f} input tokens (%{customdata[2]:.1%})<br>cache writes "
        "%{customdata[3]:,.0f} tokens<br>without cache $%{customdata[4]:,.4f}<extra></extra>"
    )
    fig = go.Figure(
        [
            go.Bar(x=labels, y=totals["cost_usd"], name="paid", customdata=custom, hovertemplate=hover),
            go.Bar(
                x=labels,
                y=totals["cache_savings_usd"],
                name="saved by the cache",
                customdata=custom,
                hovertemplate=hover,
            ),
        ]
    )
    fig.update_layout(barmode="stack")
    return layout(fig, title, " · ".join(dims), "USD (paid + saved = cost without cache)")


def routing_savings(frame: pd.DataFrame) -> go.Figure:
    """Returns grouped bars of ``analysis.routing_savings``: list cost at the serving provider, at the
    median and at the most expensive provider, per group."""
    title = "What routing saved (list prices)"
    cols = ["calls", "input_tokens", "output_tokens", "list_cost_usd", "median_cost_usd", "max_cost_usd"]
    _require(frame, "routing_savings", "routing_savings", cols)
    if frame.empty:
        return empty(title)
    go = _go()
    dims = _dims(frame, "calls")
    totals, labels = _group_totals(frame, dims, cols)
    custom = totals[["calls", "input_tokens", "output_tokens"]].to_numpy()
    hover = (
        "<b>%{x}</b><br>%{fullData.name}: $%{y:,.4f}<br>calls %{customdata[0]:,.0f}<br>input tokens "
        "%{customdata[1]:,.0f}<br>output tokens %{customdata[2]:,.0f}<extra></extra>"
    )
    fig = go.Figure(
        [
            go.Bar(x=labels, y=totals[c], name=n, customdata=custom, hovertemplate=hover)
            for c, n in (
                ("list_cost_usd", "served provider"),
                ("median_cost_usd", "median provider"),
                ("max_cost_usd", "most expensive provider"),
            )
        ]
    )
    fig.update_layout(barmode="group")
    return layout(fig, title, " · ".join(dims), "cost at list prices (USD)")


def latency(frame: pd.DataFrame, metric: str = "duration_ms") -> go.Figure:
    """Returns box plots of ``analysis.latency`` for one metric: box p25–p75, line at the median,
    whiskers p05–p99, a dot at the mean; hover adds p90 and the number of calls."""
    names = {
        "duration_ms": "Call duration",
        "ttft_ms": "Time to first token (client)",
        "provider_ttft_ms": "Time to first token (gateway)",
        "throughput_tps": "Throughput",
    }
    title = names.get(metric, metric)
    _require(frame, "latency", "latency", ["metric", "unit", "calls", "mean", "p05", "p25", "p50", "p75", "p90", "p99"])
    part = frame[frame["metric"] == metric]
    if part.empty:
        return empty(title)
    go = _go()
    dims = _dims(part, "metric")
    labels = _label(part, dims)
    unit = str(part["unit"].iloc[0])
    fig = go.Figure()
    for name, (_, row) in zip(labels, part.iterrows(), strict=True):
        text = label(name)
        fig.add_trace(
            go.Box(
                name=text,
                x=[text],
                marker_color=colour(name),
                q1=[row["p25"]],
                median=[row["p50"]],
                q3=[row["p75"]],
                lowerfence=[row["p05"]],
                upperfence=[row["p99"]],
                mean=[row["mean"]],
                boxpoints=False,
                hovertemplate=(
                    f"<b>{text}</b><br>p50 {row['p50']:,.1f} {unit}<br>p90 {row['p90']:,.1f} {unit}"
                    f"<br>p99 {row['p99']:,.1f} {unit}<br>calls {int(row['calls']):,}<extra></extra>"
                ),
            )
        )
    per = " · ".join(dims)
    return layout(fig, f"{title} per {per}" if dims else title, per, f"{title} ({unit})", showlegend=False)


def errors(frame: pd.DataFrame, value: str = "count") -> go.Figure:
    """Returns a heatmap of ``analysis.errors``: kind and code (rows) by period (columns), coloured by
    ``value`` (count or rate); hover shows calls, retries and Retry-After seconds."""
    title = "Errors, retries and routing warnings"
    _require(frame, "errors", "errors", ["kind", "code", "calls", "count", "retries", "retry_after_s"])
    if frame.empty:
        return empty(title)
    go = _go()
    rows = frame.assign(what=(frame["kind"] + ": " + frame["code"].astype(str)).map(label))
    x = "period_start" if "period_start" in rows else None
    if x is None:
        rows = rows.assign(period_start="whole window")
    grouped = (
        rows.groupby(["what", "period_start"], sort=True)
        .agg(
            count=("count", "sum"),
            calls=("calls", "sum"),
            retries=("retries", "sum"),
            retry_after_s=("retry_after_s", "sum"),
        )
        .reset_index()
    )
    grouped["rate"] = grouped["count"] / grouped["calls"]
    z = grouped.pivot(index="what", columns="period_start", values=value)
    custom = [
        [
            list(v)
            for v in zip(
                *[
                    grouped.pivot(index="what", columns="period_start", values=c).loc[w]
                    for c in ("count", "calls", "retries", "retry_after_s")
                ],
                strict=True,
            )
        ]
        for w in z.index
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(),
            x=list(z.columns),
            y=list(z.index),
            colorscale="Reds",
            customdata=custom,
            colorbar_title="rate" if value == "rate" else "calls",
            hovertemplate=(
                "<b>%{y}</b><br>%{x}<br>%{customdata[0]:,.0f} of %{customdata[1]:,.0f} calls"
                "<br>extra attempts %{customdata[2]:,.0f}<br>Retry-After %{customdata[3]:,.0f} s"
                "<extra></extra>"
            ),
        )
    )
    if x:
        time_axis(fig, z.columns)
    return layout(fig, title, "period start (UTC)" if x else "", "kind: code")


def budget_burn(burndown: pd.DataFrame) -> go.Figure:
    """Returns the burn-down of ``analysis.budget_burndown``: cumulative spend so far, the forecast median
    with its 10–90% band, and the limit as a horizontal line."""
    title = "Budget burn-down"
    _require(
        burndown,
        "budget_burn",
        "budget_burndown",
        ["time", "kind", "spend_usd", "spend_low_usd", "spend_high_usd", "limit_usd", "budget"],
    )
    if burndown.empty:
        return empty(title)
    go = _go()
    name = str(burndown["budget"].iloc[0])
    limit = float(burndown["limit_usd"].iloc[0])
    seen = burndown[burndown["kind"] == "observed"]
    ahead = burndown[burndown["kind"] == "forecast"]
    if not seen.empty and not ahead.empty:
        import pandas as pd

        ahead = pd.concat([seen.tail(1), ahead])  # the forecast starts where the spend so far ends
    fig = go.Figure()
    if not ahead.empty:
        fig.add_trace(
            go.Scatter(
                x=ahead["time"],
                y=ahead["spend_high_usd"],
                mode="lines",
                line=dict(width=0),
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=ahead["time"],
                y=ahead["spend_low_usd"],
                mode="lines",
                line=dict(width=0),
                fill="tonexty",
                fillcolor="rgba(99,110,250,0.2)",
                name="forecast 10–90%",
                hovertemplate="%{x}<br>10th percentile " + _USD + "<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=ahead["time"],
                y=ahead["spend_usd"],
                mode="lines",
                name="forecast (median)",
                line=dict(dash="dash", color="rgb(99,110,250)"),
                hovertemplate="%{x}<br>forecast " + _USD + "<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=seen["time"],
            y=seen["spend_usd"],
            mode="lines",
            name="spent",
            line=dict(color="rgb(40,40,40)"),
            hovertemplate="%{x}<br>spent " + _USD + "<extra></extra>",
        )
    )
    fig.add_hline(
        y=limit,
        line=dict(color="firebrick", dash="dot"),
        annotation_text=f"limit ${limit:,.2f}",
        annotation_position="top left",
    )
    return layout(fig, f"{title}: {label(name)}", "time (UTC)", "cumulative spend in the period (USD)")
