"""The instrumentation over real HTTP against the simulator: every call shape, every error kind."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import textwrap
import time

import openai
import pandas as pd
import pytest
from pydantic import BaseModel

import auriko_obs
from auriko_obs.instrumentation import _patch

from .conftest import API_KEY, attrs, calls

MESSAGES = [{"role": "user", "content": "Say hello."}]


def _only_row(db_path):
    frame = calls(db_path)
    assert len(frame) == 1, frame
    return frame.iloc[0]


def test_chat_call_records_routing_usage_and_headers(instrumented, client):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=MESSAGES,
        temperature=0.3,
        max_tokens=50,
        extra_body={
            "gateway": {"routing": {"optimize": "cost"}, "metadata": {"tags": ["team:search"], "user_id": "u-42"}}
        },
    )
    response = raw.parse()
    routing = response.model_extra["routing_metadata"]
    row = _only_row(instrumented)
    assert row["operation"] == "chat" and not row["streaming"]
    assert row["request_model"] == "gpt-4o"
    assert row["response_model"] == response.model
    assert row["provider"] == routing["provider"]
    assert row["provider_model_id"] == routing["provider_model_id"]
    assert row["model_canonical"] == routing["model_canonical"]
    assert row["routing_strategy"] == routing["routing_strategy"]
    assert row["cost_usd"] == pytest.approx(routing["cost"]["usd"])
    assert row["cost_source"] == "auriko"
    assert row["input_tokens"] == response.usage.prompt_tokens
    assert row["output_tokens"] == response.usage.completion_tokens
    assert row["total_tokens"] == response.usage.total_tokens
    assert row["finish_reason"] == response.choices[0].finish_reason
    assert row["request_id"] == raw.headers["x-request-id"]
    assert row["credits_balance_usd"] == pytest.approx(int(raw.headers["x-credits-balance-microdollars"]) / 1e6)
    assert row["ratelimit_remaining_requests"] == int(raw.headers["x-ratelimit-remaining-requests"])
    assert row["http_status"] == 200 and row["status"] == "ok" and row["http_attempts"] == 1
    assert list(row["tags"]) == ["team:search"] and row["user_id"] == "u-42"
    assert row["provider_ttft_ms"] == pytest.approx(routing["ttft_ms"])
    assert row["throughput_tps"] == pytest.approx(routing["throughput_tps"])
    a = attrs(row)
    assert a["gen_ai.request.temperature"] == 0.3 and a["gen_ai.request.max_tokens"] == 50
    assert a["server.address"] == "127.0.0.1" and a["auriko.request.routing.optimize"] == "cost"
    span = auriko_obs.Store(instrumented).sql("SELECT name, kind FROM spans").iloc[0]
    assert span["name"] == "chat gpt-4o" and span["kind"] == "CLIENT"


def test_plain_create_without_raw_response_still_records_headers(instrumented, client):
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    row = _only_row(instrumented)
    assert row["request_id"] == response._request_id
    assert row["response_model"] == response.model


def _chunks_text(chunks):
    return [(c.choices[0].delta.content if c.choices else None) for c in chunks]


def test_stream_records_final_usage_and_client_ttft_and_caller_sees_same_chunks(instrumented, sim):
    with openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as plain_client:
        auriko_obs.uninstrument()
        bare = list(plain_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        auriko_obs.instrument(db=instrumented, service_name="tests")
        seen = list(plain_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert _chunks_text(seen) == _chunks_text(bare)
    assert [type(c) for c in seen] == [type(c) for c in bare]
    usage_chunk = seen[-1]
    row = _only_row(instrumented)
    assert row["streaming"] == True  # noqa: E712
    assert row["input_tokens"] == usage_chunk.usage.prompt_tokens
    assert row["output_tokens"] == usage_chunk.usage.completion_tokens
    assert row["cost_usd"] == pytest.approx(usage_chunk.model_extra["routing_metadata"]["cost"]["usd"])
    assert 0 < row["ttft_ms"] <= row["duration_ms"]
    assert row["finish_reason"] == "stop"
    assert attrs(row)["auriko.stream.completed"] is True


def test_stream_abandoned_midway_still_records_a_span(instrumented, client):
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, max_tokens=200)
    next(stream)
    next(stream)
    del stream
    gc.collect()
    row = _only_row(instrumented)
    a = attrs(row)
    assert a["auriko.stream.completed"] is False and a["auriko.stream.end"] == "abandoned"
    assert row["status"] == "ok" and row["request_id"]


def test_stream_closed_early_by_with_block_ends_the_span(instrumented, client):
    with client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        for _ in stream:
            break
    row = _only_row(instrumented)
    assert attrs(row)["auriko.stream.end"] == "closed"


def test_stream_helper_and_parse_helper_are_recorded(instrumented, client):
    class Answer(BaseModel):
        greeting: str
        confidence: float

    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    parsed = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Answer)
    assert isinstance(parsed.choices[0].message.parsed, Answer)
    frame = calls(instrumented)
    assert len(frame) == 2
    streamed, structured = frame.iloc[0], frame.iloc[1]
    assert streamed["streaming"] == True and streamed["output_tokens"] == final.usage.completion_tokens  # noqa: E712
    assert structured["streaming"] == False and attrs(structured)["gen_ai.output.type"] == "json"  # noqa: E712
    assert structured["provider"] is not None


def _stream_ends(db_path):
    return [attrs(row)["auriko.stream.end"] for _, row in calls(db_path).iterrows()]


def test_stream_helpers_left_early_end_the_span_while_the_stream_is_still_referenced(instrumented, client):
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES, max_tokens=200) as chat_stream:
        for _ in chat_stream:
            break
    with client.responses.stream(model="gpt-4o", input="Name a colour.") as response_stream:
        next(iter(response_stream))
        response_stream.close()  # an explicit close, inside the block
    assert _stream_ends(instrumented) == ["closed", "closed"]  # chat_stream and response_stream are still alive
    frame = calls(instrumented)
    assert list(frame["operation"]) == ["chat", "chat"] and frame["request_id"].notna().all()
    assert list(frame["api"]) == ["chat_completions", "responses"]


def test_async_stream_helpers_left_early_end_the_span(instrumented, async_client):
    async def main():
        async with async_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as chat_stream:
            async for _ in chat_stream:
                break
        async with async_client.responses.stream(model="gpt-4o", input="Name a colour.") as response_stream:
            async for _ in response_stream:
                break
        await async_client.close()
        return chat_stream, response_stream

    streams = asyncio.run(main())
    assert _stream_ends(instrumented) == ["closed", "closed"] and len(streams) == 2


HOLDS_A_STREAM = textwrap.dedent("""
    import sys, openai, auriko_obs
    auriko_obs.instrument(db=sys.argv[1], service_name="exit")
    client = openai.OpenAI(base_url=sys.argv[2], api_key="ak_exit_test", max_retries=0)
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                            stream=True, max_tokens=200)
    next(stream)   # still open, and still referenced, when the interpreter exits
""")


def test_a_stream_still_open_at_exit_is_recorded_as_abandoned(db_path, sim):
    done = subprocess.run(
        [sys.executable, "-c", HOLDS_A_STREAM, db_path, sim.base_url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    frame = auriko_obs.Store(db_path).calls()
    assert len(frame) == 1 and attrs(frame.iloc[0])["auriko.stream.end"] == "abandoned"


FORKS_WITH_A_STREAM_OPEN = textwrap.dedent("""
    import os, sys, openai, auriko_obs
    auriko_obs.instrument(db=sys.argv[1], service_name="fork")
    client = openai.OpenAI(base_url=sys.argv[2], api_key="ak_fork_test", max_retries=0)
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                            stream=True, max_tokens=50)
    next(stream)
    pid = os.fork()
    if pid == 0:
        sys.exit(0)   # a normal exit: the child's exit flush runs, and the parent's stream is not the child's
    assert os.waitpid(pid, 0)[1] == 0
    for _ in stream:
        pass
    auriko_obs.flush()
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_does_not_record_the_parents_open_stream(db_path, sim):
    done = subprocess.run(
        [sys.executable, "-c", FORKS_WITH_A_STREAM_OPEN, db_path, sim.base_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    frame = auriko_obs.Store(db_path).calls()
    assert [attrs(row)["auriko.stream.end"] for _, row in frame.iterrows()] == ["completed"]


POOL_OF_WORKERS = textwrap.dedent("""
    import multiprocessing, os, sys, openai, auriko_obs

    def instrument(db):
        auriko_obs.instrument(db=db, service_name="pool")

    def work(i):
        client = openai.OpenAI(base_url=sys.argv[2], api_key="ak_pool_test", max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"hi {i}"}])
        return os.getpid()

    if __name__ == "__main__":
        os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "60000"  # nothing leaves a worker before it ends
        db, ending, method = sys.argv[1], sys.argv[3], sys.argv[4]
        if method == "fork":  # the workers inherit the instrumentation
            instrument(db)
            pool = multiprocessing.get_context(method).Pool(2)
        else:  # the workers start without it, and instrument themselves
            pool = multiprocessing.get_context(method).Pool(2, initializer=instrument, initargs=(db,))
        with pool:
            pids = pool.map(work, range(6), chunksize=1)
            if ending == "close":
                pool.close()
                pool.join()
        # else: leaving the block terminates the pool (SIGTERM to each worker)
        pool.join()
        print(len(set(pids)))
        assert auriko_obs.flush()
""")


@pytest.mark.parametrize(
    ("method", "ending"), [("fork", "close"), ("fork", "terminate"), ("spawn", "terminate"), ("forkserver", "close")]
)
def test_calls_made_in_pool_workers_are_stored_when_the_pool_ends(db_path, sim, tmp_path, method, ending):
    """A multiprocessing worker ends with os._exit (fork, forkserver), which runs no atexit handler, or by
    SIGTERM when its pool is terminated (a `with Pool(...)` block): it exports what it finished first."""
    import multiprocessing

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    script = tmp_path / "pool_script.py"  # a file: spawned workers import the functions from it
    script.write_text(POOL_OF_WORKERS)
    done = subprocess.run(
        [sys.executable, str(script), db_path, sim.base_url, ending, method],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) >= 1  # the calls ran in the workers, not in the parent
    frame = auriko_obs.Store(db_path).calls()
    assert sorted(frame["service_name"]) == ["pool"] * 6
    assert frame["span_id"].is_unique


def test_async_create_and_async_stream(instrumented, async_client):
    async def main():
        response = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        chunks = [c async for c in stream]
        await async_client.close()
        return response, chunks

    response, chunks = asyncio.run(main())
    frame = calls(instrumented)
    assert len(frame) == 2
    assert frame.iloc[0]["request_id"] == response._request_id
    assert frame.iloc[1]["output_tokens"] == chunks[-1].usage.completion_tokens
    assert frame.iloc[1]["ttft_ms"] > 0


def test_responses_api_plain_stream_and_async(instrumented, client, async_client):
    plain = client.responses.create(model="gpt-4o", input="Name a colour.")
    events = list(client.responses.create(model="gpt-4o", input="Name a colour.", stream=True))

    async def main():
        result = await async_client.responses.create(model="gpt-4o", input="Name a colour.")
        await async_client.close()
        return result

    async_result = asyncio.run(main())
    frame = calls(instrumented)
    assert list(frame["operation"]) == ["chat"] * 3 and list(frame["api"]) == ["responses"] * 3
    assert set(frame["finish_reason"]) == {"stop"}  # the reason the model stopped, not the status (completed)
    assert frame.iloc[0]["input_tokens"] == plain.usage.input_tokens
    assert frame.iloc[0]["provider"] == plain.model_extra["routing_metadata"]["provider"]
    completed = next(e for e in events if e.type == "response.completed")
    assert frame.iloc[1]["output_tokens"] == completed.response.usage.output_tokens
    assert frame.iloc[1]["cost_usd"] == pytest.approx(completed.response.model_extra["routing_metadata"]["cost"]["usd"])
    assert frame.iloc[1]["ttft_ms"] > 0
    assert frame.iloc[2]["request_id"] == async_result._request_id


def test_embeddings_are_recorded(instrumented, client):
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    row = _only_row(instrumented)
    assert row["operation"] == "embeddings"
    assert row["input_tokens"] == result.usage.prompt_tokens
    assert row["provider"] is not None and row["cost_usd"] >= 0


ERROR_CASES = [
    # (injected code, expected HTTP status, expected exception class, expected error type)
    ("budget_exhausted", 429, openai.RateLimitError, "rate_limit_error"),
    ("rate_limit_exceeded", 429, openai.RateLimitError, "rate_limit_error"),
    ("upstream_error", 502, openai.InternalServerError, "api_error"),
    ("internal_error", 500, openai.InternalServerError, "api_error"),
    ("invalid_api_key", 401, openai.AuthenticationError, "authentication_error"),
    ("context_length_exceeded", 400, openai.BadRequestError, "invalid_request_error"),
]


@pytest.mark.parametrize("code,status,exc_class,error_type", ERROR_CASES)
def test_every_error_kind_reaches_caller_unchanged_and_is_recorded(
    instrumented, client, sim, code, status, exc_class, error_type
):
    sim.inject(code)
    with pytest.raises(exc_class) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == status and caught.value.code == code
    row = _only_row(instrumented)
    assert row["status"] == "error" and row["http_status"] == status
    assert row["error_code"] == code and row["error_type"] == error_type
    assert row["request_id"] == caught.value.response.headers["x-request-id"]
    assert pd.isna(row["provider"])  # NULL: no routing on errors
    retry_after = caught.value.response.headers.get("retry-after")
    if retry_after is not None:
        assert row["retry_after_s"] == float(retry_after)
    if code == "budget_exhausted":
        assert row["budget_exceeded_scope"] == caught.value.response.headers["x-budget-exceeded-scope"]
        assert row["budget_exceeded_period"] == caught.value.response.headers["x-budget-exceeded-period"]
    span = auriko_obs.Store(instrumented).sql("SELECT status_message FROM spans").iloc[0]
    assert span["status_message"]


def test_real_budget_exhaustion_and_drift_402_are_recorded(instrumented, client, sim):
    sim.configure(budgets=[{"scope_type": "workspace", "period": "daily", "limit_usd": 1e-9, "enforce": True}])
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # crosses the limit
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    sim.configure(drift=True)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 402
    frame = calls(instrumented)
    assert list(frame["status"]) == ["ok", "error", "error"]
    assert list(frame["error_code"][1:]) == ["budget_exhausted", "budget_exceeded"]
    assert list(frame["http_status"][1:]) == [429, 402]
    assert list(frame["budget_exceeded_scope"][1:]) == ["workspace", "workspace"]
    assert frame.iloc[0]["cost_usd"] > 0


def test_drift_legacy_routing_metadata_is_read(instrumented, client, sim):
    sim.configure(drift=True)
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    routing = response.model_extra["routing_metadata"]
    row = _only_row(instrumented)
    assert row["provider"] == routing["provider"]
    assert row["cost_usd"] == pytest.approx(routing["cost"].get("usd", routing["cost"].get("billable_cost_usd")))
    a = attrs(row)
    assert "auriko.routing.extra" in a
    if isinstance(routing.get("warnings"), list) and routing["warnings"]:
        assert list(row["warnings"]) == [str(w) for w in routing["warnings"]]


def test_rate_limit_with_sdk_retry_counts_http_attempts(instrumented, sim):
    sim.inject("upstream_error")
    with openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=1) as retrying:
        retrying.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    row = _only_row(instrumented)
    assert row["status"] == "ok" and row["http_attempts"] == 2


def test_mid_stream_error_is_recorded_and_raised(instrumented, client, sim):
    sim.inject("upstream_error", mid_stream=True)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert received
    row = _only_row(instrumented)
    assert row["status"] == "error" and row["error_code"] == "upstream_error"
    assert attrs(row)["auriko.stream.end"] == "error"


def test_connection_error_is_recorded(instrumented):
    with (
        openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key=API_KEY, max_retries=0) as dead,
        pytest.raises(openai.APIConnectionError),
    ):
        dead.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    row = _only_row(instrumented)
    assert row["status"] == "error" and pd.isna(row["http_status"])
    assert attrs(row)["error.type"] == "openai.APIConnectionError"


@pytest.mark.parametrize("fault", ["missing", "malformed"])
def test_missing_or_malformed_routing_metadata_never_breaks_the_call(instrumented, client, sim, fault):
    sim.configure(metadata_fault=fault)
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert response.choices
    row = _only_row(instrumented)
    assert row["input_tokens"] == response.usage.prompt_tokens
    assert row["status"] == "ok"
    if fault == "malformed":
        assert attrs(row).get("auriko.routing.malformed") is True


def test_non_auriko_endpoint_gives_null_routing_and_estimated_cost_and_hides_injected_usage(instrumented, sim):
    sim.configure(openai_mode=True)
    with openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as plain_client:
        auriko_obs.uninstrument()
        bare = list(plain_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        auriko_obs.instrument(db=instrumented, service_name="tests")
        seen = list(plain_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        plain_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert _chunks_text(seen) == _chunks_text(bare)  # our include_usage request stays invisible
    assert all(c.usage is None for c in seen)
    frame = calls(instrumented)
    assert frame["provider"].isna().all() and frame["routing_strategy"].isna().all()
    assert list(frame["cost_source"]) == ["estimate", "estimate"]
    assert (frame["input_tokens"] > 0).all()
    first = frame.iloc[0]
    expected = (first["input_tokens"] * 2.5 + first["output_tokens"] * 10.0) / 1e6
    assert first["cost_usd"] == pytest.approx(expected)


def test_auriko_usage_chunk_without_routing_metadata_reaches_the_caller(instrumented, sim):
    from auriko_obs.instrumentation._call_record import AURIKO_BASE_URLS

    AURIKO_BASE_URLS.clear()  # this server is not known yet: its headers must tell
    sim.configure(metadata_fault="missing")  # Auriko's usage chunk, but no routing_metadata on it
    with openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as plain_client:
        auriko_obs.uninstrument()
        bare = list(plain_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        auriko_obs.instrument(db=instrumented, service_name="tests")
        first = list(plain_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        stream = plain_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        later = list(stream)
    usage_only = [c for c in bare if not c.choices and c.usage is not None]
    assert len(usage_only) == 1
    for seen in (first, later):
        assert _chunks_text(seen) == _chunks_text(bare)
        assert [c.usage for c in seen] == [c.usage for c in bare]
    assert "stream_options" not in json.loads(stream.response.request.content)  # known as Auriko: sent as written
    frame = calls(instrumented)
    assert list(frame["input_tokens"]) == [usage_only[0].usage.prompt_tokens] * 2


def test_only_auriko_hosts_are_trusted_to_stream_usage_unasked():
    from auriko_obs.instrumentation._call_record import streams_usage_unasked

    for base_url, expected in (
        ("https://api.auriko.ai/v1", True),
        ("https://eu.api.auriko.ai/v1", True),
        ("https://api.openai.com/v1", False),
        ("https://notauriko.ai/v1", False),
    ):
        with openai.OpenAI(base_url=base_url, api_key=API_KEY) as some_client:
            assert streams_usage_unasked(some_client) is expected, base_url


def test_content_is_not_recorded_unless_opted_in(db_path, client, monkeypatch):
    auriko_obs.instrument(db=db_path)
    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "secret-prompt-123"}])
        assert "secret-prompt-123" not in json.dumps(attrs(_only_row(db_path)))
    finally:
        auriko_obs.uninstrument()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    auriko_obs.instrument(db=db_path)
    try:
        response = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "secret-prompt-123"}]
        )
        rows = calls(db_path)
        captured = attrs(rows.iloc[1])
        assert "secret-prompt-123" in captured["gen_ai.input.messages"]
        assert response.choices[0].message.content in captured["gen_ai.output.messages"]
    finally:
        auriko_obs.uninstrument()


def test_no_api_key_or_authorization_header_anywhere_in_the_store(db_path, client, sim, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    auriko_obs.instrument(db=db_path)
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        sim.inject("invalid_api_key")
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        client.responses.create(model="gpt-4o", input="hi")
        assert auriko_obs.flush()
    finally:
        auriko_obs.uninstrument()
    frame = auriko_obs.Store(db_path).sql("SELECT * FROM spans")
    assert len(frame) == 4
    text = frame.to_json(date_format="iso")
    assert API_KEY not in text and "Bearer" not in text and "authorization" not in text.lower()
    import pathlib

    for file in pathlib.Path(db_path).parent.iterdir():
        assert API_KEY.encode() not in file.read_bytes(), file


def test_uninstrument_restores_the_original_methods(db_path):
    from openai.resources.chat.completions.completions import Completions

    original = Completions.__dict__["create"]
    auriko_obs.instrument(db=db_path)
    assert Completions.__dict__["create"] is not original
    auriko_obs.instrument(db=db_path)  # twice is harmless
    auriko_obs.uninstrument()
    assert Completions.__dict__["create"] is original


def test_wrap_instruments_only_that_client(db_path, sim, monkeypatch):
    monkeypatch.setenv("AURIKO_OBS_DB", db_path)
    with (
        openai.OpenAI(base_url=sim.base_url, api_key=API_KEY) as wrapped,
        openai.OpenAI(base_url=sim.base_url, api_key=API_KEY) as other,
    ):
        auriko_obs.wrap(wrapped)
        try:
            wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            other.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            wrapped.embeddings.create(model="text-embedding-3-small", input="x")
            assert auriko_obs.flush()
            assert auriko_obs.instrumentation.active().db_path == db_path
            frame = auriko_obs.Store(db_path).calls()
        finally:
            auriko_obs.uninstrument()
    assert sorted(frame["operation"]) == ["chat", "embeddings"]
    assert frame["request_id"].notna().all()


def test_failure_inside_attribute_extraction_does_not_reach_the_caller(instrumented, client, monkeypatch):
    from auriko_obs.instrumentation import _pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("injected extraction bug")

    monkeypatch.setattr(_pipeline, "build_attributes", broken)
    before = auriko_obs.stats()["internal_errors"].get("extract", 0)
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert response.choices[0].message.content
    assert auriko_obs.flush()
    assert auriko_obs.stats()["internal_errors"]["extract"] == before + 1


def test_failure_inside_the_exporter_does_not_reach_the_caller(instrumented, client, monkeypatch):
    from auriko_obs.store import DuckDBSpanExporter

    def broken(self, table, unencodable=0):
        raise RuntimeError("injected exporter bug")

    # the method the pipeline calls on the store's exporter (a row sink; plain SpanExporters: export)
    monkeypatch.setattr(DuckDBSpanExporter, "export_rows", broken)
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert response.choices
    assert auriko_obs.flush() is False  # the span is not in the store, and flush says so without raising
    assert auriko_obs.stats()["export_failures"]["DuckDBSpanExporter"] == 1


def test_failure_in_the_hot_path_falls_back_to_the_plain_call(instrumented, client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("injected hot-path bug")

    monkeypatch.setattr(_patch, "_begin", broken)
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert response.choices
    assert auriko_obs.stats()["internal_errors"]["begin"] >= 1


def test_spans_nest_under_the_callers_current_span(instrumented, client):
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("user-code")
    with tracer.start_as_current_span("handle-request") as parent:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    row = _only_row(instrumented)
    context = parent.get_span_context()
    assert row["trace_id"] == format(context.trace_id, "032x")
    assert row["parent_span_id"] == format(context.span_id, "016x")


def test_context_attributes_are_added_to_calls(instrumented, client):
    with auriko_obs.attributes({"auriko.notebook.cell": "cell-3"}):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    frame = calls(instrumented)
    assert frame.iloc[0]["notebook_cell"] == "cell-3"
    assert pd.isna(frame.iloc[1]["notebook_cell"])


def test_semconv_names_match_the_installed_package():
    semconv = pytest.importorskip("opentelemetry.semconv._incubating.attributes.gen_ai_attributes")
    from auriko_obs import fields

    openai_names = pytest.importorskip("opentelemetry.semconv._incubating.attributes.openai_attributes")
    installed = {
        v
        for module in (semconv, openai_names)
        for k, v in vars(module).items()
        if k.startswith(("GEN_AI_", "OPENAI_")) and isinstance(v, str)
    }
    ours = set(fields.GENAI_NAMES.values())
    missing = ours - installed
    assert not missing, f"not in the installed semantic conventions: {sorted(missing)}"


# ---------------------------------------------------------------- settings from the environment


def _warnings(caplog, where_text):
    return [r for r in caplog.records if r.name.startswith("auriko_obs") and where_text in r.getMessage()]


def _instrument_and_call(db_path, client):
    """Instruments (as an application starting would), makes one call, returns the stats."""
    auriko_obs.instrument(db=db_path, service_name="tests")
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(calls(db_path)) == 1  # the DuckDB store keeps working
    return auriko_obs.stats()


_OTLP_HTTP_MODULES = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
)


def test_otlp_endpoint_in_the_environment_without_the_otlp_extra_is_a_warning(
    db_path, client, monkeypatch, caplog, fresh_internal_errors
):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    for module in _OTLP_HTTP_MODULES:  # as if the [otlp] extra were not installed
        monkeypatch.setitem(sys.modules, module, None)
    try:
        stats = _instrument_and_call(db_path, client)
        assert stats["internal_errors"]["setup.otlp"] >= 1 and "otlp" not in stats
        [warning] = _warnings(caplog, "OTEL_EXPORTER_OTLP")
        assert "pip install 'auriko-obs[otlp]'" in warning.getMessage() and warning.exc_info is None
    finally:
        auriko_obs.uninstrument()
    with pytest.raises(ImportError, match=r"auriko-obs\[otlp\]"):  # an explicit request still says no
        auriko_obs.instrument(db=db_path, otlp=True)
    auriko_obs.uninstrument()


def test_otlp_protocol_http_json_in_the_environment_falls_back_to_http_protobuf(
    db_path, client, monkeypatch, caplog, fresh_internal_errors
):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    try:
        stats = _instrument_and_call(db_path, client)
        exporter = auriko_obs.instrumentation.active().export.otlp.exporter
        assert type(exporter).__module__ == _OTLP_HTTP_MODULES[0]
        assert stats["internal_errors"]["setup.otlp_protocol"] == 1 and "otlp" in stats
        [warning] = _warnings(caplog, "http/json")
        assert "using http/protobuf" in warning.getMessage()
    finally:
        auriko_obs.uninstrument()
    with pytest.raises(ValueError, match="http/json"):
        auriko_obs.instrument(db=db_path, otlp={"endpoint": "http://127.0.0.1:9", "protocol": "http/json"})
    auriko_obs.uninstrument()


def test_prometheus_port_taken_by_another_worker_is_a_warning_from_the_environment(
    db_path, client, monkeypatch, caplog, fresh_internal_errors
):
    pytest.importorskip("opentelemetry.exporter.prometheus")
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("AURIKO_OBS_PROMETHEUS", str(port))
        try:
            stats = _instrument_and_call(db_path, client)
            assert stats["internal_errors"]["setup.prometheus"] == 1
            assert stats.get("metrics", {}).get("prometheus_port") is None
            [warning] = _warnings(caplog, "AURIKO_OBS_PROMETHEUS")
            assert f"127.0.0.1:{port}" in warning.getMessage()
        finally:
            auriko_obs.uninstrument()
        monkeypatch.delenv("AURIKO_OBS_PROMETHEUS")
        with pytest.raises(OSError, match="cannot serve Prometheus /metrics"):
            auriko_obs.instrument(db=db_path, prometheus=port)
        auriko_obs.uninstrument()


# ---------------------------------------------------------------- streams read through a raw response


def test_raw_response_stream_read_through_parse_is_recorded_and_ends_with_the_stream(instrumented, client):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert raw.headers["x-request-id"]  # the raw response still reads as the SDK's own
    stream = raw.parse()
    assert raw.parse() is stream  # parsed once: one stream, one span
    assert auriko_obs.flush() and auriko_obs.stats()["exported_spans"] == 0  # not over until it is read
    chunks = list(stream)
    ended = time.time_ns()
    usage = next(c.usage for c in chunks if c.usage is not None)
    row = _only_row(instrumented)
    assert row["response_model"] == chunks[0].model and attrs(row)["gen_ai.response.id"] == chunks[0].id
    assert row["input_tokens"] == usage.prompt_tokens and row["output_tokens"] == usage.completion_tokens
    assert row["finish_reason"] == "stop" and row["ttft_ms"] > 0
    assert attrs(row)["auriko.stream.end"] == "completed" and row["end_time"].value <= ended


def test_async_streaming_response_parse_is_recorded(instrumented, async_client):
    async def main():
        async with async_client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        ) as response:
            chunks = [chunk async for chunk in await response.parse()]
        await async_client.close()
        return chunks

    chunks = asyncio.run(main())
    row = _only_row(instrumented)
    assert row["streaming"] and row["response_model"] == chunks[0].model
    assert row["output_tokens"] == next(c.usage for c in chunks if c.usage is not None).completion_tokens


def test_raw_response_stream_never_parsed_ends_when_closed(instrumented, client):
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    row = _only_row(instrumented)
    assert attrs(row)["auriko.stream.end"] == "closed" and row["streaming"]


def test_finished_calls_wait_for_the_schedule_delay_and_a_flush_exports_them_at_once(db_path, client, monkeypatch):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # milliseconds, as the OpenTelemetry SDK reads it
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    auriko_obs.instrument(db=db_path, tracer_provider=provider, service_name="tests")
    try:
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        time.sleep(1.0)  # longer than any interval the worker had before: nothing goes before the delay
        assert exported.get_finished_spans() == ()
        assert auriko_obs.flush() is True
        assert len(exported.get_finished_spans()) == 3
        assert len(calls(db_path)) == 3
    finally:
        auriko_obs.uninstrument()


@pytest.mark.parametrize(
    ("value", "seconds", "warned"),
    [
        (None, 5.0, False),
        ("250", 0.25, False),
        ("0", 5.0, True),
        ("-3", 5.0, True),
        ("inf", 5.0, True),
        ("soon", 5.0, True),
    ],
)
def test_the_schedule_delay_is_read_from_otel_bsp_schedule_delay(monkeypatch, value, seconds, warned):
    from auriko_obs._internal_errors import INTERNAL_ERRORS
    from auriko_obs.instrumentation._pipeline import SCHEDULE_DELAY_ENV, schedule_delay_s

    if value is None:
        monkeypatch.delenv(SCHEDULE_DELAY_ENV, raising=False)
    else:
        monkeypatch.setenv(SCHEDULE_DELAY_ENV, value)
    before = INTERNAL_ERRORS.counts.get(f"pipeline.{SCHEDULE_DELAY_ENV}", 0)
    assert schedule_delay_s() == seconds
    assert INTERNAL_ERRORS.counts.get(f"pipeline.{SCHEDULE_DELAY_ENV}", 0) == before + warned
