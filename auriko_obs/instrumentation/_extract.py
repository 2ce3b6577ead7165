"""Returns span attributes for a finished call record (runs on the worker thread, never the caller's).

Every body, chunk and error is read defensively: Auriko's shapes drift (see the contract's [DRIFT]
notes), other OpenAI-compatible servers send less, and a malformed field must cost us that field
only, never the span.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, cast

import orjson

from .. import fields as F
from ..prices import estimate_cost_usd
from ._call_record import CallRecord, base_url_facts, base_url_of, remember_auriko
from ._streams import field

Attributes = dict[str, Any]


def _as_dict(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:
            return None
        return dumped if isinstance(dumped, dict) else None
    return None


def _shallow(value: Any) -> dict[str, Any] | None:
    """Returns the fields of a dict or a pydantic model, one level deep (nested models stay models): what
    ``_as_dict`` gives at that level, without ``model_dump`` converting every nested model (about 4 µs for
    a stream's usage)."""
    if type(value) is dict:
        return value
    values = getattr(value, "__dict__", None)
    if values is not None and hasattr(value, "__pydantic_fields_set__"):
        extra = getattr(value, "__pydantic_extra__", None)
        return {**values, **extra} if extra else values
    return _as_dict(value)


def _str(value: Any) -> str | None:
    return value if type(value) is str and value else None


def _num(value: Any) -> float | int | None:
    kind = type(value)  # exact types: bool is not a number here
    if kind is int:
        return cast(int, value)
    if kind is float:
        return cast(float, value) if math.isfinite(value) else None
    return None


def _int(value: Any) -> int | None:
    kind = type(value)
    if kind is int:
        return cast(int, value)
    if kind is float and math.isfinite(value):
        return int(value)
    return None


def _put(attrs: Attributes, key: str, value: Any) -> None:
    if value is not None:
        attrs[key] = value


try:  # openai's NotGiven/Omit sentinels are falsy objects meaning "absent"
    from openai._types import NotGiven as _NotGiven
    from openai._types import Omit as _Omit

    _SENTINELS: tuple[type, ...] = (_NotGiven, _Omit)
except ImportError:  # pragma: no cover - openai is a dependency; kept for odd vendored copies
    _SENTINELS = ()


def _given(value: Any) -> Any:
    return None if value is None or isinstance(value, _SENTINELS) else value


# ---------------------------------------------------------------- request side

_REQUEST_PARAMS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("temperature", F.GEN_AI_REQUEST_TEMPERATURE, _num),
    ("top_p", F.GEN_AI_REQUEST_TOP_P, _num),
    ("frequency_penalty", F.GEN_AI_REQUEST_FREQUENCY_PENALTY, _num),
    ("presence_penalty", F.GEN_AI_REQUEST_PRESENCE_PENALTY, _num),
    ("seed", F.GEN_AI_REQUEST_SEED, _int),
    ("n", F.GEN_AI_REQUEST_CHOICE_COUNT, _int),
)


# record.kind (the SDK resource a call went through) → the API, as openai.api.type names it.
_API_OF_KIND = {"chat": "chat_completions", "responses": "responses", "embeddings": "embeddings"}


def _request_attributes(record: CallRecord, attrs: Attributes) -> None:
    kw = record.kwargs
    api = _API_OF_KIND[record.kind]
    attrs[F.GEN_AI_OPERATION_NAME] = F.OPERATION_OF_API[api]
    attrs[F.AURIKO_OPENAI_API] = api
    if api != "embeddings":
        attrs[F.OPENAI_API_TYPE] = api
    attrs["auriko.api"] = record.api
    _put(attrs, F.GEN_AI_REQUEST_MODEL, _str(kw.get("model")))
    if record.streaming:  # set if and only if the request streams (unset means it does not)
        attrs[F.GEN_AI_REQUEST_STREAM] = True
    for name, key, convert in _REQUEST_PARAMS:
        value = kw.get(name)
        if value is not None:
            _put(attrs, key, convert(value))
    if attrs.get(F.GEN_AI_REQUEST_CHOICE_COUNT) == 1:  # recorded only when it asks for more than one
        del attrs[F.GEN_AI_REQUEST_CHOICE_COUNT]
    tier = _str(_given(kw.get("service_tier")))
    if tier is None and isinstance(_given(kw.get("extra_body")), dict):
        tier = _str(kw["extra_body"].get("service_tier"))
    if tier is not None and tier != "auto":  # the conventions leave out the default request
        attrs[F.OPENAI_REQUEST_SERVICE_TIER] = tier
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        max_tokens = _int(kw.get(name))
        if max_tokens is not None:
            attrs[F.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
            break
    stop = kw.get("stop")
    if type(stop) is str:
        attrs[F.GEN_AI_REQUEST_STOP_SEQUENCES] = (stop,)
    elif isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        attrs[F.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(stop)
    if "response_format" in kw or "text" in kw:
        _put(attrs, F.GEN_AI_OUTPUT_TYPE, _output_type(kw))
    if record.kind == "embeddings":
        if type(kw.get("encoding_format")) is str:
            attrs[F.GEN_AI_REQUEST_ENCODING_FORMATS] = (kw["encoding_format"],)
        _put(attrs, F.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, _int(kw.get("dimensions")))
    if "extra_body" in kw or "gateway" in kw:
        _gateway_attributes(kw, attrs)
    _server_attributes(record.client, attrs)


def _output_type(kw: dict[str, Any]) -> str | None:
    response_format = _given(kw.get("response_format"))
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        return "json" if kind in ("json_schema", "json_object") else ("text" if kind == "text" else None)
    if isinstance(response_format, type):  # .parse(response_format=PydanticModel)
        return "json"
    text = _given(kw.get("text"))
    if isinstance(text, dict) and isinstance(text.get("format"), dict):
        return "json" if text["format"].get("type") in ("json_schema", "json_object") else "text"
    return None


def _gateway_attributes(kw: dict[str, Any], attrs: Attributes) -> None:
    extra_body = _given(kw.get("extra_body"))
    extra_body = extra_body if isinstance(extra_body, dict) else {}
    gateway = _as_dict(_given(kw.get("gateway"))) or _as_dict(extra_body.get("gateway")) or {}
    # [DRIFT] older docs put these at the top level as `routing` and `auriko_metadata`.
    routing = _as_dict(gateway.get("routing")) or _as_dict(extra_body.get("routing")) or {}
    metadata = _as_dict(gateway.get("metadata")) or _as_dict(extra_body.get("auriko_metadata")) or {}
    models = gateway.get("models")
    if isinstance(models, (list, tuple)) and all(isinstance(m, str) for m in models):
        attrs["auriko.request.models"] = tuple(models)
        attrs.setdefault(F.GEN_AI_REQUEST_MODEL, models[0])
    for key, value in routing.items():
        _put(attrs, f"auriko.request.routing.{key}", _attribute_value(value))
    tags = metadata.get("tags")
    if isinstance(tags, (list, tuple)):
        attrs["auriko.request.tags"] = tuple(str(t) for t in tags)
    _put(attrs, "auriko.request.user_id", _str(metadata.get("user_id")))
    _put(attrs, "auriko.request.trace_id", _str(metadata.get("trace_id")))
    custom = metadata.get("custom_fields")
    if isinstance(custom, dict):
        for key, value in custom.items():
            _put(attrs, f"auriko.request.custom.{key}", _attribute_value(value))


def _attribute_value(value: Any) -> Any:
    """Returns value as an OpenTelemetry attribute value (scalar or homogeneous tuple), or JSON text."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if value is None:
        return None
    try:
        return orjson.dumps(_as_dict(value) or value, default=str).decode()
    except Exception:
        return str(value)


def _server_attributes(client: Any, attrs: Attributes) -> None:
    base_url = base_url_of(client)
    if base_url is None:
        return
    facts = base_url_facts(base_url)
    _put(attrs, F.SERVER_ADDRESS, facts.host)
    _put(attrs, F.SERVER_PORT, facts.port)


def _remember_auriko(record: CallRecord, attrs: Attributes) -> None:
    # A response with Auriko's credit header or routing_metadata: later streams to that base URL are sent
    # without our include_usage (Auriko sends usage unasked), so the caller sees exactly what Auriko sends.
    if record.api == "openai" and ("auriko.credits.balance_usd" in attrs or "auriko.routing.provider" in attrs):
        remember_auriko(record.client)


# ---------------------------------------------------------------- response side


def _headers_of(record: CallRecord) -> Any:
    """Returns the response headers wherever this SDK and call shape keep them, or None."""
    if record.headers is not None:
        return record.headers
    for holder in (record.http, getattr(record.error, "response", None)):
        headers = getattr(holder, "headers", None)
        if headers is not None:
            return headers
    for holder in (record.error, record.result):  # the auriko SDK keeps a ResponseHeaders wrapper
        headers = getattr(holder, "response_headers", None) or getattr(holder, "_response_headers", None)
        if headers is not None:
            return headers
    return None


_HEADERS = {header: (key, kind) for header, key, kind in F.HEADER_ATTRIBUTES}
_RAW_HEADERS = {header.encode(): (key, kind) for header, key, kind in F.HEADER_ATTRIBUTES}


def _header_attributes(headers: Any, attrs: Attributes) -> None:
    # One pass over the headers (a response carries ~20): a case-insensitive get() per known name
    # would rescan them every time.
    raw = headers if type(headers) is list else getattr(headers, "raw", None)  # [(name bytes, value bytes)]
    if isinstance(raw, list):
        for name, value in raw:
            known = _RAW_HEADERS.get(name.lower())
            if known is not None:
                _put(attrs, known[0], _parse_header(value.decode("latin-1"), known[1]))
        return
    items = getattr(headers, "items", None)
    pairs = items() if callable(items) else getattr(headers, "_raw", {}).items()  # auriko's ResponseHeaders
    for name, value in pairs:
        known = _HEADERS.get(name.lower())
        if known is not None:
            _put(attrs, known[0], _parse_header(str(value), known[1]))


def _parse_header(raw: str, kind: str) -> Any:
    try:
        if kind == "str":
            return raw
        if kind == "bool":
            return raw.strip().lower() == "true"
        if kind == "int":
            return int(raw)
        number = float(raw)
        if not math.isfinite(number):
            return None
        return number / 1e6 if kind == "micro_usd" else number
    except ValueError:
        return None


def _usage_attributes(usage: Any, attrs: Attributes) -> None:
    usage = _shallow(usage)
    if not usage:
        return
    input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    _put(attrs, F.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
    _put(attrs, F.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
    _put(attrs, "auriko.usage.total_tokens", _int(usage.get("total_tokens")))
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    if details:
        details = _shallow(details) or {}
        _put(attrs, F.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, _int(details.get("cached_tokens")))
        _put(attrs, F.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, _int(details.get("cache_write_tokens")))
    details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    if details:
        details = _shallow(details) or {}
        _put(attrs, F.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, _int(details.get("reasoning_tokens")))


_KNOWN_ROUTING_KEYS = {key for key, _ in F.ROUTING_ATTRIBUTES} | {"cost", "warnings"}
_ROUTING_CONVERTERS = tuple(
    (key, attr, _num if attr.endswith(("_ms", "_tps")) else _str) for key, attr in F.ROUTING_ATTRIBUTES
)


def _routing_attributes(routing: Any, attrs: Attributes) -> None:
    if routing is None:
        return
    routing = _as_dict(routing)
    if routing is None:
        attrs["auriko.routing.malformed"] = True
        return
    for key, attr, convert in _ROUTING_CONVERTERS:
        value = routing.get(key)
        if value is not None:
            converted = convert(value)
            if converted is None:
                attrs["auriko.routing.malformed"] = True
            else:
                attrs[attr] = converted
    cost = routing.get("cost")
    if type(cost) is dict:
        for key, attr in F.COST_ATTRIBUTES:
            value = cost.get(key)
            if value is not None:
                _put(attrs, attr, _num(value))
        if "auriko.cost.usd" not in attrs:  # [DRIFT] legacy name for the billable cost
            _put(attrs, "auriko.cost.usd", _num(cost.get("billable_cost_usd")))
        if "auriko.cost.usd" in attrs:
            attrs["auriko.cost.source"] = "auriko"
    elif cost is not None:
        attrs["auriko.routing.malformed"] = True
    warnings = routing.get("warnings")
    if warnings is not None:
        _warning_attributes(warnings, attrs)
    if len(routing) > len(_KNOWN_ROUTING_KEYS) or not routing.keys() <= _KNOWN_ROUTING_KEYS:
        extra = {k: v for k, v in routing.items() if k not in _KNOWN_ROUTING_KEYS}
        for key, value in extra.items():
            if isinstance(value, (str, int, float, bool)):
                attrs[f"auriko.routing.{key}"] = value
        attrs["auriko.routing.extra"] = _attribute_value(extra)


def _warning_attributes(warnings: Any, attrs: Attributes) -> None:
    if warnings is None:
        return
    if not isinstance(warnings, (list, tuple)):
        attrs["auriko.routing.malformed"] = True
        return
    codes, types = [], []
    for warning in warnings:
        if isinstance(warning, str):  # [DRIFT] older docs: warnings as plain strings
            codes.append(warning)
            continue
        warning = _as_dict(warning) or {}
        codes.append(str(warning.get("code") or warning.get("type") or "unknown"))
        types.append(str(warning.get("type") or "unknown"))
    attrs["auriko.routing.warnings"] = tuple(codes)
    if types:
        attrs["auriko.routing.warning_types"] = tuple(types)


def _body_attributes(kind: str, body: dict[str, Any], attrs: Attributes) -> None:
    _put(attrs, F.GEN_AI_RESPONSE_ID, _str(body.get("id")))
    _put(attrs, F.GEN_AI_RESPONSE_MODEL, _str(body.get("model")))
    if body.get("status") not in ("queued", "in_progress"):  # until it ends, a response names the tier asked for
        _put(attrs, F.OPENAI_RESPONSE_SERVICE_TIER, _str(body.get("service_tier")))
    _put(attrs, F.OPENAI_RESPONSE_SYSTEM_FINGERPRINT, _str(body.get("system_fingerprint")))
    _usage_attributes(body.get("usage"), attrs)
    _routing_attributes(body.get("routing_metadata"), attrs)
    if kind == "chat":
        choices = body.get("choices")
        if type(choices) is list:
            reasons = []
            for choice in choices:
                reason = choice.get("finish_reason") if type(choice) is dict else None
                if reason:
                    reasons.append(str(reason))
            if reasons:
                attrs[F.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(reasons)
    elif kind == "responses":
        stopped = _responses_finish_reasons(body)
        if stopped:
            attrs[F.GEN_AI_RESPONSE_FINISH_REASONS] = stopped
    elif kind == "embeddings":
        attrs.setdefault(F.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, _embedding_dimensions(body.get("data")))
        if attrs[F.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] is None:
            del attrs[F.GEN_AI_EMBEDDINGS_DIMENSION_COUNT]


# Responses API: an output item's or the response's status → the reason the model stopped, as Chat
# Completions names it (`incomplete` carries its reason: max_output_tokens is `length`).
_STATUS_REASONS = {"completed": "stop", "failed": "error", "cancelled": "error"}
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
_TOOL_CALL_ITEMS = {"function_call", "custom_tool_call", "computer_call"}


def _responses_finish_reasons(body: dict[str, Any]) -> tuple[str, ...]:
    """Returns the finish reasons of a Responses API response: ``stop``, ``tool_calls``, ``length``, …"""
    status = _str(body.get("status"))
    if status == "incomplete":
        details = _as_dict(body.get("incomplete_details")) or {}
        reason = _str(details.get("reason"))
        return (_INCOMPLETE_REASONS.get(reason, reason) if reason else "incomplete",)
    if status in ("failed", "cancelled"):
        return ("error",)
    if status != "completed":  # queued, in_progress: not finished
        return ()
    reasons: list[str] = []
    output = body.get("output")
    for item in output if type(output) is list else ():
        item = _as_dict(item) or {}
        item_type, item_status = item.get("type"), item.get("status")
        if item_type in _TOOL_CALL_ITEMS and item_status in (None, "completed", "incomplete"):
            reason = "tool_calls"
        elif item_type == "message":
            reason = "incomplete" if item_status == "incomplete" else _STATUS_REASONS.get(str(item_status))
        else:
            continue
        if reason and reason not in reasons:
            reasons.append(reason)
    return tuple(reasons) or ("stop",)


def _embedding_dimensions(data: Any) -> int | None:
    """Returns the length of the first embedding, a list of floats or base64 of little-endian float32s."""
    first = _as_dict(data[0]) if type(data) is list and data else None
    vector = first.get("embedding") if first else None
    if type(vector) is list:
        return len(vector)
    if type(vector) is str:
        import base64
        import binascii

        try:
            return len(base64.b64decode(vector, validate=True)) // 4
        except (binascii.Error, ValueError):
            return None
    return None


def _non_stream_body(record: CallRecord) -> dict[str, Any] | None:
    content = record.content
    if content is None and record.http is not None:
        try:
            content = record.http.content  # raises if the caller never read the streamed body
        except Exception:
            content = None
    if content:
        try:
            decoded = orjson.loads(content)
            return decoded if isinstance(decoded, dict) else None
        except orjson.JSONDecodeError:
            pass
    result = record.result
    body = _as_dict(result)
    if body is not None and record.api == "auriko":
        body.setdefault("routing_metadata", _as_dict(getattr(result, "routing_metadata", None)))
    return body


def _stream_body(record: CallRecord) -> dict[str, Any]:
    """Returns a response-like dict assembled from a stream's chunks (last non-null wins)."""
    chunks = record.chunks or []
    body: dict[str, Any] = {}
    if record.kind == "responses":
        for event in chunks:
            response = field(event, "response")
            if response is not None:
                dumped = _as_dict(response) or {}
                extra = getattr(response, "model_extra", None) or {}
                if "routing_metadata" in extra and "routing_metadata" not in dumped:
                    dumped["routing_metadata"] = extra["routing_metadata"]
                body = dumped
        return body
    reasons: dict[int, str] = {}
    for chunk in chunks:
        if not body.get("id"):
            body["id"] = field(chunk, "id")
            body["model"] = field(chunk, "model")
        for key in ("service_tier", "system_fingerprint"):
            if not body.get(key):
                body[key] = field(chunk, key)
        usage = field(chunk, "usage")
        if usage is not None:
            body["usage"] = usage
        routing = field(chunk, "routing_metadata")
        if routing is not None:
            body["routing_metadata"] = routing
        for choice in field(chunk, "choices") or ():
            reason = field(choice, "finish_reason")
            if reason:
                reasons[field(choice, "index") or 0] = reason
    stream = record.result
    if stream is not None and body.get("routing_metadata") is None:  # auriko.Stream keeps it itself
        body["routing_metadata"] = getattr(stream, "routing_metadata", None)
    body["choices"] = [{"finish_reason": reasons[i]} for i in sorted(reasons)]
    return body


def exception_type(error: BaseException) -> str:
    """Returns the exception's class as error.type names it: qualified by its module, builtins bare."""
    kind = type(error)
    return kind.__qualname__ if kind.__module__ in ("builtins", None) else f"{kind.__module__}.{kind.__qualname__}"


def _error_attributes(error: BaseException, attrs: Attributes, request_texts: list[str] | None) -> None:
    """Sets the error attributes; ``request_texts`` (content capture off): the request's text, never to be
    stored, so a message quoting it is withheld."""
    status = _int(getattr(error, "status_code", None))
    _put(attrs, F.HTTP_RESPONSE_STATUS_CODE, status)
    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    body = body if isinstance(body, dict) else {}
    code = _str(body.get("code")) or _str(getattr(error, "code", None))
    error_type = _str(body.get("type")) or _str(getattr(error, "type", None))
    _put(attrs, "auriko.error.code", code)
    _put(attrs, "auriko.error.type", error_type)
    for key in ("param", "provider", "doc_url"):
        _put(attrs, f"auriko.error.{key}", _str(body.get(key)))
    for key in ("message", "suggestion"):
        text = _str(body.get(key)) or (str(error) if key == "message" else None)
        if text is not None:
            text = redact_secrets(text[:4000])
            if request_texts and quotes_request(text, request_texts):
                text = _WITHHELD
            attrs[f"auriko.error.{key}"] = text[:1000]
    attrs[F.ERROR_TYPE] = code or exception_type(error)


# Key-like strings in error messages: OpenAI and Anthropic keys (sk-…, sk-proj-…, sk-ant-…), Groq (gsk_…),
# xAI (xai-…), Auriko (ak_live_…, ak_test_…), Google (AIza…), bearer tokens, Basic credentials (base64 with
# a digit, a capital past its first letter, + / or =, so that "Basic plan" stays), and whatever follows
# "API key provided:" or "api_key=". Redacted always.
_SECRETS = re.compile(
    r"\b(?:g?sk|ak|rk|xai)[-_][A-Za-z0-9][A-Za-z0-9_\-*…]{4,}"
    r"|\bAIza[0-9A-Za-z_-]{30,}"
    r"|(?i:\bbearer\s+)[^\s\"',]*[^\s\"',.]"
    r"|(?i:\bbasic\s+)(?=[A-Za-z0-9+/][A-Za-z0-9+/]*[0-9A-Z+/=])[A-Za-z0-9+/]{8,}={0,2}"
    r"|(?i:\bapi[-_ ]?key(?:\s+provided)?[\"']?\s*[:=]\s*[\"']?)[^\s\"',]*[^\s\"',.]"
)
_REDACTED = "[REDACTED]"
_WITHHELD = "[withheld: the message quotes the request, and content capture is off]"


def redact_secrets(text: str) -> str:
    """Returns text with key-like strings (API keys, bearer tokens) replaced by [REDACTED]."""
    return _SECRETS.sub(_redact_match, text)


def _redact_match(match: re.Match[str]) -> str:
    token = match.group(0)
    # Keep the words that introduce a key ("Bearer ", "Basic ", "API key provided: "), drop the key.
    head = re.match(r"(?i)(bearer\s+|basic\s+|api[-_ ]?key(?:\s+provided)?[\"']?\s*[:=]\s*[\"']?)", token)
    return (head.group(0) if head else "") + _REDACTED


_QUOTE_WINDOW = 24  # characters of request text that, found in a message, count as a quote


def quotes_request(message: str, texts: list[str]) -> bool:
    """Returns whether the message contains one of the texts, or any 24 characters of one."""
    for text in texts:
        text = text.strip()
        if len(text) >= 8 and text in message:
            return True
        for start in range(0, max(0, len(text) - _QUOTE_WINDOW) + 1, _QUOTE_WINDOW // 2):
            window = text[start : start + _QUOTE_WINDOW]
            if len(window) == _QUOTE_WINDOW and window in message:
                return True
    return False


def request_texts(kwargs: dict[str, Any]) -> list[str]:
    """Returns the text the caller sent: message contents, input, instructions, prompt."""
    texts: list[str] = []

    def collect(value: Any, depth: int = 0) -> None:
        value = _given(value)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict) and depth < 6:
            for key in ("content", "text", "input", "arguments", "output"):
                collect(value.get(key), depth + 1)
        elif isinstance(value, (list, tuple)) and depth < 6:
            for item in value:
                collect(item if isinstance(item, (str, dict, list, tuple)) else _as_dict(item), depth + 1)

    for key in ("messages", "input", "instructions", "prompt"):
        collect(kwargs.get(key))
    return texts


def _stream_error(record: CallRecord) -> dict[str, Any] | None:
    """Returns the error object of a Responses stream that failed in-band (an `error` or `response.failed` event)."""
    for event in reversed(record.chunks or []):
        kind = field(event, "type")
        if kind == "error":
            return {"code": field(event, "code"), "message": field(event, "message")}
        if kind == "response.failed":
            return _as_dict(field(field(event, "response"), "error"))
    return None


def _cost_estimate(attrs: Attributes) -> None:
    if "auriko.cost.usd" in attrs:
        return
    estimate = estimate_cost_usd(
        attrs.get(F.GEN_AI_RESPONSE_MODEL) or attrs.get(F.GEN_AI_REQUEST_MODEL),
        attrs.get(F.GEN_AI_USAGE_INPUT_TOKENS),
        attrs.get(F.GEN_AI_USAGE_OUTPUT_TOKENS),
        attrs.get(F.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
    )
    if estimate is not None:
        attrs["auriko.cost.usd"], price = estimate
        attrs["auriko.cost.source"] = "estimate"
        attrs["auriko.cost.price_source"] = price.citation


def build_attributes(record: CallRecord, capture_content: bool = False) -> tuple[str, Attributes, str | None]:
    """Returns (span name, attributes, error description or None) for a finished call."""
    attrs: Attributes = {}
    _request_attributes(record, attrs)
    headers = _headers_of(record)
    if headers is not None:
        _header_attributes(headers, attrs)
    if record.status is not None:
        attrs[F.HTTP_RESPONSE_STATUS_CODE] = record.status
    if record.attempts:
        attrs["auriko.http.attempts"] = record.attempts
    if record.usage_resent:
        attrs["auriko.stream.usage_request_rejected"] = True
    body = _stream_body(record) if record.chunks is not None else (None if record.error else _non_stream_body(record))
    if body:
        _body_attributes(record.kind, body, attrs)
    if record.chunks is not None:
        attrs["auriko.stream.end"] = record.stream_end or "abandoned"
        attrs["auriko.stream.completed"] = record.stream_end == "completed"
        if record.first_chunk_ns:
            attrs[F.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (record.first_chunk_ns - record.t0_ns) / 1e9
    error = record.error
    in_band = _stream_error(record) if record.kind == "responses" and record.chunks else None
    if error is not None and record.stream_end == "closed":  # the caller's own exception left its `with` block
        attrs[F.ERROR_TYPE] = exception_type(error)
    else:
        failure = error if error is not None else (_InBandError(in_band) if in_band else None)
        if failure is not None:  # the request's text, to withhold messages quoting it, only on failure
            texts = None if capture_content else request_texts(record.kwargs)
            _error_attributes(failure, attrs, texts)
    _cost_estimate(attrs)
    _remember_auriko(record, attrs)
    attrs[F.GEN_AI_PROVIDER_NAME] = attrs.get("auriko.routing.provider") or "openai"
    if record.extra:
        attrs.update(record.extra)
    if capture_content:
        _content_attributes(record, body, attrs)
    model = attrs.get(F.GEN_AI_REQUEST_MODEL)
    operation = attrs[F.GEN_AI_OPERATION_NAME]
    name = f"{operation} {model}" if model else operation
    failed = error is not None or in_band is not None
    return name, attrs, (attrs.get("auriko.error.message") or attrs[F.ERROR_TYPE]) if failed else None


class _InBandError(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("message") or "stream failed")
        self.body = body


def _content_attributes(record: CallRecord, body: dict[str, Any] | None, attrs: Attributes) -> None:
    messages = record.messages
    if messages is not None:
        attrs[F.GEN_AI_INPUT_MESSAGES] = _json_text(messages)
    instructions = _given(record.kwargs.get("instructions"))
    if isinstance(instructions, str):
        attrs[F.GEN_AI_SYSTEM_INSTRUCTIONS] = instructions
    output = _output_text(record, body)
    if output is not None:
        attrs[F.GEN_AI_OUTPUT_MESSAGES] = _json_text(
            [{"role": "assistant", "parts": [{"type": "text", "content": output}]}]
        )


def _output_text(record: CallRecord, body: dict[str, Any] | None) -> str | None:
    if record.chunks is not None:
        pieces = []
        for chunk in record.chunks:
            if getattr(chunk, "type", None) == "response.output_text.delta":
                pieces.append(getattr(chunk, "delta", "") or "")
            for choice in getattr(chunk, "choices", None) or ():
                delta = getattr(choice, "delta", None)
                pieces.append(getattr(delta, "content", None) or "")
        return "".join(pieces)
    if not body:
        return None
    if record.kind == "chat":
        choices = body.get("choices") or []
        first = _as_dict(choices[0]) if choices else None
        message = _as_dict(first.get("message")) if first else None
        return message.get("content") if message else None
    if record.kind == "responses":
        texts = []
        for item in body.get("output") or []:
            for part in (_as_dict(item) or {}).get("content") or []:
                part = _as_dict(part) or {}
                if part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
        return "".join(texts)
    return None


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=lambda v: _as_dict(v) or str(v)).decode()
    except Exception:
        return str(value)
