"""Spend reports: periods, content (exact numbers on a hand-built store), renderers, JSON Schema, anomalies."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import jsonschema
import pytest

from auriko_obs.cli import main
from auriko_obs.reports import build_report, find_anomalies, render, report_period, robust_z
from auriko_obs.reports._periods import Period

from .spend_history import call, history, insert_calls, utc

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "auriko_obs" / "reports" / "report.schema.json").read_text())
NOW = utc(2026, 11, 25, 9)  # Wednesday


def validate(report: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(report)


@pytest.fixture
def known(db_path):
    """Two days: the 24th (reported) and the 23rd (previous), with hand-countable values."""
    insert_calls(
        db_path,
        [
            call(
                utc(2026, 11, 24, 10),
                cost_usd=1.5,
                provider="openai",
                model_canonical="gpt-4o",
                user_id="u-1",
                tags=["team:search"],
                input_tokens=1000,
                output_tokens=200,
                cached_tokens=400,
                cache_savings_usd=0.1,
                service_name="search-api",
                request_id="req-a",
            ),
            call(
                utc(2026, 11, 24, 11),
                cost_usd=0.5,
                provider="together",
                model_canonical="llama-3.3-70b",
                request_model="llama-3.3-70b",
                user_id="u-2",
                tags=["team:search", "batch"],
                input_tokens=3000,
                output_tokens=100,
                service_name="batch",
            ),
            call(
                utc(2026, 11, 24, 12),
                status="error",
                http_status=429,
                error_type="rate_limit_error",
                error_code="budget_exhausted",
                budget_exceeded_scope="workspace",
                cost_usd=None,
                provider=None,
                input_tokens=None,
                output_tokens=None,
            ),
            call(
                utc(2026, 11, 24, 13),
                status="error",
                http_status=429,
                error_type="rate_limit_error",
                error_code="rate_limit_exceeded",
                retry_after_s=3.0,
                cost_usd=None,
                provider=None,
                input_tokens=None,
                output_tokens=None,
            ),
            call(utc(2026, 11, 23, 12), cost_usd=1.0, provider="openai", input_tokens=500, output_tokens=50),
            call(utc(2026, 11, 25, 1), cost_usd=9.0),  # today: in no reported period
        ],
    )
    return db_path


def test_periods_are_the_last_complete_utc_day_week_and_month():
    assert report_period("day", now=NOW) == Period("day", utc(2026, 11, 24), utc(2026, 11, 25))
    week = report_period("week", now=NOW)
    assert week == Period("week", utc(2026, 11, 16), utc(2026, 11, 23)) and week.label.startswith("week 2026-W47")
    month = report_period("month", now=NOW)
    assert month == Period("month", utc(2026, 10, 1), utc(2026, 11, 1)) and month.label == "October 2026"
    assert month.previous() == Period("month", utc(2026, 9, 1), utc(2026, 10, 1))
    custom = report_period("day", now=NOW, since=utc(2026, 11, 20, 6), until=utc(2026, 11, 22))
    assert custom.kind == "custom" and custom.previous() == Period(
        "custom", utc(2026, 11, 18, 12), utc(2026, 11, 20, 6)
    )
    assert report_period("day", since=utc(2026, 11, 2), until=utc(2026, 11, 3)).kind == "day"
    with pytest.raises(ValueError, match="must be after"):
        report_period("day", since=utc(2026, 11, 3), until=utc(2026, 11, 2))


def test_report_totals_deltas_breakdowns_errors_and_biggest_calls(known):
    report = build_report(known, report_period("day", now=NOW), now=NOW, top_n=1)
    validate(json.loads(json.dumps(report)))
    assert report["totals"] == {
        "calls": 4,
        "errors": 2,
        "cost_usd": 2.0,
        "input_tokens": 4000,
        "output_tokens": 300,
        "cached_tokens": 400,
        "cache_savings_usd": 0.1,
        "users": 2,
    }
    assert report["previous_totals"]["cost_usd"] == 1.0 and report["previous_totals"]["calls"] == 1
    assert report["changes"]["cost_usd"] == {"delta": 1.0, "delta_pct": 100.0}
    assert report["changes"]["calls"] == {"delta": 3.0, "delta_pct": 300.0}
    assert report["changes"]["users"] == {"delta": 2.0, "delta_pct": None}  # from 0: no percentage
    provider = report["cost_by"]["provider"]
    assert provider[0] == {"key": "openai", "calls": 1, "cost_usd": 1.5, "tokens": 1200, "share_pct": 75.0}
    assert provider[1]["key"] == "other" and provider[1]["cost_usd"] == 0.5 and provider[1]["calls"] == 3
    key_described = SCHEMA["$defs"]["cost_row"]["properties"]["key"]["description"]
    assert f"'{provider[1]['key']}' folds everything beyond the top N" in key_described
    tags = {
        r["key"]: r["cost_usd"] for r in build_report(known, report_period("day", now=NOW), now=NOW)["cost_by"]["tag"]
    }
    assert tags["team:search"] == 2.0 and tags["batch"] == 0.5  # a call counts under each of its tags
    errors = report["errors"]
    assert (errors["errors"], errors["rate_limited"], errors["budget_rejections"], errors["error_rate_pct"]) == (
        2,
        1,
        1,
        50.0,
    )
    assert {(e["code"], e["http_status"], e["calls"], e["retry_after_s"]) for e in errors["by_code"]} == {
        ("budget_exhausted", 429, 1, 0.0),
        ("rate_limit_exceeded", 429, 1, 3.0),
    }
    [biggest] = report["biggest_calls"]
    assert (
        biggest["request_id"] == "req-a"
        and biggest["cost_usd"] == 1.5
        and biggest["start_time"] == "2026-11-24T10:00:00Z"
    )
    savings = report["savings"]
    assert savings["cache_savings_usd"] == 0.1 and savings["cost_without_cache_usd"] == 2.1
    assert savings["cache_hit_ratio"] == 0.1  # 400 cached of 4000 input tokens
    assert savings["routing_savings_vs_median_usd"] is None  # no price list cached: unknown, not zero


def test_rate_limits_and_budget_rejections_are_counted_as_the_schema_describes(db_path):
    failed = dict(status="error", cost_usd=None, provider=None, input_tokens=None, output_tokens=None)
    insert_calls(
        db_path,
        [
            call(utc(2026, 11, 24, 1), http_status=429, error_code="rate_limit_exceeded", **failed),
            call(
                utc(2026, 11, 24, 2),
                http_status=429,
                error_code=None,  # an upstream 429: error.type only
                attributes=json.dumps({"error.type": "RateLimitError"}),
                **failed,
            ),
            call(utc(2026, 11, 24, 3), http_status=429, error_code=None, **failed),  # a 429 with nothing else
            call(
                utc(2026, 11, 24, 4),
                http_status=429,
                error_code="budget_exhausted",
                budget_exceeded_scope="workspace",
                **failed,
            ),
            call(utc(2026, 11, 24, 5), http_status=402, error_code="budget_exceeded", **failed),
            call(utc(2026, 11, 24, 6), http_status=402, error_code=None, budget_exceeded_scope="api_key", **failed),
            call(utc(2026, 11, 24, 7), http_status=500, error_code="upstream_error", **failed),
        ],
    )
    errors = build_report(db_path, report_period("day", now=NOW), now=NOW)["errors"]
    assert (errors["errors"], errors["rate_limited"], errors["budget_rejections"]) == (7, 3, 3)


def test_routing_savings_come_from_cached_list_prices(known, sim):
    from auriko_obs import analysis

    analysis.refresh_prices(known, sim.base_url, "ak_test")
    savings = build_report(known, report_period("day", now=NOW), now=NOW)["savings"]
    # gpt-4o at openai (2.50/10.00 per 1M) against azure (2.75/11.00): max is azure, median the mean of both
    # llama-3.3-70b at together (0.88/0.88) among fireworks 0.90/0.90, together, groq 0.59/0.79, deepinfra
    # 0.23/0.40, cerebras 0.85/1.20
    gpt = (1000 * 2.50 + 200 * 10.00) / 1e6, (1000 * 2.75 + 200 * 11.00) / 1e6
    llama = sorted(
        (3000 * i + 100 * o) / 1e6 for i, o in ((0.90, 0.90), (0.88, 0.88), (0.59, 0.79), (0.23, 0.40), (0.85, 1.20))
    )
    served_llama = (3000 * 0.88 + 100 * 0.88) / 1e6
    vs_max = (gpt[1] - gpt[0]) + (llama[-1] - served_llama)
    vs_median = ((gpt[0] + gpt[1]) / 2 - gpt[0]) + (llama[2] - served_llama)
    assert savings["routing_priced_calls"] == 2
    assert savings["routing_savings_vs_most_expensive_usd"] == pytest.approx(vs_max, abs=1e-6)
    assert savings["routing_savings_vs_median_usd"] == pytest.approx(vs_median, abs=1e-6)


def test_every_format_renders_and_json_matches_its_schema(known, tmp_path):
    report = build_report(known, report_period("day", now=NOW), now=NOW)
    as_json = json.loads(render(report, "json"))
    validate(as_json)
    assert as_json == json.loads(json.dumps(report))
    md = render(report, "md")
    assert md.startswith("# LLM spend report: 2026-11-24\n")
    assert "| Cost (USD) | $2.00 | $1.00 | +$1.00 (+100.0%) |" in md
    assert "| openai | $1.50 | 75.0% | 1 | 1,200 |" in md
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [(r["section"], r["metric"], r["value"]) for r in rows[:5]] == [
        ("period", "kind", "day"),
        ("period", "label", "2026-11-24"),
        ("period", "start", "2026-11-24T00:00:00Z"),
        ("period", "end", "2026-11-25T00:00:00Z"),
        ("report", "generated_at", "2026-11-25T09:00:00Z"),
    ]
    assert {"section": "totals", "dimension": "", "key": "", "metric": "cost_usd", "value": "2.0"} in rows
    assert {
        "section": "cost_by",
        "dimension": "provider",
        "key": "openai",
        "metric": "share_pct",
        "value": "75.0",
    } in rows
    assert {"section": "errors", "dimension": "", "key": "", "metric": "budget_rejections", "value": "1"} in rows


def test_budget_burn_in_json_markdown_and_csv(known, tmp_path):
    from auriko_obs.analysis import load_budgets

    config = tmp_path / "auriko_obs.toml"
    config.write_text(
        '[[budgets]]\nname = "search-team"\nscope = "tag"\nmatch = "team:search"\nperiod = "monthly"\n'
        'limit_usd = 1.0\n\n[[budgets]]\nname = "everything"\nperiod = "monthly"\nlimit_usd = 10000\n'
    )
    report = build_report(known, report_period("day", now=NOW), now=NOW, budgets=load_budgets(config))
    as_json = json.loads(render(report, "json"))
    validate(as_json)
    budgets = {b["name"]: b for b in as_json["budgets"]}
    search, everything = budgets["search-team"], budgets["everything"]
    # November up to NOW: $2.00 on team:search (the 24th), $12.00 in all (the 23rd, 24th and 25th)
    assert (search["scope"], search["match"], search["period"]) == ("tag", "team:search", "monthly")
    assert (search["period_start"], search["period_end"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert (search["spend_usd"], search["limit_usd"], search["percent_used"], search["state"]) == (
        2.0,
        1.0,
        200.0,
        "critical",
    )
    assert (everything["scope"], everything["match"]) == ("workspace", None)
    assert (everything["spend_usd"], everything["percent_used"], everything["state"]) == (12.0, 0.12, "ok")
    assert everything["exhausts_at"] is None
    md = render(report, "md")
    assert "| search-team | monthly | $2.00 | $1.00 | 200.0% |" in md and "| CRITICAL |" in md
    assert "| everything | monthly | $12.00 | $10,000.00 | 0.1% |" in md
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    budget_rows = {(r["key"], r["metric"]): r["value"] for r in rows if r["section"] == "budgets"}
    assert (
        budget_rows[("search-team", "percent_used")] == "200.0" and budget_rows[("search-team", "state")] == "critical"
    )
    assert budget_rows[("everything", "spend_usd")] == "12.0" and budget_rows[("everything", "limit_usd")] == "10000.0"
    assert {r["dimension"] for r in rows if r["section"] == "budgets"} == {"monthly"}


def test_html_is_one_self_contained_file_with_plotly_inline(known):
    html = render(build_report(known, report_period("day", now=NOW), now=NOW), "html")
    # nothing is fetched from elsewhere: no external scripts, styles or images
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", html)
    assert html.count("<script") >= 4 and "Plotly.newPlot" in html
    assert "plotly.js v" in html[:200_000] or "plotly.js" in html  # the library itself is inline
    assert len(html) > 3_000_000  # plotly.min.js is about 4.6 MB
    assert "<title>LLM spend report: 2026-11-24</title>" in html and "$2.00" in html


def test_robust_z_with_hand_computed_values():
    z, median, mad = robust_z(10, [1, 2, 3, 4, 100])
    assert (median, mad) == (3, 1) and z == pytest.approx(0.6745 * 7)
    z, median, mad = robust_z(3, [1, 1, 1, 1, 5])  # MAD is 0: the mean absolute deviation stands in
    assert mad == 0 and z == pytest.approx(2 / (1.2533 * 0.8))
    assert robust_z(5, [0, 0, 0, 0])[0] == math.inf and robust_z(0, [0, 0, 0])[0] == 0.0


def test_anomalies_find_a_spike_even_after_an_earlier_one():
    costs = [1.0 + 0.1 * (i % 3) for i in range(40)]
    costs[20] = 50.0  # an earlier spike inside the baseline
    costs[35] = 5.0
    buckets = [(f"2026-11-{i:02d}", c) for i, c in enumerate(costs)]
    found = find_anomalies(buckets, 30, granularity="day", window=28)
    assert [a.bucket_start for a in found] == ["2026-11-35"]
    # a mean and standard deviation would miss it: the earlier spike inflates the deviation
    baseline = costs[7:35]
    mean = sum(baseline) / len(baseline)
    std = (sum((c - mean) ** 2 for c in baseline) / len(baseline)) ** 0.5
    assert (5.0 - mean) / std < 3.5
    assert find_anomalies(buckets[:8], 5, granularity="day", window=28) == []  # too little history


def test_report_flags_the_spike_hour_of_a_realistic_day(db_path):
    insert_calls(db_path, history(utc(2026, 11, 25, 6), spike_at=utc(2026, 11, 24, 15, 20)))
    anomalies = build_report(db_path, report_period("day", now=NOW), now=NOW)["anomalies"]
    assert anomalies["granularity"] == "hour" and len(anomalies["series"]) == 24
    assert [a["bucket_start"] for a in anomalies["items"]] == ["2026-11-24T15:00:00Z"]
    assert anomalies["items"][0]["robust_z"] > 100


@pytest.mark.parametrize(
    "since, until, granularity",
    [
        (utc(2026, 11, 23, 21, 30), utc(2026, 11, 24, 21, 30), "hour"),
        (utc(2026, 11, 18, 3, 30), utc(2026, 11, 25, 3, 30), "day"),
    ],
)
def test_a_range_off_whole_hours_and_days_still_has_its_spend_series_and_anomalies(db_path, since, until, granularity):
    insert_calls(db_path, history(utc(2026, 11, 25, 6), spike_at=utc(2026, 11, 24, 15, 20)))
    report = build_report(db_path, report_period("day", now=NOW, since=since, until=until), now=NOW)
    anomalies = report["anomalies"]
    assert anomalies["granularity"] == granularity
    assert sum(b["cost_usd"] for b in anomalies["series"]) == pytest.approx(report["totals"]["cost_usd"], abs=1e-4)
    spike_bucket = "2026-11-24T15:00:00Z" if granularity == "hour" else "2026-11-24T00:00:00Z"
    assert [a["bucket_start"] for a in anomalies["items"]] == [spike_bucket]
    adverb = {"hour": "hourly", "day": "daily"}[granularity]
    assert anomalies["method"].startswith(f"robust z-score of {adverb} spend against the median and MAD of the ")


def test_cli_report_writes_each_format(known, tmp_path):
    for fmt in ("html", "md", "csv", "json"):
        out = tmp_path / f"r.{fmt}"
        assert (
            main(
                [
                    "report",
                    "--db",
                    known,
                    "--since",
                    "2026-11-24",
                    "--until",
                    "2026-11-25",
                    "--format",
                    fmt,
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        assert out.stat().st_size > 500
    validate(json.loads((tmp_path / "r.json").read_text()))


def test_cli_report_bad_input_is_one_line(known, capsys, tmp_path):
    assert main(["report", "--db", str(tmp_path / "missing.duckdb")]) == 2
    assert main(["report", "--db", known, "--since", "yesterday-ish", "--out", str(tmp_path / "x.html")]) == 2
    assert main(["report", "--db", known, "--to", "webhook"]) == 2
    assert main(["report", "--db", known, "--since", "99999999d", "--out", str(tmp_path / "x.html")]) == 2
    assert (
        main(["report", "--db", known, "--since", "400000d", "--format", "md"]) == 2
    )  # its previous period: year -100
    assert main(["report", "--db", known, "--until", "9999-12-31T12:00", "--period", "month"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("auriko-obs: no auriko-obs store at")
    assert err[1].startswith("auriko-obs: --since: not a time")
    assert err[2] == "auriko-obs: --to webhook needs --webhook-url or $AURIKO_OBS_WEBHOOK_URL"
    assert err[3] == "auriko-obs: --since: '99999999d' reaches back before the year 1"
    assert (
        err[4:]
        == ["auriko-obs: --since/--until: the range and the period before it must lie within the years 1 to 9999"] * 2
    )


def test_cron_line_leaves_a_command_line_webhook_url_out_and_says_where_to_put_it(known, capsys):
    assert (
        main(
            [
                "report",
                "--db",
                known,
                "--cron-line",
                "--cron",
                "5 4 * * *",
                "--to",
                "webhook",
                "--webhook-url",
                "http://127.0.0.1:9/hook",
                "--retries",
                "3",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    line = out.strip()
    assert line.startswith("5 4 * * * ") and "--retries 3 --to webhook >> " in line
    # the URL is a secret: it stays out of the crontab, and the user is told where to put it instead
    assert "127.0.0.1:9" not in out and "--webhook-url" not in out
    assert err.splitlines() == [
        "auriko-obs: the webhook URL is left out of the cron line: set AURIKO_OBS_WEBHOOK_URL in the env file "
        "the job sources (see docs/guides/reports.md, 'Cron, in one line')"
    ]


def test_cron_line_runs_early_in_each_new_utc_period(known, capsys):
    from auriko_obs.reports._schedule import default_cron

    assert default_cron("week", 0) == "0 6 * * 1"
    assert default_cron("week", 600) == "0 16 * * 1"  # UTC+10: 16:00 local is 06:00 UTC, same date
    assert default_cron("month", -480) == "0 0 1 * *"  # UTC-8: midnight local is 08:00 UTC on the 1st
    assert default_cron("day", 330) == "30 11 * * *"
    assert (
        main(
            [
                "report",
                "--db",
                known,
                "--period",
                "week",
                "--to",
                "email",
                "--email-to",
                "fin@example.com",
                "--out",
                "reports/100%.html",
                "--to",
                "file",
                "--cron-line",
            ]
        )
        == 0
    )
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    assert re.match(r"^\d+ \d+ \* \* 1 \S*auriko-obs report --db /\S+spend.duckdb --period week --format html ", line)
    assert "--out /" in line and "100\\%.html" in line  # absolute, and % escaped for cron
    assert line.endswith(
        "--to email --to file --email-to fin@example.com >> " + str(Path.home() / "auriko-obs-report.log") + " 2>&1"
    )
    assert main(["report", "--db", known, "--cron-line", "--cron", "5 4 * *"]) == 2
    assert main(["report", "--db", known, "--cron-line", "--cron", "99 99 * * *"]) == 2
    out, err = capsys.readouterr()
    assert (
        out == ""
        and err.splitlines()[0] == "auriko-obs: --cron needs 5 fields (minute hour day month weekday), not '5 4 * *'"
    )
    assert err.splitlines()[1].startswith("auriko-obs: --cron '99 99 * * *': ") and len(err.splitlines()) == 2


def test_report_of_real_spans_agrees_with_the_simulator_ledger(instrumented, tmp_path):
    """Calls through the instrumented SDK to the simulator (a budget that runs out, a rate limit): the report's
    numbers equal what the simulator billed."""
    import collections

    import openai

    import auriko_obs
    from auriko_obs.simulator import Simulator, SimulatorConfig

    from .conftest import API_KEY

    budget = {"scope_type": "workspace", "period": "daily", "limit_usd": 0.005}
    with (
        Simulator(SimulatorConfig(seed=3, budgets=[budget])) as sim,
        openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as client,
    ):
        sim.inject("rate_limit_exceeded")
        outcomes = collections.Counter()
        for i in range(30):
            try:
                client.chat.completions.create(
                    model=("gpt-4o", "claude-sonnet-4-20250514", "llama-3.3-70b")[i % 3],
                    max_tokens=150,
                    messages=[{"role": "user", "content": "Summarise our refund policy. " * 20}],
                    extra_body={"gateway": {"metadata": {"tags": [f"team:{i % 2}"], "user_id": f"u-{i % 4}"}}},
                )
                outcomes["ok"] += 1
            except openai.APIStatusError as exc:
                outcomes[exc.code] += 1
        ledger = sim.ledger()
    assert auriko_obs.flush(30)
    assert outcomes["budget_exhausted"] > 0 and outcomes["rate_limit_exceeded"] == 1 and outcomes["ok"] > 0
    out = tmp_path / "report.json"
    assert main(["report", "--db", instrumented, "--since", "1h", "--format", "json", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    validate(report)
    assert report["totals"]["calls"] == len(ledger) == 30
    assert report["totals"]["cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in ledger), abs=1e-6)
    billed = collections.defaultdict(float)
    for entry in ledger:
        if entry["cost_usd"]:
            billed[entry["provider"]] += entry["cost_usd"]
    reported = {r["key"]: r["cost_usd"] for r in report["cost_by"]["provider"] if r["cost_usd"]}
    assert reported == pytest.approx(dict(billed), abs=1e-6)
    assert report["errors"]["budget_rejections"] == outcomes["budget_exhausted"]
    assert report["errors"]["rate_limited"] == 1
    assert report["totals"]["users"] == 4


@pytest.mark.browser
def test_html_report_draws_its_figures_offline_in_headless_chromium(known, tmp_path):
    from .browser import CHROMIUM_FLAGS, chromium

    executable = chromium()
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report.html"
    assert main(["report", "--db", known, "--since", "2026-11-24", "--until", "2026-11-25", "--out", str(out)]) == 0
    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3", timeout=30_000)
            bars = page.eval_on_selector_all(
                ".js-plotly-plot", "els => els.map(e => e.querySelectorAll('.point').length)"
            )
        finally:
            browser.close()
    assert problems == [] and all(url.startswith("file://") or url.startswith("data:") for url in requests), requests
    assert len(bars) == 3 and all(n > 0 for n in bars)  # spend per hour, by provider, by model: all drawn


def test_an_empty_store_gives_a_valid_report_in_every_format(db_path):
    insert_calls(db_path, [])
    report = build_report(db_path, report_period("week", now=NOW), now=NOW)
    validate(json.loads(json.dumps(report)))
    assert report["totals"]["calls"] == 0 and report["cost_by"]["provider"] == [] and report["anomalies"]["items"] == []
    assert report["savings"]["cache_hit_ratio"] is None and report["errors"]["error_rate_pct"] == 0.0
    for fmt in ("html", "md", "csv", "json"):
        assert render(report, fmt)
    assert "No calls." in render(report, "md")
