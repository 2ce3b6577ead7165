"""The simulator speaks the Auriko contract (docs/reference/auriko-contract.md), checked over real HTTP with the openai
SDK."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from importlib import import_module
from importlib.util import find_spec
from typing import Any

import openai
import pydantic
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from auriko_obs.simulator import Simulator, SimulatorConfig

# openai 3.x ships httpx2, 2.x ships httpx: test with whichever the installed SDK uses.
httpx = import_module("httpx2" if find_spec("httpx2") else "httpx")

API_KEY = "ak_test_simulator_0123456789"
OTHER_KEY = "ak_test_someone_else_987654"
USER = [{"role": "user", "content": "Say hello."}]
LONG_SYSTEM = "Reference manual. " + " ".join(
    f"Section {i}: answer briefly, cite the catalogue, and never invent prices." for i in range(90)
)
LOOKUP_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            "required": ["order_id"],
        },
    },
}
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
STREAM_EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)


@pytest.fixture
def sim():
    with Simulator(SimulatorConfig(seed=1)) as server:
        yield server


@pytest.fixture
def client(sim):
    with openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
def raw(sim):
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        yield c


def _tiers(sim, model: str) -> dict[str, dict]:
    """Returns provider → price tier (input, output, cache-read per 1M), read from /v1/directory/models."""
    with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        directory = c.get(f"{sim.base_url}/directory/models").json()
    return {
        p["provider"]: p["tiers"][0] | {"ttft_ms": float(p["tiers"][0]["latency_hint"].split("=")[1])}
        for p in directory["models"][model]["providers"]
    }


def _routed(client, model, **routing):
    response = client.chat.completions.create(model=model, messages=USER, extra_body={"gateway": {"routing": routing}})
    return response.model_extra["routing_metadata"]


def _sse(response: Any) -> list[tuple[str | None, str]]:
    """Returns the (event, data) pairs of an SSE body."""
    events, event, data = [], None, []
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            events.append((event, "\n".join(data)))
            event, data = None, []
    return events


def _conforms(value, schema: dict, root: dict) -> bool:
    """Returns whether value matches a JSON schema (the subset the tests use)."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].split("/")[-1]]
    if "enum" in schema:
        return value in schema["enum"]
    if "anyOf" in schema:
        return any(_conforms(value, s, root) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return (
            isinstance(value, dict)
            and set(schema.get("required", [])) <= set(value)
            and all(_conforms(v, props[k], root) for k, v in value.items() if k in props)
        )
    if kind == "array":
        return (
            isinstance(value, list)
            and len(value) >= schema.get("minItems", 0)
            and all(_conforms(v, schema.get("items", {}), root) for v in value)
        )
    checks = {
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= schema.get("minimum", v),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "null": lambda v: v is None,
    }
    return checks.get(str(kind), lambda v: True)(value)


# ---------------------------------------------------------------- chat completions


def test_chat_completion_carries_usage_routing_metadata_and_auriko_headers(client, sim):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    completion = raw.parse()
    ChatCompletion.model_validate(json.loads(raw.content))
    headers = raw.headers
    assert re.fullmatch(r"req_[0-9a-f]{24}", headers["x-request-id"])
    assert headers["x-ratelimit-limit-requests"] == "10000" and headers["x-ratelimit-remaining-requests"] == "9999"
    datetime.fromisoformat(headers["x-ratelimit-reset-requests"].replace("Z", "+00:00"))
    routing = completion.model_extra["routing_metadata"]
    assert set(routing) >= {"provider", "provider_model_id", "model_canonical", "routing_strategy", "cost"}
    assert routing["model_canonical"] == "gpt-4o" and routing["routing_strategy"] == "cost-focus"
    assert routing["ttft_ms"] > 0 and routing["throughput_tps"] > 0
    tier = _tiers(sim, "gpt-4o")[routing["provider"]]
    usage = completion.usage
    assert usage.prompt_tokens == 3 + 4  # ceil(10 chars / 4) + 4 per message
    expected = (usage.prompt_tokens * tier["input_price"] + usage.completion_tokens * tier["output_price"]) / 1e6
    assert routing["cost"]["usd"] == pytest.approx(expected)
    assert int(headers["x-credits-balance-microdollars"]) == round((100 - routing["cost"]["usd"]) * 1e6)
    assert completion.choices[0].finish_reason == "stop" and completion.choices[0].message.content


def test_streamed_chat_says_what_the_plain_call_says_and_ends_with_a_usage_chunk(client, raw):
    plain = client.chat.completions.create(model="claude-sonnet-4-20250514", messages=USER)
    with raw.stream(
        "POST", "/chat/completions", json={"model": "claude-sonnet-4-20250514", "messages": USER, "stream": True}
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = _sse(response)
    assert events[-1] == (None, "[DONE]")
    chunks = [ChatCompletionChunk.model_validate(json.loads(data)) for _, data in events[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert finish[0].choices[0].model_extra["native_finish_reason"] == "end_turn"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage.total_tokens == plain.usage.total_tokens
    routing = usage_chunk.model_extra["routing_metadata"]
    assert routing["ttft_ms"] > 0 and routing["cost"]["usd"] == plain.model_extra["routing_metadata"]["cost"]["usd"]


def test_sdk_stream_helper_accumulates_the_simulated_stream(client):
    with client.chat.completions.stream(model="gpt-4o", messages=USER) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content and final.usage.completion_tokens > 0


def test_tool_calls_plain_streamed_named_parallel_and_after_a_result(client):
    required = client.chat.completions.create(
        model="gpt-4o", messages=USER, tools=[LOOKUP_TOOL, WEATHER_TOOL], tool_choice="required"
    )
    call = required.choices[0].message.tool_calls[0]
    assert required.choices[0].finish_reason == "tool_calls" and call.type == "function"
    assert call.function.name == "lookup_order" and call.id.startswith("call_")
    assert _conforms(json.loads(call.function.arguments), LOOKUP_TOOL["function"]["parameters"], {})
    streamed = list(
        client.chat.completions.create(
            model="gpt-4o", messages=USER, tools=[LOOKUP_TOOL, WEATHER_TOOL], tool_choice="required", stream=True
        )
    )
    for chunk in streamed:
        ChatCompletionChunk.model_validate(chunk.to_dict())
    deltas = [d for c in streamed if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id == call.id and deltas[0].function.name == "lookup_order"
    assert "".join(d.function.arguments or "" for d in deltas) == call.function.arguments
    named = client.chat.completions.create(
        model="gpt-4o",
        messages=USER,
        tools=[LOOKUP_TOOL, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert [t.function.name for t in named.choices[0].message.tool_calls] == ["get_weather"]
    both = [{"role": "user", "content": "Call lookup_order and get_weather, please."}]
    parallel = client.chat.completions.create(model="gpt-4o", messages=both, tools=[LOOKUP_TOOL, WEATHER_TOOL])
    assert [t.function.name for t in parallel.choices[0].message.tool_calls] == ["lookup_order", "get_weather"]
    single = client.chat.completions.create(
        model="gpt-4o", messages=both, tools=[LOOKUP_TOOL, WEATHER_TOOL], parallel_tool_calls=False
    )
    assert len(single.choices[0].message.tool_calls) == 1
    unasked = client.chat.completions.create(model="gpt-4o", messages=USER, tools=[LOOKUP_TOOL])
    assert unasked.choices[0].message.tool_calls is None and unasked.choices[0].finish_reason == "stop"
    after_result = [
        *both,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'},
    ]
    answered = client.chat.completions.create(model="gpt-4o", messages=after_result, tools=[LOOKUP_TOOL])
    assert answered.choices[0].message.content and answered.choices[0].finish_reason == "stop"
    none = client.chat.completions.create(model="gpt-4o", messages=both, tools=[LOOKUP_TOOL], tool_choice="none")
    assert none.choices[0].message.tool_calls is None


def test_legacy_functions_become_tool_calls_unless_tools_are_present(client):
    legacy = client.chat.completions.create(
        model="gpt-4o", messages=USER, functions=[WEATHER_TOOL["function"]], function_call={"name": "get_weather"}
    )
    message = legacy.choices[0].message
    assert message.function_call is None and message.tool_calls[0].function.name == "get_weather"
    assert legacy.choices[0].finish_reason == "tool_calls"
    both = client.chat.completions.create(
        model="gpt-4o",
        messages=USER,
        functions=[WEATHER_TOOL["function"]],
        function_call={"name": "get_weather"},
        tools=[LOOKUP_TOOL],
        tool_choice="required",
    )
    assert both.choices[0].message.tool_calls[0].function.name == "lookup_order"  # the modern field wins


def test_json_schema_answers_validate_and_route_only_to_capable_providers(client, raw):
    schema = {
        "type": "object",
        "$defs": {
            "author": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "born": {"type": "integer"}},
                "required": ["name", "born"],
            }
        },
        "properties": {
            "title": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 5},
            "pages": {"type": "integer"},
            "in_print": {"type": "boolean"},
            "kind": {"type": "string", "enum": ["book", "ebook"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "author": {"$ref": "#/$defs/author"},
            "isbn": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["title", "score", "pages", "in_print", "kind", "tags", "author", "isbn"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "review", "schema": schema, "strict": True}}
    structured = client.chat.completions.create(
        model="llama-3.3-70b",
        messages=USER,
        response_format=response_format,
        extra_body={"gateway": {"routing": {"optimize": "ttft"}}},
    )
    assert _conforms(json.loads(structured.choices[0].message.content), schema, schema)
    assert structured.model_extra["routing_metadata"]["provider"] != "groq"  # the fastest, but no json_schema
    json_mode = client.chat.completions.create(model="gpt-4o", messages=USER, response_format={"type": "json_object"})
    assert isinstance(json.loads(json_mode.choices[0].message.content), dict)
    refused = raw.post(
        "/chat/completions",
        json={"model": "claude-sonnet-4-20250514", "messages": USER, "response_format": {"type": "json_object"}},
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "json_mode_not_supported"
    assert refused.json()["error"]["suggestion"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="llama-3.3-70b",
            messages=USER,
            response_format=response_format,
            extra_body={"gateway": {"routing": {"providers": ["groq"]}}},
        )
    assert caught.value.code == "structured_output_not_supported" and caught.value.body["suggestion"]


def test_max_tokens_caps_the_answer_with_finish_reason_length(client):
    capped = client.chat.completions.create(model="gpt-4o", messages=USER, max_tokens=5)
    assert capped.usage.completion_tokens == 5 and capped.choices[0].finish_reason == "length"
    assert len(capped.choices[0].message.content) <= 20
    capped_tool = client.chat.completions.create(
        model="gpt-4o", messages=USER, tools=[LOOKUP_TOOL], tool_choice="required", max_completion_tokens=4
    )
    assert capped_tool.choices[0].finish_reason == "length" and capped_tool.usage.completion_tokens <= 4


def test_reasoning_tokens_are_a_part_of_completion_tokens(client):
    medium = client.chat.completions.create(model="o3-mini", messages=USER)
    high = client.chat.completions.create(model="o3-mini", messages=USER, reasoning_effort="high")
    for response in (medium, high):
        reasoning = response.usage.completion_tokens_details.reasoning_tokens
        assert 0 < reasoning < response.usage.completion_tokens
    assert (
        high.usage.completion_tokens_details.reasoning_tokens > medium.usage.completion_tokens_details.reasoning_tokens
    )
    plain = client.chat.completions.create(model="gpt-4o", messages=USER, reasoning_effort="high")
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0
    warning_codes = [w["code"] for w in plain.model_extra["routing_metadata"]["warnings"]]
    assert "reasoning_effort_ignored" in warning_codes


# ---------------------------------------------------------------- responses API and embeddings


def test_responses_plain_items_tools_formats_and_store_refusal(client, raw):
    plain = client.responses.create(model="gpt-4o", input="Say hello.", instructions="Be brief.")
    Response.model_validate(plain.model_dump())
    assert plain.status == "completed" and plain.output_text and plain.usage.input_tokens > 0
    assert plain.usage.input_tokens_details.cached_tokens == 0
    assert plain.model_extra["routing_metadata"]["model_canonical"] == "gpt-4o"
    items = client.responses.create(
        model="gpt-4o",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Where is my order? Use a tool."}]}],
        tools=[{"type": "function", "name": "lookup_order", "parameters": LOOKUP_TOOL["function"]["parameters"]}],
    )
    call = items.output[0]
    assert call.type == "function_call" and call.name == "lookup_order" and json.loads(call.arguments)["order_id"]
    followed_up = client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "Where is my order? Use a tool."},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "shipped"},
        ],
        tools=[{"type": "function", "name": "lookup_order", "parameters": LOOKUP_TOOL["function"]["parameters"]}],
    )
    assert followed_up.output[0].type == "message"
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    formatted = client.responses.create(
        model="gpt-4o", input="A city?", text={"format": {"type": "json_schema", "name": "c", "schema": schema}}
    )
    assert _conforms(json.loads(formatted.output_text), schema, schema)
    capped = client.responses.create(model="gpt-4o", input="Say hello.", max_output_tokens=16)
    assert capped.status == "incomplete" and capped.incomplete_details.reason == "max_output_tokens"
    reasoning = client.responses.create(model="o3-pro", input="Think.")
    assert reasoning.output[0].type == "reasoning" and reasoning.usage.output_tokens_details.reasoning_tokens > 0
    stored = raw.post("/responses", json={"model": "gpt-4o", "input": "x", "store": True})
    assert stored.status_code == 400 and stored.json()["error"]["param"] == "store"
    chat_only = raw.post("/chat/completions", json={"model": "o3-pro", "messages": USER})
    assert chat_only.json()["error"]["code"] == "response_api_only"


@pytest.mark.parametrize(
    "tools", [None, [{"type": "function", "name": "lookup_order", "parameters": LOOKUP_TOOL["function"]["parameters"]}]]
)
def test_responses_stream_events_validate_with_the_sdk_types(raw, client, tools):
    body = {"model": "o3-mini", "input": "Where is my order? Use a tool.", "stream": True}
    if tools:
        body["tools"] = tools
    with raw.stream("POST", "/responses", json=body) as response:
        events = _sse(response)
    parsed = [STREAM_EVENTS.validate_python(json.loads(data)) for _, data in events]
    assert [e.type for e in parsed] == [name for name, _ in events]
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    types = [e.type for e in parsed]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    expected = (
        ["response.function_call_arguments.delta", "response.function_call_arguments.done"]
        if tools
        else [
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
        ]
    )
    assert all(t in types for t in expected) and types[-2:] == ["response.output_item.done", "response.completed"]
    completed = json.loads(events[-1][1])["response"]
    assert completed["usage"]["output_tokens"] > 0 and completed["routing_metadata"]["ttft_ms"] > 0
    if not tools:
        deltas = "".join(e.delta for e in parsed if e.type == "response.output_text.delta")
        done = next(e for e in parsed if e.type == "response.output_text.done")
        assert deltas == done.text
        with client.responses.stream(model="o3-mini", input="Where is my order? Use a tool.") as stream:
            assert stream.get_final_response().output_text == done.text


def test_embeddings_in_base64_and_float_agree_and_are_deterministic(client, raw):
    default = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])  # SDK asks base64
    floats = client.embeddings.create(model="text-embedding-3-small", input="alpha", encoding_format="float")
    assert len(default.data) == 2 and len(default.data[0].embedding) == 256
    assert default.data[0].embedding == floats.data[0].embedding
    assert default.data[0].embedding != default.data[1].embedding
    assert sum(v * v for v in floats.data[0].embedding) == pytest.approx(1.0, rel=1e-5)
    assert default.usage.prompt_tokens == 2 + 1 and default.usage.total_tokens == 3  # ceil(chars / 4) per input
    assert default.model_extra["routing_metadata"]["model_canonical"] == "text-embedding-3-small"
    body = raw.post(
        "/embeddings", json={"model": "text-embedding-3-small", "input": "alpha", "encoding_format": "base64"}
    ).json()
    CreateEmbeddingResponse.model_validate({**body, "data": [{**body["data"][0], "embedding": []}]})
    decoded = struct.unpack("<256f", base64.b64decode(body["data"][0]["embedding"]))
    assert list(decoded) == floats.data[0].embedding
    wrong = raw.post("/embeddings", json={"model": "gpt-4o", "input": "x"})
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "no_compatible_endpoint"


# ---------------------------------------------------------------- discovery


def test_models_aliases_me_balance_and_discovery(client, raw, sim):
    models = {m.id: m for m in client.models.list().data}
    assert {
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4-20250514",
        "llama-3.3-70b",
        "deepseek-v3",
        "o3-mini",
        "text-embedding-3-small",
    } <= set(models) and "o3-pro" not in models
    prices = {p["name"]: (p["input_price"], p["output_price"]) for p in models["gpt-4o"].model_extra["providers"]}
    assert prices["openai"] == (2.5, 10.0)
    assert all(
        {"name", "input_price", "output_price", "data_policy"} <= set(p)
        for m in models.values()
        for p in m.model_extra["providers"]
    )
    responses_models = raw.get("/models", params={"endpoint": "responses"}).json()["data"]
    assert "o3-pro" in {m["id"] for m in responses_models}
    assert client.models.retrieve("gpt-4o-mini-2024-07-18").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found"
    sim.configure(budgets=[{"scope_type": "workspace", "period": "monthly", "limit_usd": 50}])
    me = raw.get("/me")
    body = me.json()
    assert body["credential_type"] == "api_key" and body["key_id"].startswith("key_")
    assert set(body["rate_limits"]) == {"inference_rpm", "management_reads_rpm", "management_writes_rpm"}
    assert API_KEY not in json.dumps(body)
    assert me.headers["x-budget-monthly-limit"] == "50" and me.headers["x-budget-monthly-spend"] == "0"
    balance = raw.get(f"/workspaces/{body['workspace']['id']}/billing/balance").json()
    assert balance["balance_usd"] == 100 and balance["balance_microdollars"] == 100_000_000
    assert raw.get("/workspaces/ws_other/billing/balance").json()["error"]["code"] == "resource_not_found"
    assert raw.get("/registry/providers").json()["count"] >= 4
    assert httpx.get(f"{sim.base_url}/models").status_code == 401


# ---------------------------------------------------------------- routing


def test_each_strategy_picks_the_provider_it_optimises_for(client, sim):
    tiers = _tiers(sim, "llama-3.3-70b")
    chosen = {s: _routed(client, "llama-3.3-70b", optimize=s)["provider"] for s in ("cost", "ttft", "tps")}
    assert chosen["cost"] == min(tiers, key=lambda p: tiers[p]["input_price"] + tiers[p]["output_price"])
    assert chosen["ttft"] == min(tiers, key=lambda p: tiers[p]["ttft_ms"])
    assert chosen == {"cost": "deepinfra", "ttft": "groq", "tps": "cerebras"}
    for strategy in ("cost-focus", "ttft-focus", "tps-focus", "balanced"):
        assert _routed(client, "llama-3.3-70b", optimize=strategy)["routing_strategy"] == strategy
    assert _routed(client, "llama-3.3-70b", optimize="cheapest")["routing_strategy"] == "cost"  # [DRIFT] alias
    custom = _routed(client, "llama-3.3-70b", weights={"throughput": 1})
    assert custom["routing_strategy"] == "custom" and custom["provider"] == "cerebras"
    suffixed = client.chat.completions.create(model="llama-3.3-70b:ttft", messages=USER).model_extra["routing_metadata"]
    assert suffixed["routing_strategy"] == "ttft" and suffixed["provider"] == "groq"
    explicit = client.chat.completions.create(
        model="llama-3.3-70b:ttft", messages=USER, extra_body={"gateway": {"routing": {"optimize": "tps"}}}
    )
    assert explicit.model_extra["routing_metadata"]["provider"] == "cerebras"
    assert (
        client.chat.completions.create(model="llama-3.3-70b", messages=USER).model_extra["routing_metadata"][
            "routing_strategy"
        ]
        == "cost-focus"
    )


def test_allow_and_exclude_lists_prefer_and_ceilings(client, raw):
    assert (
        _routed(client, "llama-3.3-70b", providers=["together", "fireworks_ai"], optimize="cost")["provider"]
        == "together"
    )
    assert _routed(client, "llama-3.3-70b", optimize="cost", exclude_providers=["deepinfra"])["provider"] == "groq"
    assert _routed(client, "llama-3.3-70b", optimize="cost", prefer="fireworks_ai")["provider"] == "fireworks_ai"
    assert _routed(client, "llama-3.3-70b", optimize="tps", max_cost_per_1m=0.7)["provider"] == "groq"
    assert _routed(client, "claude-sonnet-4-20250514", data_policy="zdr")["provider"] == "bedrock"
    refusals = {
        "provider_not_in_allowlist": {"providers": ["openai"]},
        "provider_blocked": {"exclude_providers": ["openai", "azure"]},
        "cost_constraint_exceeded": {"max_cost_per_1m": 0.1},
        "latency_constraint_exceeded": {"max_ttft_ms": 100},
        "throughput_constraint_not_met": {"min_throughput_tps": 5000},
    }
    for code, routing in refusals.items():
        model = "gpt-4o" if code == "provider_blocked" else "llama-3.3-70b"
        error = raw.post(
            "/chat/completions", json={"model": model, "messages": USER, "gateway": {"routing": routing}}
        ).json()["error"]
        assert error["code"] == code and error["type"] == "invalid_request_error"
        assert error["param"].startswith("gateway.routing.") and error["suggestion"]


def test_model_and_gateway_models_rules_and_drift_request_fields(raw, sim):
    def post(body):
        return raw.post("/chat/completions", json={"messages": USER, **body})

    both = post({"model": "gpt-4o", "gateway": {"models": ["gpt-4o"]}}).json()["error"]
    assert both["code"] == "invalid_parameter_value" and both["param"] == "gateway.models"
    neither = post({}).json()["error"]
    assert neither["code"] == "missing_required_parameter" and neither["param"] == "model"
    unknown = post({"model": "gpt-17"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    pool = post({"gateway": {"models": ["gpt-4o", "gpt-4o-mini"], "routing": {"optimize": "cost"}}}).json()
    assert pool["routing_metadata"]["model_canonical"] == "gpt-4o-mini"
    fallback = post({"gateway": {"models": ["gpt-4o", "gpt-4o-mini"], "routing": {"mode": "fallback"}}}).json()
    assert fallback["routing_metadata"]["model_canonical"] == "gpt-4o"
    legacy = post(
        {
            "model": "llama-3.3-70b",
            "routing": {"optimize": "tps"},
            "auriko_metadata": {"tags": ["team:legacy"], "user_id": "u-1"},
        }
    ).json()
    assert legacy["routing_metadata"]["provider"] == "cerebras"
    assert (sim.ledger()[-1]["tags"], sim.ledger()[-1]["user_id"]) == (["team:legacy"], "u-1")


def test_warnings_for_dropped_parameters_and_ignored_extensions(client, sim):
    routing = client.chat.completions.create(
        model="gpt-4o",
        messages=USER,
        extra_body={"top_k": 40, "extensions": {"anthropic": {"metadata": {}}, "openai": {"store": False}}},
    ).model_extra["routing_metadata"]
    warnings = {(w["type"], w["code"]) for w in routing["warnings"]}
    assert ("unsupported_parameter", "top_k_ignored") in warnings
    assert any(kind == "ignored_extension" for kind, _ in warnings) and len(routing["warnings"]) == 2
    clean = client.chat.completions.create(model="llama-3.3-70b", messages=USER, extra_body={"top_k": 40})
    assert "warnings" not in clean.model_extra["routing_metadata"]
    sim.configure(drift=True)
    drifted = client.chat.completions.create(model="gpt-4o", messages=USER, extra_body={"top_k": 40}).model_extra[
        "routing_metadata"
    ]
    assert all(isinstance(w, str) for w in drifted["warnings"])
    assert {"tier", "total_latency_ms", "candidates_total", "candidates_viable", "routing_decision_ms"} <= set(drifted)
    assert drifted["cost"]["billable_cost_usd"] == drifted["cost"]["usd"]


# ---------------------------------------------------------------- caching


def test_repeated_long_prefix_hits_the_cache_with_the_documented_arithmetic(client, sim):
    def ask(question, key=API_KEY):
        with openai.OpenAI(base_url=sim.base_url, api_key=key, max_retries=0) as c:
            return c.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": question}],
            )

    first, second = ask("First question?"), ask("Second question?")
    assert first.usage.prompt_tokens >= 1024 and first.usage.prompt_tokens_details.cached_tokens == 0
    written = first.usage.prompt_tokens_details.model_dump()["cache_write_tokens"]
    assert written >= 1024 and written % 128 == 0
    assert "cache_savings_usd" not in first.model_extra["routing_metadata"]["cost"]
    cached = second.usage.prompt_tokens_details.cached_tokens
    shared_tokens = (len(LONG_SYSTEM) + len("<system>")) // 4  # the prefix both prompts share, in tokens
    assert cached == shared_tokens // 128 * 128 and cached >= 1024
    routing = second.model_extra["routing_metadata"]
    tier = _tiers(sim, "gpt-4o")[routing["provider"]]
    cost = (
        (second.usage.prompt_tokens - cached) * tier["input_price"]
        + cached * tier["cache_read_price"]
        + second.usage.completion_tokens * tier["output_price"]
    ) / 1e6
    savings = cached * (tier["input_price"] - tier["cache_read_price"]) / 1e6
    assert routing["cost"]["usd"] == pytest.approx(cost)
    assert routing["cost"]["cache_savings_usd"] == pytest.approx(savings)
    assert routing["cost"]["cache_savings_percent"] == round(100 * savings / (cost + savings))
    entry = sim.ledger()[-1]
    assert (entry["cached_tokens"], entry["cache_savings_usd"]) == (cached, pytest.approx(savings))
    assert ask("Third?", key=OTHER_KEY).usage.prompt_tokens_details.cached_tokens == 0  # caches are per key
    instructions = "Responses API. " + LONG_SYSTEM  # a prefix of its own: chat and responses share one cache
    responses = client.responses.create(model="gpt-4o", instructions=instructions, input="A question?")
    again = client.responses.create(model="gpt-4o", instructions=instructions, input="Another question?")
    assert responses.usage.input_tokens_details.cached_tokens == 0
    assert again.usage.input_tokens_details.cached_tokens >= 1024


def test_cache_entries_expire_five_minutes_after_last_use():
    now = [1_780_000_000.0]
    messages = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "Q?"}]
    with (
        Simulator(SimulatorConfig(clock=lambda: now[0])) as sim,
        openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as client,
    ):
        client.chat.completions.create(model="gpt-4o", messages=messages)
        now[0] += 299
        warm = client.chat.completions.create(model="gpt-4o", messages=messages)
        now[0] += 301
        cold = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert warm.usage.prompt_tokens_details.cached_tokens > 0
    assert cold.usage.prompt_tokens_details.cached_tokens == 0


# ---------------------------------------------------------------- budgets, credits, rate limits


def test_budget_exhaustion_gives_429_with_headers_and_drift_gives_402(client, sim):
    sim.configure(budgets=[{"scope_type": "workspace", "period": "daily", "limit_usd": 1e-6, "enforce": True}])
    served = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)  # crosses the limit
    assert served.headers["x-budget-daily-limit"] == "0.000001"
    assert float(served.headers["x-budget-daily-spend"]) > 1e-6
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    error, headers = caught.value, caught.value.response.headers
    assert error.status_code == 429 and error.code == "budget_exhausted" and error.type == "rate_limit_error"
    assert headers["x-budget-exceeded"] == "true" and headers["x-budget-exceeded-scope"] == "workspace"
    assert headers["x-budget-exceeded-period"] == "daily" and headers["x-error-retryable"] == "false"
    assert 1 <= int(headers["retry-after"]) <= 86_400 and headers["x-error-type"] == "rate_limit_error"
    assert set(error.body) >= {"message", "type", "code", "param", "doc_url"}
    assert headers["content-type"] == "application/json; charset=utf-8"
    sim.configure(drift=True)
    with pytest.raises(openai.APIStatusError) as legacy:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert legacy.value.status_code == 402 and legacy.value.code == "budget_exceeded"
    ledger = sim.ledger()
    assert [(e["http_status"], e["error_code"]) for e in ledger] == [
        (200, None),
        (429, "budget_exhausted"),
        (402, "budget_exceeded"),
    ]
    assert ledger[1]["cost_usd"] == 0 and ledger[1]["input_tokens"] == 0


@pytest.mark.parametrize(
    "period,start,after",
    [
        ("daily", datetime(2026, 11, 25, 23, 59, 30), datetime(2026, 11, 26, 0, 0, 30)),
        ("weekly", datetime(2026, 11, 29, 23, 59, 0), datetime(2026, 11, 30, 0, 0, 5)),  # Sunday → Monday
        ("monthly", datetime(2026, 11, 30, 23, 59, 0), datetime(2026, 12, 1, 0, 0, 1)),
    ],
)
def test_budgets_reset_at_utc_period_boundaries(period, start, after):
    now = [start.replace(tzinfo=timezone.utc).timestamp()]
    config = SimulatorConfig(
        clock=lambda: now[0], budgets=[{"scope_type": "workspace", "period": period, "limit_usd": 1e-9}]
    )
    with Simulator(config) as sim, openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o", messages=USER)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=USER)
        assert int(caught.value.response.headers["retry-after"]) <= 60
        now[0] = after.replace(tzinfo=timezone.utc).timestamp()
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert [e["http_status"] for e in sim.ledger()] == [200, 429, 200]


def test_budget_scopes_cover_their_key_or_provider_and_unenforced_budgets_only_report(client, raw, sim):
    my_key = raw.get("/me").json()["key_id"]
    sim.configure(
        budgets=[
            {"scope_type": "api_key", "scope_id": "key_00000000", "period": "daily", "limit_usd": 0},
            {"scope_type": "byok_provider", "scope_provider": "groq", "period": "monthly", "limit_usd": 0},
            {"scope_type": "workspace", "period": "weekly", "limit_usd": 0, "enforce": False},
        ]
    )
    served = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    assert served.headers["x-budget-weekly-limit"] == "0" and "x-budget-daily-limit" not in served.headers
    with pytest.raises(openai.RateLimitError) as caught:
        _routed(client, "llama-3.3-70b", providers=["groq"])
    assert caught.value.response.headers["x-budget-exceeded-scope"] == "byok_provider"
    assert caught.value.response.headers["x-budget-exceeded-period"] == "monthly"
    sim.configure(budgets=[{"scope_type": "api_key", "scope_id": my_key, "period": "daily", "limit_usd": 0}])
    with pytest.raises(openai.RateLimitError) as mine:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert mine.value.response.headers["x-budget-exceeded-scope"] == "api_key"
    with openai.OpenAI(base_url=sim.base_url, api_key=OTHER_KEY, max_retries=0) as other:
        other.chat.completions.create(model="gpt-4o", messages=USER)


def test_credits_running_out_gives_insufficient_quota(client, sim):
    sim.configure(credits_usd=1e-6)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    assert int(first.headers["x-credits-balance-microdollars"]) < 0
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert caught.value.code == "insufficient_quota"
    assert caught.value.response.headers["x-error-retryable"] == "false"


def test_rpm_limit_gives_429_with_retry_after_and_the_window_slides():
    now = [1_780_000_000.0]
    with (
        Simulator(SimulatorConfig(rpm_limit=2, clock=lambda: now[0])) as sim,
        openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as client,
    ):
        first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
        now[0] += 20
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        with openai.OpenAI(base_url=sim.base_url, api_key=OTHER_KEY, max_retries=0) as other:
            other.chat.completions.create(model="gpt-4o-mini", messages=USER)  # windows are per key
        now[0] += 41
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    headers = caught.value.response.headers
    assert caught.value.code == "rate_limit_exceeded" and headers["retry-after"] == "40"
    assert headers["x-rate-limit-source"] == "auriko" and headers["x-error-retryable"] == "true"
    assert headers["x-ratelimit-remaining-requests"] == "0"


def test_a_key_with_its_own_rpm_limit_is_limited_and_other_keys_are_not():
    with (
        Simulator() as sim,
        openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as client,
        openai.OpenAI(base_url=sim.base_url, api_key=OTHER_KEY, max_retries=0) as other,
    ):
        my_key = client.get("/me", cast_to=object)["key_id"]
        sim.configure(key_rpm_limits={my_key: 2})
        assert client.get("/me", cast_to=object)["rate_limits"]["inference_rpm"] == 2
        first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        for _ in range(3):  # rpm_limit None: no limit for keys without one of their own
            other.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert caught.value.code == "rate_limit_exceeded" and "2 requests per minute" in caught.value.message
    with pytest.raises(ValueError, match="key_rpm_limits"):
        sim.configure(key_rpm_limits={my_key: 0})


# ---------------------------------------------------------------- injected and random failures


@pytest.mark.parametrize(
    "code,status,error_type,header",
    [
        ("rate_limit_exceeded", 429, "rate_limit_error", "x-rate-limit-source"),
        ("budget_exhausted", 429, "rate_limit_error", "x-budget-exceeded-scope"),
        ("insufficient_quota", 429, "rate_limit_error", "retry-after"),
        ("upstream_error", 502, "api_error", "x-error-provider"),
        ("internal_error", 500, "api_error", None),
        ("no_provider_available", 503, "api_error", "retry-after"),
        ("invalid_api_key", 401, "authentication_error", None),
        ("context_length_exceeded", 400, "invalid_request_error", None),
    ],
)
def test_injected_errors_carry_registry_status_type_and_headers(raw, sim, code, status, error_type, header):
    sim.inject(code, count=2)
    responses = [raw.post("/chat/completions", json={"model": "gpt-4o", "messages": USER}) for _ in range(3)]
    assert [r.status_code for r in responses] == [status, status, 200]
    failed = responses[0]
    error = failed.json()["error"]
    assert (error["code"], error["type"]) == (code, error_type) and error["doc_url"].endswith(code)
    assert failed.headers["x-error-type"] == error_type and failed.headers["x-request-id"]
    retryable = error_type in ("rate_limit_error", "api_error") and code not in (
        "budget_exhausted",
        "insufficient_quota",
        "internal_error",
    )
    assert failed.headers["x-error-retryable"] == str(retryable).lower()
    if header:
        assert failed.headers[header]
    if code == "upstream_error":
        assert error["provider"] == failed.headers["x-error-provider"] == "openai"
    if status in (429, 503):
        assert int(failed.headers["retry-after"]) >= 1
    assert [e["error_code"] for e in sim.ledger()] == [code, code, None]
    with pytest.raises(ValueError):
        sim.inject("not_a_registry_code")


def test_mid_stream_errors_arrive_after_a_few_events(client, raw, sim):
    sim.inject("upstream_error", mid_stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
            received.append(chunk)
    assert received and caught.value.body["code"] == "upstream_error"
    sim.inject("internal_error", mid_stream=True)
    with raw.stream("POST", "/chat/completions", json={"model": "gpt-4o", "messages": USER, "stream": True}) as r:
        assert r.status_code == 200
        events = _sse(r)
    assert json.loads(events[-2][1])["error"]["code"] == "internal_error" and events[-1][1] == "[DONE]"
    sim.inject("upstream_error", mid_stream=True)
    with raw.stream("POST", "/responses", json={"model": "gpt-4o", "input": "x", "stream": True}) as r:
        events = _sse(r)
    error = STREAM_EVENTS.validate_python(json.loads(events[-1][1]))
    assert events[-1][0] == "error" and error.code == "upstream_error" and error.sequence_number == len(events) - 1
    assert "response.output_text.delta" in [name for name, _ in events]
    sim.inject("upstream_error", mid_stream=True)
    assert raw.post("/chat/completions", json={"model": "gpt-4o", "messages": USER}).status_code == 502
    ledger = sim.ledger()
    assert [(e["http_status"], e["error_code"], e["cost_usd"]) for e in ledger[:3]] == [
        (200, "upstream_error", 0),
        (200, "internal_error", 0),
        (200, "upstream_error", 0),
    ]


def test_error_rate_5xx_is_seeded_and_mixes_500_502_503():
    def statuses(seed):
        with (
            Simulator(SimulatorConfig(seed=seed, error_rate_5xx=0.5)) as sim,
            httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}) as c,
        ):
            return [
                c.post(
                    f"{sim.base_url}/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": str(i % 20)}]},
                ).status_code
                for i in range(80)
            ]

    first = statuses(3)
    assert first == statuses(3) and first != statuses(4)
    assert 20 < first.count(200) < 60 and set(first) == {200, 500, 502, 503}


@pytest.mark.parametrize("fault", ["missing", "malformed"])
def test_metadata_faults_never_break_the_response(client, sim, fault):
    sim.configure(metadata_fault=fault)
    response = client.chat.completions.create(model="gpt-4o", messages=USER)
    streamed = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert response.choices[0].message.content and streamed[-1].usage.total_tokens > 0
    if fault == "missing":
        assert "routing_metadata" not in response.model_extra
    else:
        metadata = response.model_extra["routing_metadata"]
        assert metadata["cost"] == "n/a" and metadata["provider"] == 42 and metadata["warnings"] == "x"
    assert sim.ledger()[0]["cost_usd"] > 0


def test_openai_mode_behaves_like_plain_openai(client, raw, sim):
    sim.configure(openai_mode=True, budgets=[{"scope_type": "workspace", "period": "daily", "limit_usd": 0}])
    plain = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    assert "routing_metadata" not in plain.parse().model_extra
    assert not [h for h in plain.headers if h.startswith(("x-credits", "x-budget"))]
    assert plain.headers["x-ratelimit-limit-requests"] and plain.headers["x-request-id"]
    bare = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert all(c.usage is None for c in bare) and bare[-1].choices[0].finish_reason == "stop"
    with_usage = list(
        client.chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert with_usage[-1].choices == [] and with_usage[-1].usage.total_tokens > 0
    assert "routing_metadata" not in (with_usage[-1].model_extra or {})
    error = raw.post("/chat/completions", json={"model": "nope", "messages": USER})
    assert set(error.json()["error"]) == {"message", "type", "param", "code"}
    assert "x-error-type" not in error.headers


# ---------------------------------------------------------------- determinism, ledger, plumbing


def _normalised(value):
    """Returns a body with ids, timestamps and request-specific suffixes blanked out."""
    if isinstance(value, dict):
        return {
            k: "<id>" if k in ("id", "item_id", "created", "created_at") else _normalised(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def test_same_seed_gives_identical_bodies_apart_from_ids_and_timestamps():
    requests = [
        ("/chat/completions", {"model": "deepseek-v3", "messages": USER}),
        ("/chat/completions", {"model": "gpt-4o", "messages": USER, "tools": [LOOKUP_TOOL], "tool_choice": "required"}),
        ("/chat/completions", {"model": "o3-mini", "messages": USER, "stream": True}),
        ("/responses", {"model": "gpt-4o", "input": "hi"}),
        ("/responses", {"model": "gpt-4o", "input": "hi", "stream": True}),
        ("/embeddings", {"model": "text-embedding-3-small", "input": "hi", "encoding_format": "float"}),
    ]

    def run(seed):
        bodies = []
        with (
            Simulator(SimulatorConfig(seed=seed)) as sim,
            httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as c,
        ):
            for path, body in requests:
                response = c.post(path, json=body)
                bodies.append(
                    _normalised(
                        [json.loads(d) for _, d in _sse(response) if d != "[DONE]"]
                        if body.get("stream")
                        else response.json()
                    )
                )
        return bodies

    first = run(11)
    assert first == run(11)
    assert first[0] != run(12)[0]


def test_ledger_totals_equal_the_costs_in_the_responses_and_never_hold_the_key(client, sim):
    total = 0.0
    for model in ("gpt-4o", "claude-sonnet-4-20250514", "llama-3.3-70b", "o3-mini", "deepseek-v3"):
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": model}],
            extra_body={"gateway": {"metadata": {"tags": ["t:1"], "user_id": "u-9"}}},
        )
        total += response.model_extra["routing_metadata"]["cost"]["usd"]
    total += client.responses.create(model="gpt-4o-mini", input="x").model_extra["routing_metadata"]["cost"]["usd"]
    total += client.embeddings.create(model="text-embedding-3-small", input="x").model_extra["routing_metadata"][
        "cost"
    ]["usd"]
    streamed = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    total += streamed[-1].model_extra["routing_metadata"]["cost"]["usd"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=USER)
    ledger = sim.ledger()
    assert len(ledger) == 9 and sum(e["cost_usd"] for e in ledger) == pytest.approx(total, rel=1e-12)
    assert [e["endpoint"] for e in ledger[5:8]] == ["responses", "embeddings", "chat.completions"]
    assert ledger[7]["streaming"] is True and ledger[8]["http_status"] == 404
    assert ledger[0]["tags"] == ["t:1"] and ledger[0]["user_id"] == "u-9"
    assert {e["key_hash"] for e in ledger} == {hashlib.sha256(API_KEY.encode()).hexdigest()[:8]}
    assert API_KEY not in json.dumps(ledger)
    assert len({e["request_id"] for e in ledger}) == 9
    assert httpx.get(sim.base_url.removesuffix("/v1") + "/_sim/ledger").json() == ledger


def test_control_endpoints_drive_a_simulator_from_another_process(sim, raw):
    control = sim.base_url.removesuffix("/v1") + "/_sim"
    assert httpx.post(f"{control}/config", json={"rpm_limit": 1}).json()["config"]["rpm_limit"] == 1
    assert sim.config.rpm_limit == 1
    assert httpx.post(f"{control}/config", json={"no_such_knob": 1}).status_code == 400
    assert httpx.post(f"{control}/inject", json={"code": "internal_error", "count": 1}).status_code == 200
    assert raw.post("/chat/completions", json={"model": "gpt-4o", "messages": USER}).status_code == 500
    assert raw.post("/chat/completions", json={"model": "gpt-4o", "messages": USER}).status_code == 429
    assert httpx.post(f"{control}/reset").status_code == 200
    assert httpx.get(f"{control}/ledger").json() == [] and sim.config.rpm_limit == 1
    with pytest.raises(ValueError):
        sim.configure(rpm_limit=0)


def test_malformed_requests_and_unknown_paths_get_the_error_envelope(raw, sim):
    cases = [
        (
            raw.post("/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}),
            400,
            "invalid_request",
        ),
        (raw.post("/chat/completions", json={"model": "gpt-4o"}), 400, "missing_required_parameter"),
        (raw.post("/v2/nothing", json={}), 404, "resource_not_found"),
        (raw.get("/nothing/here"), 404, "resource_not_found"),
        (raw.get("/chat/completions"), 405, "method_not_allowed"),
        (
            httpx.post(f"{sim.base_url}/chat/completions", json={"model": "gpt-4o", "messages": USER}),
            401,
            "invalid_api_key",
        ),
        (
            httpx.post(
                f"{sim.base_url}/chat/completions",
                json={"model": "gpt-4o", "messages": USER},
                headers={"Authorization": "Bearer sk-openai-key"},
            ),
            401,
            "invalid_api_key",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        error = response.json()["error"]
        assert error["code"] == code and {"message", "type", "param", "doc_url"} <= set(error)
        assert response.headers["x-request-id"].startswith("req_")
    assert [e["http_status"] for e in sim.ledger()] == [400, 400, 401, 401]


def test_latency_and_chunk_delay_slow_responses_down(client, sim):
    sim.configure(latency_ms=60)
    started = time.perf_counter()
    client.chat.completions.create(model="gpt-4o", messages=USER)
    assert time.perf_counter() - started >= 0.06
    sim.configure(latency_ms=0, chunk_delay_ms=15)
    started = time.perf_counter()
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert time.perf_counter() - started >= 0.015 * len(chunks)


def test_200_concurrent_async_requests_and_8_threads_all_succeed(sim):
    async def burst():
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as client:
            return await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": str(i)}], stream=i % 4 == 0
                    )
                    for i in range(200)
                )
            )

    failures = []

    def worker(n):
        with openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as client:
            for i in range(40):
                try:
                    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"{n}:{i}"}])
                except Exception as exc:
                    failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    results = asyncio.run(burst())
    for thread in threads:
        thread.join()
    assert not failures and len(results) == 200
    ledger = sim.ledger()
    assert len(ledger) == 520 and all(e["http_status"] == 200 for e in ledger)
    assert len({e["request_id"] for e in ledger}) == 520


def test_stop_closes_idle_keep_alive_connections():
    sim = Simulator().start()
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        assert c.get("/models").status_code == 200
        sim.stop()
        sim.stop()  # harmless twice
        with pytest.raises(httpx.TransportError):
            c.get("/models")


def test_serve_blocks_until_sigterm():
    code = (
        "from auriko_obs.simulator import serve, SimulatorConfig\n"
        "serve(port=0, config=SimulatorConfig(seed=2), ready=lambda m: print(m, flush=True))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://\S+/v1", line).group(0)
        assert httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
