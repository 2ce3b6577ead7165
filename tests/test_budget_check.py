"""``auriko-obs budget check``: monitoring-plugin exit codes 0/1/2/3 and one line of output."""

from __future__ import annotations

from datetime import timedelta

import pytest

from auriko_obs.cli import main

from .spend_history import call, insert_calls, utc

DAY = utc(2026, 11, 25)


def config(tmp_path, limit_usd: float, period: str = "daily", extra: str = "") -> str:
    path = tmp_path / "auriko_obs.toml"
    path.write_text(
        f'[[budgets]]\nname = "team-search"\nscope = "tag"\nmatch = "team:search"\nperiod = "{period}"\n'
        f"limit_usd = {limit_usd}\n{extra}"
    )
    return str(path)


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["budget", "check", *args])
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out  # exactly one line
    return code, out.strip()


@pytest.fixture
def early_spend(db_path):
    """$85 spent on team:search between 01:00 and 03:00, nothing since."""
    insert_calls(
        db_path,
        [call(DAY + timedelta(hours=1, minutes=10 * i), cost_usd=85 / 12, tags=["team:search"]) for i in range(12)]
        + [call(DAY + timedelta(hours=2), cost_usd=40.0, tags=["other"])],
    )
    return db_path


@pytest.fixture
def steady_spend(db_path):
    """$4 an hour on team:search since midnight, without a pause."""
    insert_calls(
        db_path, [call(DAY + timedelta(minutes=15 * i), cost_usd=1.0, tags=["team:search"]) for i in range(48)]
    )
    return db_path


def test_ok_when_far_from_the_limit(early_spend, tmp_path, capsys):
    code, line = run(capsys, "--db", early_spend, "--config", config(tmp_path, 1000), "--now", "2026-11-25T23:00Z")
    assert code == 0
    assert line.startswith("BUDGET OK - team-search (tag team:search, daily): $85.00 of $1,000.00 (8.5%)")
    assert line.endswith("| 'team-search'=8.5%;80;100;0")


def test_warning_when_the_threshold_is_crossed_but_the_forecast_holds(early_spend, tmp_path, capsys):
    code, line = run(capsys, "--db", early_spend, "--config", config(tmp_path, 100), "--now", "2026-11-25T23:30Z")
    assert code == 1, line
    assert line.startswith(
        "BUDGET WARNING - team-search (tag team:search, daily): $85.00 of $100.00 (85.0%), "
        "over the 80% warning threshold"
    )
    code, line = run(
        capsys, "--db", early_spend, "--config", config(tmp_path, 100), "--now", "2026-11-25T23:30Z", "--warning", "90"
    )
    assert code == 0 and line.startswith("BUDGET OK")


def test_critical_when_the_limit_is_reached(early_spend, tmp_path, capsys):
    code, line = run(capsys, "--db", early_spend, "--config", config(tmp_path, 80), "--now", "2026-11-25T23:00Z")
    assert code == 2
    assert line.startswith(
        "BUDGET CRITICAL - team-search (tag team:search, daily): $85.00 of $80.00 (106.2%), limit reached"
    )


def test_critical_when_forecast_to_run_out_before_the_reset(steady_spend, tmp_path, capsys):
    # $48 by noon at $4/h: $100 is reached around 01:00 the next day... so give it $90, reached at 22:30
    code, line = run(capsys, "--db", steady_spend, "--config", config(tmp_path, 90), "--now", "2026-11-25T12:00Z")
    assert code == 2, line
    assert "$48.00 of $90.00 (53.3%), forecast to run out at 2026-11-25 2" in line
    assert "before the period resets at 2026-11-26 00:00 UTC" in line
    code, line = run(capsys, "--db", steady_spend, "--config", config(tmp_path, 200), "--now", "2026-11-25T12:00Z")
    assert code == 0, line


@pytest.mark.parametrize("case", ["no config", "bad config", "unknown name", "no store", "empty store", "bad option"])
def test_unknown_for_no_data_or_bad_config(case, db_path, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = config(tmp_path, 10)
    insert_calls(db_path, [call(DAY, cost_usd=1.0)]) if case not in ("no store", "empty store") else None
    if case == "empty store":
        insert_calls(db_path, [])
    args = {
        "no config": ["--db", db_path, "--config", str(tmp_path / "nowhere.toml")],
        "bad config": ["--db", db_path, "--config", config(tmp_path, -5)],
        "unknown name": ["--db", db_path, "--config", good, "--name", "marketing"],
        "no store": ["--db", str(tmp_path / "missing.duckdb"), "--config", good],
        "empty store": ["--db", db_path, "--config", good],
        "bad option": ["--db", db_path, "--colour", "red"],
    }[case]
    code, line = run(capsys, *args)
    assert code == 3 and line.startswith("BUDGET UNKNOWN - "), line


@pytest.mark.parametrize("warning, critical", [("150", "10"), ("0", "100"), ("-5", "100"), ("80", "nan")])
def test_thresholds_out_of_order_or_range_are_unknown(early_spend, tmp_path, capsys, warning, critical):
    code, line = run(
        capsys,
        "--db",
        early_spend,
        "--config",
        config(tmp_path, 100),
        "--now",
        "2026-11-25T23:30Z",
        "--warning",
        warning,
        "--critical",
        critical,
    )
    assert code == 3
    assert line == (
        f"BUDGET UNKNOWN - the thresholds must be 0 < --warning <= --critical, not --warning "
        f"{float(warning):g} --critical {float(critical):g}"
    )


def test_no_budgets_configured_is_unknown(db_path, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    insert_calls(db_path, [call(DAY, cost_usd=1.0)])
    code, line = run(capsys, "--db", db_path)
    assert code == 3 and "no budgets configured" in line


def test_budgets_from_pyproject_and_the_worst_decides(early_spend, tmp_path, capsys, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        "[tool.auriko_obs]\nbudgets = [\n"
        '  {name = "all", period = "monthly", limit_usd = 10000},\n'
        '  {name = "search", scope = "tag", match = "team:search", period = "daily", limit_usd = 100},\n'
        '  {name = "other", scope = "tag", match = "other", period = "daily", limit_usd = 45},\n]\n'
    )
    monkeypatch.chdir(tmp_path)
    code, line = run(capsys, "--db", early_spend, "--now", "2026-11-25T23:30Z")
    assert code == 1 and line.startswith("BUDGET WARNING - other (tag other, daily): $40.00 of $45.00 (88.9%)")
    assert "(and 1 more not OK)" in line
    assert line.endswith("| 'all'=1.2%;80;100;0 'search'=85.0%;80;100;0 'other'=88.9%;80;100;0")


def test_a_demo_burst_of_seconds_is_not_forecast_into_critical(tmp_path, capsys):
    from auriko_obs import analysis
    from auriko_obs.store import Store

    db = str(tmp_path / "demo.duckdb")
    assert main(["demo", "--calls", "12", "--db", db]) == 0
    capsys.readouterr()
    spend = float(Store(db).sql("SELECT sum(cost_usd) AS c FROM llm_calls")["c"][0])
    path = tmp_path / "auriko_obs.toml"
    path.write_text(f'[[budgets]]\nname = "ws"\nscope = "workspace"\nperiod = "daily"\nlimit_usd = {spend * 50}\n')
    code, line = run(capsys, "--db", db, "--config", str(path))
    assert code == 0, line  # 2% used; seconds of calls say nothing about the rest of the day
    row = analysis.budget_burn(db, str(path)).iloc[0]
    assert row["spend_usd"] == pytest.approx(spend)
    assert row[["exhausts_at", "exhausts_at_low", "exhausts_at_high", "exhaust_probability"]].isna().all()


def test_a_three_second_burst_early_in_the_hour_is_not_forecast_into_critical(db_path, tmp_path, capsys):
    # The reviewer's case: $0.07 of a $5 daily budget spent in 3 s at 10:01, checked at 10:01:05. Scaled to
    # an hour that is $50/h, "running out" by 10:07 with probability 1; it is 1.4% of the budget.
    burst = DAY + timedelta(hours=10, minutes=1)
    insert_calls(
        db_path, [call(burst + timedelta(seconds=i), cost_usd=0.07 / 4, tags=["team:search"]) for i in range(4)]
    )
    code, line = run(capsys, "--db", db_path, "--config", config(tmp_path, 5), "--now", "2026-11-25T10:01:05Z")
    assert code == 0 and line.startswith("BUDGET OK - team-search (tag team:search, daily): $0.07 of $5.00 (1.4%)")


def test_a_budget_past_its_limit_is_critical_even_with_minutes_of_history(db_path, tmp_path, capsys):
    insert_calls(
        db_path, [call(DAY + timedelta(hours=5, minutes=i), cost_usd=30.0, tags=["team:search"]) for i in (1, 2)]
    )
    code, line = run(capsys, "--db", db_path, "--config", config(tmp_path, 50), "--now", "2026-11-25T05:05Z")
    assert code == 2 and "limit reached" in line, line
