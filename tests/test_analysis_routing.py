"""routing_savings when providers' prices cross: the most expensive and the median provider depend on each
call's mix of input and output tokens, so summing tokens first and pricing the sums would be wrong."""

from __future__ import annotations

import random
import statistics

import pytest

from auriko_obs import analysis
from auriko_obs.store import Store

from ._stores import call, make_store

# USD per 1M tokens (input, output). In m3, A is cheapest for input-heavy calls and B for output-heavy ones;
# E has no input price, so it is no candidate. In m4, D is always the most expensive.
CROSSING_PRICES = [
    ("m3", "A", 0, 1.0, 4.0),
    ("m3", "B", 1, 3.0, 1.0),
    ("m3", "C", 2, 2.0, 2.0),
    ("m3", "E", 3, None, 1.0),
    ("m4", "A", 0, 1.0, 4.0),
    ("m4", "B", 1, 3.0, 1.0),
    ("m4", "C", 2, 2.0, 2.0),
    ("m4", "D", 3, 5.0, 5.0),
]


def _call(
    model: str, provider: str | None, inp: int | None, out: int | None, start: str = "2026-06-01T10:00:00Z", **values
) -> dict:
    return call(
        start,
        model_canonical=model,
        request_model=model,
        provider=provider,
        input_tokens=inp,
        output_tokens=out,
        **values,
    )


@pytest.fixture
def crossing(tmp_path):
    rows = [
        # m3, in units of 1e-6 USD. 900 in / 100 out: A 1300, B 2800, C 2000 → max 2800, median 2000.
        _call("m3", "B", 900, 100),
        # 100 in / 900 out: A 3700, B 1200, C 2000 → max 3700, median 2000.
        _call("m3", "A", 100, 900),
        # 500 / 500: A 2500, B 2000, C 2000 → max 2500, median 2000.
        _call("m3", "C", 500, 500),
        # No tokens (a failed call): 0 everywhere, still priced.
        _call("m3", "A", None, None, status="error"),
        # Served by a provider the price list lacks, or by one without an input price: counted, not priced.
        _call("m3", "Z", 10, 10),
        _call("m3", "E", 10, 10),
        # m4 (an even number of providers: the median is the mean of the middle two).
        # 900 / 100: A 1300, C 2000, B 2800, D 5000 → max 5000, median 2400; served by A: 1300.
        _call("m4", "A", 900, 100),
        # 100 / 900: B 1200, C 2000, A 3700, D 5000 → max 5000, median 2850; served by B: 1200.
        _call("m4", "B", 100, 900),
    ]
    return Store(make_store(str(tmp_path / "crossing.duckdb"), rows, CROSSING_PRICES))


def test_max_and_median_are_taken_per_call_where_prices_cross(crossing):
    frame = {r["model"]: r for r in analysis.routing_savings(crossing, by="model").to_dict("records")}
    m3, m4 = frame["m3"], frame["m4"]
    assert (m3["calls"], m3["priced_calls"], m4["calls"], m4["priced_calls"]) == (6, 4, 2, 2)
    # Priced at the summed tokens (1500 in, 1500 out) the max would be A's 7500, not 9000.
    assert m3["list_cost_usd"] == pytest.approx((2800 + 3700 + 2000) * 1e-6, rel=1e-12)
    assert m3["max_cost_usd"] == pytest.approx((2800 + 3700 + 2500) * 1e-6, rel=1e-12)
    assert m3["median_cost_usd"] == pytest.approx((2000 + 2000 + 2000) * 1e-6, rel=1e-12)
    assert m3["savings_vs_max_usd"] == pytest.approx(500e-6, rel=1e-12)
    assert m3["savings_vs_median_usd"] == pytest.approx(-2500e-6, rel=1e-12)
    assert m4["list_cost_usd"] == pytest.approx((1300 + 1200) * 1e-6, rel=1e-12)
    assert m4["max_cost_usd"] == pytest.approx(10000e-6, rel=1e-12)
    assert m4["median_cost_usd"] == pytest.approx((2400 + 2850) * 1e-6, rel=1e-12)


def test_per_provider_rows_split_the_same_sums(crossing):
    frame = analysis.routing_savings(crossing)  # by model and provider
    m3 = {r["provider"]: r for r in frame[frame["model"] == "m3"].to_dict("records")}
    assert set(m3) == {"A", "B", "C", "E", "Z"}
    assert (m3["A"]["calls"], m3["A"]["priced_calls"], m3["A"]["max_cost_usd"]) == (2, 2, pytest.approx(3700e-6))
    assert m3["B"]["savings_vs_median_usd"] == pytest.approx((2000 - 2800) * 1e-6, rel=1e-12)
    assert (m3["Z"]["priced_calls"], m3["Z"]["max_cost_usd"], m3["E"]["list_cost_usd"]) == (0, 0.0, 0.0)


def _expected(rows: list[dict], prices: list[tuple], key) -> dict:
    """Per group, the sums as the docstring defines them, priced call by call in Python."""
    offers: dict[str, list[tuple]] = {}
    for model, provider, _, i, o in prices:
        offers.setdefault(model, []).append((provider, i, o))
    out: dict = {}
    for row in rows:
        inp, outp = row["input_tokens"] or 0, row["output_tokens"] or 0
        group = out.setdefault(key(row), {"calls": 0, "priced_calls": 0, "list": 0.0, "max": 0.0, "median": 0.0})
        group["calls"] += 1
        model_offers = offers.get(row["model_canonical"], [])
        served = [(i, o) for p, i, o in model_offers if p == row["provider"]]
        if len(served) != 1 or served[0][0] is None:
            continue
        costs = [(inp * i + outp * (o or 0)) / 1e6 for _, i, o in model_offers if i is not None]
        group["priced_calls"] += 1
        group["list"] += (inp * served[0][0] + outp * (served[0][1] or 0)) / 1e6
        group["max"] += max(costs)
        group["median"] += statistics.median(costs)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_price_lists_match_pricing_every_call_at_every_provider(tmp_path, seed):
    rng = random.Random(seed)
    prices, providers = [], {}
    for m in range(4):
        names = [f"p{k}" for k in range(rng.randint(1, 6))]
        providers[f"model-{m}"] = names
        for position, name in enumerate(names):
            prices.append(
                (f"model-{m}", name, position, round(rng.uniform(0.05, 20), 2), round(rng.uniform(0.05, 60), 2))
            )
    rows = []
    for n in range(250):
        model = f"model-{rng.randrange(5)}"  # model-4 is not in the price list
        provider = rng.choice([*providers.get(model, ["p0"]), None])
        inp = rng.choice([None, 0, rng.randint(1, 50), rng.randint(1, 8000)])
        out = rng.choice([None, 0, rng.randint(1, 50), rng.randint(1, 4000)])
        rows.append(
            _call(
                model,
                provider,
                inp,
                out,
                start=f"2026-06-0{1 + n % 3}T0{n % 10}:00:00Z",
                tags=rng.sample(["t1", "t2", "t3"], rng.randint(0, 2)),
            )
        )
    store = Store(make_store(str(tmp_path / f"random{seed}.duckdb"), rows, prices))

    by_model = analysis.routing_savings(store, by="model")
    expected = _expected(rows, prices, key=lambda r: r["model_canonical"])
    assert set(by_model["model"]) == set(expected)
    for r in by_model.to_dict("records"):
        e = expected[r["model"]]
        assert (r["calls"], r["priced_calls"]) == (e["calls"], e["priced_calls"])
        assert (r["list_cost_usd"], r["max_cost_usd"], r["median_cost_usd"]) == (
            pytest.approx(e["list"], rel=1e-9, abs=1e-15),
            pytest.approx(e["max"], rel=1e-9, abs=1e-15),
            pytest.approx(e["median"], rel=1e-9, abs=1e-15),
        )

    # Filters narrow the calls before the segments are counted (their parameters follow the crossings').
    some = ["model-0", "model-1", "model-4"]
    filtered = analysis.routing_savings(store, by="model", since="2026-06-02T00:00:00Z", model=some)
    kept = [r for r in rows if r["model_canonical"] in some and r["start_time"].day >= 2]
    expected = _expected(kept, prices, key=lambda r: r["model_canonical"])
    assert dict(zip(filtered["model"], filtered["calls"], strict=True)) == {m: e["calls"] for m, e in expected.items()}
    assert dict(zip(filtered["model"], filtered["median_cost_usd"], strict=True)) == pytest.approx(
        {m: e["median"] for m, e in expected.items()}, rel=1e-9, abs=1e-15
    )

    # Per day and tag: a call counts under each of its tags, a call without tags under "(none)".
    by_tag = analysis.routing_savings(store, by="tag", period="day")
    tagged = [dict(r, _tag=t) for r in rows for t in (r["tags"] or ["(none)"])]
    expected = _expected(tagged, prices, key=lambda r: (r["start_time"].strftime("%Y-%m-%d"), r["_tag"]))
    assert len(by_tag) == len(expected)
    for r in by_tag.to_dict("records"):
        e = expected[(r["period_start"].strftime("%Y-%m-%d"), r["tag"])]
        assert (r["calls"], r["priced_calls"]) == (e["calls"], e["priced_calls"])
        assert r["max_cost_usd"] == pytest.approx(e["max"], rel=1e-9, abs=1e-15)
        assert r["median_cost_usd"] == pytest.approx(e["median"], rel=1e-9, abs=1e-15)
