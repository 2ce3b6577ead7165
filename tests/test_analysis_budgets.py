"""Budgets: periods, config files, spend and forecast, the comparison with Auriko's headers, and the simulator."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from auriko_obs import analysis
from auriko_obs.analysis import Budget
from auriko_obs.store import Store

from ._stores import call, make_store, utc
from .conftest import API_KEY, calls
from .test_analysis import five_calls

# ------------------------------------------------------------------------------------------------ periods


@pytest.mark.parametrize(
    "period, now, start, end",
    [
        ("daily", "2026-06-01T00:00:00Z", "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"),
        ("daily", "2026-05-31T23:59:59+00:00", "2026-05-31T00:00:00Z", "2026-06-01T00:00:00Z"),
        ("daily", "2026-06-01T01:30:00+02:00", "2026-05-31T00:00:00Z", "2026-06-01T00:00:00Z"),  # 23:30 UTC
        ("weekly", "2026-06-03T12:00:00Z", "2026-06-01T00:00:00Z", "2026-06-08T00:00:00Z"),  # Monday to Monday
        ("weekly", "2026-05-31T23:00:00Z", "2026-05-25T00:00:00Z", "2026-06-01T00:00:00Z"),  # a Sunday
        ("monthly", "2026-12-31T23:00:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("monthly", "2028-02-29T12:00:00Z", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"),
    ],
)
def test_budget_periods_reset_at_utc_boundaries(period, now, start, end):
    assert analysis.period_bounds(period, utc(now)) == (utc(start), utc(end))


# ------------------------------------------------------------------------------------------------ config


def test_budgets_load_from_auriko_obs_toml_and_pyproject(tmp_path, monkeypatch):
    (tmp_path / "auriko_obs.toml").write_text(
        '[[budgets]]\nname = "search"\nscope = "tag"\nmatch = "team:search"\nperiod = "daily"\nlimit_usd = 50\n'
        "[[budgets]]\nlimit_usd = 1000\n"
    )
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[[tool.auriko_obs.budgets]]\nscope = "user"\nmatch = "u-42"\n'
        'period = "weekly"\nlimit_usd = 5.5\nservice = "api"\n'
    )
    assert analysis.load_budgets(tmp_path / "auriko_obs.toml") == [
        Budget("search", 50.0, "daily", "tag", "team:search"),
        Budget("workspace monthly", 1000.0),
    ]
    assert analysis.load_budgets(tmp_path / "pyproject.toml") == [
        Budget("user weekly", 5.5, "weekly", "user", "u-42", service="api")
    ]
    monkeypatch.chdir(tmp_path)
    assert [b.name for b in analysis.load_budgets()] == ["search", "workspace monthly"]  # auriko_obs.toml first
    (tmp_path / "auriko_obs.toml").unlink()
    assert [b.name for b in analysis.load_budgets()] == ["user weekly"]


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[budgets]]\nlimit_usd = 5\nperiod = "yearly"\n', "period must be one of"),
        ('[[budgets]]\nlimit_usd = 5\nscope = "tag"\n', "needs `match`"),
        ("[[budgets]]\nlimit_usd = -1\n", "positive"),
        ('[[budgets]]\nperiod = "daily"\n', "needs limit_usd"),
        ("[[budgets]]\nlimit_usd = 5\nlimit = 3\n", "unknown keys"),
        ("budgets = 3\n", "array of tables"),
    ],
)
def test_malformed_budgets_are_refused_with_the_reason(tmp_path, text, message):
    path = tmp_path / "auriko_obs.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        analysis.load_budgets(path)


def test_budgets_fall_through_to_pyproject_when_auriko_obs_toml_has_none(tmp_path, monkeypatch):
    (tmp_path / "auriko_obs.toml").write_text("# reports only, no budgets here\n[other]\nkey = 1\n")
    (tmp_path / "pyproject.toml").write_text('[[tool.auriko_obs.budgets]]\nname = "ws"\nlimit_usd = 3\n')
    monkeypatch.chdir(tmp_path)
    assert analysis.load_budgets() == [Budget("ws", 3.0)]


# ------------------------------------------------------------------------------------------------ burn


@pytest.fixture
def store(tmp_path):
    return make_store(str(tmp_path / "five.duckdb"), five_calls())


def test_budget_burn_without_configured_budgets_says_where_it_looked(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"no budgets: no \[\[budgets\]\] in ./auriko_obs.toml or \[tool.auriko_obs\]"):
        analysis.budget_burn(store)
    (tmp_path / "empty.toml").write_text("[other]\nkey = 1\n")
    with pytest.raises(ValueError, match=r"empty\.toml"):
        analysis.budget_burn(store, tmp_path / "empty.toml")
    none = analysis.budget_burn(store, [])  # no budgets asked for: an empty frame with its columns
    assert none.empty and "exhausts_at" in none.columns


def test_budget_burn_counts_the_current_utc_period_per_scope(store):
    budgets = [
        Budget("ws daily", 0.01, "daily"),
        Budget("ws weekly", 1.0, "weekly"),
        Budget("team a", 0.02, "daily", scope="tag", match="team:a"),
        Budget("u1", 0.001, "monthly", scope="user", match="u1"),
        Budget("batch", 1.0, "daily", service="batch"),
    ]
    burn = analysis.budget_burn(store, budgets, now="2026-06-01T03:00:00Z").set_index("budget")
    # June 1 (a Monday, a month's first day): B 0.0077 + C 0.000105 + E 0.00035 = 0.008155; A is in May.
    assert burn.loc["ws daily", "spend_usd"] == pytest.approx(0.008155, abs=1e-15)
    assert burn.loc["ws daily", "percent_used"] == pytest.approx(81.55, abs=1e-10)
    assert burn.loc["ws daily", "remaining_usd"] == pytest.approx(0.001845, abs=1e-15)
    assert burn.loc["ws weekly", "spend_usd"] == pytest.approx(0.008155, abs=1e-15)
    assert burn.loc["ws weekly", "period_start"] == utc("2026-06-01T00:00:00Z")
    assert burn.loc["team a", "spend_usd"] == pytest.approx(0.0077, abs=1e-15)
    assert burn.loc["u1", "spend_usd"] == pytest.approx(0.00035, abs=1e-15)
    assert burn.loc["batch", "spend_usd"] == pytest.approx(0.000105, abs=1e-15)
    # The burn rate is the decayed mean of the hours since the first call (23:00, 00:00, 01:00, 02:00),
    # weights 0.5 ** (age / 12 h).
    weights = [0.5 ** (3 / 12), 0.5 ** (2 / 12), 0.5 ** (1 / 12), 1.0]
    spend = [0.004, 0.0077, 0.000105, 0.00035]
    rate = sum(w * s for w, s in zip(weights, spend, strict=True)) / sum(weights)
    assert burn.loc["ws daily", "burn_rate_usd_per_h"] == pytest.approx(rate, rel=1e-12)
    assert burn.loc["ws daily", "exhausts_at"] == utc("2026-06-01T03:00:00Z") + timedelta(hours=0.001845 / rate)
    assert burn.loc["ws daily", "exhausts_at_low"] <= burn.loc["ws daily", "exhausts_at_high"]
    assert 0 < burn.loc["ws daily", "exhaust_probability"] <= 1


def test_budget_burn_compares_local_spend_with_auriko_headers(store):
    burn = analysis.budget_burn(
        store,
        [
            Budget("ws", 0.02, "daily"),
            Budget("ws w", 1, "weekly"),
            Budget("t", 1, "daily", scope="tag", match="team:a"),
        ],
        now="2026-06-01T03:00:00Z",
    ).set_index("budget")
    # E's headers say Auriko counted $0.01 of a $0.02 daily budget; we counted 0.008155 up to E.
    assert burn.loc["ws", "observed_at"] == utc("2026-06-01T02:10:00Z")
    assert (burn.loc["ws", "observed_spend_usd"], burn.loc["ws", "observed_limit_usd"]) == (0.01, 0.02)
    assert burn.loc["ws", "divergence_usd"] == pytest.approx(0.008155 - 0.01, abs=1e-15)
    assert burn.loc["ws", "credits_balance_usd"] == 99.5
    assert math.isnan(burn.loc["ws w", "observed_spend_usd"])  # no weekly header was seen
    assert math.isnan(burn.loc["t", "observed_spend_usd"]) and math.isnan(burn.loc["t", "credits_balance_usd"])


def test_budget_headers_of_another_scope_are_not_taken_as_this_budgets(tmp_path):
    # Two keys share the store: the interactive key's calls see the $5 workspace budget, the batch key's
    # latest call its own $0.001 api_key budget. The headers do not name their scope; the limits tell them apart.
    def headed(at: str, spend: float, limit: float) -> dict:
        budget = {"auriko.budget.daily.spend_usd": spend, "auriko.budget.daily.limit_usd": limit}
        return call(at, cost_usd=0.0001, cost_source="auriko", provider="openai", attributes=budget)

    rows = [headed(f"2026-06-01T0{h}:00:00Z", 0.01 * h, 5.0) for h in range(1, 5)]
    rows.append(headed("2026-06-01T05:00:00Z", 0.0009, 0.001))
    store = make_store(str(tmp_path / "keys.duckdb"), rows)
    budgets = [Budget("ws", 5.0, "daily"), Budget("batch", 0.001, "daily", scope="api_key"), Budget("x", 7, "daily")]
    burn = analysis.budget_burn(store, budgets, now="2026-06-01T06:00:00Z").set_index("budget")
    latest = """SELECT start_time, (attributes->>'$."auriko.budget.daily.spend_usd"')::DOUBLE AS spend FROM spans
                WHERE (attributes->>'$."auriko.budget.daily.limit_usd"')::DOUBLE = ? ORDER BY start_time DESC LIMIT 1"""
    for name, limit in (("ws", 5.0), ("batch", 0.001)):
        expected = Store(store).sql(latest, [limit]).iloc[0]
        assert burn.loc[name, "observed_at"] == expected["start_time"]
        assert burn.loc[name, "observed_spend_usd"] == expected["spend"]
        assert burn.loc[name, "observed_limit_usd"] == limit
    assert (
        burn.loc[["x"], ["observed_at", "observed_spend_usd", "observed_limit_usd", "divergence_usd"]]
        .isna()
        .all(axis=None)
    )


def test_budget_burndown_joins_spend_so_far_to_the_forecast_band(store):
    frame = analysis.budget_burndown(Budget("ws", 0.02, "daily"), store, now="2026-06-01T03:00:00Z")
    seen = frame[frame["kind"] == "observed"]
    ahead = frame[frame["kind"] == "forecast"]
    assert seen["time"].tolist() == [utc(f"2026-06-01T0{h}:00:00Z") for h in range(4)]
    assert seen["spend_usd"].tolist() == pytest.approx([0, 0.0077, 0.007805, 0.008155], abs=1e-15)
    assert len(ahead) == 21 and ahead["time"].iloc[-1] == utc("2026-06-02T00:00:00Z")
    assert (ahead["spend_low_usd"] <= ahead["spend_usd"]).all() and (
        ahead["spend_usd"] <= ahead["spend_high_usd"]
    ).all()
    assert ahead["spend_usd"].is_monotonic_increasing and (frame["limit_usd"] == 0.02).all()


def test_burn_rate_weighs_the_unfinished_hour_by_the_time_it_has_run():
    # 30 minutes into an hour with $1 spent: scaled to $2/h, weight halved.
    assert analysis.decayed_rate([1.0, 1.0], 12.0, last_fraction=0.5) == pytest.approx(
        (0.5 ** (1 / 12) * 1.0 + 0.5 * 2.0) / (0.5 ** (1 / 12) + 0.5)
    )


# ------------------------------------------------------------------------------------------------ forecast


def _bursty(rng, hours: int) -> np.ndarray:
    """Hourly spend: steady background (gamma, mean $1/h) plus rare large bursts (8% of hours, mean $8)."""
    return rng.gamma(11.0, 1 / 11.0, hours) + (rng.random(hours) < 0.08) * rng.exponential(8.0, hours)


def _straight_line_hours(period: np.ndarray, limit: float) -> float:
    """Hours from now until a least-squares line through the period's cumulative spend reaches the limit."""
    cumulative = np.cumsum(period)
    slope, intercept = np.polyfit(np.arange(1, len(cumulative) + 1), cumulative, 1)
    return (limit - intercept) / slope - len(cumulative) if slope > 0 else math.inf


def test_forecast_beats_a_straight_line_on_bursty_traffic():
    # 300 daily budgets, each looked at 3–12 hours into its day after a week of history, with a limit
    # that the actual future spend reaches 4–19 hours later. Errors are capped at the 36 h horizon.
    ours, line, covered = [], [], 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        into_day = int(rng.integers(3, 13))
        series = _bursty(rng, 168 + 48)
        past, future = series[:168], series[168:]
        today = past[-into_day:]
        hours_left = int(rng.integers(4, 20))
        limit = today.sum() + future[:hours_left].sum()
        result = analysis.forecast(past, limit - today.sum(), 36, seed=seed)
        ours.append(min(abs(result.exhausts_in_h - hours_left), 36))
        line.append(min(abs(_straight_line_hours(today, limit) - hours_left), 36))
        covered += result.exhausts_in_h_low <= hours_left <= result.exhausts_in_h_high
    assert np.mean(ours) < 0.85 * np.mean(line), (np.mean(ours), np.mean(line))
    assert np.median(ours) < np.median(line), (np.median(ours), np.median(line))
    assert covered / 300 >= 0.6  # the 10–90% band holds the truth most of the time


def test_forecast_follows_a_workload_that_just_doubled():
    # Flat $1/h for a week, then $2/h for the last 12 hours: the decayed rate has moved most of the way.
    rate = analysis.decayed_rate([1.0] * 156 + [2.0] * 12, 12.0)
    assert 1.45 < rate < 2.0
    assert rate == pytest.approx(1 + (1 - 0.5 ** (12 / 12)) / (1 - 0.5 ** (168 / 12)), rel=1e-12)


def test_forecast_without_spend_never_exhausts():
    result = analysis.forecast([0.0] * 24, 10.0, 48)
    assert (result.rate_usd_per_h, result.exhausts_in_h, result.exhaust_probability) == (0.0, math.inf, 0.0)


# ------------------------------------------------------------------------------------------------ end to end


def test_analyses_of_simulated_traffic_agree_with_the_simulator_ledger(sim, client, instrumented):
    sim.configure(budgets=[{"scope_type": "workspace", "period": "daily", "limit_usd": 5.0}])
    for i in range(12):
        client.chat.completions.create(
            model=["gpt-4o", "llama-3.3-70b", "claude-sonnet-4-20250514"][i % 3],
            messages=[{"role": "user", "content": f"question {i}"}],
            extra_body={
                "gateway": {
                    "routing": {"optimize": ["cost", "ttft"][i % 2]},
                    "metadata": {"tags": [f"team:{'ab'[i % 2]}"], "user_id": f"u{i % 4}"},
                }
            },
        )
    rows = calls(instrumented)
    assert len(rows) == 12
    billed = sum(e["cost_usd"] for e in sim.ledger())
    by_provider = {}
    for entry in sim.ledger():
        by_provider[entry["provider"]] = by_provider.get(entry["provider"], 0.0) + entry["cost_usd"]
    cost = analysis.cost_by("provider", instrumented)
    assert cost["cost_usd"].sum() == pytest.approx(billed, rel=1e-9)
    assert dict(zip(cost["provider"], cost["cost_usd"], strict=True)) == pytest.approx(by_provider, rel=1e-9)

    burn = analysis.budget_burn(instrumented, [Budget("ws", 5.0, "daily")]).iloc[0]
    assert burn["spend_usd"] == pytest.approx(billed, rel=1e-9)
    assert burn["observed_limit_usd"] == 5.0
    assert burn["observed_spend_usd"] == pytest.approx(billed, rel=1e-6)  # the header of the last call
    assert abs(burn["divergence_usd"]) < 1e-6
    assert burn["credits_balance_usd"] == pytest.approx(100.0 - billed, abs=1e-6)

    prices = analysis.refresh_prices(instrumented, sim.base_url, API_KEY)
    assert {"gpt-4o", "llama-3.3-70b", "o3-pro", "text-embedding-3-small"} <= set(prices["model"])
    saved = analysis.routing_savings(instrumented, by="model")
    # Short prompts are never cached, so the simulator billed list prices exactly.
    assert saved["list_cost_usd"].sum() == pytest.approx(billed, rel=1e-9)
    assert (saved["savings_vs_max_usd"] >= 0).all() and saved["priced_calls"].sum() == 12
    mix = analysis.provider_mix(instrumented, period=None, by="model")
    assert mix["calls"].sum() == 12 and mix["off_default_calls"].notna().all()
