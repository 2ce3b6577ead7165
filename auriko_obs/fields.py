"""The one table: Auriko/OpenAI field → span attribute → ``llm_calls`` column → DuckDB type.

Everything that names a field reads it from here: the instrumentation (attribute names), the DuckDB
store (``spans`` columns and the ``llm_calls`` view), the schema documentation (``auriko-obs schema``)
and, later, the OTLP receiver's mapping of other conventions. Adding a column is one line in
``LLM_CALL_COLUMNS``; the store adds it to existing files on open.

GenAI semantic-convention names follow semconv 0.66b2 (see ``GENAI_NAMES``); ``auriko.*`` names cover
only what the conventions lack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# GenAI semantic-convention attribute names we emit (tests compare them with the installed package).
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT = "gen_ai.embeddings.dimension.count"
GEN_AI_OUTPUT_TYPE = "gen_ai.output.type"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
OPENAI_API_TYPE = "openai.api.type"
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT = "openai.response.system_fingerprint"
# Which OpenAI-style API a call used: chat_completions, responses or embeddings. `openai.api.type` names only
# the first two (embeddings spans do not carry it), so our own attribute keeps all three for `llm_calls.api`.
AURIKO_OPENAI_API = "auriko.openai_api"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"

GENAI_NAMES = {
    name: value
    for name, value in globals().items()
    if name.startswith(("GEN_AI_", "OPENAI_")) and isinstance(value, str)
}
# The GenAI operation each API's calls are recorded as (a well-known operation name MUST be used where one
# applies: the Responses API generates chat content, as the official OpenAI instrumentation records it).
OPERATION_OF_API = {"chat_completions": "chat", "responses": "chat", "embeddings": "embeddings"}

Source = Literal["span", "attribute"]


@dataclass(frozen=True)
class Column:
    """One ``llm_calls`` column: where its value comes from and how it is typed."""

    name: str
    sql_type: str
    attribute: str | None  # span attribute it is read from; None for span-level columns
    source: str  # the Auriko/OpenAI field or span property, for the schema documentation
    scale: float | None = None  # column = attribute × scale (seconds → milliseconds)
    first: bool = False  # column = first element of an array attribute
    default: str | None = None  # SQL literal for a span without the attribute (its conventional meaning)
    count: bool = False  # a count: a negative value (another instrumentation's bug) gets NULL, kept in attributes


def _a(name: str, sql_type: str, attribute: str, source: str, **kw: object) -> Column:
    return Column(name, sql_type, attribute, source, **kw)  # type: ignore[arg-type]


def _s(name: str, sql_type: str, source: str) -> Column:
    return Column(name, sql_type, None, source)


# The contract of `llm_calls`, in order (design.md). Span-level columns (attribute=None) are filled
# from the span itself; the rest from span attributes.
LLM_CALL_COLUMNS: tuple[Column, ...] = (
    _s("trace_id", "VARCHAR", "span context trace id (hex)"),
    _s("span_id", "VARCHAR", "span context span id (hex)"),
    _s("parent_span_id", "VARCHAR", "parent span id (hex)"),
    _s("start_time", "TIMESTAMPTZ", "span start"),
    _s("end_time", "TIMESTAMPTZ", "span end"),
    _s("duration_ms", "DOUBLE", "span end − start"),
    _s("service_name", "VARCHAR", "resource service.name"),
    _a("operation", "VARCHAR", GEN_AI_OPERATION_NAME, "chat (Chat Completions and Responses API) or embeddings"),
    _a("api", "VARCHAR", AURIKO_OPENAI_API, "API called: chat_completions, responses or embeddings"),
    # gen_ai.request.stream is set if and only if the request streams; unset means not streamed.
    _a("streaming", "BOOLEAN", GEN_AI_REQUEST_STREAM, "request `stream`", default="false"),
    _a("request_model", "VARCHAR", GEN_AI_REQUEST_MODEL, "request `model`"),
    _a("response_model", "VARCHAR", GEN_AI_RESPONSE_MODEL, "response `model`"),
    _a("model_canonical", "VARCHAR", "auriko.routing.model_canonical", "routing_metadata.model_canonical"),
    _a("provider", "VARCHAR", "auriko.routing.provider", "routing_metadata.provider"),
    _a("provider_model_id", "VARCHAR", "auriko.routing.provider_model_id", "routing_metadata.provider_model_id"),
    _a("routing_strategy", "VARCHAR", "auriko.routing.strategy", "routing_metadata.routing_strategy"),
    _a(
        "input_tokens",
        "BIGINT",
        GEN_AI_USAGE_INPUT_TOKENS,
        "usage.prompt_tokens / input_tokens (includes cached)",
        count=True,
    ),
    _a(
        "output_tokens",
        "BIGINT",
        GEN_AI_USAGE_OUTPUT_TOKENS,
        "usage.completion_tokens / output_tokens (includes reasoning)",
        count=True,
    ),
    _a("total_tokens", "BIGINT", "auriko.usage.total_tokens", "usage.total_tokens", count=True),
    _a(
        "cached_tokens",
        "BIGINT",
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        "usage.*_tokens_details.cached_tokens",
        count=True,
    ),
    _a(
        "cache_write_tokens",
        "BIGINT",
        GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        "usage.*_tokens_details.cache_write_tokens",
        count=True,
    ),
    _a(
        "reasoning_tokens",
        "BIGINT",
        GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        "usage.*_tokens_details.reasoning_tokens",
        count=True,
    ),
    _a("service_tier", "VARCHAR", OPENAI_RESPONSE_SERVICE_TIER, "response `service_tier` (the tier that served it)"),
    _a("cost_usd", "DOUBLE", "auriko.cost.usd", "routing_metadata.cost.usd, else a price-table estimate"),
    _a("cost_source", "VARCHAR", "auriko.cost.source", "auriko (router-reported) or estimate (price table)"),
    _a("cache_savings_usd", "DOUBLE", "auriko.cost.cache_savings_usd", "routing_metadata.cost.cache_savings_usd"),
    _a(
        "cache_savings_percent",
        "DOUBLE",
        "auriko.cost.cache_savings_percent",
        "routing_metadata.cost.cache_savings_percent",
    ),
    _a("hosted_tool_usd", "DOUBLE", "auriko.cost.hosted_tool_usd", "routing_metadata.cost.hosted_tool_usd"),
    _a(
        "ttft_ms",
        "DOUBLE",
        GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
        "client-measured time to the first chunk of a stream",
        scale=1000.0,
    ),
    _a("provider_ttft_ms", "DOUBLE", "auriko.routing.ttft_ms", "routing_metadata.ttft_ms"),
    _a("throughput_tps", "DOUBLE", "auriko.routing.throughput_tps", "routing_metadata.throughput_tps"),
    _a(
        "finish_reason",
        "VARCHAR",
        GEN_AI_RESPONSE_FINISH_REASONS,
        "first choice finish_reason (Responses API: stop, tool_calls, length, …)",
        first=True,
    ),
    _s("status", "VARCHAR", "span status: ok or error"),
    _a("http_status", "INTEGER", HTTP_RESPONSE_STATUS_CODE, "HTTP status of the response or error"),
    _a("error_type", "VARCHAR", "auriko.error.type", "error body `type`"),
    _a("error_code", "VARCHAR", "auriko.error.code", "error body `code`"),
    _a("retry_after_s", "DOUBLE", "auriko.retry_after_s", "Retry-After header (seconds)"),
    _a("budget_exceeded_scope", "VARCHAR", "auriko.budget.exceeded_scope", "X-Budget-Exceeded-Scope header"),
    _a("budget_exceeded_period", "VARCHAR", "auriko.budget.exceeded_period", "X-Budget-Exceeded-Period header"),
    _a("http_attempts", "INTEGER", "auriko.http.attempts", "HTTP requests the SDK made (retries included)"),
    _a("request_id", "VARCHAR", "auriko.request_id", "X-Request-ID header"),
    _a(
        "ratelimit_remaining_requests",
        "BIGINT",
        "auriko.ratelimit.remaining_requests",
        "X-RateLimit-Remaining-Requests header",
    ),
    _a("credits_balance_usd", "DOUBLE", "auriko.credits.balance_usd", "X-Credits-Balance-Microdollars ÷ 1e6"),
    _a("warnings", "VARCHAR[]", "auriko.routing.warnings", "routing_metadata.warnings[].code"),
    _a("tags", "VARCHAR[]", "auriko.request.tags", "request gateway.metadata.tags"),
    _a("user_id", "VARCHAR", "auriko.request.user_id", "request gateway.metadata.user_id"),
    _a("notebook_cell", "VARCHAR", "auriko.notebook.cell", "set by the Jupyter extension"),
    _s("attributes", "JSON", "every span attribute, for what has no column"),
)

COLUMN_BY_NAME = {c.name: c for c in LLM_CALL_COLUMNS}
ATTRIBUTE_COLUMNS = tuple(c for c in LLM_CALL_COLUMNS if c.attribute is not None)

# Columns of the raw `spans` table that `llm_calls` does not expose (span-level facts of any span).
SPAN_ONLY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("status_message", "VARCHAR"),
    ("scope_name", "VARCHAR"),
    ("resource", "JSON"),
    ("events", "JSON"),
)

# Response headers (docs/reference/auriko-contract.md#response-headers) → span attribute, and how the value is
# typed.
# "usd" parses a USD decimal string, "micro_usd" divides microdollars by 1e6, "bool" reads "true".
HEADER_ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("x-request-id", "auriko.request_id", "str"),
    ("retry-after", "auriko.retry_after_s", "float"),
    ("x-rate-limit-source", "auriko.ratelimit.source", "str"),
    ("x-ratelimit-limit-requests", "auriko.ratelimit.limit_requests", "int"),
    ("x-ratelimit-remaining-requests", "auriko.ratelimit.remaining_requests", "int"),
    ("x-ratelimit-reset-requests", "auriko.ratelimit.reset_requests", "str"),
    ("x-credits-balance-microdollars", "auriko.credits.balance_usd", "micro_usd"),
    ("x-budget-daily-limit", "auriko.budget.daily.limit_usd", "usd"),
    ("x-budget-daily-spend", "auriko.budget.daily.spend_usd", "usd"),
    ("x-budget-weekly-limit", "auriko.budget.weekly.limit_usd", "usd"),
    ("x-budget-weekly-spend", "auriko.budget.weekly.spend_usd", "usd"),
    ("x-budget-monthly-limit", "auriko.budget.monthly.limit_usd", "usd"),
    ("x-budget-monthly-spend", "auriko.budget.monthly.spend_usd", "usd"),
    ("x-budget-exceeded", "auriko.budget.exceeded", "bool"),
    ("x-budget-exceeded-period", "auriko.budget.exceeded_period", "str"),
    ("x-budget-exceeded-scope", "auriko.budget.exceeded_scope", "str"),
    ("x-error-provider", "auriko.error.header_provider", "str"),
    ("x-error-retryable", "auriko.error.retryable", "bool"),
    ("x-error-type", "auriko.error.header_type", "str"),
    ("x-token-count-model", "auriko.token_count_model", "str"),
)

# routing_metadata keys → span attribute. Keys not listed here (legacy extras such as `tier`,
# `total_latency_ms`, `candidates_*`) are kept as auriko.routing.<key> when scalar.
ROUTING_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("provider", "auriko.routing.provider"),
    ("provider_model_id", "auriko.routing.provider_model_id"),
    ("model_canonical", "auriko.routing.model_canonical"),
    ("routing_strategy", "auriko.routing.strategy"),
    ("ttft_ms", "auriko.routing.ttft_ms"),
    ("throughput_tps", "auriko.routing.throughput_tps"),
)
COST_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("usd", "auriko.cost.usd"),
    ("cache_savings_usd", "auriko.cost.cache_savings_usd"),
    ("cache_savings_percent", "auriko.cost.cache_savings_percent"),
    ("hosted_tool_usd", "auriko.cost.hosted_tool_usd"),
)

# Other attributes we emit (documentation only; their values live in `attributes` JSON).
OTHER_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("auriko.routing.warning_types", "routing_metadata.warnings[].type"),
    ("auriko.routing.extra", "unknown routing_metadata keys, as JSON"),
    ("auriko.request.models", "request gateway.models"),
    ("auriko.request.routing.<key>", "request gateway.routing options (optimize, providers, …)"),
    ("auriko.request.trace_id", "request gateway.metadata.trace_id"),
    ("auriko.request.custom.<key>", "request gateway.metadata.custom_fields"),
    ("auriko.cost.price_source", "for an estimated cost: the list price used, as `<pricing page> @ <day copied>`"),
    ("auriko.error.message", "error body `message` (never request content)"),
    ("auriko.error.param", "error body `param`"),
    ("auriko.error.provider", "error body `provider`"),
    ("auriko.error.suggestion", "error body `suggestion`"),
    ("auriko.error.doc_url", "error body `doc_url`"),
    ("auriko.stream.completed", "stream read to its end (false: closed early or abandoned)"),
    ("auriko.stream.end", "how a stream ended: completed, closed, abandoned, error"),
    (
        "auriko.stream.usage_request_rejected",
        "the server answered 4xx to the stream_options.include_usage we added: sent again as written",
    ),
    ("auriko.api", "client library: openai or auriko"),
    ("auriko.notebook.session", "Jupyter extension: this load of the extension in a kernel"),
    ("auriko.notebook.run", "Jupyter extension: one execution of one cell (session:n)"),
    ("auriko.notebook.cell_id", "Jupyter extension: the frontend's cell id, else the run"),
    ("auriko.notebook.execution_count", "Jupyter extension: the cell's execution count"),
    ("auriko.notebook.path", "Jupyter extension: the notebook's path, when the frontend tells the kernel"),
    ("auriko.experiment", "%%auriko_obs_track NAME: the experiment a cell's calls belong to"),
)


def llm_calls_select_list() -> str:
    """Returns the SELECT list of the ``llm_calls`` view, in contract order."""
    return ", ".join(c.name for c in LLM_CALL_COLUMNS)


def spans_columns() -> list[tuple[str, str]]:
    """Returns (name, DuckDB type) of every column of the raw ``spans`` table."""
    return [(c.name, c.sql_type) for c in LLM_CALL_COLUMNS] + list(SPAN_ONLY_COLUMNS)


def schema_markdown() -> str:
    """Returns the ``llm_calls`` schema as a Markdown table (for the docs' schema page and ``auriko-obs schema``)."""
    lines = ["| column | type | span attribute | source |", "|---|---|---|---|"]
    for c in LLM_CALL_COLUMNS:
        attr = f"`{c.attribute}`" if c.attribute else "(span)"
        lines.append(f"| {c.name} | {c.sql_type} | {attr} | {c.source} |")
    return "\n".join(lines)
