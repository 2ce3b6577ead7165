"""A local Auriko-compatible server: routing, caching, budgets, rate limits, headers and a billing ledger.

Where the contract (``shared/auriko-api.md``) is silent, these choices hold:
- Tokens: ceil(characters / 4) per message text, plus 4 per message. Output length is derived from a
  hash of the request and the seed (so concurrent order does not change it), capped by max_tokens.
- Tools: when ``tools`` are given and ``tool_choice`` is not "none", the answer is a tool call if
  ``tool_choice`` is "required" or names a function, or the last user message contains "tool" or the
  name of a tool.
- Budget rejections use scope and period headers only; the request that crosses a limit is served.
- Cache: 128-token blocks per (API key, provider); a shared prefix of ≥ 1,024 tokens is read from the
  cache; a first ≥ 1,024-token prompt reports ``cache_write_tokens``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import signal
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields as dc_fields
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from ._catalog import BY_ID, MODELS, Model, Provider, model_json
from ._errors import SimError

STRATEGY_ALIASES = {"cheapest": "cost", "speed": "ttft", "throughput": "tps", "floor": "cost", "nitro": "tps",
                    "fast": "ttft"}
STRATEGIES = {"cost", "cost-focus", "ttft", "ttft-focus", "tps", "tps-focus", "balanced"}
CACHE_BLOCK = 128
CACHE_MIN = 1024
WORDS = ("the", "router", "picked", "a", "provider", "for", "this", "request", "and", "cached", "prompt", "tokens",
         "so", "costs", "stay", "low", "while", "latency", "remains", "steady", "books", "sold", "well")


@dataclass
class SimulatorConfig:
    """Knobs of the simulator; ``SimulatorConfig()`` behaves like a healthy Auriko."""

    seed: int = 0
    drift: bool = False
    openai_mode: bool = False
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    error_rate_5xx: float = 0.0
    metadata_fault: str | None = None
    rpm_limit: int | None = None
    budgets: list = field(default_factory=list)
    credits_usd: float = 100.0
    clock: Callable[[], float] = time.time
    api_key_prefix: str = "ak_"


def _usd(value: float) -> str:
    """Returns a USD decimal string, as Auriko's budget headers carry them (no exponent)."""
    return f"{value:.12f}".rstrip("0").rstrip(".") or "0"


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _period_start(period: str, now: float) -> datetime:
    moment = datetime.fromtimestamp(now, timezone.utc)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def key_id(key_hash: str) -> str:
    """Returns the API key id the simulator reports for a key (``/v1/me`` ``key_id``, budget ``scope_id``)."""
    return f"key_{key_hash}"


def _covers(budget: dict, call: "_Call") -> bool:
    """Returns whether a budget's scope includes this call (api_key: its key; byok_provider: its provider)."""
    scope = budget.get("scope_type", "workspace")
    if scope == "api_key" and budget.get("scope_id"):
        return budget["scope_id"] == key_id(call.key_hash)
    if scope == "byok_provider":
        return call.provider is not None and budget.get("scope_provider") in (None, call.provider.name)
    return True


def _sample(schema: Any, depth: int = 0) -> Any:
    """Returns a value valid against a (simple) JSON schema."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _sample(schema[key][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: _sample(sub, depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [_sample(schema.get("items") or {"type": "string"}, depth + 1)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "sample"


class _State:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.ledger: list[dict] = []
        self.spend: dict[tuple[int, str], float] = {}
        self.spent_total = 0.0
        self.cache: dict[tuple[str, str], set[str]] = {}
        self.rpm: dict[str, deque] = {}
        self.injections: list[tuple[str, bool]] = []
        self.counter = 0


@dataclass
class _Call:
    """One inference request being served."""

    endpoint: str
    body: dict
    key_hash: str
    request_id: str
    started: float
    model: Model | None = None
    requested_model: str | None = None
    provider: Provider | None = None
    strategy: str = "cost-focus"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    savings_usd: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    warnings: list = field(default_factory=list)


class Simulator:
    """A real HTTP server on 127.0.0.1 speaking the Auriko contract; use as a context manager."""

    def __init__(self, config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State(config or SimulatorConfig())
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "Simulator":
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._server = _Server((self._host, self._port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="auriko-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "simulator not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    # ------------------------------------------------------------ control

    def ledger(self) -> list[dict]:
        """Returns a copy of the billing ledger: one entry per inference request."""
        with self._state.lock:
            return [dict(e) for e in self._state.ledger]

    def configure(self, **knobs: Any) -> None:
        """Changes knobs of the running simulator (see SimulatorConfig)."""
        names = {f.name for f in dc_fields(SimulatorConfig)}
        unknown = set(knobs) - names
        if unknown:
            raise ValueError(f"unknown simulator knobs: {sorted(unknown)}")
        with self._state.lock:
            for name, value in knobs.items():
                setattr(self._state.config, name, value)

    def inject(self, code: str, count: int = 1, *, mid_stream: bool = False) -> None:
        """Makes the next ``count`` inference requests fail with this registry code."""
        with self._state.lock:
            self._state.injections.extend([(code, mid_stream)] * count)

    def reset(self) -> None:
        """Clears the ledger, spend, cache, rate windows and injections (the config stays)."""
        with self._state.lock:
            self._state.reset()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


def serve(host: str = "127.0.0.1", port: int = 8787, config: SimulatorConfig | None = None,
          ready: Callable[[str], None] | None = None) -> None:
    """Serves until KeyboardInterrupt or SIGTERM (blocking)."""
    sim = Simulator(config, host=host, port=port).start()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if ready:
            ready(f"Auriko simulator listening on {sim.base_url} (Ctrl-C to stop)")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sim.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # ------------------------------------------------------------ plumbing

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise SimError("invalid_request", "The request body is not valid JSON.") from None

    def _key_hash(self) -> str:
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token or not token.startswith(self.state.config.api_key_prefix):
            raise SimError("invalid_api_key", "Invalid API key provided.")
        return hashlib.sha256(token.encode()).hexdigest()[:8]

    def _common_headers(self, request_id: str) -> dict[str, str]:
        state = self.state
        headers = {"x-request-id": request_id}
        if state.config.openai_mode:
            return headers
        headers["x-credits-balance-microdollars"] = str(int(round((state.config.credits_usd - state.spent_total) * 1e6)))
        for index, budget in enumerate(state.config.budgets):
            period = budget.get("period", "daily")
            spend = state.spend.get((index, _period_start(period, state.config.clock()).isoformat()), 0.0)
            name = period.capitalize()
            headers[f"X-Budget-{name}-Limit"] = _usd(float(budget["limit_usd"]))
            headers[f"X-Budget-{name}-Spend"] = _usd(spend)
        return headers

    def _next_request_id(self) -> str:
        with self.state.lock:
            self.state.counter += 1
            n = self.state.counter
        digest = hashlib.sha256(f"{self.state.config.seed}:{n}:{time.time_ns()}".encode()).hexdigest()
        return "req_" + digest[:24]

    # ------------------------------------------------------------ routes

    def do_GET(self) -> None:  # noqa: N802
        request_id = self._next_request_id()
        try:
            path = urlsplit(self.path)
            if path.path == "/_sim/ledger":
                with self.state.lock:
                    return self._send_json(200, list(self.state.ledger))
            self._key_hash()
            if path.path == "/v1/models":
                endpoint = parse_qs(path.query).get("endpoint", ["chat_completions"])[0]
                models = [model_json(m) for m in MODELS if endpoint != "responses" or m.responses]
                return self._send_json(200, {"object": "list", "data": models, "catalog_version": "sim1",
                                             "catalog_age_seconds": 0}, self._common_headers(request_id))
            if path.path.startswith("/v1/models/"):
                model = BY_ID.get(path.path[len("/v1/models/"):])
                if model is None:
                    raise SimError("model_not_found", "No such model.", param="model")
                return self._send_json(200, model_json(model), self._common_headers(request_id))
            if path.path == "/v1/me":
                return self._send_json(200, self._me(), self._common_headers(request_id))
            if path.path.startswith("/v1/workspaces/") and path.path.endswith("/billing/balance"):
                balance = self.state.config.credits_usd - self.state.spent_total
                return self._send_json(200, {"balance_usd": balance, "balance_microdollars": int(balance * 1e6)},
                                       self._common_headers(request_id))
            raise SimError("resource_not_found", f"No route for GET {path.path}.")
        except SimError as err:
            self._send_error(err, request_id)

    def _me(self) -> dict:
        return {"credential_type": "api_key", "status": "active", "profile": "default",
                "key_id": key_id(self._key_hash()),
                "key_prefix": "ak_sim", "key_name": "simulator", "workspace": {"id": "ws_sim", "name": "Simulator"},
                "scopes": ["inference"], "rate_limits": {"inference_rpm": self.state.config.rpm_limit or 10000,
                                                          "management_reads_rpm": 600, "management_writes_rpm": 60},
                "expires_at": None, "created_at": "2026-01-01T00:00:00Z"}

    def do_POST(self) -> None:  # noqa: N802
        request_id = self._next_request_id()
        path = urlsplit(self.path).path
        try:
            body = self._read_body()
            if path.startswith("/_sim/"):
                return self._control(path, body)
            endpoint = {"/v1/chat/completions": "chat.completions", "/v1/responses": "responses",
                        "/v1/embeddings": "embeddings"}.get(path)
            if endpoint is None:
                raise SimError("resource_not_found", f"No route for POST {path}.")
            if not isinstance(body, dict):
                raise SimError("invalid_request", "The request body must be a JSON object.")
            key_hash = self._key_hash()
            call = _Call(endpoint, body, key_hash, request_id, self.state.config.clock())
            self._serve_inference(call)
        except SimError as err:
            self._send_error(err, request_id)

    def _control(self, path: str, body: Any) -> None:
        state = self.state
        if path == "/_sim/config":
            with state.lock:
                for name, value in (body or {}).items():
                    if name in {f.name for f in dc_fields(SimulatorConfig)} and name != "clock":
                        setattr(state.config, name, value)
        elif path == "/_sim/inject":
            with state.lock:
                state.injections.extend([(body["code"], bool(body.get("mid_stream")))] * int(body.get("count", 1)))
        elif path == "/_sim/reset":
            with state.lock:
                state.reset()
        else:
            raise SimError("resource_not_found", f"No control route {path}.")
        self._send_json(200, {"ok": True})

    def _send_error(self, err: SimError, request_id: str, call: _Call | None = None) -> None:
        headers = {**self._common_headers(request_id), **err.headers}
        if call is not None:
            self._record(call, err.status, err.code)
        self._send_json(err.status, err.body, headers)

    # ------------------------------------------------------------ inference

    def _serve_inference(self, call: _Call) -> None:
        state, config = self.state, self.state.config
        try:
            self._admit(call)
            self._route(call)
            self._check_budgets(call)
        except SimError as err:
            return self._send_error(err, call.request_id, call)
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000)
        injected = None
        with state.lock:
            if state.injections:
                injected = state.injections.pop(0)
        if injected is not None and not injected[1]:
            return self._send_error(self._injected_error(injected[0], call), call.request_id, call)
        if config.error_rate_5xx and self._rng_for(call, "5xx").random() < config.error_rate_5xx:
            code = self._rng_for(call, "5xxcode").choice(["internal_error", "upstream_error", "no_provider_available"])
            return self._send_error(self._injected_error(code, call), call.request_id, call)
        self._measure(call)
        self._bill(call)
        headers = {**self._common_headers(call.request_id), **self._rate_headers(call)}
        mid_stream = injected[0] if injected is not None else None
        if call.body.get("stream"):
            self._record(call, 200, mid_stream)
            return self._send_stream(call, headers, mid_stream)
        self._record(call, 200, None)
        builder = {"chat.completions": self._chat_body, "responses": self._responses_body,
                   "embeddings": self._embeddings_body}[call.endpoint]
        self._send_json(200, builder(call), headers)

    def _injected_error(self, code: str, call: _Call) -> SimError:
        headers: dict[str, str] = {}
        if code in ("budget_exhausted", "budget_exceeded"):
            code = "budget_exceeded" if self.state.config.drift else "budget_exhausted"
            headers = {"X-Budget-Exceeded": "true", "X-Budget-Exceeded-Scope": "workspace",
                       "X-Budget-Exceeded-Period": "daily"}
        if code == "rate_limit_exceeded":
            headers = {"Retry-After": "1", "X-Rate-Limit-Source": "auriko"}
        provider = call.provider.name if call.provider and code.startswith("upstream") else None
        return SimError(code, f"Simulated {code}.", provider=provider, headers=headers)

    def _rng_for(self, call: _Call, salt: str) -> random.Random:
        digest = hashlib.sha256(f"{self.state.config.seed}:{salt}:{call.request_id}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def _admit(self, call: _Call) -> None:
        """Raises when this API key has used up its requests-per-minute limit."""
        state, config = self.state, self.state.config
        now = config.clock()
        with state.lock:
            window = state.rpm.setdefault(call.key_hash, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            limit = config.rpm_limit
            if limit is not None and len(window) >= limit:
                retry = max(1, math.ceil(window[0] + 60 - now))
                raise SimError("rate_limit_exceeded", f"Rate limit of {limit} requests per minute reached.",
                               headers={"Retry-After": str(retry), "X-Rate-Limit-Source": "auriko",
                                        **self._rate_headers_locked(call.key_hash, now)})
            window.append(now)

    def _check_budgets(self, call: _Call) -> None:
        """Raises when an enforced budget that covers this call is spent, or the credits are."""
        state, config = self.state, self.state.config
        if config.openai_mode:
            return
        now = config.clock()
        with state.lock:
            for index, budget in enumerate(config.budgets):
                if not budget.get("enforce", True) or not _covers(budget, call):
                    continue
                period = budget.get("period", "daily")
                spend = state.spend.get((index, _period_start(period, now).isoformat()), 0.0)
                if spend >= float(budget["limit_usd"]):
                    code = "budget_exceeded" if config.drift else "budget_exhausted"
                    raise SimError(code, f"The {period} {budget.get('scope_type', 'workspace')} budget is exhausted.",
                                   headers={"X-Budget-Exceeded": "true",
                                            "X-Budget-Exceeded-Scope": budget.get("scope_type", "workspace"),
                                            "X-Budget-Exceeded-Period": period})
            if config.credits_usd - state.spent_total <= 0:
                raise SimError("insufficient_quota", "Credit balance exhausted.")

    def _rate_headers(self, call: _Call) -> dict[str, str]:
        with self.state.lock:
            return self._rate_headers_locked(call.key_hash, self.state.config.clock())

    def _rate_headers_locked(self, key_hash: str, now: float) -> dict[str, str]:
        limit = self.state.config.rpm_limit or 10000
        window = self.state.rpm.get(key_hash) or deque()
        reset = datetime.fromtimestamp((window[0] if window else now) + 60, timezone.utc)
        return {"x-ratelimit-limit-requests": str(limit),
                "x-ratelimit-remaining-requests": str(max(0, limit - len(window))),
                "x-ratelimit-reset-requests": reset.isoformat().replace("+00:00", "Z")}

    # ------------------------------------------------------------ routing

    def _route(self, call: _Call) -> None:
        body = call.body
        if call.endpoint == "responses" and body.get("store") is True:
            raise SimError("invalid_parameter_value", "store: true is not supported; omit it or send false.",
                           param="store")
        extra_gateway = body.get("gateway") if isinstance(body.get("gateway"), dict) else {}
        routing = extra_gateway.get("routing") or body.get("routing") or {}  # [DRIFT] top-level `routing`
        models = extra_gateway.get("models")
        model_name = body.get("model")
        if model_name and models:
            raise SimError("invalid_parameter_value", "Give either model or gateway.models, not both.",
                           param="gateway.models")
        if not model_name and not models:
            raise SimError("missing_required_parameter", "model is required.", param="model")
        candidates = [model_name] if model_name else list(models)
        strategy = routing.get("optimize") if isinstance(routing, dict) else None
        resolved: list[Model] = []
        for name in candidates:
            if isinstance(name, str) and name.count(":") == 1 and not name.startswith("ft:"):
                name, suffix = name.split(":")
                strategy = strategy or STRATEGY_ALIASES.get(suffix, suffix)
            model = BY_ID.get(name)
            if model is None:
                raise SimError("model_not_found", f"The model {name!r} does not exist.", param="model")
            resolved.append(model)
        call.requested_model = model_name or candidates[0]
        strategy = STRATEGY_ALIASES.get(strategy, strategy) or "cost-focus"
        if isinstance(routing, dict) and routing.get("weights"):
            strategy = "custom"
        elif strategy not in STRATEGIES:
            raise SimError("invalid_parameter_value", f"Unknown routing strategy {strategy!r}.",
                           param="gateway.routing.optimize")
        call.strategy = strategy
        pool = [(m, p) for m in resolved for p in m.providers]
        if call.endpoint == "responses" and not any(m.responses for m in resolved):
            raise SimError("no_responses_endpoint", "This model has no Responses endpoint.", param="model")
        pool = self._filter(call, pool, routing if isinstance(routing, dict) else {})
        mode = routing.get("mode", "pool") if isinstance(routing, dict) else "pool"
        if mode == "fallback" and len(resolved) > 1:
            first = resolved[0]
            pool = [pair for pair in pool if pair[0] is first] or pool
        call.model, call.provider = min(pool, key=lambda pair: self._score(strategy, pair[1], routing, pool))
        prefer = routing.get("prefer") if isinstance(routing, dict) else None
        if prefer:
            preferred = [pair for pair in pool if pair[1].name == prefer]
            if preferred:
                call.model, call.provider = preferred[0]
        self._warnings(call)

    def _filter(self, call: _Call, pool: list, routing: dict) -> list:
        allow, exclude = routing.get("providers"), routing.get("exclude_providers") or []
        if allow:
            pool = [pair for pair in pool if pair[1].name in allow]
            if not pool:
                raise SimError("provider_not_in_allowlist", "No allowed provider serves this model.",
                               param="gateway.routing.providers", suggestion="Widen gateway.routing.providers.")
        pool = [pair for pair in pool if pair[1].name not in exclude]
        if not pool:
            raise SimError("provider_blocked", "Every provider for this model is excluded.",
                           param="gateway.routing.exclude_providers")
        response_format = call.body.get("response_format") or {}
        text_format = ((call.body.get("text") or {}).get("format") or {}) if call.endpoint == "responses" else {}
        wanted = (response_format.get("type") if isinstance(response_format, dict) else None) or text_format.get("type")
        if wanted == "json_schema":
            pool = [pair for pair in pool if pair[1].json_schema]
            if not pool:
                raise SimError("structured_output_not_supported", "No provider supports json_schema for this model.",
                               param="response_format", suggestion="Use a model whose providers support json_schema.")
        elif wanted == "json_object":
            pool = [pair for pair in pool if pair[1].json_object]
            if not pool:
                raise SimError("json_mode_not_supported", "No provider supports json_object for this model.",
                               param="response_format", suggestion="Use response_format json_schema instead.")
        for key, keep, code in (
            ("max_cost_per_1m", lambda p, v: (p.input_price + p.output_price) / 2 <= v, "cost_constraint_exceeded"),
            ("max_ttft_ms", lambda p, v: p.ttft_ms <= v, "latency_constraint_exceeded"),
            ("min_throughput_tps", lambda p, v: p.tps >= v, "throughput_constraint_not_met"),
        ):
            if routing.get(key) is not None:
                pool = [pair for pair in pool if keep(pair[1], float(routing[key]))]
                if not pool:
                    raise SimError(code, f"No provider meets gateway.routing.{key}.", param=f"gateway.routing.{key}",
                                   suggestion=f"Relax gateway.routing.{key}.")
        return pool

    @staticmethod
    def _score(strategy: str, provider: Provider, routing: Any, pool: list) -> float:
        cost = (provider.input_price + provider.output_price) / 2
        if strategy.startswith("cost"):
            return cost
        if strategy.startswith("ttft"):
            return provider.ttft_ms
        if strategy.startswith("tps"):
            return -provider.tps
        max_cost = max((p.input_price + p.output_price) / 2 for _, p in pool) or 1
        max_ttft = max(p.ttft_ms for _, p in pool) or 1
        max_tps = max(p.tps for _, p in pool) or 1
        weights = routing.get("weights") if isinstance(routing, dict) and strategy == "custom" else None
        w = {"cost": 1.0, "ttft": 1.0, "throughput": 1.0, **(weights or {})}
        return (w["cost"] * cost / max_cost + w["ttft"] * provider.ttft_ms / max_ttft
                - w["throughput"] * provider.tps / max_tps)

    def _warnings(self, call: _Call) -> None:
        provider = call.provider
        if provider is None:
            return
        if provider.family != "open" and "top_k" in call.body:
            call.warnings.append({"type": "unsupported_parameter", "code": "top_k_ignored",
                                  "message": f"top_k is not supported by {provider.name} and was dropped."})
        extensions = call.body.get("extensions")
        if isinstance(extensions, dict):
            for name in extensions:
                if name != provider.name:
                    call.warnings.append({"type": "ignored_extension", "code": f"extension_{name}_ignored",
                                          "message": f"extensions.{name} ignored: served by {provider.name}."})

    # ------------------------------------------------------------ tokens, cache, cost

    def _prompt_text(self, call: _Call) -> tuple[str, int]:
        body = call.body
        if call.endpoint == "chat.completions":
            messages = body.get("messages") or []
            if not isinstance(messages, list) or not messages:
                raise SimError("missing_required_parameter", "messages is required.", param="messages")
            text = "".join(_content_text(m.get("content")) + "\n" for m in messages if isinstance(m, dict))
            return text, len(messages)
        if call.endpoint == "responses":
            items = body.get("input")
            instructions = body.get("instructions") or ""
            if isinstance(items, str):
                return instructions + items, 1 + bool(instructions)
            if isinstance(items, list):
                text = instructions + "".join(_content_text(i.get("content")) + "\n"
                                              for i in items if isinstance(i, dict))
                return text, len(items) + bool(instructions)
            raise SimError("missing_required_parameter", "input is required.", param="input")
        items = body.get("input")
        items = [items] if isinstance(items, str) else items
        if not isinstance(items, list) or not items:
            raise SimError("missing_required_parameter", "input is required.", param="input")
        return "".join(str(i) for i in items), 0

    def _measure(self, call: _Call) -> None:
        text, messages = self._prompt_text(call)
        call.input_tokens = _tokens(text) + 4 * messages
        if call.model is not None and call.input_tokens > call.model.context_window:
            raise SimError("context_length_exceeded", "The prompt is longer than the model's context window.",
                           param="messages")
        if call.endpoint == "embeddings":
            return
        digest = hashlib.sha256(f"{self.state.config.seed}:{call.requested_model}:{text}".encode()).digest()
        body = call.body
        wanted = 20 + digest[0] % 60
        cap = next((body[k] for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")
                    if isinstance(body.get(k), int)), None)
        call.output_tokens = min(wanted, cap) if cap else wanted
        call.rng = random.Random(int.from_bytes(digest[8:16], "big"))
        if call.model is not None and (call.model.reasoning or body.get("reasoning_effort") not in (None, "off")):
            call.reasoning_tokens = call.output_tokens // 2
        self._cache(call, text)

    def _cache(self, call: _Call, text: str) -> None:
        if self.state.config.openai_mode:
            return
        block_chars = CACHE_BLOCK * 4
        blocks = len(text) // block_chars
        if blocks * CACHE_BLOCK < CACHE_MIN:
            return
        hashes = [hashlib.sha1(text[: (i + 1) * block_chars].encode()).hexdigest() for i in range(blocks)]
        key = (call.key_hash, call.provider.name)
        with self.state.lock:
            seen = self.state.cache.setdefault(key, set())
            shared = 0
            for i, h in enumerate(hashes):
                if h in seen:
                    shared = i + 1
            new_blocks = [h for h in hashes if h not in seen]
            seen.update(hashes)
        if shared * CACHE_BLOCK >= CACHE_MIN:
            call.cached_tokens = min(shared * CACHE_BLOCK, call.input_tokens)
        elif new_blocks:
            call.cache_write_tokens = blocks * CACHE_BLOCK

    def _bill(self, call: _Call) -> None:
        provider = call.provider
        uncached = call.input_tokens - call.cached_tokens
        call.cost_usd = (uncached * provider.input_price + call.cached_tokens * provider.cache_read_price
                         + call.output_tokens * provider.output_price) / 1e6
        call.savings_usd = call.cached_tokens * (provider.input_price - provider.cache_read_price) / 1e6
        state = self.state
        with state.lock:
            state.spent_total += call.cost_usd
            for index, budget in enumerate(state.config.budgets):
                if not _covers(budget, call):
                    continue
                period_key = (index, _period_start(budget.get("period", "daily"), call.started).isoformat())
                state.spend[period_key] = state.spend.get(period_key, 0.0) + call.cost_usd

    def _record(self, call: _Call, status: int, error_code: str | None) -> None:
        metadata = ((call.body.get("gateway") or {}).get("metadata") if isinstance(call.body.get("gateway"), dict)
                    else None) or call.body.get("auriko_metadata") or {}
        billed = status == 200
        entry = {
            "request_id": call.request_id, "time": call.started, "endpoint": call.endpoint,
            "key_hash": call.key_hash, "model": call.requested_model,
            "model_canonical": call.model.id if call.model else None,
            "provider": call.provider.name if call.provider and billed else None,
            "streaming": bool(call.body.get("stream")), "http_status": status, "error_code": error_code,
            "input_tokens": call.input_tokens if billed else 0, "output_tokens": call.output_tokens if billed else 0,
            "cached_tokens": call.cached_tokens if billed else 0,
            "cache_write_tokens": call.cache_write_tokens if billed else 0,
            "reasoning_tokens": call.reasoning_tokens if billed else 0,
            "cost_usd": call.cost_usd if billed else 0.0, "cache_savings_usd": call.savings_usd if billed else 0.0,
            "tags": list(metadata.get("tags") or []) if isinstance(metadata, dict) else [],
            "user_id": metadata.get("user_id") if isinstance(metadata, dict) else None,
        }
        with self.state.lock:
            self.state.ledger.append(entry)

    # ------------------------------------------------------------ bodies

    def _routing_metadata(self, call: _Call) -> Any:
        config = self.state.config
        if config.openai_mode or config.metadata_fault == "missing":
            return None
        if config.metadata_fault == "malformed":
            return {"provider": 42, "cost": "n/a", "warnings": "x", "ttft_ms": "fast"}
        provider = call.provider
        cost: dict[str, Any] = {"usd": round(call.cost_usd, 10)}
        if call.savings_usd > 0:
            cost["cache_savings_usd"] = round(call.savings_usd, 10)
            cost["cache_savings_percent"] = round(100 * call.savings_usd / (call.cost_usd + call.savings_usd))
        jitter = call.rng.uniform(0.85, 1.15)
        metadata: dict[str, Any] = {
            "provider": provider.name, "provider_model_id": provider.provider_model_id,
            "model_canonical": call.model.id, "routing_strategy": call.strategy, "cost": cost,
            "ttft_ms": round(provider.ttft_ms * jitter, 1),
        }
        if provider.tps:
            metadata["throughput_tps"] = round(provider.tps / jitter, 1)
        if call.warnings:
            metadata["warnings"] = list(call.warnings)
        if config.drift:
            metadata["cost"] = {"billable_cost_usd": cost["usd"], **{k: v for k, v in cost.items() if k != "usd"}}
            metadata.update({"tier": "standard", "total_latency_ms": round(provider.ttft_ms * 2.1, 1),
                             "candidates_total": len(call.model.providers),
                             "candidates_viable": len(call.model.providers), "routing_decision_ms": 1.7})
            if call.warnings:
                metadata["warnings"] = [w["message"] for w in call.warnings]
        return metadata

    def _text(self, call: _Call) -> list[str]:
        words = [call.rng.choice(WORDS) for _ in range(max(1, call.output_tokens - call.reasoning_tokens))]
        return [w + " " for w in words[:-1]] + [words[-1] + "."]

    def _answer(self, call: _Call) -> tuple[str | None, list[dict] | None, str]:
        """Returns (content, tool_calls, finish_reason) for a chat or responses request."""
        body = call.body
        tools = body.get("tools")
        if not tools and body.get("functions"):  # legacy functions → tools (modern fields win)
            tools = [{"type": "function", "function": f} for f in body["functions"]]
            choice = body.get("function_call")
            tool_choice = {"type": "function", "function": choice} if isinstance(choice, dict) else choice
        else:
            tool_choice = body.get("tool_choice")
        if tools and tool_choice != "none":
            tool = self._pick_tool(call, tools, tool_choice)
            if tool is not None:
                function = tool.get("function", tool)
                arguments = json.dumps(_sample(function.get("parameters") or {"type": "object"}) or {})
                call_id = "call_" + hashlib.sha1(f"{call.request_id}".encode()).hexdigest()[:20]
                return None, [{"id": call_id, "type": "function",
                               "function": {"name": function.get("name", "tool"), "arguments": arguments}}], "tool_calls"
        response_format = body.get("response_format") or {}
        text_format = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
        spec = response_format if isinstance(response_format, dict) and response_format.get("type") else (text_format or {})
        if spec.get("type") == "json_schema":
            schema = (spec.get("json_schema") or {}).get("schema") or spec.get("schema") or {}
            return json.dumps(_sample(schema)), None, "stop"
        if spec.get("type") == "json_object":
            return json.dumps({"answer": "".join(self._text(call)).strip()}), None, "stop"
        cap = next((body[k] for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")
                    if isinstance(body.get(k), int)), None)
        finish = "length" if cap is not None and call.output_tokens >= cap else "stop"
        return "".join(self._text(call)), None, finish

    @staticmethod
    def _pick_tool(call: _Call, tools: list, tool_choice: Any) -> dict | None:
        tools = [t for t in tools if isinstance(t, dict)]
        names = [(t.get("function") or t).get("name") for t in tools]
        if isinstance(tool_choice, dict):
            wanted = (tool_choice.get("function") or tool_choice).get("name")
            return next((t for t, n in zip(tools, names) if n == wanted), tools[0] if tools else None)
        if tool_choice == "required":
            return tools[0] if tools else None
        messages = call.body.get("messages") or call.body.get("input") or []
        last = messages if isinstance(messages, str) else next(
            (_content_text(m.get("content")) for m in reversed(messages)
             if isinstance(m, dict) and m.get("role") == "user"), "")
        lowered = last.lower()
        for tool, name in zip(tools, names):
            if name and name.lower() in lowered:
                return tool
        return tools[0] if "tool" in lowered and tools else None

    def _usage(self, call: _Call) -> dict:
        usage: dict[str, Any] = {"prompt_tokens": call.input_tokens, "completion_tokens": call.output_tokens,
                                 "total_tokens": call.input_tokens + call.output_tokens}
        if not self.state.config.openai_mode:
            details = {"cached_tokens": call.cached_tokens}
            if call.cache_write_tokens:
                details["cache_write_tokens"] = call.cache_write_tokens
            usage["prompt_tokens_details"] = details
            usage["completion_tokens_details"] = {"reasoning_tokens": call.reasoning_tokens}
        return usage

    def _chat_body(self, call: _Call) -> dict:
        content, tool_calls, finish = self._answer(call)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        body = {"id": "chatcmpl-" + call.request_id[4:], "object": "chat.completion", "created": int(call.started),
                "model": call.provider.provider_model_id if call.provider else call.requested_model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": self._usage(call)}
        metadata = self._routing_metadata(call)
        if metadata is not None:
            body["routing_metadata"] = metadata
        return body

    def _responses_usage(self, call: _Call) -> dict:
        return {"input_tokens": call.input_tokens, "output_tokens": call.output_tokens,
                "total_tokens": call.input_tokens + call.output_tokens,
                "input_tokens_details": {"cached_tokens": call.cached_tokens},
                "output_tokens_details": {"reasoning_tokens": call.reasoning_tokens}}

    def _response_object(self, call: _Call, status: str, output: list, text: str = "") -> dict:
        body = call.body
        obj = {"id": "resp_" + call.request_id[4:], "object": "response", "created_at": int(call.started),
               "model": call.provider.provider_model_id if call.provider else call.requested_model,
               "status": status, "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
               "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
               "metadata": {}, "temperature": body.get("temperature"), "top_p": body.get("top_p"),
               "max_output_tokens": body.get("max_output_tokens"), "usage": None}
        if status == "completed":
            obj["usage"] = self._responses_usage(call)
            metadata = self._routing_metadata(call)
            if metadata is not None:
                obj["routing_metadata"] = metadata
        return obj

    def _responses_output(self, call: _Call) -> tuple[list, str]:
        content, tool_calls, _ = self._answer(call)
        if tool_calls:
            tc = tool_calls[0]
            return [{"type": "function_call", "id": "fc_" + tc["id"][5:], "call_id": tc["id"],
                     "name": tc["function"]["name"], "arguments": tc["function"]["arguments"],
                     "status": "completed"}], ""
        item_id = "msg_" + call.request_id[4:]
        return [{"type": "message", "id": item_id, "role": "assistant", "status": "completed",
                 "content": [{"type": "output_text", "text": content, "annotations": []}]}], content

    def _responses_body(self, call: _Call) -> dict:
        output, text = self._responses_output(call)
        return self._response_object(call, "completed", output, text)

    def _embeddings_body(self, call: _Call) -> dict:
        items = call.body.get("input")
        items = [items] if isinstance(items, str) else items
        data = []
        for index, item in enumerate(items):
            seed = hashlib.sha256(f"{self.state.config.seed}:{item}".encode()).digest()
            rng = random.Random(int.from_bytes(seed[:8], "big"))
            vector = [rng.uniform(-1, 1) for _ in range(256)]
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            vector = [v / norm for v in vector]
            if call.body.get("encoding_format") == "base64":
                embedding: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        body = {"object": "list", "data": data,
                "model": call.provider.provider_model_id if call.provider else call.requested_model,
                "usage": {"prompt_tokens": call.input_tokens, "total_tokens": call.input_tokens}}
        metadata = self._routing_metadata(call)
        if metadata is not None:
            body["routing_metadata"] = metadata
        return body

    # ------------------------------------------------------------ streaming

    def _send_stream(self, call: _Call, headers: dict[str, str], mid_stream_error: str | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = True
        events = self._chat_events(call) if call.endpoint == "chat.completions" else self._responses_events(call)
        delay = self.state.config.chunk_delay_ms / 1000
        try:
            for index, (event, payload) in enumerate(events):
                if mid_stream_error and index == 3:
                    err = self._injected_error(mid_stream_error, call)
                    if call.endpoint == "responses":
                        payload = {"type": "error", "sequence_number": index, "code": err.code,
                                   "message": err.body["error"]["message"], "param": None}
                        self.wfile.write(f"event: error\ndata: {json.dumps(payload)}\n\n".encode())
                    else:
                        self.wfile.write(f"data: {json.dumps(err.body)}\n\n".encode())
                    break
                prefix = f"event: {event}\n" if event else ""
                self.wfile.write(f"{prefix}data: {json.dumps(payload)}\n\n".encode())
                self.wfile.flush()
                if delay:
                    time.sleep(delay)
            else:
                if call.endpoint == "chat.completions":
                    self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _chat_events(self, call: _Call) -> Iterator[tuple[str | None, dict]]:
        content, tool_calls, finish = self._answer(call)
        base = {"id": "chatcmpl-" + call.request_id[4:], "object": "chat.completion.chunk",
                "created": int(call.started), "model": call.provider.provider_model_id}

        def chunk(delta: dict, finish_reason: str | None = None) -> dict:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                                         "logprobs": None}]}

        yield None, chunk({"role": "assistant", "content": ""})
        if tool_calls:
            tc = tool_calls[0]
            yield None, chunk({"tool_calls": [{"index": 0, "id": tc["id"], "type": "function",
                                               "function": {"name": tc["function"]["name"], "arguments": ""}}]})
            arguments = tc["function"]["arguments"]
            for start in range(0, len(arguments), 16):
                yield None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[start:start + 16]}}]})
        else:
            words = content.split(" ")
            for i in range(0, len(words), 3):
                piece = " ".join(words[i:i + 3]) + (" " if i + 3 < len(words) else "")
                yield None, chunk({"content": piece})
        yield None, chunk({}, finish)
        include_usage = not self.state.config.openai_mode or bool(
            (call.body.get("stream_options") or {}).get("include_usage"))
        if include_usage:
            final = {**base, "choices": [], "usage": self._usage(call)}
            metadata = self._routing_metadata(call)
            if metadata is not None:
                final["routing_metadata"] = metadata
            yield None, final

    def _responses_events(self, call: _Call) -> Iterator[tuple[str | None, dict]]:
        output, text = self._responses_output(call)
        sequence = iter(range(10_000))

        def event(kind: str, **payload: Any) -> tuple[str, dict]:
            return kind, {"type": kind, "sequence_number": next(sequence), **payload}

        yield event("response.created", response=self._response_object(call, "in_progress", []))
        yield event("response.in_progress", response=self._response_object(call, "in_progress", []))
        item = output[0]
        if item["type"] == "message":
            item_id = item["id"]
            yield event("response.output_item.added", output_index=0,
                        item={**item, "status": "in_progress", "content": []})
            yield event("response.content_part.added", item_id=item_id, output_index=0, content_index=0,
                        part={"type": "output_text", "text": "", "annotations": []})
            words = text.split(" ")
            for i in range(0, len(words), 3):
                piece = " ".join(words[i:i + 3]) + (" " if i + 3 < len(words) else "")
                yield event("response.output_text.delta", item_id=item_id, output_index=0, content_index=0,
                            delta=piece, logprobs=[])
            yield event("response.output_text.done", item_id=item_id, output_index=0, content_index=0, text=text,
                        logprobs=[])
            yield event("response.content_part.done", item_id=item_id, output_index=0, content_index=0,
                        part={"type": "output_text", "text": text, "annotations": []})
        else:
            yield event("response.output_item.added", output_index=0, item={**item, "arguments": ""})
            yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=0,
                        delta=item["arguments"])
            yield event("response.function_call_arguments.done", item_id=item["id"], output_index=0,
                        arguments=item["arguments"], name=item["name"])
        yield event("response.output_item.done", output_index=0, item=item)
        yield event("response.completed", response=self._response_object(call, "completed", output, text))
