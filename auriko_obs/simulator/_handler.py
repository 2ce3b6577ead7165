"""The HTTP layer: parse and authenticate requests, run inference calls through the pipeline, write JSON and SSE."""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import socket
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import _bodies as bodies
from ._accounts import WORKSPACE_ID, Accounts, hash_key, key_id, prompt_block_hashes
from ._call import Answer, Call
from ._catalog import BY_ID, MODELS, directory_json, listed_models, model_json, providers_json, registry_model_json
from ._config import DEFAULT_RPM_LIMIT, public_view
from ._content import compose_answer, content_seed, read_prompt
from ._errors import SimError
from ._routing import route

if TYPE_CHECKING:
    from ._simulator import _Server

INFERENCE_PATHS = {
    "/v1/chat/completions": "chat.completions",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
}
MAX_BODY_BYTES = 32 * 1024 * 1024
MID_STREAM_EVENTS_BEFORE_ERROR = {"chat.completions": 3, "responses": 5}
FAILURES_5XX = ("internal_error", "upstream_error", "no_provider_available")
_INJECTED_MESSAGES = {
    "rate_limit_exceeded": "Rate limit reached for requests.",
    "upstream_error": "The upstream provider returned an error.",
    "internal_error": "An internal error occurred.",
    "no_provider_available": "No provider is currently available for this model.",
    "invalid_api_key": "Invalid API key provided.",
    "context_length_exceeded": "The prompt is longer than the model's context window.",
    "insufficient_quota": "The workspace credit balance is used up.",
}


def new_request_id() -> str:
    """Returns a fresh request id (random, so ids never collide across simulators with the same seed)."""
    return "req_" + secrets.token_hex(12)


def ledger_entry(call: Call) -> dict:
    """Returns the billing-ledger entry of an inference request (tokens and cost are 0 unless it was billed)."""
    metadata, billed = call.request_metadata, call.billed
    tags = metadata.get("tags")
    return {
        "request_id": call.request_id,
        "time": call.started_s,
        "endpoint": call.endpoint,
        "key_hash": call.key_hash,
        "model": call.requested_model,
        "model_canonical": call.routed_model.id if call.model else None,
        "provider": call.provider.name if call.provider else None,
        "streaming": call.streaming,
        "http_status": call.http_status,
        "error_code": call.error_code,
        "input_tokens": call.input_tokens if billed else 0,
        "output_tokens": call.output_tokens if billed else 0,
        "cached_tokens": call.cached_tokens if billed else 0,
        "cache_write_tokens": call.cache_write_tokens if billed else 0,
        "reasoning_tokens": call.reasoning_tokens if billed else 0,
        "cost_usd": call.cost_usd if billed else 0.0,
        "cache_savings_usd": call.cache_savings_usd if billed else 0.0,
        "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        "user_id": metadata.get("user_id"),
        "trace_id": metadata.get("trace_id"),
    }


class Handler(BaseHTTPRequestHandler):
    """One connection's requests (keep-alive). ``accounts`` is set on a per-simulator subclass."""

    protocol_version = "HTTP/1.1"
    server_version = "auriko-simulator/1"
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    accounts: Accounts
    server: _Server
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's own, undeclared in its stubs

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm and delayed ACKs hold the body behind the headers for ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests run thousands of requests
        return

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):  # clients may drop keep-alive connections any time
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------ plumbing

    def _dispatch(self, method: str) -> None:
        request_id = new_request_id()
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        try:
            raw = self._read_raw()
        except SimError as err:
            self.close_connection = True  # the unread body would corrupt the next request
            return self._send_error(err, {"x-request-id": request_id})
        if path.startswith("/_sim/"):
            return self._control(method, path, raw, request_id)
        if path in INFERENCE_PATHS:
            if method != "POST":
                return self._send_error(
                    SimError("method_not_allowed", f"{method} is not allowed on {path}; use POST."),
                    {"x-request-id": request_id},
                )
            return self._inference(INFERENCE_PATHS[path], raw, request_id)
        return self._lookup(method, url.path, url.query, request_id)

    def _read_raw(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise SimError("invalid_request", "Content-Length is not a number.") from None
        if length > MAX_BODY_BYTES:
            raise SimError("payload_too_large", f"The request body exceeds {MAX_BODY_BYTES} bytes.")
        return self.rfile.read(length) if length > 0 else b""

    @staticmethod
    def _parse_json(raw: bytes) -> dict:
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            raise SimError("invalid_request", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise SimError("invalid_request", "The request body must be a JSON object.")
        return body

    def _api_key(self) -> str:
        """Returns the bearer token; raises 401 invalid_api_key when it is missing or lacks the key prefix."""
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise SimError("invalid_api_key", "No API key provided; send Authorization: Bearer <key>.")
        if not token.startswith(self.accounts.config.api_key_prefix):
            raise SimError("invalid_api_key", "Invalid API key provided.")
        return token

    def _send_json(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self._write_head_and(data)

    def _write_head_and(self, data: bytes) -> None:
        """Ends the headers and sends them with the first body bytes in one write.

        Two writes (end_headers(), then the body) cost twice the syscalls, and an in-process client that wakes
        on the headers holds the GIL while the body waits.
        """
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()

    def _send_error(self, err: SimError, headers: dict[str, str]) -> None:
        openai_mode = self.accounts.config.openai_mode
        self._send_json(err.status, err.body(openai_mode), {**headers, **err.response_headers(openai_mode)})

    def _common_headers(self, request_id: str, key_hash: str | None, provider: str | None = None) -> dict[str, str]:
        """Returns the headers every /v1 response carries: request id, rate limits and (Auriko) money."""
        config = self.accounts.config
        now = config.clock()
        headers = {"x-request-id": request_id, **self.accounts.rate_headers(key_hash, config, now)}
        if not config.openai_mode:
            headers.update(self.accounts.money_headers(config, key_hash, provider, now))
        return headers

    def _sleep_latency(self, latency_ms: float) -> None:
        if latency_ms > 0:
            time.sleep(latency_ms / 1000)

    # ------------------------------------------------------------ inference

    def _inference(self, endpoint: str, raw: bytes, request_id: str) -> None:
        config = self.accounts.config
        call = Call(endpoint, request_id, config.clock(), config)
        try:
            token = self._api_key_for(call)
            call.key_hash = hash_key(token)
            call.body = self._parse_json(raw)
            call.streaming = endpoint != "embeddings" and bool(call.body.get("stream"))
            call.content_seed = content_seed(call)
            self.accounts.admit(call)
            mid_stream_code = self._take_injection(call)
            self._prepare(call)
        except SimError as err:
            return self._fail(call, err)
        self._serve(call, mid_stream_code)

    def _api_key_for(self, call: Call) -> str:
        try:
            return self._api_key()
        except SimError:
            _scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            call.key_hash = hash_key(token.strip()) if token.strip() else None  # a hash, never the key
            raise

    def _take_injection(self, call: Call) -> str | None:
        """Returns an injected mid-stream error code; raises an injected error that applies right away."""
        injected = self.accounts.pop_injection()
        if injected is None:
            return None
        code, mid_stream = injected
        if mid_stream and call.streaming:
            return code
        with contextlib.suppress(SimError):  # routing first, so an upstream error can name the provider
            route(call)
        raise self._injected_error(call, code)

    def _injected_error(self, call: Call, code: str) -> SimError:
        if code in ("budget_exhausted", "budget_exceeded"):
            return self.accounts.budget_error_for_injection(call)
        drift_status = 402 if code == "insufficient_quota" and call.config.drift else None
        headers = {"X-Rate-Limit-Source": "auriko"} if code == "rate_limit_exceeded" else {}
        upstream = code in ("upstream_error", "upstream_timeout", "model_unavailable")
        provider = (call.provider.name if call.provider else "openai") if upstream else None
        param = (
            ("messages" if call.endpoint == "chat.completions" else "input")
            if code == "context_length_exceeded"
            else None
        )
        return SimError(
            code,
            _INJECTED_MESSAGES.get(code, f"Simulated {code}."),
            param=param,
            provider=provider,
            status=drift_status,
            headers=headers,
        )

    def _prepare(self, call: Call) -> None:
        """Routes, counts and answers a request, raising for every reason it cannot be served."""
        route(call)
        read_prompt(call)
        call.answer = compose_answer(call) if call.endpoint != "embeddings" else Answer(None, [], "stop", 0, 0)
        model = call.routed_model
        if call.input_tokens > model.context_window:
            raise SimError(
                "context_length_exceeded",
                f"The prompt has {call.input_tokens} tokens; {model.id} accepts {model.context_window}.",
                param="messages" if call.endpoint == "chat.completions" else "input",
            )
        if not call.config.openai_mode:
            self.accounts.check_spend(call)
        self._maybe_fail_5xx(call)

    def _maybe_fail_5xx(self, call: Call) -> None:
        """Raises a seeded 500/502/503; the draw depends on the request content and how often it was seen."""
        rate = call.config.error_rate_5xx
        if rate <= 0:
            return
        seen = self.accounts.occurrence(call.content_seed)
        rng = random.Random(f"{call.config.seed}|5xx|{call.content_seed}|{seen}")
        if rng.random() >= rate:
            return
        code = rng.choice(FAILURES_5XX)
        provider = call.routed_provider.name if code == "upstream_error" else None
        raise SimError(code, _INJECTED_MESSAGES[code], provider=provider)

    def _fail(self, call: Call, err: SimError) -> None:
        call.http_status, call.error_code = err.status, err.code
        self.accounts.record(ledger_entry(call))
        headers = self._common_headers(call.request_id, call.key_hash, call.provider.name if call.provider else None)
        self._sleep_latency(call.config.latency_ms)
        self._send_error(err, headers)

    def _serve(self, call: Call, mid_stream_code: str | None) -> None:
        if mid_stream_code is None:
            hashes = prompt_block_hashes(call.prompt_text) if call.endpoint != "embeddings" else []
            self.accounts.settle(call, hashes)
        else:
            call.error_code = mid_stream_code  # served with 200, fails mid-stream, never billed
        self.accounts.record(ledger_entry(call))
        headers = self._common_headers(call.request_id, call.key_hash, call.routed_provider.name)
        self._sleep_latency(call.config.latency_ms)
        if call.streaming:
            return self._stream(call, headers, mid_stream_code)
        builder = {
            "chat.completions": bodies.chat_completion,
            "responses": bodies.response_body,
            "embeddings": bodies.embeddings_body,
        }[call.endpoint]
        self._send_json(200, builder(call), headers)

    # ------------------------------------------------------------ streaming

    def _sse_events(self, call: Call, mid_stream_code: str | None) -> list[bytes]:
        """Returns the stream's SSE events; a mid-stream error replaces the tail after a few events."""
        if call.endpoint == "chat.completions":
            events = [_sse(chunk) for chunk in bodies.chat_chunks(call)]
        else:
            events = [_sse(event, event["type"]) for event in bodies.response_events(call)]
        if mid_stream_code is not None:
            keep = min(MID_STREAM_EVENTS_BEFORE_ERROR[call.endpoint], len(events) - 1)
            err = self._injected_error(call, mid_stream_code)
            if call.endpoint == "chat.completions":
                events = [*events[:keep], _sse(err.body(call.config.openai_mode))]
            else:
                events = [*events[:keep], _sse({**err.stream_event(), "sequence_number": keep}, "error")]
        if call.endpoint == "chat.completions":
            events.append(b"data: [DONE]\n\n")
        return events

    def _stream(self, call: Call, headers: dict[str, str], mid_stream_code: str | None) -> None:
        """Writes an SSE stream with chunked transfer encoding, so the connection stays reusable."""
        framed = [b"%x\r\n%s\r\n" % (len(event), event) for event in self._sse_events(call, mid_stream_code)]
        # The terminating chunk travels with the last event, so a client that stops reading at [DONE] has
        # still seen the end of the body and can reuse the connection.
        framed[-1] += b"0\r\n\r\n"
        delay_s = call.config.chunk_delay_ms / 1000
        if not delay_s:  # nothing to pace: one write, so an in-process client never waits on the GIL between events
            framed = [b"".join(framed)]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        try:
            self._write_head_and(framed[0])
            for frame in framed[1:]:
                time.sleep(delay_s)
                self.wfile.write(frame)
        except (BrokenPipeError, ConnectionResetError):  # the client went away mid-stream
            self.close_connection = True

    # ------------------------------------------------------------ lookups

    def _lookup(self, method: str, path: str, query: str, request_id: str) -> None:
        try:
            key_hash = hash_key(self._api_key())
            if method != "GET":
                raise SimError("resource_not_found", f"No route for {method} {path}.")
            payload = self._lookup_payload(path, query, key_hash)
        except SimError as err:
            self._sleep_latency(self.accounts.config.latency_ms)
            return self._send_error(err, self._common_headers(request_id, None))
        self._sleep_latency(self.accounts.config.latency_ms)
        self._send_json(200, payload, self._common_headers(request_id, key_hash))

    def _lookup_payload(self, path: str, query: str, key_hash: str) -> Any:
        routes: dict[str, Callable[[], Any]] = {
            "/v1/models": lambda: self._models(query),
            "/v1/me": lambda: self._me(key_hash),
            "/v1/registry/providers": lambda: {"providers": providers_json(), "count": len(providers_json())},
            "/v1/registry/models": lambda: {
                "models": [registry_model_json(m) for m in MODELS],
                "count": len(MODELS),
                "playground_defaults": ["gpt-4o-mini"],
            },
            "/v1/directory/models": lambda: {
                "models": {m.id: directory_json(m) for m in MODELS},
                "generated_at": "2025-01-01T00:00:00Z",
            },
            f"/v1/workspaces/{WORKSPACE_ID}/billing/balance": self._balance,
            f"/v1/workspaces/{WORKSPACE_ID}/budgets": lambda: self._budgets(key_hash),
        }
        if path in routes:
            return routes[path]()
        if path.startswith("/v1/models/"):
            model = BY_ID.get(unquote(path[len("/v1/models/") :]))
            if model is None:
                raise SimError("model_not_found", "No such model.", param="model")
            return model_json(model)
        raise SimError("resource_not_found", f"No resource at {path}.")

    def _models(self, query: str) -> dict:
        endpoints = parse_qs(query).get("endpoint")
        endpoint = endpoints[0] if endpoints else None
        return {
            "object": "list",
            "data": [model_json(m) for m in listed_models(endpoint)],
            "catalog_version": "5e1f0c0a",
            "catalog_age_seconds": 0,
        }

    def _me(self, key_hash: str) -> dict:
        config = self.accounts.config
        token = self._api_key()
        return {
            "credential_type": "api_key",
            "status": "active",
            "profile": "inference",
            "key_id": key_id(key_hash),
            "key_prefix": token[: len(config.api_key_prefix) + 4],
            "key_name": "simulator key",
            "workspace": {"id": WORKSPACE_ID, "name": "Simulator workspace"},
            "scopes": ["inference", "read"],
            "rate_limits": {
                "inference_rpm": self.accounts.rpm_limit(config, key_hash) or DEFAULT_RPM_LIMIT,
                "management_reads_rpm": 600,
                "management_writes_rpm": 60,
            },
            "expires_at": None,
            "created_at": "2025-01-01T00:00:00Z",
        }

    def _balance(self) -> dict:
        balance = self.accounts.balance_usd(self.accounts.config)
        return {
            "workspace_id": WORKSPACE_ID,
            "currency": "USD",
            "balance_usd": round(balance, 12),
            "balance_microdollars": round(balance * 1_000_000),
        }

    def _budgets(self, key_hash: str) -> dict:
        config = self.accounts.config
        return {"data": self.accounts.budget_views(config, key_hash, config.clock())}

    # ------------------------------------------------------------ control

    def _control(self, method: str, path: str, raw: bytes, request_id: str) -> None:
        headers = {"x-request-id": request_id}
        try:
            payload = self._control_payload(method, path, raw)
        except ValueError as exc:
            return self._send_error(SimError("invalid_parameter_value", str(exc)), headers)
        except SimError as err:
            return self._send_error(err, headers)
        self._send_json(200, payload, headers)

    def _control_payload(self, method: str, path: str, raw: bytes) -> Any:
        accounts = self.accounts
        if (method, path) == ("GET", "/_sim/ledger"):
            return accounts.ledger()
        if (method, path) == ("GET", "/_sim/config"):
            return public_view(accounts.config)
        if method == "POST" and path == "/_sim/config":
            knobs = self._parse_json(raw) if raw.strip() else {}
            if "clock" in knobs:
                raise ValueError("the clock can only be set in-process")
            accounts.configure(knobs)
            return {"ok": True, "config": public_view(accounts.config)}
        if method == "POST" and path == "/_sim/inject":
            spec = self._parse_json(raw)
            accounts.inject(str(spec.get("code")), int(spec.get("count", 1)), bool(spec.get("mid_stream", False)))
            return {"ok": True}
        if method == "POST" and path == "/_sim/reset":
            accounts.reset()
            return {"ok": True}
        raise SimError("resource_not_found", f"No control route {method} {path}.")


def _sse(payload: Any, event: str | None = None) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    return (f"event: {event}\ndata: {data}\n\n" if event else f"data: {data}\n\n").encode()
