"""The simulated catalog: models, the providers that serve them, prices (USD per 1M tokens) and speeds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    name: str
    provider_model_id: str
    input_price: float  # USD per 1M input tokens
    output_price: float  # USD per 1M output tokens
    cache_read_price: float  # USD per 1M cached input tokens
    ttft_ms: float  # typical time to first token
    tps: float  # typical output tokens per second
    json_schema: bool = True
    json_object: bool = True
    tools: bool = True
    data_policy: str = "no_training"
    family: str = "openai"  # parameter dialect, for unsupported-parameter warnings


@dataclass(frozen=True)
class Model:
    id: str
    providers: tuple[Provider, ...]
    context_window: int = 128_000
    reasoning: bool = False
    embedding: bool = False
    responses: bool = True
    aliases: tuple[str, ...] = ()


def _p(name, model_id, i, o, cr, ttft, tps, **kw) -> Provider:
    return Provider(name, model_id, i, o, cr, ttft, tps, **kw)


MODELS: tuple[Model, ...] = (
    Model("gpt-4o", (
        _p("openai", "gpt-4o-2024-08-06", 2.50, 10.00, 1.25, 420, 95),
        _p("azure", "gpt-4o-2024-08-06", 2.50, 10.00, 1.25, 560, 80),
    ), aliases=("gpt-4o-2024-08-06",)),
    Model("gpt-4o-mini", (
        _p("openai", "gpt-4o-mini-2024-07-18", 0.15, 0.60, 0.075, 350, 120),
        _p("azure", "gpt-4o-mini-2024-07-18", 0.165, 0.66, 0.083, 300, 105),
    )),
    Model("claude-sonnet-4-20250514", (
        _p("anthropic", "claude-sonnet-4-20250514", 3.00, 15.00, 0.30, 700, 70, json_object=False, family="anthropic"),
        _p("bedrock", "anthropic.claude-sonnet-4-20250514-v1:0", 3.30, 16.50, 0.33, 900, 60, json_object=False,
           family="anthropic"),
        _p("vertex_ai", "claude-sonnet-4@20250514", 3.00, 15.00, 0.30, 820, 85, json_object=False, family="anthropic"),
    ), context_window=200_000, aliases=("claude-sonnet-4",)),
    Model("llama-3.3-70b", (
        _p("fireworks_ai", "accounts/fireworks/models/llama-v3p3-70b-instruct", 0.90, 0.90, 0.45, 380, 140,
           json_schema=True, family="open"),
        _p("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 0.88, 0.88, 0.88, 450, 160, family="open"),
        _p("groq", "llama-3.3-70b-versatile", 0.59, 0.79, 0.59, 180, 320, json_schema=False, family="open"),
        _p("deepinfra", "meta-llama/Llama-3.3-70B-Instruct", 0.23, 0.40, 0.23, 650, 45, family="open"),
    )),
    Model("deepseek-v3", (
        _p("deepseek", "deepseek-chat", 0.27, 1.10, 0.07, 900, 35, json_schema=False, family="open"),
        _p("fireworks_ai", "accounts/fireworks/models/deepseek-v3", 0.90, 0.90, 0.45, 420, 110, family="open"),
        _p("together", "deepseek-ai/DeepSeek-V3", 1.25, 1.25, 1.25, 500, 90, family="open"),
    )),
    Model("o3-mini", (
        _p("openai", "o3-mini-2025-01-31", 1.10, 4.40, 0.55, 1500, 150),
    ), context_window=200_000, reasoning=True),
    Model("text-embedding-3-small", (
        _p("openai", "text-embedding-3-small", 0.02, 0.0, 0.02, 60, 0, tools=False),
        _p("azure", "text-embedding-3-small", 0.022, 0.0, 0.022, 50, 0, tools=False),
    ), context_window=8191, embedding=True, responses=False),
)

BY_ID: dict[str, Model] = {}
for _model in MODELS:
    BY_ID[_model.id] = _model
    for _alias in _model.aliases:
        BY_ID[_alias] = _model


def model_json(model: Model) -> dict:
    """Returns a model as GET /v1/models lists it."""
    endpoints = ["embeddings"] if model.embedding else ["chat_completions"] + (["responses"] if model.responses else [])
    return {
        "id": model.id, "object": "model", "created": 1_700_000_000, "owned_by": "auriko",
        "context_window": model.context_window, "supported_endpoints": endpoints,
        "providers": [{"name": p.name, "input_price": p.input_price, "output_price": p.output_price,
                       "data_policy": p.data_policy} for p in model.providers],
    }
