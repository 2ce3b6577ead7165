"""Other instrumentations' GenAI attribute names, mapped onto the ones our ``llm_calls`` columns read.

The names were checked against the sources: OpenLLMetry (``opentelemetry-semantic-conventions-ai``
0.4.x ``SpanAttributes`` and ``opentelemetry-instrumentation-openai`` 0.62), OpenInference
(``openinference-semantic-conventions``: ``llm.model_name``, ``llm.provider``, ``llm.system``,
``llm.token_count.*``, ``llm.cost.total``, ``openinference.span.kind``), OpenLIT (``gen_ai.usage.cost``)
and Logfire / pydantic-ai (standard ``gen_ai.*`` plus ``operation.cost``).

``normalize`` only *adds* a name when it is absent: the span's own attributes are kept as they are
(they stay in the ``attributes`` JSON), and a value already under our name always wins.
"""

from __future__ import annotations

from typing import Any

# our name (read by a column)  ←  names other instrumentations use for the same thing, first match wins
ALIASES: dict[str, tuple[str, ...]] = {
    "gen_ai.usage.input_tokens": ("gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens", "llm.token_count.prompt"),
    "gen_ai.usage.output_tokens": (
        "gen_ai.usage.completion_tokens",
        "llm.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "auriko.usage.total_tokens": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total"),
    "gen_ai.usage.cache_read.input_tokens": (
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    "gen_ai.usage.cache_creation.input_tokens": (
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.cache_write.input_tokens",  # opentelemetry-util-genai 1.3b0 (the official instrumentations)
        "llm.token_count.prompt_details.cache_write",
    ),
    "gen_ai.usage.reasoning.output_tokens": (
        "gen_ai.usage.reasoning_tokens",
        "llm.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
    "gen_ai.request.model": ("llm.request.model", "llm.model_name"),
    "gen_ai.response.model": ("llm.response.model", "llm.model_name"),
    "gen_ai.provider.name": ("gen_ai.system", "llm.system"),
    "gen_ai.request.stream": ("gen_ai.is_streaming", "llm.is_streaming", "gen_ai.request.streaming"),
    # OpenInference's llm.provider is the hosting provider (azure, openai, …): what our column means.
    "auriko.routing.provider": ("llm.provider",),
    "auriko.cost.usd": ("llm.cost.total", "gen_ai.usage.cost", "operation.cost"),
}

# OpenLLMetry's llm.request.type and OpenInference's span kind → gen_ai.operation.name
_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings", "rerank": "rerank"}
_OPENINFERENCE_KINDS = {"LLM": "chat", "EMBEDDING": "embeddings"}
# Operations that name the API by themselves (`responses`: auriko-obs before 0.2 and some others).
_API_OF_OPERATION = {"embeddings": "embeddings", "responses": "responses"}

# Operations that are one model call (agent and tool spans carry usage too, but summed over calls).
MODEL_CALL_OPERATIONS = frozenset(
    {"chat", "text_completion", "embeddings", "responses", "generate_content", "completion", "rerank"}
)

_PREFIXES = ("gen_ai.", "llm.")


def normalize(attributes: dict[str, Any]) -> dict[str, Any]:
    """Adds our attribute names for the other conventions' ones found in ``attributes`` (in place); returns it."""
    for ours, theirs in ALIASES.items():
        if ours in attributes:
            continue
        for name in theirs:
            value = attributes.get(name)
            if value is not None:
                attributes[ours] = value
                break
    if "gen_ai.operation.name" not in attributes:
        operation = _REQUEST_TYPES.get(str(attributes.get("llm.request.type", "")).lower())
        if operation is None:
            operation = _OPENINFERENCE_KINDS.get(str(attributes.get("openinference.span.kind", "")).upper())
        if operation is not None:
            attributes["gen_ai.operation.name"] = operation
    if "auriko.openai_api" not in attributes:  # the `api` column: openai.api.type, or the operation that names it
        operation = attributes.get("gen_ai.operation.name")
        api = attributes.get("openai.api.type") or _API_OF_OPERATION.get(str(operation))
        if api is not None:
            attributes["auriko.openai_api"] = api
    if "auriko.cost.usd" in attributes and "auriko.cost.source" not in attributes:
        attributes["auriko.cost.source"] = "reported"
    return attributes


def looks_genai(attributes: dict[str, Any]) -> bool:
    """Cheap test before ``normalize``: does any attribute name belong to a GenAI convention?"""
    return "openinference.span.kind" in attributes or any(k.startswith(_PREFIXES) for k in attributes)


def is_genai(attributes: dict[str, Any]) -> bool:
    """True for a span that records one model call (after ``normalize``)."""
    return looks_genai(attributes) and normalize(attributes).get("gen_ai.operation.name") in MODEL_CALL_OPERATIONS
