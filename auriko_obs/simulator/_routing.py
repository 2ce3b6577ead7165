"""The router: resolve the requested model(s), filter providers by constraints, score by strategy, pick one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._call import Call
from ._catalog import BY_ID, DROPPED_PARAMETERS, PROVIDER_NAMES, Model, Provider
from ._content import hosted_tools, reasoning_effort, requested_tools, response_format
from ._errors import SimError

STRATEGIES = ("cost", "cost-focus", "ttft", "ttft-focus", "tps", "tps-focus", "balanced")
DEFAULT_STRATEGY = "cost-focus"
# [DRIFT] older optimize values and model suffixes.
STRATEGY_ALIASES = {
    "cheapest": "cost",
    "speed": "ttft",
    "throughput": "tps",
    "floor": "cost",
    "nitro": "tps",
    "fast": "ttft",
}
# (cost, ttft, throughput) weights; a pure strategy breaks ties by TTFT, then throughput.
STRATEGY_WEIGHTS = {
    "cost": (1.0, 0.0, 0.0),
    "ttft": (0.0, 1.0, 0.0),
    "tps": (0.0, 0.0, 1.0),
    "cost-focus": (0.6, 0.2, 0.2),
    "ttft-focus": (0.2, 0.6, 0.2),
    "tps-focus": (0.2, 0.2, 0.6),
    "balanced": (1 / 3, 1 / 3, 1 / 3),
}
P95_TTFT_FACTOR = 1.6  # p95 TTFT relative to p50
P95_THROUGHPUT_FACTOR = 0.7  # p95 (slow tail) throughput relative to p50

Pair = tuple[Model, Provider]


def route(call: Call) -> None:
    """Sets the model, provider, strategy and warnings of a request; raises SimError (400/404) when it cannot."""
    if call.endpoint == "responses" and call.body.get("store") is True:
        raise SimError(
            "invalid_parameter_value",
            "store: true is not supported; omit store or send false.",
            param="store",
            suggestion="Keep conversation state on your side and resend it.",
        )
    routing = _routing_options(call)
    names = _requested_names(call)
    call.requested_model = ",".join(names)
    strategy, models = _strategy_and_models(names, routing)
    call.strategy = strategy
    call.model = models[0]
    pool = _eligible(call, models, routing)
    call.candidates_total = sum(len(m.providers) for m in models)
    call.candidates_viable = len(pool)
    call.model, call.provider = _pick(pool, strategy, routing)
    call.warnings.extend(_warnings(call))


def _routing_options(call: Call) -> dict:
    if "gateway" in call.body and not isinstance(call.body["gateway"], dict):
        raise SimError("invalid_parameter_value", "gateway must be an object.", param="gateway")
    routing = call.gateway.get("routing") or call.body.get("routing") or {}  # [DRIFT] top-level `routing`
    if not isinstance(routing, dict):
        raise SimError("invalid_parameter_value", "gateway.routing must be an object.", param="gateway.routing")
    return routing


def _requested_names(call: Call) -> list[str]:
    """Returns the model names asked for: ``[model]`` or ``gateway.models`` (exactly one of them)."""
    model, models = call.body.get("model"), call.gateway.get("models")
    if model and models:
        raise SimError(
            "invalid_parameter_value", "Send either model or gateway.models, not both.", param="gateway.models"
        )
    if not model and not models:
        raise SimError("missing_required_parameter", "model is required (or gateway.models).", param="model")
    if model:
        if not isinstance(model, str):
            raise SimError("invalid_parameter_value", "model must be a string.", param="model")
        return [model]
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise SimError("invalid_parameter_value", "gateway.models must be a list of model ids.", param="gateway.models")
    return models


def _strategy_and_models(names: list[str], routing: dict) -> tuple[str, list[Model]]:
    """Returns the applied strategy and the resolved models; an explicit ``optimize`` beats a model suffix."""
    suffix_strategy, models = None, []
    for name in names:
        base, suffix = _split_suffix(name)
        model = BY_ID.get(base)
        if model is None:
            raise SimError(
                "model_not_found",
                f"The model {name!r} does not exist or is not available.",
                param="model" if len(names) == 1 else "gateway.models",
                suggestion="GET /v1/models lists the available models.",
            )
        suffix_strategy = suffix_strategy or suffix
        models.append(model)
    if routing.get("weights") is not None:
        _check_weights(routing["weights"])
        return "custom", models
    optimize = routing.get("optimize")
    if optimize is None:
        return suffix_strategy or DEFAULT_STRATEGY, models
    strategy = STRATEGY_ALIASES.get(optimize, optimize)
    if strategy not in STRATEGIES:
        raise SimError(
            "invalid_parameter_value",
            f"Unknown routing strategy {optimize!r}.",
            param="gateway.routing.optimize",
            suggestion=f"Use one of {', '.join(STRATEGIES)}.",
        )
    return strategy, models


def _split_suffix(name: str) -> tuple[str, str | None]:
    """Returns (model id, strategy) for shortcuts like ``gpt-4o:ttft``; ``ft:`` ids pass unchanged."""
    if name.count(":") != 1 or name.startswith("ft:"):
        return name, None
    base, suffix = name.split(":")
    strategy = STRATEGY_ALIASES.get(suffix, suffix)
    return (base, strategy) if strategy in STRATEGIES else (name, None)


def _check_weights(weights: Any) -> None:
    valid = (
        isinstance(weights, dict)
        and weights
        and set(weights) <= {"cost", "ttft", "throughput"}
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf") for v in weights.values()
        )
        and any(v > 0 for v in weights.values())
    )
    if not valid:
        raise SimError(
            "invalid_parameter_value",
            "weights takes non-negative cost, ttft and throughput, one > 0.",
            param="gateway.routing.weights",
        )


# ---------------------------------------------------------------- eligibility


def _eligible(call: Call, models: list[Model], routing: dict) -> list[Pair]:
    """Returns the (model, provider) pairs that pass every constraint; ``mode: fallback`` keeps the first model
    that has any."""
    endpoint_ok = [m for m in models if _endpoint_error(call, m) is None]
    if not endpoint_ok:
        unserved = _endpoint_error(call, models[0])
        assert unserved is not None  # models[0] is not in endpoint_ok
        raise unserved
    if routing.get("mode") == "fallback":
        first_error: SimError | None = None
        for model in endpoint_ok:
            try:
                return _filtered(call, [(model, p) for p in model.providers], routing)
            except SimError as err:
                first_error = first_error or err
        assert first_error is not None  # endpoint_ok is not empty, and every model raised
        raise first_error
    return _filtered(call, [(m, p) for m in endpoint_ok for p in m.providers], routing)


def _endpoint_error(call: Call, model: Model) -> SimError | None:
    if call.endpoint == "embeddings" and model.kind != "embedding":
        return SimError(
            "no_compatible_endpoint",
            f"{model.id} is not an embedding model.",
            param="model",
            suggestion="Use an embedding model such as text-embedding-3-small.",
        )
    if call.endpoint != "embeddings" and model.kind == "embedding":
        return SimError("no_compatible_endpoint", f"{model.id} only serves /v1/embeddings.", param="model")
    if call.endpoint == "chat.completions" and model.responses_only:
        return SimError(
            "response_api_only",
            f"{model.id} is only available through /v1/responses.",
            param="model",
            suggestion="Call POST /v1/responses instead.",
        )
    return None


def _filters(call: Call, routing: dict) -> list[tuple[Callable[[Provider], bool], SimError]]:
    """Returns the provider filters this request implies, each with the error raised when nothing passes."""
    filters = []
    allow, exclude = routing.get("providers"), routing.get("exclude_providers")
    for key, names in (("providers", allow), ("exclude_providers", exclude)):
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise SimError(
                "invalid_parameter_value", f"{key} must be a list of provider names.", param=f"gateway.routing.{key}"
            )
    if allow:
        filters.append(
            (
                lambda p: p.name in allow,
                SimError(
                    "provider_not_in_allowlist",
                    f"No provider in {allow} serves this model.",
                    param="gateway.routing.providers",
                    suggestion="Widen gateway.routing.providers or pick another model.",
                ),
            )
        )
    if exclude:
        filters.append(
            (
                lambda p: p.name not in exclude,
                SimError(
                    "provider_blocked",
                    "Every provider for this model is excluded.",
                    param="gateway.routing.exclude_providers",
                    suggestion="Exclude fewer providers.",
                ),
            )
        )
    policy = routing.get("data_policy")
    if policy in ("no_training", "zdr"):
        accepted = {"zdr"} if policy == "zdr" else {"zdr", "no_training"}
        filters.append(
            (
                lambda p: p.data_policy in accepted,
                SimError(
                    "provider_blocked",
                    f"No provider for this model meets data_policy {policy!r}.",
                    param="gateway.routing.data_policy",
                    suggestion="Relax gateway.routing.data_policy.",
                ),
            )
        )
    filters.extend(_capability_filters(call, routing))
    filters.extend(_performance_filters(routing))
    return filters


def _capability_filters(call: Call, routing: dict) -> list:
    filters = []
    tools, choice = requested_tools(call)
    if tools and choice != "none":
        filters.append(
            (
                lambda p: p.tools,
                SimError(
                    "tools_not_supported",
                    "No provider for this model supports tools.",
                    param="tools",
                    suggestion="Pick a model with tool support.",
                ),
            )
        )
    kind, _ = response_format(call)
    param = "text.format" if call.endpoint == "responses" else "response_format"
    if kind == "json_schema":
        filters.append(
            (
                lambda p: p.json_schema,
                SimError(
                    "structured_output_not_supported",
                    "No eligible provider supports json_schema for this model.",
                    param=param,
                    suggestion="Use a model whose providers support structured output, or json_object.",
                ),
            )
        )
    elif kind == "json_object":
        filters.append(
            (
                lambda p: p.json_object,
                SimError(
                    "json_mode_not_supported",
                    "No eligible provider supports json_object for this model.",
                    param=param,
                    suggestion="Use response_format json_schema instead.",
                ),
            )
        )
    if routing.get("require_parameters"):
        sent = set(call.body)
        filters.append(
            (
                lambda p: not sent & DROPPED_PARAMETERS.get(p.family, frozenset()),
                SimError(
                    "required_params_not_supported",
                    "No provider accepts every parameter sent.",
                    param="gateway.routing.require_parameters",
                    suggestion="Drop require_parameters or the parameters.",
                ),
            )
        )
    return filters


def _performance_filters(routing: dict) -> list:
    ttft_factor = P95_TTFT_FACTOR if routing.get("ttft_percentile") == "p95" else 1.0
    tps_factor = P95_THROUGHPUT_FACTOR if routing.get("throughput_percentile") == "p95" else 1.0
    checks = (
        ("max_cost_per_1m", lambda p, v: p.mean_price <= v, "cost_constraint_exceeded"),
        ("max_ttft_ms", lambda p, v: p.ttft_ms * ttft_factor <= v, "latency_constraint_exceeded"),
        ("min_throughput_tps", lambda p, v: p.throughput_tps * tps_factor >= v, "throughput_constraint_not_met"),
    )
    filters = []
    for key, keep, code in checks:
        value = routing.get(key)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise SimError(
                "invalid_parameter_value", f"{key} must be a positive number.", param=f"gateway.routing.{key}"
            )
        filters.append(
            (
                (lambda k, v: lambda p: k(p, v))(keep, float(value)),
                SimError(
                    code,
                    f"No provider for this model meets gateway.routing.{key} = {value}.",
                    param=f"gateway.routing.{key}",
                    suggestion=f"Relax gateway.routing.{key}.",
                ),
            )
        )
    return filters


def _filtered(call: Call, pool: list[Pair], routing: dict) -> list[Pair]:
    for keep, error in _filters(call, routing):
        pool = [pair for pair in pool if keep(pair[1])]
        if not pool:
            raise error
    return pool


# ---------------------------------------------------------------- scoring


def _weights(strategy: str, routing: dict) -> tuple[float, float, float]:
    if strategy == "custom":
        weights = routing["weights"]
        return (float(weights.get("cost", 0)), float(weights.get("ttft", 0)), float(weights.get("throughput", 0)))
    return STRATEGY_WEIGHTS[strategy]


def _pick(pool: list[Pair], strategy: str, routing: dict) -> Pair:
    """Returns the best pair for the strategy (lowest weighted, range-normalised score); ``prefer`` wins if
    eligible."""
    prefer = routing.get("prefer")
    preferred = [pair for pair in pool if pair[1].name == prefer]
    if preferred:
        return preferred[0]
    w_cost, w_ttft, w_tps = _weights(strategy, routing)
    cost = _normaliser([p.mean_price for _, p in pool])
    ttft = _normaliser([p.ttft_ms for _, p in pool])
    slowness = _normaliser([-p.throughput_tps for _, p in pool])

    def score(pair: Pair) -> tuple[float, float, float]:
        p = pair[1]
        total = w_cost * cost(p.mean_price) + w_ttft * ttft(p.ttft_ms) + w_tps * slowness(-p.throughput_tps)
        return round(total, 9), p.ttft_ms, -p.throughput_tps

    return min(pool, key=score)


def _normaliser(values: list[float]) -> Callable[[float], float]:
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return lambda v: (v - low) / span


# ---------------------------------------------------------------- warnings


def _warnings(call: Call) -> list[dict]:
    """Returns the structured warnings for what the router dropped or ignored for the chosen provider."""
    provider, warnings = call.routed_provider, []
    for param in sorted(DROPPED_PARAMETERS.get(provider.family, frozenset()) & set(call.body)):
        warnings.append(
            {
                "type": "unsupported_parameter",
                "code": f"{param}_ignored",
                "message": f"{param} is not supported by {provider.name} and was dropped.",
            }
        )
    if reasoning_effort(call) not in (None, "none", "off") and not call.routed_model.reasoning:
        warnings.append(
            {
                "type": "unsupported_parameter",
                "code": "reasoning_effort_ignored",
                "message": f"{call.routed_model.id} is not a reasoning model; reasoning effort was ignored.",
            }
        )
    for kind in hosted_tools(call):
        warnings.append(
            {
                "type": "unsupported_feature",
                "code": "hosted_tool_ignored",
                "message": f"The hosted tool {kind!r} is not available on {provider.name}; it was ignored.",
            }
        )
    warnings.extend(_extension_warnings(call))
    return warnings


def _extension_warnings(call: Call) -> list[dict]:
    extensions = call.body.get("extensions")
    if not isinstance(extensions, dict):
        return []
    if "thinking" in extensions:
        raise SimError(
            "invalid_parameter_value",
            "extensions.thinking is not accepted.",
            param="extensions.thinking",
            suggestion="Use the top-level reasoning_effort instead.",
        )
    served_by = {
        call.routed_provider.name,
        "google" if call.routed_provider.name == "vertex_ai" else call.routed_provider.name,
    }
    warnings = []
    for name in extensions:
        if name not in PROVIDER_NAMES and name != "google":
            warnings.append(
                {
                    "type": "unknown_provider",
                    "code": "unknown_extension_provider",
                    "message": f"extensions.{name} names no known provider; it was ignored.",
                }
            )
        elif name not in served_by:
            warnings.append(
                {
                    "type": "ignored_extension",
                    "code": "extension_not_applied",
                    "message": f"extensions.{name} ignored: the request was served by {call.routed_provider.name}.",
                }
            )
    return warnings
