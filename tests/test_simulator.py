"""The simulator speaks the Auriko contract (shared/auriko-api.md), checked with the real openai SDK over HTTP."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import datetime, timezone

import openai
import pytest

from auriko_obs.simulator import MODELS, Simulator, SimulatorConfig

from .conftest import API_KEY

try:  # openai 3.x ships httpx2, 2.x ships httpx: test with whichever the installed SDK uses
    import httpx2 as httpx
except ImportError:
    import httpx

LONG_PROMPT = "Reference manual. " + " ".join(f"Section {i}: keep answers short and cite the catalogue." for i in range(120))
CATALOG = {m.id: m for m in MODELS}


def _client(sim, **kw):
    return openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0, **kw)


def _routed(client, model, **routing):
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], extra_body={"gateway": {"routing": routing}})
    return response.model_extra["routing_metadata"]


def test_each_strategy_picks_the_provider_it_optimises_for(sim):
    providers = CATALOG["llama-3.3-70b"].providers
    with _client(sim) as client:
        chosen = {s: _routed(client, "llama-3.3-70b", optimize=s)["provider"] for s in ("cost", "ttft", "tps")}
        strategy = _routed(client, "llama-3.3-70b", optimize="balanced")["routing_strategy"]
        custom = _routed(client, "llama-3.3-70b", weights={"cost": 1})["routing_strategy"]
        suffix = client.chat.completions.create(model="llama-3.3-70b:ttft", messages=[{"role": "user", "content": "x"}])
    assert chosen["cost"] == min(providers, key=lambda p: (p.input_price + p.output_price) / 2).name
    assert chosen["ttft"] == min(providers, key=lambda p: p.ttft_ms).name
    assert chosen["tps"] == max(providers, key=lambda p: p.tps).name
    assert len(set(chosen.values())) >= 2
    assert strategy == "balanced" and custom == "custom"
    assert suffix.model_extra["routing_metadata"]["routing_strategy"] == "ttft"


def test_allow_and_exclude_lists_change_or_refuse_the_provider(sim):
    with _client(sim) as client:
        assert _routed(client, "llama-3.3-70b", providers=["together"])["provider"] == "together"
        cheapest = _routed(client, "llama-3.3-70b", optimize="cost")["provider"]
        assert _routed(client, "llama-3.3-70b", optimize="cost", exclude_providers=[cheapest])["provider"] != cheapest
        with pytest.raises(openai.BadRequestError) as caught:
            _routed(client, "llama-3.3-70b", providers=["openai"])
    assert caught.value.code == "provider_not_in_allowlist"
    assert caught.value.body["param"] == "gateway.routing.providers"


def test_repeated_long_prefix_hits_the_cache_with_documented_savings(sim):
    messages = [{"role": "system", "content": LONG_PROMPT}, {"role": "user", "content": "First question?"}]
    with _client(sim) as client:
        first = client.chat.completions.create(model="gpt-4o", messages=messages)
        messages[1]["content"] = "Second question?"
        second = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert first.usage.prompt_tokens >= 1024
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    details = first.usage.prompt_tokens_details  # typed in openai 3.x, an extra field in 2.x
    assert (getattr(details, "cache_write_tokens", None) or details.model_extra["cache_write_tokens"]) >= 1024
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0
    routing = second.model_extra["routing_metadata"]
    provider = next(p for p in CATALOG["gpt-4o"].providers if p.name == routing["provider"])
    savings = cached * (provider.input_price - provider.cache_read_price) / 1e6
    cost = ((second.usage.prompt_tokens - cached) * provider.input_price + cached * provider.cache_read_price
            + second.usage.completion_tokens * provider.output_price) / 1e6
    assert routing["cost"]["cache_savings_usd"] == pytest.approx(savings)
    assert routing["cost"]["usd"] == pytest.approx(cost)
    assert routing["cost"]["cache_savings_percent"] == round(100 * savings / (cost + savings))
    assert "cache_savings_usd" not in first.model_extra["routing_metadata"]["cost"]


def test_budget_exhaustion_headers_and_drift_shape(sim):
    sim.configure(budgets=[{"scope_type": "api_key", "period": "weekly", "limit_usd": 1e-9, "enforce": True}])
    with _client(sim) as client:
        ok = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        assert float(ok.headers["x-budget-weekly-limit"]) == pytest.approx(1e-9)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        sim.configure(drift=True)
        with pytest.raises(openai.APIStatusError) as legacy:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    headers = caught.value.response.headers
    assert caught.value.code == "budget_exhausted" and caught.value.type == "rate_limit_error"
    assert headers["x-budget-exceeded"] == "true"
    assert headers["x-budget-exceeded-scope"] == "api_key" and headers["x-budget-exceeded-period"] == "weekly"
    assert float(headers["x-budget-weekly-spend"]) > 0
    assert legacy.value.status_code == 402 and legacy.value.code == "budget_exceeded"
    body = caught.value.body
    assert set(body) >= {"message", "type", "code", "param", "doc_url"}


def test_daily_budget_resets_at_the_utc_day_boundary():
    now = [datetime(2026, 11, 25, 23, 59, 30, tzinfo=timezone.utc).timestamp()]
    config = SimulatorConfig(seed=1, clock=lambda: now[0],
                             budgets=[{"scope_type": "workspace", "period": "daily", "limit_usd": 1e-9}])
    with Simulator(config) as sim, _client(sim) as client:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        now[0] += 60  # 00:00:30 UTC next day
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert [e["http_status"] for e in sim.ledger()] == [200, 429, 200]


def test_rpm_limit_gives_429_with_retry_after_and_ratelimit_headers(sim):
    sim.configure(rpm_limit=2)
    with _client(sim) as client:
        first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    datetime.fromisoformat(first.headers["x-ratelimit-reset-requests"].replace("Z", "+00:00"))
    assert caught.value.code == "rate_limit_exceeded"
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.response.headers["x-error-retryable"] == "true"


def test_tools_legacy_functions_and_json_schema(sim):
    tool = {"type": "function", "function": {"name": "lookup_order", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "string"}, "qty": {"type": "integer"}},
        "required": ["order_id"]}}}
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "score": {"type": "number"},
                                               "tags": {"type": "array", "items": {"type": "string"}},
                                               "kind": {"enum": ["book", "ebook"]}},
              "required": ["title", "score", "tags", "kind"]}
    with _client(sim) as client:
        called = client.chat.completions.create(model="gpt-4o", tools=[tool], tool_choice="required",
                                                messages=[{"role": "user", "content": "Where is order 7?"}])
        legacy = client.chat.completions.create(model="gpt-4o", functions=[tool["function"]],
                                                messages=[{"role": "user", "content": "use lookup_order"}])
        structured = client.chat.completions.create(
            model="claude-sonnet-4-20250514", messages=[{"role": "user", "content": "Rate a book"}],
            response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}})
        streamed = list(client.chat.completions.create(model="gpt-4o", tools=[tool], tool_choice="required",
                                                       messages=[{"role": "user", "content": "x"}], stream=True))
    call = called.choices[0].message.tool_calls[0]
    assert called.choices[0].finish_reason == "tool_calls" and call.function.name == "lookup_order"
    assert isinstance(json.loads(call.function.arguments)["order_id"], str)
    assert legacy.choices[0].message.tool_calls[0].function.name == "lookup_order"
    value = json.loads(structured.choices[0].message.content)
    assert set(value) == {"title", "score", "tags", "kind"} and value["kind"] in ("book", "ebook")
    arguments = "".join(c.choices[0].delta.tool_calls[0].function.arguments or "" for c in streamed
                        if c.choices and c.choices[0].delta.tool_calls)
    assert json.loads(arguments) == json.loads(call.function.arguments)


def test_json_schema_without_a_capable_provider_is_refused(sim):
    with _client(sim) as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="llama-3.3-70b", messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
            extra_body={"gateway": {"routing": {"providers": ["groq"]}}})
    assert caught.value.code == "structured_output_not_supported" and caught.value.body.get("suggestion")


def test_responses_embeddings_models_and_me(sim):
    with _client(sim) as client:
        response = client.responses.create(model="gpt-4o", input="hi", instructions="be brief")
        events = [e.type for e in client.responses.create(model="gpt-4o", input="hi", stream=True)]
        vectors = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        floats = client.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float")
        models = client.models.list()
        with pytest.raises(openai.BadRequestError):
            client.responses.create(model="gpt-4o", input="hi", store=True)
    assert response.output_text and response.usage.input_tokens > 0
    assert response.model_extra["routing_metadata"]["provider"]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert "response.output_text.delta" in events
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 256
    assert vectors.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)
    gpt4o = next(m for m in models.data if m.id == "gpt-4o")
    assert {p["name"]: p["input_price"] for p in gpt4o.model_extra["providers"]}["openai"] == 2.5
    request = urllib.request.Request(f"{sim.base_url}/me", headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request) as raw:
        me = json.load(raw)
        assert raw.headers["x-request-id"].startswith("req_")
    assert me["credential_type"] == "api_key" and "inference_rpm" in me["rate_limits"]


def test_error_bodies_and_unknown_model_and_bad_json(sim):
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as raw:
        unknown = raw.post("/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
        bad_json = raw.post("/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
        both = raw.post("/chat/completions", json={"model": "gpt-4o", "gateway": {"models": ["gpt-4o"]},
                                                   "messages": [{"role": "user", "content": "x"}]})
        no_key = httpx.post(f"{sim.base_url}/chat/completions", json={"model": "gpt-4o", "messages": []})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert unknown.headers["content-type"] == "application/json; charset=utf-8"
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_request"
    assert both.status_code == 400 and both.json()["error"]["param"] == "gateway.models"
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    for response in (unknown, bad_json, both, no_key):
        assert response.headers["x-request-id"]


def test_seed_makes_runs_reproducible():
    def run(seed):
        with Simulator(SimulatorConfig(seed=seed)) as sim, _client(sim) as client:
            response = client.chat.completions.create(model="deepseek-v3", messages=[{"role": "user", "content": "q"}])
            return response.choices[0].message.content, response.model_extra["routing_metadata"], response.usage.total_tokens

    assert run(5) == run(5)
    assert run(5)[0] != run(6)[0]


def test_injected_5xx_rate_and_metadata_faults_and_openai_mode():
    with Simulator(SimulatorConfig(seed=2, error_rate_5xx=0.5)) as sim, _client(sim) as client:
        statuses = []
        for _ in range(40):
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
                statuses.append(200)
            except openai.APIStatusError as exc:
                statuses.append(exc.status_code)
        sim.configure(error_rate_5xx=0.0, openai_mode=True)
        plain = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert 5 < statuses.count(200) < 35 and set(statuses) - {200} <= {500, 502, 503}
    assert "routing_metadata" not in plain.parse().model_extra
    assert "x-credits-balance-microdollars" not in plain.headers


def test_ledger_totals_equal_the_costs_the_responses_reported(sim):
    total = 0.0
    with _client(sim) as client:
        for model in ("gpt-4o", "claude-sonnet-4-20250514", "llama-3.3-70b", "o3-mini"):
            response = client.chat.completions.create(model=model, messages=[{"role": "user", "content": model}])
            total += response.model_extra["routing_metadata"]["cost"]["usd"]
        reasoning = response.usage.completion_tokens_details.reasoning_tokens
    assert 0 < reasoning < response.usage.completion_tokens
    ledger = sim.ledger()
    assert len(ledger) == 4 and sum(e["cost_usd"] for e in ledger) == pytest.approx(total)
    assert all("ak_" not in json.dumps(e) for e in ledger)
    with httpx.Client() as raw:
        assert raw.get(f"{sim.base_url[:-3]}/_sim/ledger").json() == ledger


def test_200_concurrent_async_requests_all_succeed(sim):
    async def main():
        client = openai.AsyncOpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0)
        results = await asyncio.gather(*(client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": str(i)}]) for i in range(200)))
        await client.close()
        return results

    assert len(asyncio.run(main())) == 200
    assert len(sim.ledger()) == 200


def test_budget_scopes_cover_only_their_key_or_byok_provider(sim):
    from auriko_obs.simulator._server import key_id

    with _client(sim) as client:
        request = urllib.request.Request(f"{sim.base_url}/me", headers={"Authorization": f"Bearer {API_KEY}"})
        with urllib.request.urlopen(request) as raw:
            my_key = json.load(raw)["key_id"]
        assert my_key.startswith("key_") and API_KEY not in my_key
        sim.configure(budgets=[
            {"scope_type": "api_key", "scope_id": key_id("someone-else"), "period": "daily", "limit_usd": 0.0},
            {"scope_type": "byok_provider", "scope_provider": "groq", "period": "monthly", "limit_usd": 0.0},
        ])
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])  # not covered
        with pytest.raises(openai.RateLimitError) as caught:
            _routed(client, "llama-3.3-70b", providers=["groq"])
        assert caught.value.response.headers["x-budget-exceeded-scope"] == "byok_provider"
        assert caught.value.response.headers["x-budget-exceeded-period"] == "monthly"
        sim.configure(budgets=[{"scope_type": "api_key", "scope_id": my_key, "period": "daily", "limit_usd": 0.0}])
        with pytest.raises(openai.RateLimitError) as mine:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert mine.value.response.headers["x-budget-exceeded-scope"] == "api_key"
