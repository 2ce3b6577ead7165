"""Analyses against stores with known contents; every expected number is worked out by hand in comments.

The five calls straddle a UTC day, ISO week and month boundary: 2026-05-31 is a Sunday and 2026-06-01
a Monday, so A is alone in its day, week and month.
"""

from __future__ import annotations

import math
import os
import time

import pytest

from auriko_obs import analysis, plots
from auriko_obs.store import Store

from ._stores import call, make_store, utc

GPT4O_PRICES = [("gpt-4o", "openai", 0, 2.5, 10.0), ("gpt-4o", "azure", 1, 2.75, 11.0)]


def five_calls() -> list[dict]:
    return [
        # A: Sunday 23:30, openai, 600 of 1000 input tokens cached.
        call(
            "2026-05-31T23:30:00Z",
            provider="openai",
            model_canonical="gpt-4o",
            request_model="gpt-4o",
            input_tokens=1000,
            cached_tokens=600,
            cache_write_tokens=0,
            output_tokens=100,
            cost_usd=0.004,
            cost_source="auriko",
            cache_savings_usd=0.00075,
            tags=["team:a"],
            user_id="u1",
            service_name="api",
            routing_strategy="cost",
            duration_ms=100.0,
            provider_ttft_ms=400.0,
            throughput_tps=90.0,
        ),
        # B: Monday 00:30, azure, streamed, 1024 tokens written to the cache, no savings reported.
        call(
            "2026-06-01T00:30:00Z",
            provider="azure",
            model_canonical="gpt-4o",
            request_model="gpt-4o",
            input_tokens=2000,
            cached_tokens=0,
            cache_write_tokens=1024,
            output_tokens=200,
            cost_usd=0.0077,
            cost_source="auriko",
            tags=["team:a", "team:b"],
            user_id="u2",
            service_name="api",
            routing_strategy="ttft",
            duration_ms=300.0,
            ttft_ms=50.0,
            provider_ttft_ms=500.0,
            throughput_tps=80.0,
            streaming=True,
        ),
        # C: a non-Auriko endpoint: no provider, no canonical model, an estimated cost.
        call(
            "2026-06-01T01:15:00Z",
            request_model="gpt-4o-mini",
            input_tokens=500,
            output_tokens=50,
            cost_usd=0.000105,
            cost_source="estimate",
            service_name="batch",
            duration_ms=200.0,
        ),
        # D: a rate-limited call the SDK sent three times.
        call(
            "2026-06-01T02:00:00Z",
            provider="openai",
            model_canonical="gpt-4o",
            request_model="gpt-4o",
            status="error",
            error_type="rate_limit_error",
            error_code="rate_limit_exceeded",
            http_status=429,
            retry_after_s=2.0,
            http_attempts=3,
            tags=["team:b"],
            service_name="api",
            routing_strategy="cost",
            duration_ms=10.0,
        ),
        # E: a call with a routing warning, sent twice, carrying Auriko's budget and credit headers.
        call(
            "2026-06-01T02:10:00Z",
            provider="openai",
            model_canonical="gpt-4o",
            request_model="gpt-4o",
            input_tokens=100,
            output_tokens=10,
            cost_usd=0.00035,
            cost_source="auriko",
            tags=[],
            user_id="u1",
            service_name="api",
            routing_strategy="cost",
            duration_ms=400.0,
            provider_ttft_ms=300.0,
            throughput_tps=100.0,
            http_attempts=2,
            warnings=["top_k_ignored"],
            credits_balance_usd=99.5,
            attributes={
                "auriko.routing.warning_types": ["unsupported_parameter"],
                "auriko.budget.daily.spend_usd": 0.01,
                "auriko.budget.daily.limit_usd": 0.02,
            },
        ),
    ]


@pytest.fixture
def store(tmp_path):
    return Store(make_store(str(tmp_path / "five.duckdb"), five_calls()))


@pytest.fixture
def priced(tmp_path):
    return Store(make_store(str(tmp_path / "priced.duckdb"), five_calls(), GPT4O_PRICES))


@pytest.fixture
def empty(tmp_path):
    return Store(make_store(str(tmp_path / "empty.duckdb")))


def rows(frame, key: str) -> dict:
    return {r[key]: r for r in frame.to_dict("records")}


# ------------------------------------------------------------------------------------------------ provider mix


def test_provider_mix_splits_calls_at_the_utc_day_boundary(store):
    mix = analysis.provider_mix(store, period="day")
    day1 = mix[mix["period_start"] == utc("2026-05-31T00:00:00Z")]
    day2 = rows(mix[mix["period_start"] == utc("2026-06-01T00:00:00Z")], "provider")
    assert day1["provider"].tolist() == ["openai"]
    assert day1[["calls", "input_tokens", "output_tokens", "total_tokens"]].values.tolist() == [[1, 1000, 100, 1100]]
    assert day1["cost_share"].tolist() == [1.0]
    assert set(day2) == {"(none)", "azure", "openai"}
    # Day 2 costs 0.0077 (B) + 0.000105 (C) + 0.00035 (E; D failed) = 0.008155.
    assert day2["azure"]["cost_usd"] == pytest.approx(0.0077, abs=1e-15)
    assert day2["azure"]["cost_share"] == pytest.approx(0.0077 / 0.008155, rel=1e-12)
    assert day2["(none)"]["cost_share"] == pytest.approx(0.000105 / 0.008155, rel=1e-12)
    assert [day2[p]["calls"] for p in ("(none)", "azure", "openai")] == [1, 1, 2]
    assert [day2[p]["call_share"] for p in ("(none)", "azure", "openai")] == [0.25, 0.25, 0.5]
    assert (day2["openai"]["input_tokens"], day2["openai"]["total_tokens"]) == (100, 110)  # D has no usage
    assert day2["openai"]["top_strategy"] == "cost" and day2["azure"]["top_strategy"] == "ttft"
    assert mix["off_default_calls"].isna().all()  # no prices cached, so no default provider known


@pytest.mark.parametrize(
    "period, starts",
    [
        ("week", ["2026-05-25T00:00:00Z", "2026-06-01T00:00:00Z"]),  # ISO weeks start on Monday
        ("month", ["2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"]),
        ("hour", ["2026-05-31T23:00:00Z", "2026-06-01T00:00:00Z", "2026-06-01T01:00:00Z", "2026-06-01T02:00:00Z"]),
    ],
)
def test_provider_mix_periods_start_at_utc_boundaries(store, period, starts):
    mix = analysis.provider_mix(store, period=period, by="service")
    assert sorted(set(mix["period_start"])) == [utc(s) for s in starts]
    assert mix["calls"].sum() == 5


def test_provider_mix_counts_calls_moved_off_the_default_provider(priced):
    mix = rows(analysis.provider_mix(priced, period=None), "provider")
    assert mix["azure"]["off_default_calls"] == 1 and mix["azure"]["off_default_share"] == 1.0  # openai is first
    assert mix["openai"]["off_default_calls"] == 0 and mix["openai"]["off_default_share"] == 0.0
    assert mix["(none)"]["off_default_calls"] == 0 and math.isnan(mix["(none)"]["off_default_share"])


def test_periods_stay_utc_whatever_the_process_time_zone(store, monkeypatch):
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        mix = analysis.provider_mix(store, period="day", by="model")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert sorted(set(mix["period_start"])) == [utc("2026-05-31T00:00:00Z"), utc("2026-06-01T00:00:00Z")]


@pytest.mark.parametrize("since", ["2026-06-01T02:00:00+02:00", "2026-06-01T00:00:00", "2026-05-31T20:00:00-04:00"])
def test_since_with_an_offset_or_none_means_the_same_instant(store, since):
    # All three are 2026-06-01T00:00Z (a time without an offset is UTC): A is left out.
    mix = analysis.provider_mix(store, since=since, period=None)
    assert mix["calls"].sum() == 4
    until = analysis.cost_by("model", store, until="2026-06-01T01:15:00+00:00")  # [since, until): C excluded
    assert until["calls"].sum() == 2


@pytest.mark.parametrize(
    "since, until",
    [
        ("2026-01-02", "2026-01-01"),  # reversed dates
        ("2026-06-01T00:00:00Z", "2026-06-01T02:00:00+02:00"),  # the same instant: [since, until) is empty
        ("1h", "7d"),  # spans back from now: 1 hour ago is after 7 days ago
        ("1h", "1h"),  # both spans are taken back from the same now
    ],
)
def test_since_not_before_until_is_refused_with_the_reason(store, since, until):
    for run in (
        lambda: analysis.provider_mix(store, since=since, until=until),
        lambda: analysis.cost_by("model", store, since=since, until=until),
        lambda: analysis.latency(store, since=since, until=until),
        lambda: analysis.errors(store, since=since, until=until),
        lambda: analysis.cache_savings(store, since=since, until=until),
    ):
        with pytest.raises(ValueError, match=r"since \(.*\) must be before until"):
            run()


def test_filters_combine_and_accept_lists(store):
    assert analysis.provider_mix(store, period=None, tag="team:b")["calls"].sum() == 2  # B and D
    assert analysis.provider_mix(store, period=None, tag=["team:a", "team:b"])["calls"].sum() == 3
    assert analysis.provider_mix(store, period=None, user="u1", provider="openai")["calls"].sum() == 2
    assert analysis.provider_mix(store, period=None, model="gpt-4o-mini")["provider"].tolist() == ["(none)"]
    assert analysis.provider_mix(store, period=None, service=["batch", "nope"])["calls"].sum() == 1


def test_user_values_never_reach_sql_as_text(store):
    hostile = "x'); DROP TABLE spans; --"
    assert analysis.provider_mix(store, period=None, model=hostile).empty
    assert len(store.calls()) == 5
    with pytest.raises(ValueError, match="cannot group by"):
        analysis.cost_by('provider"; DROP TABLE spans; --', store)
    with pytest.raises(ValueError, match="period"):
        analysis.provider_mix(store, period="fortnight")


# ------------------------------------------------------------------------------------------------ cost_by


def test_cost_by_tag_counts_a_call_under_each_tag_and_folds_the_rest(store):
    # team:a = A 0.004 + B 0.0077 = 0.0117; team:b = B 0.0077 + D 0; (none) = C 0.000105 + E 0.00035.
    frame = analysis.cost_by("tag", store, top=1)
    assert frame["tag"].tolist() == ["team:a", "other"]
    assert frame["rank"].tolist()[0] == 1 and frame["rank"].isna().tolist() == [False, True]
    assert frame["cost_usd"].tolist() == pytest.approx([0.0117, 0.0077 + 0.000455], abs=1e-15)
    assert frame["calls"].tolist() == [2, 4]
    # Shares are of the calls' total cost, each call once (0.012155), not of the sum over tags.
    total = store.sql("SELECT sum(cost_usd) AS c FROM llm_calls")["c"][0]
    assert frame["cost_share"].tolist() == pytest.approx([0.0117 / total, 0.008155 / total], rel=1e-12)


def spread_tags(tmp_path) -> Store:
    """Returns a store of six calls over two days, each tagged ``all`` and one tag of its own; one is untagged."""
    rows = [
        call(f"2026-06-0{1 + i % 2}T10:0{i}:00Z", provider="openai", cost_usd=0.001 * (i + 1), tags=["all", f"c{i}"])
        for i in range(5)
    ]
    rows.append(call("2026-06-02T11:00:00Z", provider="azure", cost_usd=0.5, tags=[]))
    return Store(make_store(str(tmp_path / "tags.duckdb"), rows))


@pytest.mark.parametrize("period", [None, "day"])
def test_a_tag_share_is_of_the_periods_total_over_distinct_calls_so_tag_shares_can_add_past_1(tmp_path, period):
    store = spread_tags(tmp_path)
    head = "date_trunc('day', start_time)" if period else "NULL"
    expected = store.sql(
        f"""SELECT {head} AS p, sum(cost_usd) FILTER (WHERE list_contains(tags, 'all')) / sum(cost_usd) AS share,
                   count(*) FILTER (WHERE list_contains(tags, 'all')) / count(*) AS call_share
            FROM llm_calls GROUP BY ALL ORDER BY p"""
    )
    for frame in (analysis.cost_by("tag", store, period=period), analysis.provider_mix(store, by="tag", period=period)):
        tagged_all = frame[frame["tag"] == "all"]
        assert tagged_all["cost_share"].tolist() == pytest.approx(expected["share"].tolist(), rel=1e-12)
        shares = frame.groupby("period_start")["cost_share"].sum() if period else [frame["cost_share"].sum()]
        assert all(total > 1.0 for total in shares)  # every tagged call counts under two tags
    mix = analysis.provider_mix(store, by="tag", period=period)
    assert mix[mix["tag"] == "all"]["call_share"].tolist() == pytest.approx(expected["call_share"].tolist())


def test_shares_by_an_ordinary_dimension_still_add_up_to_1(tmp_path):
    store = spread_tags(tmp_path)
    for frame in (analysis.cost_by("provider", store, period="day"), analysis.provider_mix(store, period="day")):
        assert frame.groupby("period_start")["cost_share"].sum().tolist() == pytest.approx([1.0, 1.0])


def test_cost_by_user_ranks_by_cost_and_shows_missing_users_as_none(store):
    frame = analysis.cost_by("user", store)
    assert frame["user"].tolist() == ["u2", "u1", "(none)"]
    assert frame["rank"].tolist() == [1, 2, 3]
    assert frame["cost_usd"].tolist() == pytest.approx([0.0077, 0.00435, 0.000105], abs=1e-15)


def test_cost_by_per_period_keeps_the_window_ranking(store):
    frame = analysis.cost_by("provider", store, top=1, period="month")
    may = frame[frame["period_start"] == utc("2026-05-01T00:00:00Z")]
    june = frame[frame["period_start"] == utc("2026-06-01T00:00:00Z")]
    # Over the whole window azure (0.0077) beats openai (0.00435), so azure is the top 1 in every month.
    assert may["provider"].tolist() == ["other"] and may["cost_usd"].tolist() == pytest.approx([0.004])
    assert june["provider"].tolist() == ["azure", "other"]
    assert june["cost_usd"].tolist() == pytest.approx([0.0077, 0.000455], abs=1e-15)


# ------------------------------------------------------------------------------------------------ cache


def test_cache_savings_per_model(store):
    frame = rows(analysis.cache_savings(store, by="model", period=None), "model")
    gpt4o, mini = frame["gpt-4o"], frame["gpt-4o-mini"]
    assert (
        gpt4o["calls"],
        gpt4o["input_tokens"],
        gpt4o["cached_tokens"],
        gpt4o["uncached_input_tokens"],
        gpt4o["cache_write_tokens"],
    ) == (4, 3100, 600, 2500, 1024)
    assert gpt4o["cache_hit_ratio"] == pytest.approx(600 / 3100, rel=1e-12)
    assert gpt4o["cost_usd"] == pytest.approx(0.01205, abs=1e-15)
    assert gpt4o["cache_savings_usd"] == pytest.approx(0.00075, abs=1e-15)
    assert gpt4o["cost_without_cache_usd"] == pytest.approx(0.0128, abs=1e-15)
    assert gpt4o["savings_percent"] == pytest.approx(100 * 0.00075 / 0.0128, rel=1e-12)
    assert (mini["cached_tokens"], mini["cache_hit_ratio"], mini["savings_percent"]) == (0, 0.0, 0.0)


def test_cache_savings_default_groups_by_model_provider_and_day(store):
    frame = analysis.cache_savings(store)
    assert list(frame.columns[:3]) == ["period_start", "model", "provider"]
    assert len(frame) == 4  # (May 31, gpt-4o, openai), (Jun 1: gpt-4o azure, gpt-4o openai, gpt-4o-mini none)


# ------------------------------------------------------------------------------------------------ latency


def test_latency_percentiles_interpolate_between_calls(store):
    frame = analysis.latency(store, by="provider")
    openai = {r["metric"]: r for r in frame[frame["provider"] == "openai"].to_dict("records")}
    # Successful openai calls: A 100 ms and E 400 ms (D failed and is left out).
    d = openai["duration_ms"]
    assert (d["calls"], d["mean"], d["p05"], d["p25"], d["p50"], d["p75"], d["p90"], d["p99"]) == (
        2,
        250.0,
        115.0,
        175.0,
        250.0,
        325.0,
        370.0,
        397.0,
    )
    assert openai["provider_ttft_ms"]["p50"] == 350.0 and openai["throughput_tps"]["p50"] == 95.0
    assert "ttft_ms" not in openai  # neither call was streamed
    azure = frame[frame["provider"] == "azure"].set_index("metric")
    assert azure.loc["ttft_ms", "p99"] == 50.0 and azure.loc["throughput_tps", "unit"] == "tokens/s"
    none = frame[frame["provider"] == "(none)"]
    assert none["metric"].tolist() == ["duration_ms"] and none["p50"].tolist() == [200.0]


def test_latency_can_include_failed_calls(store):
    frame = analysis.latency(store, by="provider", include_errors=True)
    d = frame[(frame["provider"] == "openai") & (frame["metric"] == "duration_ms")].iloc[0]
    assert (d["calls"], d["p50"]) == (3, 100.0)  # 10, 100, 400


# ------------------------------------------------------------------------------------------------ errors


def test_errors_by_code_retries_and_warnings(store):
    frame = analysis.errors(store, period=None)
    assert set(frame["provider"]) == {"openai"}
    by_kind = {r["kind"]: r for r in frame.to_dict("records")}
    error, retry, warning = by_kind["error"], by_kind["retry"], by_kind["warning"]
    # openai has three calls: A, D (failed after 3 attempts), E (2 attempts).
    assert (
        error["type"],
        error["code"],
        error["calls"],
        error["count"],
        error["retries"],
        error["retry_after_s"],
        error["http_status"],
    ) == ("rate_limit_error", "rate_limit_exceeded", 3, 1, 2, 2.0, 429)
    assert error["rate"] == pytest.approx(1 / 3)
    assert (retry["code"], retry["count"], retry["retries"], retry["retry_after_s"]) == ("retried", 2, 3, 2.0)
    assert (warning["type"], warning["code"], warning["count"], warning["retries"]) == (
        "unsupported_parameter",
        "top_k_ignored",
        1,
        0,
    )


def test_errors_within_since_and_until_count_only_the_calls_inside(store):
    # [02:00, 02:05) holds D only: A is earlier, E (the warned call, sent twice) later.
    frame = analysis.errors(store, since="2026-06-01T02:00:00Z", until="2026-06-01T02:05:00Z", period=None)
    by_kind = {r["kind"]: r for r in frame.to_dict("records")}
    assert (by_kind["error"]["calls"], by_kind["error"]["count"]) == (1, 1)
    assert (by_kind["retry"]["count"], by_kind["retry"]["retries"]) == (1, 2)
    assert "warning" not in by_kind
    assert analysis.errors(store, since="2027-01-01", period=None).empty


def test_errors_reads_each_kind_of_event_through_a_filter_in_the_scan(store):
    # Failed, retried and warned calls are each read through their own predicate, which DuckDB filters in the
    # table scan. One three-way OR for all of them, narrowed per kind after, was evaluated on every call by two
    # of the three scans: most of errors()'s time on a 10M-call store.
    from auriko_obs.analysis._health import _errors
    from auriko_obs.analysis._query import grouping, session, where

    with session(store) as s:
        query = s.compile(_errors(s, where(), grouping(["provider"], "hour")))
        plan = "".join(s.sql("EXPLAIN " + query)["explain_value"])
    assert "Filters: status = 'error'" in plan
    assert " OR " not in plan  # (http_attempts > 1) OR (status = 'error') OR … on every call


def test_errors_by_http_status_is_refused_rather_than_naming_two_columns_alike(store):
    with pytest.raises(ValueError, match="http_status column of its own"):
        analysis.errors(store, by="http_status")  # DuckDB raised 'Ambiguous reference to column name'


def _bare_gateway_errors(tmp_path) -> Store:
    """A store with two failed calls whose answer had no Auriko error body: a 502 from a proxy in front of the
    router (only the status is known) and a 503 the SDK named (error.type ServiceUnavailableError)."""
    return Store(
        make_store(
            str(tmp_path / "bare.duckdb"),
            [
                call("2026-06-01T02:00:00Z", status="error", http_status=502, duration_ms=30.0),
                call(
                    "2026-06-01T02:01:00Z",
                    status="error",
                    http_status=503,
                    duration_ms=30.0,
                    attributes={"error.type": "ServiceUnavailableError"},
                ),
            ],
        )
    )


@pytest.mark.parametrize("by", ["error_code", "error_type"])
def test_errors_grouped_by_error_code_or_type_still_name_errors_without_an_auriko_body(tmp_path, by):
    # The group column is "(none)" (no Auriko code or type), but each error's own code and type still come
    # from the status and the error.type attribute: a group named like a column must not replace the column.
    frame = analysis.errors(_bare_gateway_errors(tmp_path), by=by, period=None)
    errors = frame[frame["kind"] == "error"].sort_values("code")
    assert errors[by].tolist() == ["(none)", "(none)"]
    assert errors["code"].tolist() == ["ServiceUnavailableError", "http_502"]
    assert [None if t != t else t for t in errors["type"]] == ["ServiceUnavailableError", None]
    assert errors["http_status"].tolist() == [503, 502]
    assert errors["count"].tolist() == [1, 1] and errors["calls"].tolist() == [2, 2]


def test_errors_per_hour_fall_in_the_hour_of_the_call(store):
    frame = analysis.errors(store, period="hour", by="service")
    assert set(frame["period_start"]) == {utc("2026-06-01T02:00:00Z")}
    assert frame["calls"].unique().tolist() == [2]  # D and E share the 02:00 hour


# ------------------------------------------------------------------------------------------------ routing


def test_routing_savings_prices_every_call_at_every_provider(priced):
    frame = rows(analysis.routing_savings(priced, by="model"), "model")
    gpt4o = frame["gpt-4o"]
    # A (openai) 1000 in / 100 out: openai 0.0035, azure 0.00385. B (azure) 2000/200: openai 0.007,
    # azure 0.0077. E (openai) 100/10: 0.00035 and 0.000385. D has no tokens: 0 everywhere.
    assert (gpt4o["calls"], gpt4o["priced_calls"]) == (4, 4)
    assert gpt4o["list_cost_usd"] == pytest.approx(0.0035 + 0.0077 + 0.00035, abs=1e-15)
    assert gpt4o["max_cost_usd"] == pytest.approx(0.00385 + 0.0077 + 0.000385, abs=1e-15)
    assert gpt4o["median_cost_usd"] == pytest.approx(0.003675 + 0.00735 + 0.0003675, abs=1e-15)
    assert gpt4o["savings_vs_max_usd"] == pytest.approx(0.00035 + 0.000035, abs=1e-15)
    assert gpt4o["savings_vs_median_usd"] == pytest.approx(0.000175 - 0.00035 + 0.0000175, abs=1e-15)
    assert (frame["gpt-4o-mini"]["calls"], frame["gpt-4o-mini"]["priced_calls"]) == (1, 0)  # not in the catalog


def test_routing_savings_needs_cached_prices(store):
    with pytest.raises(ValueError, match="refresh_prices"):
        analysis.routing_savings(store)


# ------------------------------------------------------------------------------------------------ edge stores


def test_every_analysis_of_an_empty_store_is_an_empty_frame_with_its_columns(empty):
    assert list(analysis.provider_mix(empty).columns) == [
        "period_start",
        "provider",
        "calls",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost_usd",
        "call_share",
        "cost_share",
        "off_default_calls",
        "off_default_share",
        "top_strategy",
    ]
    for frame in (
        analysis.provider_mix(empty),
        analysis.cost_by("model", empty),
        analysis.cache_savings(empty),
        analysis.latency(empty),
        analysis.errors(empty),
    ):
        assert frame.empty and len(frame.columns) > 3
    burn = analysis.budget_burn(empty, [analysis.Budget("ws", 10, "daily")], now="2026-06-01T12:00:00Z")
    assert (burn["spend_usd"].iloc[0], burn["burn_rate_usd_per_h"].iloc[0], burn["exhaust_probability"].iloc[0]) == (
        0.0,
        0.0,
        0.0,
    )
    assert burn["exhausts_at"].isna().all()
    for fig in (
        plots.provider_mix(analysis.provider_mix(empty)),
        plots.errors(analysis.errors(empty)),
        plots.latency(analysis.latency(empty)),
    ):
        assert fig.layout.annotations[0].text == "no calls in this window"


def test_a_single_call_is_the_whole_mix(tmp_path):
    store = make_store(
        str(tmp_path / "one.duckdb"),
        [call("2026-06-01T12:00:00Z", provider="groq", cost_usd=0.5, input_tokens=7, output_tokens=3, total_tokens=10)],
    )
    mix = analysis.provider_mix(store, period="week")
    assert mix[["provider", "calls", "total_tokens", "cost_usd", "call_share", "cost_share"]].values.tolist() == [
        ["groq", 1, 10, 0.5, 1.0, 1.0]
    ]
    lat = analysis.latency(store, by="provider")
    assert lat[["p05", "p50", "p99"]].values.tolist() == [[100.0, 100.0, 100.0]]


def test_analyses_accept_a_path_or_the_environment_default(store, monkeypatch):
    by_path = analysis.cost_by("provider", store.path)
    monkeypatch.setenv("AURIKO_OBS_DB", store.path)
    assert analysis.cost_by("provider").equals(by_path)


def test_store_connections_avoid_duckdb_wrong_integer_sums(store):
    # DuckDB 2.0.1 truncated such a sum to 8 bits with compressed materialization on (16875 → -21).
    frame = store.sql("""
        WITH base AS (SELECT provider AS p, input_tokens FROM llm_calls)
        SELECT p, coalesce(sum(input_tokens), 0)::BIGINT AS s FROM base
        LEFT JOIN (SELECT model FROM provider_prices WHERE position = 0) AS d ON d.model = base.p
        GROUP BY p ORDER BY p""")
    assert frame["s"].tolist() == [2000, 1100, 500]  # azure, openai, NULL last


def test_plots_draw_every_analysis_with_units_and_usd_hover(priced, tmp_path):
    figures = {
        "provider_mix": plots.provider_mix(analysis.provider_mix(priced, period="hour")),
        "cost_by": plots.cost_by(analysis.cost_by("tag", priced)),
        "cache_savings": plots.cache_savings(analysis.cache_savings(priced, period=None)),
        "routing_savings": plots.routing_savings(analysis.routing_savings(priced, by="model")),
        "latency": plots.latency(analysis.latency(priced)),
        "errors": plots.errors(analysis.errors(priced)),
        "budget_burn": plots.budget_burn(
            analysis.budget_burndown(analysis.Budget("ws", 0.02, "daily"), priced, now="2026-06-01T03:00:00Z")
        ),
    }
    for name, fig in figures.items():
        assert fig.layout.title.text and fig.layout.yaxis.title.text, name
        assert fig.data, name
        hover = " ".join(str(t.hovertemplate) for t in fig.data if t.hovertemplate)
        assert "$" in hover or name in ("latency", "errors"), name
        fig.write_html(str(tmp_path / f"{name}.html"), include_plotlyjs=False)
        assert os.path.getsize(tmp_path / f"{name}.html") > 1000
    assert "USD" in figures["provider_mix"].layout.yaxis.title.text
    assert "tokens" in figures["provider_mix"].data[0].hovertemplate
    assert figures["latency"].layout.yaxis.title.text.endswith("(ms)")
    burn = figures["budget_burn"]
    assert any(s.y0 == 0.02 for s in burn.layout.shapes)  # the limit line
    assert [t.name for t in burn.data] == [None, "forecast 10–90%", "forecast (median)", "spent"]


def test_plots_tell_a_dimension_from_metrics_by_position_not_name(store):
    # http_status is also a column of errors(); as cost_by's dimension it is the bars' axis.
    fig = plots.cost_by(analysis.cost_by("http_status", store))
    assert fig.layout.title.text == "Spend by http_status" and fig.layout.yaxis.title.text == "http_status"
    assert sorted(fig.data[0].y) == ["(none)", "429"]


def test_provider_mix_figure_is_titled_by_its_grouping_and_period(store):
    by_model = plots.provider_mix(analysis.provider_mix(store, by="model", period="day"), value="calls")
    assert by_model.layout.title.text == "Calls by model" and by_model.layout.legend.title.text == "model"
    assert by_model.layout.xaxis.title.text == "period start (UTC)"
    whole = plots.provider_mix(analysis.provider_mix(store, period=None))
    assert whole.layout.title.text == "Spend by provider" and whole.layout.xaxis.title.text == "provider"
    assert [t.type for t in whole.data] == ["bar"] * 3 and "per period" not in whole.layout.yaxis.title.text
    with pytest.raises(ValueError, match="value must be one of"):
        plots.provider_mix(analysis.provider_mix(store), value="cost")


def test_a_figure_given_another_analysis_frame_names_the_right_function(store):
    summary = analysis.budget_burn(store, [analysis.Budget("ws", 1, "daily")], now="2026-06-01T03:00:00Z")
    with pytest.raises(ValueError, match=r"plots.budget_burn draws the frame of auriko_obs.analysis.budget_burndown"):
        plots.budget_burn(summary)
    with pytest.raises(ValueError, match=r"analysis.latency\(\); this frame has no column metric"):
        plots.latency(analysis.cost_by("model", store))


def test_an_empty_by_gives_the_totals_of_all_calls(priced, empty):
    lat = analysis.latency(priced, by=[]).set_index("metric")
    # Successful calls A, B, C, E: 100, 300, 200, 400 ms.
    assert list(lat.columns[:2]) == ["unit", "calls"]
    assert tuple(lat.loc["duration_ms", ["calls", "mean", "p50", "p99"]]) == pytest.approx((4, 250.0, 250.0, 397.0))
    cache = analysis.cache_savings(priced, by=[], period=None)
    assert cache[["calls", "input_tokens", "cached_tokens", "cache_write_tokens"]].values.tolist() == [
        [5, 3600, 600, 1024]
    ]
    assert cache["cost_usd"].iloc[0] == pytest.approx(0.012155, abs=1e-15)
    routing = analysis.routing_savings(priced, by=[])
    per_model = analysis.routing_savings(priced, by="model")
    for column in ("calls", "priced_calls", "list_cost_usd", "max_cost_usd", "median_cost_usd"):
        assert routing[column].iloc[0] == pytest.approx(per_model[column].sum(), abs=1e-15), column
    assert plots.latency(analysis.latency(priced, by=[])).layout.title.text == "Call duration"
    assert list(plots.cache_savings(cache).data[0].x) == ["all calls"]
    assert analysis.latency(empty, by=[]).empty and analysis.cache_savings(empty, by=[], period=None).empty


def test_spend_by_service_tier_and_by_api_tells_the_tiers_and_the_apis_apart(tmp_path):
    rows = [
        call("2026-06-01T00:00:00Z", api="chat_completions", service_tier="default", cost_usd=0.02),
        call("2026-06-01T00:01:00Z", api="responses", service_tier="flex", cost_usd=0.01),
        call("2026-06-01T00:02:00Z", api="responses", service_tier="flex", cost_usd=0.03),
        call("2026-06-01T00:03:00Z", operation="embeddings", api="embeddings", cost_usd=0.001),
    ]
    store = Store(make_store(str(tmp_path / "tiers.duckdb"), rows))
    by_tier = analysis.cost_by("service_tier", store).set_index("service_tier")
    assert by_tier.loc["flex", "calls"] == 2 and by_tier.loc["flex", "cost_usd"] == pytest.approx(0.04)
    assert by_tier.loc["(none)", "calls"] == 1  # embeddings report no tier
    by_api = analysis.cost_by("api", store).set_index("api")
    assert dict(by_api["calls"]) == {"responses": 2, "chat_completions": 1, "embeddings": 1}


def test_a_store_file_from_before_a_column_existed_is_analysed_with_that_column_null(tmp_path):
    import duckdb

    path = make_store(str(tmp_path / "older.duckdb"), five_calls())
    with duckdb.connect(path) as con:  # as an auriko-obs from before service_tier (and span_rows) left the file
        con.execute("DROP VIEW llm_calls")
        con.execute("DROP VIEW spans")
        con.execute("ALTER TABLE span_rows RENAME TO spans")
        con.execute("ALTER TABLE spans RENAME COLUMN extra_attributes TO attributes")  # every attribute, as then
        con.execute("ALTER TABLE spans DROP COLUMN service_tier")
        con.execute("DELETE FROM auriko_obs_migrations WHERE version = 7")
    frame = analysis.cost_by("service_tier", path)  # read-only: nothing migrates the file
    assert frame[["service_tier", "calls"]].values.tolist() == [["(none)", 5]]
    assert analysis.provider_mix(path, period=None)["calls"].sum() == 5
