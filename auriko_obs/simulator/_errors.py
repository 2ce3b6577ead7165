"""Auriko's error registry (SDK 1.2.0): code → (type, HTTP status), and the error envelope."""

from __future__ import annotations

_INVALID = "invalid_request_error"

REGISTRY: dict[str, tuple[str, int]] = {
    "invalid_api_key": ("authentication_error", 401),
    "expired_api_key": ("authentication_error", 401),
    "insufficient_permissions": ("permission_error", 403),
    "feature_disabled": ("permission_error", 403),
    "invalid_request": (_INVALID, 400),
    "missing_required_parameter": (_INVALID, 400),
    "invalid_parameter_value": (_INVALID, 400),
    "payload_too_large": (_INVALID, 413),
    "context_length_exceeded": (_INVALID, 400),
    "content_filtered": (_INVALID, 400),
    "unknown_field": (_INVALID, 400),
    "method_not_allowed": (_INVALID, 405),
    "tools_not_supported": (_INVALID, 400),
    "json_mode_not_supported": (_INVALID, 400),
    "structured_output_not_supported": (_INVALID, 400),
    "cost_constraint_exceeded": (_INVALID, 400),
    "latency_constraint_exceeded": (_INVALID, 400),
    "throughput_constraint_not_met": (_INVALID, 400),
    "provider_not_in_allowlist": (_INVALID, 400),
    "provider_blocked": (_INVALID, 400),
    "no_responses_endpoint": (_INVALID, 400),
    "model_not_found": ("not_found_error", 404),
    "resource_not_found": ("not_found_error", 404),
    "rate_limit_exceeded": ("rate_limit_error", 429),
    "budget_exhausted": ("rate_limit_error", 429),
    "insufficient_quota": ("rate_limit_error", 429),
    "budget_exceeded": ("rate_limit_error", 402),  # [DRIFT] older docs
    "no_provider_available": ("api_error", 503),
    "upstream_error": ("api_error", 502),
    "upstream_timeout": ("api_error", 504),
    "model_unavailable": ("api_error", 503),
    "internal_error": ("api_error", 500),
    "service_unavailable": ("api_error", 503),
}

_NOT_RETRYABLE = {"budget_exhausted", "insufficient_quota", "internal_error", "budget_exceeded"}


class SimError(Exception):
    """An error response: status, envelope body and headers."""

    def __init__(self, code: str, message: str, *, param: str | None = None, provider: str | None = None,
                 suggestion: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        error_type, status = REGISTRY.get(code, ("api_error", 500))
        self.code = code
        self.status = status
        self.body = {"error": {
            "message": message, "type": error_type, "code": code, "param": param,
            "doc_url": f"https://docs.auriko.ai/errors/{code}",
        }}
        if provider:
            self.body["error"]["provider"] = provider
        if suggestion:
            self.body["error"]["suggestion"] = suggestion
        retryable = error_type in ("rate_limit_error", "api_error") and code not in _NOT_RETRYABLE
        self.headers = {"X-Error-Type": error_type, "X-Error-Retryable": "true" if retryable else "false"}
        if provider:
            self.headers["X-Error-Provider"] = provider
        if status in (429, 503) and code not in ("budget_exhausted", "budget_exceeded", "insufficient_quota"):
            self.headers.setdefault("Retry-After", "1")
        self.headers.update(headers or {})
