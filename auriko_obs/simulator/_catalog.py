"""The simulated catalog: models, the providers serving them, prices (USD per 1M tokens) and speeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

CATALOG_CREATED_S = 1_735_689_600  # 2025-01-01T00:00:00Z, the `created` of every model


@dataclass(frozen=True)
class Provider:
    """One provider's offer for one model."""

    name: str
    provider_model_id: str
    input_price: float  # USD per 1M uncached input tokens
    output_price: float  # USD per 1M output tokens
    cache_read_price: float  # USD per 1M input tokens read from the prompt cache
    ttft_ms: float  # typical (p50) time to first token
    throughput_tps: float  # typical output tokens per second
    data_policy: str = "no_training"  # none | no_training | zdr
    json_schema: bool = True
    json_object: bool = True
    tools: bool = True
    family: str = "openai"  # parameter dialect, decides unsupported-parameter warnings

    @property
    def mean_price(self) -> float:
        """Returns the mean of the input and output per-1M prices, the unit of ``max_cost_per_1m``."""
        return (self.input_price + self.output_price) / 2


@dataclass(frozen=True)
class Model:
    """A canonical model and the providers that serve it."""

    id: str
    family: str
    display_name: str
    providers: tuple[Provider, ...]
    context_window: int = 128_000
    max_output_tokens: int = 16_384
    reasoning: bool = False
    kind: str = "chat"  # chat | embedding
    responses_only: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Returns the endpoints this model can be called on, as ``supported_endpoints`` names them."""
        if self.kind == "embedding":
            return ("embeddings",)
        return ("responses",) if self.responses_only else ("chat_completions", "responses")


# Parameters each provider family drops (with an `unsupported_parameter` warning) instead of forwarding.
DROPPED_PARAMETERS: dict[str, frozenset[str]] = {
    "openai": frozenset({"top_k", "min_p", "top_a", "repetition_penalty"}),
    "anthropic": frozenset(
        {
            "min_p",
            "top_a",
            "repetition_penalty",
            "frequency_penalty",
            "presence_penalty",
            "logit_bias",
            "seed",
            "logprobs",
            "top_logprobs",
        }
    ),
    "open": frozenset({"top_a"}),
}

PROVIDER_NAMES: dict[str, str] = {
    "openai": "OpenAI",
    "azure": "Azure OpenAI",
    "anthropic": "Anthropic",
    "bedrock": "Amazon Bedrock",
    "vertex_ai": "Google Vertex AI",
    "fireworks_ai": "Fireworks AI",
    "together": "Together AI",
    "groq": "Groq",
    "deepinfra": "DeepInfra",
    "cerebras": "Cerebras",
    "deepseek": "DeepSeek",
}


class _Dialect(TypedDict):
    json_object: bool
    family: str


_ANTHROPIC: _Dialect = {"json_object": False, "family": "anthropic"}

MODELS: tuple[Model, ...] = (
    Model(
        "gpt-4o",
        "gpt-4o",
        "GPT-4o",
        (
            Provider("openai", "gpt-4o-2024-08-06", 2.50, 10.00, 1.25, 420, 95),
            Provider("azure", "gpt-4o-2024-08-06", 2.75, 11.00, 1.375, 560, 80, data_policy="zdr"),
        ),
        aliases=("gpt-4o-2024-08-06",),
    ),
    Model(
        "gpt-4o-mini",
        "gpt-4o",
        "GPT-4o mini",
        (
            Provider("openai", "gpt-4o-mini-2024-07-18", 0.15, 0.60, 0.075, 350, 120),
            Provider("azure", "gpt-4o-mini-2024-07-18", 0.165, 0.66, 0.0825, 300, 105, data_policy="zdr"),
        ),
        aliases=("gpt-4o-mini-2024-07-18",),
    ),
    Model(
        "claude-sonnet-4-20250514",
        "claude-sonnet-4",
        "Claude Sonnet 4",
        (
            Provider("anthropic", "claude-sonnet-4-20250514", 3.00, 15.00, 0.30, 700, 70, **_ANTHROPIC),
            Provider(
                "bedrock",
                "anthropic.claude-sonnet-4-20250514-v1:0",
                3.30,
                16.50,
                0.33,
                900,
                60,
                data_policy="zdr",
                **_ANTHROPIC,
            ),
            Provider("vertex_ai", "claude-sonnet-4@20250514", 3.00, 15.00, 0.30, 820, 85, **_ANTHROPIC),
        ),
        context_window=200_000,
        max_output_tokens=64_000,
        aliases=("claude-sonnet-4", "claude-4-sonnet"),
    ),
    Model(
        "llama-3.3-70b",
        "llama-3",
        "Llama 3.3 70B Instruct",
        (
            Provider(
                "fireworks_ai",
                "accounts/fireworks/models/llama-v3p3-70b-instruct",
                0.90,
                0.90,
                0.45,
                380,
                140,
                family="open",
            ),
            Provider("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 0.88, 0.88, 0.88, 450, 110, family="open"),
            Provider("groq", "llama-3.3-70b-versatile", 0.59, 0.79, 0.295, 180, 280, json_schema=False, family="open"),
            Provider("deepinfra", "meta-llama/Llama-3.3-70B-Instruct", 0.23, 0.40, 0.23, 650, 45, family="open"),
            Provider("cerebras", "llama-3.3-70b", 0.85, 1.20, 0.85, 240, 2100, family="open"),
        ),
        context_window=131_072,
        aliases=("llama-3.3-70b-instruct", "meta-llama/llama-3.3-70b-instruct"),
    ),
    Model(
        "deepseek-v3",
        "deepseek",
        "DeepSeek V3",
        (
            Provider("deepseek", "deepseek-chat", 0.27, 1.10, 0.07, 900, 35, json_schema=False, family="open"),
            Provider(
                "fireworks_ai", "accounts/fireworks/models/deepseek-v3", 0.90, 0.90, 0.45, 420, 110, family="open"
            ),
            Provider("together", "deepseek-ai/DeepSeek-V3", 1.25, 1.25, 1.25, 500, 90, family="open"),
        ),
        context_window=64_000,
        max_output_tokens=8_192,
        aliases=("deepseek-chat",),
    ),
    Model(
        "o3-mini",
        "o3",
        "o3-mini",
        (Provider("openai", "o3-mini-2025-01-31", 1.10, 4.40, 0.55, 1500, 150),),
        context_window=200_000,
        max_output_tokens=100_000,
        reasoning=True,
        aliases=("o3-mini-2025-01-31",),
    ),
    Model(
        "o3-pro",
        "o3",
        "o3-pro",
        (Provider("openai", "o3-pro-2025-06-10", 20.00, 80.00, 20.00, 9000, 40),),
        context_window=200_000,
        max_output_tokens=100_000,
        reasoning=True,
        responses_only=True,
    ),
    Model(
        "text-embedding-3-small",
        "text-embedding-3",
        "Text Embedding 3 Small",
        (
            Provider("openai", "text-embedding-3-small", 0.02, 0.0, 0.02, 60, 0, tools=False),
            Provider("azure", "text-embedding-3-small", 0.022, 0.0, 0.022, 50, 0, data_policy="zdr", tools=False),
        ),
        context_window=8_191,
        max_output_tokens=0,
        kind="embedding",
    ),
)

BY_ID: dict[str, Model] = {}
for _model in MODELS:
    BY_ID[_model.id] = _model
    BY_ID.update({alias: _model for alias in _model.aliases})


def listed_models(endpoint: str | None) -> list[Model]:
    """Returns the models ``GET /v1/models`` lists for an ``endpoint`` query value.

    No value lists every model callable without the Responses API (chat and embedding models);
    ``chat_completions`` only chat models; ``responses`` adds the Responses-only models.
    """
    if endpoint == "responses":
        return [m for m in MODELS if m.kind == "chat"]
    if endpoint == "chat_completions":
        return [m for m in MODELS if m.kind == "chat" and not m.responses_only]
    return [m for m in MODELS if not m.responses_only]


def model_json(model: Model) -> dict:
    """Returns a model as ``GET /v1/models`` shows it (prices in USD per 1M tokens)."""
    return {
        "id": model.id,
        "object": "model",
        "created": CATALOG_CREATED_S,
        "owned_by": "auriko",
        "context_window": model.context_window,
        "supported_endpoints": list(model.endpoints),
        "providers": [
            {"name": p.name, "input_price": p.input_price, "output_price": p.output_price, "data_policy": p.data_policy}
            for p in model.providers
        ],
    }


def _capabilities(model: Model, provider: Provider) -> dict[str, bool]:
    return {
        "tools": provider.tools,
        "json_mode": provider.json_object,
        "structured_output": provider.json_schema,
        "reasoning": model.reasoning,
        "streaming": model.kind == "chat",
        "vision": False,
    }


def directory_json(model: Model) -> dict:
    """Returns a model as ``GET /v1/directory/models`` shows it, with cache-read prices per tier."""
    return {
        "family": model.family,
        "display_name": model.display_name,
        "aliases": list(model.aliases),
        "providers": [
            {
                "provider": p.name,
                "provider_model_id": p.provider_model_id,
                "context_window": model.context_window,
                "max_output_tokens": model.max_output_tokens,
                "capabilities": _capabilities(model, p),
                "input_modalities": ["text"],
                "output_modalities": ["embedding" if model.kind == "embedding" else "text"],
                "data_policy": p.data_policy,
                "supported_endpoints": list(model.endpoints),
                "tiers": [
                    {
                        "name": "standard",
                        "input_price": p.input_price,
                        "output_price": p.output_price,
                        "cache_read_price": p.cache_read_price,
                        "latency_hint": f"ttft_p50_ms={p.ttft_ms:g}",
                        "price_variants": [],
                    }
                ],
            }
            for p in model.providers
        ],
    }


def registry_model_json(model: Model) -> dict:
    """Returns a model as ``GET /v1/registry/models`` shows it."""
    first = model.providers[0]
    return {
        "id": model.id,
        "family": model.family,
        "display_name": model.display_name,
        "capabilities": _capabilities(model, first),
        "input_modalities": ["text"],
        "output_modalities": ["embedding" if model.kind == "embedding" else "text"],
        "providers": [p.name for p in model.providers],
        "has_free_provider": False,
    }


def providers_json() -> list[dict]:
    """Returns the provider list of ``GET /v1/registry/providers``."""
    policies: dict[str, str] = {}
    for model in MODELS:
        for provider in model.providers:
            policies.setdefault(provider.name, provider.data_policy)
    return [
        {
            "id": name,
            "display_name": PROVIDER_NAMES.get(name, name),
            "description": f"{PROVIDER_NAMES.get(name, name)} (simulated)",
            "icon": f"https://auriko.invalid/icons/{name}.svg",
            "data_policy": policy,
        }
        for name, policy in policies.items()
    ]
