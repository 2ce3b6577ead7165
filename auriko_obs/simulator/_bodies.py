"""Response bodies and stream events for chat completions, the Responses API and embeddings."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from collections.abc import Iterator
from typing import Any

from ._call import Call
from ._content import reasoning_effort, requested_tools, response_format

EMBEDDING_DIMENSIONS = 256
WORDS_PER_CHUNK = 3
ARGUMENT_CHARS_PER_CHUNK = 32
_NATIVE_FINISH = {"anthropic": {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}}
_MALFORMED_METADATA = {
    "provider": 42,
    "provider_model_id": None,
    "model_canonical": ["?"],
    "routing_strategy": {"bad": True},
    "cost": "n/a",
    "ttft_ms": "fast",
    "warnings": "x",
}


def _suffix(call: Call) -> str:
    return call.request_id.removeprefix("req_")


# ---------------------------------------------------------------- shared parts


def routing_metadata(call: Call) -> dict | None:
    """Returns ``routing_metadata`` for a served request (None when the config says to leave it out)."""
    config = call.config
    if config.openai_mode or config.metadata_fault == "missing":
        return None
    if config.metadata_fault == "malformed":
        return dict(_MALFORMED_METADATA)
    provider, jitter = call.routed_provider, random.Random(call.content_seed ^ 0x5EED)
    cost: dict[str, Any] = {"usd": call.cost_usd}
    if call.cache_savings_usd > 0:
        cost["cache_savings_usd"] = call.cache_savings_usd
        cost["cache_savings_percent"] = round(100 * call.cache_savings_usd / (call.cost_usd + call.cache_savings_usd))
    metadata: dict[str, Any] = {
        "provider": provider.name,
        "provider_model_id": provider.provider_model_id,
        "model_canonical": call.routed_model.id,
        "routing_strategy": call.strategy,
        "cost": cost,
    }
    # Sent on plain calls too (the provider's time to first token upstream); the contract leaves this open
    # (docs/reference/auriko-contract.md#open-questions).
    ttft_ms = metadata["ttft_ms"] = round(provider.ttft_ms * jitter.uniform(0.85, 1.15), 1)
    if call.output_tokens and provider.throughput_tps:
        metadata["throughput_tps"] = round(provider.throughput_tps * jitter.uniform(0.85, 1.15), 1)
    if call.warnings:
        metadata["warnings"] = [dict(w) for w in call.warnings]
    if config.drift:
        _add_legacy_metadata(call, metadata, ttft_ms)
    return metadata


def _add_legacy_metadata(call: Call, metadata: dict, ttft_ms: float) -> None:
    """Adds the [DRIFT] keys of the older, richer routing_metadata shape."""
    generation_ms = (
        1000 * call.output_tokens / call.routed_provider.throughput_tps if call.routed_provider.throughput_tps else 0
    )
    metadata.update(
        {
            "tier": "standard",
            "total_latency_ms": round(ttft_ms + generation_ms, 1),
            "candidates_total": call.candidates_total,
            "candidates_viable": call.candidates_viable,
            "routing_decision_ms": 1.7,
        }
    )
    metadata["cost"]["billable_cost_usd"] = call.cost_usd
    if "warnings" in metadata:
        metadata["warnings"] = [w["message"] for w in metadata["warnings"]]


def chat_usage(call: Call) -> dict:
    """Returns the chat ``usage`` object; OpenAI's own shape carries no cache_write_tokens."""
    usage: dict[str, Any] = {
        "prompt_tokens": call.input_tokens,
        "completion_tokens": call.output_tokens,
        "total_tokens": call.input_tokens + call.output_tokens,
    }
    prompt_details: dict[str, int] = {"cached_tokens": call.cached_tokens}
    if call.config.openai_mode:
        prompt_details["audio_tokens"] = 0
    elif call.cache_write_tokens:
        prompt_details["cache_write_tokens"] = call.cache_write_tokens
    usage["prompt_tokens_details"] = prompt_details
    usage["completion_tokens_details"] = {"reasoning_tokens": call.reasoning_tokens}
    return usage


def _with_metadata(call: Call, body: dict) -> dict:
    metadata = routing_metadata(call)
    if metadata is not None:
        body["routing_metadata"] = metadata
    return body


# ---------------------------------------------------------------- chat completions


def _tool_calls(call: Call) -> list[dict]:
    return [
        {"id": tc["id"], "type": "function", "function": {"name": tc["name"], "arguments": tc["arguments"]}}
        for tc in call.composed_answer.tool_calls
    ]


def _finish_fields(call: Call) -> dict:
    finish = call.composed_answer.finish_reason
    fields = {"finish_reason": finish}
    if not call.config.openai_mode:
        fields["native_finish_reason"] = _NATIVE_FINISH.get(call.routed_provider.family, {}).get(finish, finish)
    return fields


def chat_completion(call: Call) -> dict:
    """Returns the ``chat.completion`` body."""
    message: dict[str, Any] = {"role": "assistant", "content": call.composed_answer.text, "refusal": None}
    if call.composed_answer.tool_calls:
        message["tool_calls"] = _tool_calls(call)
    body = {
        "id": f"chatcmpl-{_suffix(call)}",
        "object": "chat.completion",
        "created": int(call.started_s),
        "model": call.routed_provider.provider_model_id,
        "choices": [{"index": 0, "message": message, "logprobs": None, **_finish_fields(call)}],
        "usage": chat_usage(call),
    }
    return _with_metadata(call, body)


def _text_pieces(text: str) -> list[str]:
    """Returns the text in pieces of a few words; joined, they give the text back exactly."""
    words = text.split(" ")
    return (
        [
            " ".join(words[i : i + WORDS_PER_CHUNK]) + (" " if i + WORDS_PER_CHUNK < len(words) else "")
            for i in range(0, len(words), WORDS_PER_CHUNK)
        ]
        if text
        else []
    )


def _argument_pieces(arguments: str) -> list[str]:
    return [arguments[i : i + ARGUMENT_CHARS_PER_CHUNK] for i in range(0, len(arguments), ARGUMENT_CHARS_PER_CHUNK)]


def chat_chunks(call: Call) -> Iterator[dict]:
    """Yields the ``chat.completion.chunk`` payloads: role, content or tool-call deltas, finish, then usage.

    Auriko forces ``include_usage``; in openai_mode the usage chunk comes only when the request asks for it.
    """
    base = {
        "id": f"chatcmpl-{_suffix(call)}",
        "object": "chat.completion.chunk",
        "created": int(call.started_s),
        "model": call.routed_provider.provider_model_id,
    }

    def chunk(delta: dict, finish: dict | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None, **(finish or {})}
        return {**base, "choices": [choice]}

    answer = call.composed_answer
    yield chunk({"role": "assistant", "content": None if answer.tool_calls else ""})
    for piece in _text_pieces(answer.text or ""):
        yield chunk({"content": piece})
    for index, tc in enumerate(answer.tool_calls):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": tc["id"],
                        "type": "function",
                        "function": {"name": tc["name"], "arguments": ""},
                    }
                ]
            }
        )
        for piece in _argument_pieces(tc["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, _finish_fields(call))
    stream_options = call.body.get("stream_options")
    if not call.config.openai_mode or (isinstance(stream_options, dict) and stream_options.get("include_usage")):
        yield _with_metadata(call, {**base, "choices": [], "usage": chat_usage(call)})


# ---------------------------------------------------------------- responses API


def _responses_usage(call: Call) -> dict:
    # openai 3.x types require cache_write_tokens here (unlike in chat usage), so it is always sent.
    cached = {"cached_tokens": call.cached_tokens, "cache_write_tokens": call.cache_write_tokens}
    return {
        "input_tokens": call.input_tokens,
        "input_tokens_details": cached,
        "output_tokens": call.output_tokens,
        "output_tokens_details": {"reasoning_tokens": call.reasoning_tokens},
        "total_tokens": call.input_tokens + call.output_tokens,
    }


def response_output(call: Call) -> list[dict]:
    """Returns the ``output`` items: a reasoning item for reasoning models, then function calls or a message."""
    suffix, answer = _suffix(call), call.composed_answer
    status = "incomplete" if answer.finish_reason == "length" else "completed"
    items: list[dict] = []
    if call.routed_model.reasoning:
        items.append({"type": "reasoning", "id": f"rs_{suffix}", "summary": []})
    for index, tc in enumerate(answer.tool_calls):
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{suffix}{index}",
                "call_id": tc["id"],
                "name": tc["name"],
                "arguments": tc["arguments"],
                "status": status,
            }
        )
    if not answer.tool_calls:
        items.append(
            {
                "type": "message",
                "id": f"msg_{suffix}",
                "role": "assistant",
                "status": status,
                "content": [{"type": "output_text", "text": answer.text or "", "annotations": [], "logprobs": []}],
            }
        )
    return items


def _echoed_tool_choice(call: Call) -> Any:
    _, choice = requested_tools(call)
    return choice if choice in ("none", "auto", "required") else {"type": "function", "name": choice}


def response_object(call: Call, status: str) -> dict:
    """Returns the ``response`` object in a given status; terminal statuses carry usage and routing_metadata."""
    body = call.body
    terminal = status in ("completed", "incomplete")
    kind, _ = response_format(call)
    text = body.get("text") if isinstance(body.get("text"), dict) and kind != "text" else {"format": {"type": "text"}}
    effort = reasoning_effort(call)
    obj = {
        "id": f"resp_{_suffix(call)}",
        "object": "response",
        "created_at": int(call.started_s),
        "status": status,
        "model": call.routed_provider.provider_model_id,
        "output": response_output(call) if terminal else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "tool_choice": _echoed_tool_choice(call),
        "tools": [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"],
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "metadata": body.get("metadata") or {},
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "max_output_tokens": body.get("max_output_tokens"),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": effort, "summary": None} if call.routed_model.reasoning else None,
        "text": text,
        "truncation": "disabled",
        "store": False,
        "usage": None,
    }
    if terminal:
        obj["usage"] = _responses_usage(call)
        _with_metadata(call, obj)
    return obj


def response_terminal_status(call: Call) -> str:
    return "incomplete" if call.composed_answer.finish_reason == "length" else "completed"


def response_events(call: Call) -> Iterator[dict]:
    """Yields the Responses stream events in order, each with its ``sequence_number``."""
    for sequence, event in enumerate(_response_event_bodies(call)):
        yield {"type": event.pop("type"), "sequence_number": sequence, **event}


def _response_event_bodies(call: Call) -> Iterator[dict]:
    yield {"type": "response.created", "response": response_object(call, "in_progress")}
    yield {"type": "response.in_progress", "response": response_object(call, "in_progress")}
    for index, item in enumerate(response_output(call)):
        if item["type"] == "message":
            yield from _message_events(item, index)
        elif item["type"] == "function_call":
            yield from _function_call_events(item, index)
        else:
            yield {"type": "response.output_item.added", "output_index": index, "item": item}
            yield {"type": "response.output_item.done", "output_index": index, "item": item}
    status = response_terminal_status(call)
    yield {"type": f"response.{status}", "response": response_object(call, status)}


def _message_events(item: dict, index: int) -> Iterator[dict]:
    text, where = item["content"][0]["text"], {"item_id": item["id"], "output_index": index, "content_index": 0}
    yield {
        "type": "response.output_item.added",
        "output_index": index,
        "item": {**item, "status": "in_progress", "content": []},
    }
    yield {
        "type": "response.content_part.added",
        **where,
        "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
    }
    for piece in _text_pieces(text):
        yield {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
    yield {"type": "response.output_text.done", **where, "text": text, "logprobs": []}
    yield {"type": "response.content_part.done", **where, "part": item["content"][0]}
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


def _function_call_events(item: dict, index: int) -> Iterator[dict]:
    where = {"item_id": item["id"], "output_index": index}
    yield {
        "type": "response.output_item.added",
        "output_index": index,
        "item": {**item, "arguments": "", "status": "in_progress"},
    }
    for piece in _argument_pieces(item["arguments"]):
        yield {"type": "response.function_call_arguments.delta", **where, "delta": piece}
    yield {
        "type": "response.function_call_arguments.done",
        **where,
        "name": item["name"],
        "arguments": item["arguments"],
    }
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


def response_body(call: Call) -> dict:
    """Returns the non-streaming Responses API body."""
    return response_object(call, response_terminal_status(call))


# ---------------------------------------------------------------- embeddings


def _vector(call: Call, item: Any, dimensions: int) -> list[float]:
    """Returns a unit vector determined by the seed, the model and the input (float32 precision)."""
    digest = hashlib.sha256(f"{call.config.seed}|{call.routed_model.id}|{item}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in raw))))


def embeddings_body(call: Call) -> dict:
    """Returns the embeddings body; ``encoding_format: base64`` packs little-endian float32 (as OpenAI does)."""
    dimensions = call.body.get("dimensions")
    dimensions = dimensions if isinstance(dimensions, int) and 0 < dimensions <= 3072 else EMBEDDING_DIMENSIONS
    as_base64 = call.body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(call.embedding_inputs):
        vector = _vector(call, item, dimensions)
        encoded: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    body = {
        "object": "list",
        "data": data,
        "model": call.routed_provider.provider_model_id,
        "usage": {"prompt_tokens": call.input_tokens, "total_tokens": call.input_tokens},
    }
    return _with_metadata(call, body)
