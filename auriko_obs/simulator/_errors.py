"""Auriko's error registry (code → type, HTTP status) and the error envelope with its headers
(docs/reference/auriko-contract.md#errors)."""

from __future__ import annotations

_INVALID = "invalid_request_error"
_CAPABILITY_CODES = [
    "tools_not_supported",
    "json_mode_not_supported",
    "structured_output_not_supported",
    "tools_with_structured_output_not_supported",
    "vision_not_supported",
    "reasoning_not_supported",
    "thinking_disable_not_supported",
    "streaming_not_supported",
    "non_streaming_not_supported",
    "batch_only",
    "tier_opt_in_required",
    "tool_choice_required_not_supported",
    "cost_constraint_exceeded",
    "latency_constraint_exceeded",
    "throughput_constraint_not_met",
    "provider_not_in_allowlist",
    "provider_blocked",
    "required_params_not_supported",
    "byok_keys_required",
    "platform_keys_unavailable",
    "unsupported_modalities",
    "no_compatible_endpoint",
    "no_responses_endpoint",
    "input_requires_responses_endpoint",
    "response_api_only",
    "hosted_tool_not_supported",
    "no_tools_on_endpoint",
]

# SDK 1.2.0 `_registry.py`, plus codes only the docs' error index lists (and the [DRIFT] 402 codes, which
# are only ever emitted with an explicit status).
REGISTRY: dict[str, tuple[str, int]] = {
    "invalid_api_key": ("authentication_error", 401),
    "expired_api_key": ("authentication_error", 401),
    "invalid_recovery_code": ("authentication_error", 401),
    "mfa_verification_failed": ("authentication_error", 401),
    "insufficient_permissions": ("permission_error", 403),
    "feature_disabled": ("permission_error", 403),
    "mfa_required": ("permission_error", 403),
    "invalid_request": (_INVALID, 400),
    "missing_required_parameter": (_INVALID, 400),
    "invalid_parameter_value": (_INVALID, 400),
    "payload_too_large": (_INVALID, 413),
    "context_length_exceeded": (_INVALID, 400),
    "content_filtered": (_INVALID, 400),
    "idempotency_conflict": (_INVALID, 409),
    "idempotency_replay_unavailable": (_INVALID, 409),
    "field_immutable": (_INVALID, 400),
    "operation_not_allowed": (_INVALID, 400),
    "unknown_field": (_INVALID, 400),
    "unknown_parameter": (_INVALID, 400),
    "state_precondition_failed": (_INVALID, 409),
    "duplicate_resource": (_INVALID, 409),
    "method_not_allowed": (_INVALID, 405),
    "payment_declined": (_INVALID, 400),
    "payment_method_invalid": (_INVALID, 400),
    **{code: (_INVALID, 400) for code in _CAPABILITY_CODES},
    "model_not_found": ("not_found_error", 404),
    "resource_not_found": ("not_found_error", 404),
    "rate_limit_exceeded": ("rate_limit_error", 429),
    "concurrent_requests_exceeded": ("rate_limit_error", 429),
    "tokens_per_min_exceeded": ("rate_limit_error", 429),
    "budget_exhausted": ("rate_limit_error", 429),
    "insufficient_quota": ("rate_limit_error", 429),
    "budget_exceeded": ("rate_limit_error", 402),  # [DRIFT] older docs
    "no_provider_available": ("api_error", 503),
    "routing_failed": ("api_error", 503),
    "upstream_error": ("api_error", 502),
    "upstream_timeout": ("api_error", 504),
    "model_unavailable": ("api_error", 503),
    "internal_error": ("api_error", 500),
    "service_unavailable": ("api_error", 503),
    # Stream-level only (no HTTP status of their own): sent as a 500 when injected before a response starts.
    "client_disconnected": ("api_error", 500),
    "stream_duration_exceeded": ("api_error", 500),
}

# These rate-limit/server codes are not worth retrying (docs/reference/auriko-contract.md#retries).
NOT_RETRYABLE = frozenset(
    {
        "budget_exhausted",
        "budget_exceeded",
        "insufficient_quota",
        "internal_error",
        "duplicate_resource",
        "field_immutable",
        "method_not_allowed",
        "operation_not_allowed",
        "state_precondition_failed",
    }
)
DOC_URL = "https://docs.auriko.ai/errors/"


class SimError(Exception):
    """An error response to send: ``status``, ``body`` (the contract's error envelope) and ``headers``."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        provider: str | None = None,
        suggestion: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        error_type, registry_status = REGISTRY.get(code, ("api_error", 500))
        self.code, self.type, self.provider = code, error_type, provider
        self.status = status or registry_status
        self.error: dict = {
            "message": message,
            "type": error_type,
            "code": code,
            "param": param,
            "doc_url": DOC_URL + code,
        }
        if provider:
            self.error["provider"] = provider
        if suggestion:
            self.error["suggestion"] = suggestion
        self.headers = dict(headers or {})

    @property
    def retryable(self) -> bool:
        """Returns whether a client should retry (the ``X-Error-Retryable`` value)."""
        return self.type in ("rate_limit_error", "api_error") and self.code not in NOT_RETRYABLE

    def response_headers(self, openai_mode: bool) -> dict[str, str]:
        """Returns the error-specific headers: ``X-Error-*`` (Auriko only) and ``Retry-After`` on 429/503."""
        headers = {}
        if not openai_mode:
            headers = {"X-Error-Type": self.type, "X-Error-Retryable": "true" if self.retryable else "false"}
            if self.provider:
                headers["X-Error-Provider"] = self.provider
        if self.status in (429, 503):
            headers["Retry-After"] = "1"
        headers.update(self.headers)
        return headers

    def body(self, openai_mode: bool) -> dict:
        """Returns the error envelope; OpenAI's own envelope has only message, type, param and code."""
        if openai_mode:
            return {"error": {key: self.error[key] for key in ("message", "type", "param", "code")}}
        return {"error": dict(self.error)}

    def stream_event(self) -> dict:
        """Returns the flat Responses-API stream error event (without its sequence number)."""
        event = {
            "type": "error",
            "code": self.code,
            "message": self.error["message"],
            "param": self.error["param"],
            "doc_url": self.error["doc_url"],
        }
        for key in ("provider", "suggestion"):
            if key in self.error:
                event[key] = self.error[key]
        return event
