"""One price module: list prices and Auriko's fetched prices, each saying where it came from and when."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime

import openai
import pytest

from auriko_obs import analysis, prices
from auriko_obs.store import check_writable

from .conftest import API_KEY, calls

MESSAGES = [{"role": "user", "content": "hello"}]


def test_every_list_price_names_its_source_page_and_the_day_it_was_copied():
    assert prices.LIST_PRICES
    for price in prices.LIST_PRICES:
        assert price.source.startswith("https://") and date.fromisoformat(price.as_of)
        assert price.input_usd_per_1m is not None and price.output_usd_per_1m is not None
        assert price.citation == f"{price.source} @ {price.as_of}"


def test_a_dated_snapshot_or_a_vendor_prefix_prices_as_its_model():
    assert prices.list_price("gpt-4o-2024-08-06") is prices.list_price("gpt-4o")
    assert prices.list_price("openai/gpt-4o-mini").model == "gpt-4o-mini"
    assert prices.list_price("gpt-4o-mini-2024-07-18").model == "gpt-4o-mini"  # the longest family wins
    assert prices.list_price("some-unknown-model") is None
    assert prices.estimate_cost_usd("some-unknown-model", 10, 10, 0) is None  # unknown is NULL, never 0


@pytest.mark.parametrize(
    "variant", ["gpt-5-nano", "gpt-5-pro", "gpt-4o-audio-preview", "gpt-4o-mini-tts", "o3-mini-high"]
)
def test_a_variant_that_is_not_a_dated_snapshot_is_unlisted_not_priced_as_its_family(variant):
    assert prices.list_price(variant) is None
    assert prices.estimate_cost_usd(variant, 1000, 1000, 0) is None


@pytest.mark.parametrize(
    ("snapshot", "family"),
    [
        ("gpt-5-2025-08-07", "gpt-5"),
        ("openai/gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4-20250514"),
        ("gpt-4.1-mini-20250414", "gpt-4.1-mini"),  # Anthropic's undashed date form, as the price sources use it
    ],
)
def test_both_dated_snapshot_forms_in_the_price_sources_price_as_their_family(snapshot, family):
    assert prices.list_price(snapshot).model == family


def test_an_estimated_call_records_which_price_it_used(instrumented, sim):
    sim.configure(openai_mode=True)  # a plain OpenAI-compatible server: nobody reports the cost
    with openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    [row] = calls(instrumented).to_dict("records")
    attributes = json.loads(row["attributes"])
    used = prices.list_price("gpt-4o")
    assert row["cost_source"] == "estimate"
    assert attributes["auriko.cost.price_source"] == used.citation == f"{prices.OPENAI_PRICING} @ {used.as_of}"
    expected = (row["input_tokens"] * used.input_usd_per_1m + row["output_tokens"] * used.output_usd_per_1m) / 1e6
    assert row["cost_usd"] == pytest.approx(expected)


def test_fetched_prices_say_which_url_they_were_read_from_and_when(sim, db_path):
    before = datetime.now().astimezone()
    fetched = prices.fetch_auriko_prices(sim.base_url, API_KEY)
    assert fetched and {p.source for p in fetched} <= {
        f"{sim.base_url}/models",
        f"{sim.base_url}/models?endpoint=responses",
    }
    assert all(datetime.fromisoformat(p.as_of) >= before for p in fetched)
    check_writable(db_path)  # an empty store
    cached = analysis.refresh_prices(db_path, sim.base_url, API_KEY)
    assert len(cached) == len(fetched) and cached["source"].eq(sim.base_url).all()
    assert cached["fetched_at"].notna().all()


def test_the_hot_path_prices_calls_without_pandas_duckdb_or_the_analyses():
    code = (
        "import sys; from auriko_obs.instrumentation import _extract; "
        "print(sorted({m.split('.')[0] if not m.startswith('auriko_obs') else m for m in sys.modules "
        "if m.startswith(('pandas', 'duckdb', 'plotly', 'auriko_obs.analysis', 'auriko_obs.store'))}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
