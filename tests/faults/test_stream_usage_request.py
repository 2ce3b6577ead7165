"""Whether a streamed call succeeds, and what its caller receives, never depends on instrumentation.

To servers other than Auriko we add ``stream_options.include_usage`` to streams (usage comes only on
request). A strict server that rejects unknown parameters (older Azure OpenAI API versions) must still
stream to an instrumented caller exactly what it streams to an uninstrumented one.
"""

from __future__ import annotations

import asyncio

import openai
import pytest

import auriko_obs

from ..conftest import attrs, calls
from ._strict_server import StrictServer

MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def strict():
    with StrictServer() as server:
        yield server


def _text(chunks) -> list:
    return [(c.id, [(ch.index, ch.delta.content, ch.finish_reason) for ch in c.choices]) for c in chunks]


def test_a_strict_server_streams_to_an_instrumented_caller_what_it_streams_uninstrumented(db_path, strict):
    with openai.OpenAI(base_url=strict.base_url, api_key="k", max_retries=0) as client:
        bare = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        auriko_obs.instrument(db=db_path, service_name="strict")
        try:
            seen = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
            again = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
            frame = calls(db_path)
        finally:
            auriko_obs.uninstrument()
    assert _text(seen) == _text(bare) == _text(again)
    assert [("stream_options" in r) for r in strict.requests] == [False, True, False, False]  # asked once only
    assert list(frame["status"]) == ["ok", "ok"] and list(frame["finish_reason"]) == ["stop", "stop"]
    assert attrs(frame.iloc[0])["auriko.stream.usage_request_rejected"] is True
    assert frame.iloc[0]["http_attempts"] == 1


def test_a_strict_server_streams_through_the_async_client_and_the_stream_helper(db_path, strict):
    auriko_obs.instrument(db=db_path, service_name="strict")
    try:

        async def main():
            async with openai.AsyncOpenAI(base_url=strict.base_url, api_key="k", max_retries=0) as client:
                return [
                    chunk
                    async for chunk in await client.chat.completions.create(
                        model="gpt-4o", messages=MESSAGES, stream=True
                    )
                ]

        async_chunks = asyncio.run(main())
        with (
            StrictServer() as other,  # a server not met before, for the .stream() helper
            openai.OpenAI(base_url=other.base_url, api_key="k", max_retries=0) as client,
            client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream,
        ):
            text = "".join(event.delta for event in stream if event.type == "content.delta")
            final = stream.get_final_completion()
        frame = calls(db_path)
    finally:
        auriko_obs.uninstrument()
    assert _text(async_chunks)[1][1] == [(0, "Hello", None)]
    assert text == "Hello" and final.choices[0].message.content == "Hello"
    assert list(frame["status"]) == ["ok", "ok"]


def test_a_servers_own_rejection_reaches_the_caller_once_and_unchanged(db_path):
    with StrictServer(rejects=()) as lenient:  # accepts stream_options, rejects a model of its own accord
        auriko_obs.instrument(db=db_path, service_name="strict")
        try:
            with openai.OpenAI(base_url=lenient.base_url, api_key="k", max_retries=0) as client:
                list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
                with pytest.raises(openai.BadRequestError, match="rejected-model"):
                    client.chat.completions.create(model="rejected-model", messages=MESSAGES, stream=True)
            frame = calls(db_path)
        finally:
            auriko_obs.uninstrument()
    assert [r["model"] for r in lenient.requests] == ["gpt-4o", "rejected-model"]  # not sent twice
    assert list(frame["status"]) == ["ok", "error"]


def test_the_first_stream_a_server_rejects_for_another_reason_is_sent_once(db_path):
    # A new process knows no server yet: a rejection that does not name our parameter (an unknown model, a
    # context too long, a filtered prompt) is the caller's answer, and the prompt is not uploaded twice.
    with StrictServer(rejects=()) as lenient:
        auriko_obs.instrument(db=db_path, service_name="strict")
        try:
            with (
                openai.OpenAI(base_url=lenient.base_url, api_key="k", max_retries=0) as client,
                pytest.raises(openai.BadRequestError, match="rejected-model"),
            ):
                client.chat.completions.create(model="rejected-model", messages=MESSAGES, stream=True)
            frame = calls(db_path)
        finally:
            auriko_obs.uninstrument()
    assert [r["model"] for r in lenient.requests] == ["rejected-model"]
    assert "stream_options" in lenient.requests[0]  # it was asked, and the rejection was not about it
    assert list(frame["status"]) == ["error"]
