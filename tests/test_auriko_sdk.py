"""The auriko SDK's clients (installed in the openai 2.x CI leg): AurikoAsyncOpenAI and auriko.Client."""

from __future__ import annotations

import asyncio

import pytest

auriko = pytest.importorskip("auriko")

from .conftest import API_KEY, attrs, calls  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hello."}]


def test_native_auriko_client_calls_and_streams_are_recorded(instrumented, sim):
    with auriko.Client(api_key=API_KEY, base_url=sim.base_url, max_retries=0) as client:
        response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        chunks = list(stream)
        with pytest.raises(auriko.RateLimitError):
            sim.inject("budget_exhausted")
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    frame = calls(instrumented)
    assert len(frame) == 3
    plain, streamed, failed = (frame.iloc[i] for i in range(3))
    assert plain["provider"] == response.routing_metadata.provider
    assert plain["cost_usd"] == pytest.approx(response.routing_metadata.cost.usd)
    assert plain["input_tokens"] == response.usage.prompt_tokens
    assert plain["request_id"] and attrs(plain)["auriko.api"] == "auriko"
    assert streamed["output_tokens"] == stream.usage.completion_tokens
    assert streamed["provider"] == stream.routing_metadata.provider and streamed["ttft_ms"] > 0
    assert len(chunks) > 2
    assert failed["status"] == "error" and failed["error_code"] == "budget_exhausted"
    assert failed["http_status"] == 429 and failed["budget_exceeded_scope"]


def test_native_async_client_is_recorded(instrumented, sim):
    async def main():
        client = auriko.AsyncClient(api_key=API_KEY, base_url=sim.base_url, max_retries=0)
        try:
            return await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        finally:
            await client.close()

    response = asyncio.run(main())
    row = calls(instrumented).iloc[0]
    assert row["provider"] == response.routing_metadata.provider and row["status"] == "ok"


def test_auriko_async_openai_subclass_is_covered(instrumented, sim):
    async def main():
        client = auriko.AurikoAsyncOpenAI(api_key=API_KEY, base_url=sim.base_url, max_retries=0)
        try:
            response = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            chunks = [c async for c in stream]
            return response, chunks, client.last_routing_metadata
        finally:
            await client.close()

    response, chunks, last_metadata = asyncio.run(main())
    frame = calls(instrumented)
    assert len(frame) == 2
    assert frame.iloc[0]["provider"] == response.model_extra["routing_metadata"]["provider"]
    assert frame.iloc[1]["provider"] == last_metadata.provider
    assert frame.iloc[1]["output_tokens"] == chunks[-1].usage.completion_tokens
