"""Renderers of a report dict: HTML (self-contained, figures embedded), Markdown, CSV, JSON, and a short
chat summary (Slack-compatible mrkdwn) for webhooks and email subjects.

CSV is tidy, one number per row, with the columns ``section, dimension, key, metric, value``:
``totals,,,cost_usd,12.5``; ``cost_by,provider,openai,cost_usd,8.25``; ``budgets,daily,team-search,percent_used,91.2``.
The first rows say what it covers: ``period,,,kind|label|start|end,…`` and ``report,,,generated_at,…``.

Names in a report (providers, models, services, users, tags, budgets) come from whoever made the calls,
so each format neutralises them: a CSV text cell starting with ``= + - @``, a tab or a carriage return
gets a leading ``'`` (spreadsheets would run it as a formula); Markdown escapes the characters that make
links, HTML and emphasis; Slack mrkdwn escapes ``& < >`` (which make mentions and links); HTML escapes
everything (Jinja2's autoescape), and the figures escape their labels (``auriko_obs.plots``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

FORMATS = ("html", "md", "csv", "json")
_TOTAL_LABELS = (
    ("cost_usd", "Cost (USD)"),
    ("calls", "Calls"),
    ("errors", "Errors"),
    ("input_tokens", "Input tokens"),
    ("output_tokens", "Output tokens"),
    ("cached_tokens", "Cached tokens"),
    ("cache_savings_usd", "Cache savings (USD)"),
    ("users", "Users"),
)


_CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|~&"} | {"\n": " ", "\r": " "})


def csv_cell(value: Any) -> Any:
    """Returns ``value`` safe for a spreadsheet cell: text starting as a formula gets a leading ``'`` (OWASP)."""
    if isinstance(value, str) and value.startswith(_CSV_FORMULA_STARTS):
        return "'" + value
    return value


def md_text(value: Any) -> str:
    """Returns ``value`` as Markdown text that renders as written: no link, HTML, emphasis or table cell break."""
    return "" if value is None else str(value).translate(_MARKDOWN_SPECIAL)


def mrkdwn_text(value: Any) -> str:
    """Returns ``value`` as Slack mrkdwn text on one line: ``& < >`` escaped, so that it makes no mention or link."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", " ").replace("\n", " ")


def usd(value: float | None) -> str:
    if value is None:
        return "–"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}" if abs(value) >= 1 else f"{sign}${abs(value):,.4f}"


def number(key: str, value: Any) -> str:
    return usd(value) if key.endswith("_usd") else f"{value:,}"


def delta(key: str, change: dict) -> str:
    sign = "+" if change["delta"] > 0 else ""
    text = f"{sign}{usd(change['delta'])}" if key.endswith("_usd") else f"{sign}{change['delta']:,.0f}"
    return text if change["delta_pct"] is None else f"{text} ({sign}{change['delta_pct']:.1f}%)"


def routing_sentence(s: dict) -> str:
    if s["routing_savings_vs_median_usd"] is None:
        return (
            "- Routing savings: unknown, no provider price list in the store "
            "(`auriko_obs.analysis.refresh_prices(store, base_url)` caches it)."
        )
    return (
        f"- Routing saved {usd(s['routing_savings_vs_median_usd'])} against the median provider list price of each "
        f"model, and {usd(s['routing_savings_vs_most_expensive_usd'])} against the most expensive "
        f"({s['routing_priced_calls']:,} calls priced)."
    )


def exhaustion(b: dict) -> str:
    """Returns when a budget is forecast to run out, with its band, or that it should last the period."""
    if not b["exhausts_at"] and b["exhaust_probability"] is None:
        return "no forecast yet (under 3 h of calls)"
    if not b["exhausts_at"]:
        return "lasts the period" + (
            f" (p={b['exhaust_probability']:.0%} it won't)" if b["exhaust_probability"] else ""
        )

    def short(t: str | None) -> str:
        return t[5:16].replace("T", " ") if t else "?"

    return f"{short(b['exhausts_at'])} ({short(b['exhausts_at_low'])} to {short(b['exhausts_at_high'])})"


def summary_lines(report: dict, name: Callable[[Any], str] = str, bold: str = "*") -> list[str]:
    """Returns a few lines: cost and change, top provider and model, alerts; each name passed through ``name``."""
    t, c = report["totals"], report["changes"]
    lines = [
        f"{bold}LLM spend, {report['period']['label']}{bold}: {usd(t['cost_usd'])} "
        f"({delta('cost_usd', c['cost_usd'])} vs previous), {t['calls']:,} calls, {t['errors']:,} errors"
    ]
    for dim in ("provider", "model"):
        rows = report["cost_by"].get(dim) or []
        if rows:
            lines.append(f"Top {dim}: {name(rows[0]['key'])} {usd(rows[0]['cost_usd'])} ({rows[0]['share_pct']:.0f}%)")
    s = report["savings"]
    routing = (
        "" if s["routing_savings_vs_median_usd"] is None else f", {usd(s['routing_savings_vs_median_usd'])} by routing"
    )
    lines.append(f"Saved: {usd(s['cache_savings_usd'])} by caching{routing}")
    for b in report["budgets"]:
        if b["state"] != "ok":
            when = f", runs out about {b['exhausts_at'][:16].replace('T', ' ')} UTC" if b["exhausts_at"] else ""
            lines.append(f":warning: budget {name(b['name'])}: {b['percent_used']:.0f}% of {usd(b['limit_usd'])}{when}")
    e = report["errors"]
    if e["rate_limited"] or e["budget_rejections"]:
        lines.append(f"Rate limited: {e['rate_limited']:,}, budget rejections: {e['budget_rejections']:,}")
    for a in report["anomalies"]["items"][:3]:
        lines.append(
            f":rotating_light: anomaly: {a['bucket_start'][:16]} spent {usd(a['cost_usd'])} "
            f"(usual {usd(a['baseline_median_usd'])})"
        )
    return lines


def summary_text(report: dict) -> str:
    """Returns a few lines for chat (Slack mrkdwn, names escaped): cost and change, top provider and model, alerts."""
    return "\n".join(summary_lines(report, mrkdwn_text))


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(md_text(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(md_text(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def render_markdown(report: dict) -> str:
    """Returns the report as Markdown (GitHub-flavoured tables), for chat and email bodies."""
    p, t, prev, c = report["period"], report["totals"], report["previous_totals"], report["changes"]
    parts = [
        f"# LLM spend report: {p['label']}",
        "",
        f"{p['start']} to {p['end']} (UTC), compared with the period before. Generated {report['generated_at']}.",
        "",
        "## Totals",
        "",
        _md_table(
            ["metric", "this period", "previous", "change"],
            [[label, number(k, t[k]), number(k, prev[k]), delta(k, c[k])] for k, label in _TOTAL_LABELS],
        ),
    ]
    for dim, rows in report["cost_by"].items():
        parts += [
            "",
            f"## Cost by {dim}",
            "",
            _md_table(
                [dim, "cost", "share", "calls", "tokens"],
                [
                    [r["key"], usd(r["cost_usd"]), f"{r['share_pct']:.1f}%", f"{r['calls']:,}", f"{r['tokens']:,}"]
                    for r in rows
                ],
            )
            if rows
            else "No calls.",
        ]
    s = report["savings"]
    ratio = "–" if s["cache_hit_ratio"] is None else f"{100 * s['cache_hit_ratio']:.1f}%"
    parts += [
        "",
        "## Savings",
        "",
        f"- Prompt caching saved {usd(s['cache_savings_usd'])} (cache-hit ratio {ratio}; without caching the "
        f"period would have cost {usd(s['cost_without_cache_usd'])}).",
        routing_sentence(s),
    ]
    parts += ["", "## Budgets", ""]
    parts.append(
        _md_table(
            ["budget", "period", "spent", "limit", "used", "burn $/h", "runs out (10–90%)", "state"],
            [
                [
                    b["name"],
                    b["period"],
                    usd(b["spend_usd"]),
                    usd(b["limit_usd"]),
                    f"{b['percent_used']:.1f}%",
                    usd(b["burn_rate_usd_per_h"]),
                    exhaustion(b),
                    b["state"].upper(),
                ]
                for b in report["budgets"]
            ],
        )
        if report["budgets"]
        else "No budgets configured (see `auriko_obs.toml`)."
    )
    e = report["errors"]
    parts += [
        "",
        "## Errors",
        "",
        f"{e['errors']:,} errors ({e['error_rate_pct']:.2f}% of calls): {e['rate_limited']:,} rate limited, "
        f"{e['budget_rejections']:,} budget rejections.",
    ]
    if e["by_code"]:
        parts += [
            "",
            _md_table(
                ["code", "HTTP", "calls", "Retry-After total (s)"],
                [[r["code"], r["http_status"], f"{r['calls']:,}", r["retry_after_s"]] for r in e["by_code"]],
            ),
        ]
    parts += ["", "## Biggest calls", ""]
    parts.append(
        _md_table(
            ["start (UTC)", "model", "provider", "service", "user", "cost", "in", "out"],
            [
                [
                    r["start_time"][:19],
                    r["model"],
                    r["provider"],
                    r["service"],
                    r["user"],
                    usd(r["cost_usd"]),
                    r["input_tokens"],
                    r["output_tokens"],
                ]
                for r in report["biggest_calls"]
            ],
        )
        if report["biggest_calls"]
        else "No calls."
    )
    a = report["anomalies"]
    parts += ["", "## Anomalies", "", f"Method: {a['method']}.", ""]
    parts.append(
        _md_table(
            [a["granularity"] + " (UTC)", "cost", "usual (median)", "MAD", "robust z"],
            [
                [
                    x["bucket_start"][:16],
                    usd(x["cost_usd"]),
                    usd(x["baseline_median_usd"]),
                    usd(x["baseline_mad_usd"]),
                    "∞" if x["robust_z"] is None else x["robust_z"],
                ]
                for x in a["items"]
            ],
        )
        if a["items"]
        else "None found."
    )
    return "\n".join(parts) + "\n"


def render_json(report: dict) -> str:
    """Returns the report as JSON (see ``report.schema.json``)."""
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def _tidy_rows(report: dict):
    for metric in ("kind", "label", "start", "end"):  # so that a CSV file says which period it covers
        yield "period", "", "", metric, report["period"][metric]
    yield "report", "", "", "generated_at", report["generated_at"]
    for key, value in report["totals"].items():
        yield "totals", "", "", key, value
        yield "previous_totals", "", "", key, report["previous_totals"][key]
        yield "changes", "", "", f"{key}_delta", report["changes"][key]["delta"]
    for dim, rows in report["cost_by"].items():
        for r in rows:
            for metric in ("cost_usd", "share_pct", "calls", "tokens"):
                yield "cost_by", dim, r["key"], metric, r[metric]
    for metric, value in report["savings"].items():
        yield "savings", "", "", metric, value
    for b in report["budgets"]:
        for metric in (
            "limit_usd",
            "spend_usd",
            "percent_used",
            "burn_rate_usd_per_h",
            "exhausts_at",
            "exhaust_probability",
            "state",
        ):
            yield "budgets", b["period"], b["name"], metric, b[metric]
    e = report["errors"]
    for metric in ("errors", "error_rate_pct", "rate_limited", "budget_rejections"):
        yield "errors", "", "", metric, e[metric]
    for r in e["by_code"]:
        yield "errors", "code", r["code"], "calls", r["calls"]
    for i, r in enumerate(report["biggest_calls"], 1):
        for metric in ("cost_usd", "model", "provider", "start_time", "request_id"):
            yield "biggest_calls", "rank", i, metric, r[metric]
    for x in report["anomalies"]["items"]:
        for metric in ("cost_usd", "baseline_median_usd", "robust_z"):
            yield "anomalies", x["granularity"], x["bucket_start"], metric, x[metric]


def render_csv(report: dict) -> str:
    """Returns the report as tidy CSV: section, dimension, key, metric, value (one number per row, after the period)."""
    buffer = io.StringIO()
    # CRLF ends rows (RFC 4180), so that a CR or LF inside a name gets its cell quoted instead of ending the row.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["section", "dimension", "key", "metric", "value"])
    writer.writerows([csv_cell(v) for v in row] for row in _tidy_rows(report))
    return buffer.getvalue()


def report_figures(report: dict) -> list[Any]:
    """Returns the figures of the HTML report, in page order, drawn from the report dict alone (so a saved
    JSON report can be redrawn) by ``auriko_obs.plots``."""
    from .. import plots

    a = report["anomalies"]
    figures = [
        plots.spend_per_bucket(
            [p["bucket_start"] for p in a["series"]],
            [p["cost_usd"] for p in a["series"]],
            a["granularity"],
            flagged=[x["bucket_start"] for x in a["items"]],
            height=360,
        )
    ]
    for dim in ("provider", "model"):
        rows = report["cost_by"].get(dim) or []
        figures.append(
            plots.cost_bars(
                dim,
                [r["key"] for r in rows],
                [r["cost_usd"] for r in rows],
                [(r["share_pct"], r["calls"], r["tokens"]) for r in rows],
                height=360,
            )
        )
    budgets = report["budgets"]
    if budgets:
        figures.append(
            plots.budget_used(
                [b["name"] for b in budgets],
                [b["percent_used"] for b in budgets],
                [b["state"] for b in budgets],
                [(b["spend_usd"], b["limit_usd"], exhaustion(b)) for b in budgets],
                height=360,
            )
        )
    return figures


def render_html(report: dict) -> str:
    """Returns one self-contained HTML page: the Markdown sections as HTML and the figures, plotly.js inline."""
    import jinja2

    figures = report_figures(report)
    divs = [
        fig.to_html(
            full_html=False,
            include_plotlyjs=(i == 0),
            config={"displaylogo": False},
            default_width="100%",
            default_height="360px",
        )
        for i, fig in enumerate(figures)
    ]
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("auriko_obs.reports", "templates"), autoescape=jinja2.select_autoescape(["html"])
    )
    env.filters.update(
        exhaustion=exhaustion,
        routing_sentence=routing_sentence,
        usd=usd,
        num=lambda value, key: number(key, value),
        delta_of=lambda change, key: delta(key, change),
    )
    return env.get_template("report.html").render(r=report, figures=divs, total_labels=_TOTAL_LABELS)


RENDERERS: dict[str, Callable[[dict], str]] = {
    "html": render_html,
    "md": render_markdown,
    "csv": render_csv,
    "json": render_json,
}


def render(report: dict, fmt: str) -> str:
    """Returns the report rendered in ``fmt`` (html, md, csv or json)."""
    if fmt not in RENDERERS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return RENDERERS[fmt](report)
