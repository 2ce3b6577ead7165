"""The simulator's shared state behind one lock: ledger, spend and budgets, credits, prompt cache, rpm windows,
injections. Everything mutable lives here; every method takes the lock itself."""

from __future__ import annotations

import hashlib
import math
import threading
from collections import deque
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from ._call import Call
from ._config import DEFAULT_RPM_LIMIT, PERIODS, SimulatorConfig, updated, validated
from ._errors import REGISTRY, SimError

WORKSPACE_ID = "ws_sim"
RPM_WINDOW_S = 60.0
CACHE_BLOCK_TOKENS = 128
CACHE_MIN_TOKENS = 1024
CACHE_BLOCK_CHARS = CACHE_BLOCK_TOKENS * 4  # four characters per token, as the token counter assumes
CACHE_TTL_S = 300.0  # an entry lives five minutes after its last use (Anthropic's ephemeral default)
INSUFFICIENT_QUOTA_RETRY_AFTER_S = 3600  # credits are topped up out of band; long enough that clients back off


def key_id(key_hash: str) -> str:
    """Returns the id the simulator gives an API key (``/v1/me`` ``key_id``, budget ``scope_id``)."""
    return f"key_{key_hash}"


def hash_key(api_key: str) -> str:
    """Returns the short hash the simulator keeps instead of an API key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:8]


def usd_text(value: float) -> str:
    """Returns USD as the budget headers carry it: a plain decimal string, no exponent."""
    return f"{value:.12f}".rstrip("0").rstrip(".") or "0"


def period_bounds(period: str, now_s: float) -> tuple[float, float]:
    """Returns (start, end) epoch seconds of the UTC budget period containing ``now_s``."""
    return _period_bounds(period, int(now_s // 86_400))


@lru_cache(maxsize=256)
def _period_bounds(period: str, day_index: int) -> tuple[float, float]:
    day = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=day_index)
    if period == "daily":
        start, end = day, day + timedelta(days=1)
    elif period == "weekly":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return start.timestamp(), end.timestamp()


def prompt_block_hashes(prompt_text: str) -> list[bytes]:
    """Returns one chained hash per full cache block of a prompt (block i's hash covers blocks 0..i)."""
    hashes, previous = [], b""
    for start in range(0, len(prompt_text) - CACHE_BLOCK_CHARS + 1, CACHE_BLOCK_CHARS):
        previous = hashlib.blake2b(
            previous + prompt_text[start : start + CACHE_BLOCK_CHARS].encode(), digest_size=16
        ).digest()
        hashes.append(previous)
    return hashes if len(hashes) * CACHE_BLOCK_TOKENS >= CACHE_MIN_TOKENS else []


class Accounts:
    """The simulator's mutable state. ``config`` is replaced (never mutated) so a request can hold a snapshot."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.lock = threading.Lock()
        self.config = validated(config)
        self.reset()

    def reset(self) -> None:
        """Clears the ledger, spend, cache, rpm windows, injections and counters (the config stays)."""
        with self.lock:
            self._ledger: list[dict] = []
            self._spend: dict[tuple, float] = {}  # (scope, scope value, period, period start) → USD
            self._spent_usd = 0.0
            self._cache: dict[tuple[str, str], dict[bytes, float]] = {}
            self._rpm: dict[str | None, deque] = {}
            self._injections: deque[tuple[str, bool]] = deque()
            self._occurrences: dict[int, int] = {}

    # ------------------------------------------------------------ control

    def configure(self, knobs: dict[str, Any]) -> None:
        """Replaces the config with one where ``knobs`` are applied (ValueError for unknown or bad knobs)."""
        with self.lock:
            self.config = updated(self.config, knobs)

    def inject(self, code: str, count: int, mid_stream: bool) -> None:
        """Queues ``count`` injected failures with a registry code (ValueError for codes not in the registry)."""
        if code not in REGISTRY:
            raise ValueError(f"unknown error code {code!r}; known: {sorted(REGISTRY)}")
        with self.lock:
            self._injections.extend([(code, bool(mid_stream))] * int(count))

    def pop_injection(self) -> tuple[str, bool] | None:
        """Returns the next queued (code, mid_stream) failure, or None."""
        with self.lock:
            return self._injections.popleft() if self._injections else None

    def ledger(self) -> list[dict]:
        """Returns a copy of the ledger."""
        with self.lock:
            return [dict(entry, tags=list(entry["tags"])) for entry in self._ledger]

    def record(self, entry: dict) -> None:
        with self.lock:
            self._ledger.append(entry)

    def occurrence(self, content_seed: int) -> int:
        """Returns how many times this request content has been seen before (0 the first time)."""
        with self.lock:
            seen = self._occurrences.get(content_seed, 0)
            self._occurrences[content_seed] = seen + 1
            return seen

    # ------------------------------------------------------------ requests per minute

    @staticmethod
    def rpm_limit(config: SimulatorConfig, key_hash: str | None) -> int | None:
        """Returns a key's requests-per-minute limit: its own (``key_rpm_limits``), else ``rpm_limit``."""
        if key_hash is not None and config.key_rpm_limits:
            own = config.key_rpm_limits.get(key_id(key_hash), config.key_rpm_limits.get(key_hash))
            if own is not None:
                return own
        return config.rpm_limit

    def admit(self, call: Call) -> None:
        """Counts a request in its key's 60 s window; raises 429 rate_limit_exceeded when the window is full."""
        limit = self.rpm_limit(call.config, call.key_hash)
        now = call.started_s
        with self.lock:
            window = self._window(call.key_hash, now)
            if limit is not None and len(window) >= limit:
                retry_after = max(1, math.ceil(window[0] + RPM_WINDOW_S - now))
                raise SimError(
                    "rate_limit_exceeded",
                    f"Rate limit of {limit} requests per minute reached.",
                    headers={"Retry-After": str(retry_after), "X-Rate-Limit-Source": "auriko"},
                )
            window.append(now)

    def _window(self, key_hash: str | None, now: float) -> deque:
        window = self._rpm.setdefault(key_hash, deque())
        while window and window[0] <= now - RPM_WINDOW_S:
            window.popleft()
        return window

    def rate_headers(self, key_hash: str | None, config: SimulatorConfig, now: float) -> dict[str, str]:
        """Returns the x-ratelimit-* headers for a key (limit, remaining, ISO-8601 reset)."""
        limit = self.rpm_limit(config, key_hash) or DEFAULT_RPM_LIMIT
        with self.lock:
            window = self._window(key_hash, now)
            used, oldest = len(window), (window[0] if window else now)
        reset = datetime.fromtimestamp(oldest + RPM_WINDOW_S, timezone.utc)
        return {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(max(0, limit - used)),
            "x-ratelimit-reset-requests": reset.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }

    # ------------------------------------------------------------ budgets and credits

    @staticmethod
    def _bucket(budget: dict, key_hash: str | None, provider: str | None) -> tuple[str, str] | None:
        """Returns the (scope, scope value) whose spend a budget limits for this caller, None if not covered.

        ``api_key`` without ``scope_id`` limits each key on its own; ``byok_provider`` without
        ``scope_provider`` each provider on its own.
        """
        scope = budget["scope_type"]
        if scope == "workspace":
            return scope, WORKSPACE_ID
        if scope == "api_key":
            if key_hash is None or budget.get("scope_id") not in (None, key_id(key_hash), key_hash):
                return None
            return scope, key_id(key_hash)
        if provider is None or budget.get("scope_provider") not in (None, provider):
            return None
        return scope, provider

    def _covering(
        self, config: SimulatorConfig, key_hash: str | None, provider: str | None, now: float
    ) -> list[tuple[dict, float]]:
        """Returns (budget, current period spend) for every budget that covers this caller (lock held)."""
        covering = []
        for budget in config.budgets:
            bucket = self._bucket(budget, key_hash, provider)
            if bucket is not None:
                start, _ = period_bounds(budget["period"], now)
                covering.append((budget, self._spend.get((*bucket, budget["period"], start), 0.0)))
        return covering

    def check_spend(self, call: Call) -> None:
        """Raises when the credits are used up or an enforced budget covering this call is spent."""
        config, now = call.config, call.started_s
        provider = call.provider.name if call.provider else None
        with self.lock:
            balance = config.credits_usd - self._spent_usd
            covering = self._covering(config, call.key_hash, provider, now)
        for budget, spend in covering:
            if budget["enforce"] and spend >= budget["limit_usd"]:
                raise _budget_error(budget, config.drift, now)
        if balance <= 0:
            raise SimError(
                "insufficient_quota",
                "The workspace credit balance is used up.",
                status=402 if config.drift else None,
                headers={"Retry-After": str(INSUFFICIENT_QUOTA_RETRY_AFTER_S)},
            )

    def budget_error_for_injection(self, call: Call) -> SimError:
        """Returns the rejection an injected budget code produces (first budget's scope, else workspace daily)."""
        budget = call.config.budgets[0] if call.config.budgets else {"scope_type": "workspace", "period": "daily"}
        return _budget_error(budget, call.config.drift, call.started_s)

    def money_headers(
        self, config: SimulatorConfig, key_hash: str | None, provider: str | None, now: float
    ) -> dict[str, str]:
        """Returns X-Credits-Balance-Microdollars and X-Budget-{Period}-{Limit|Spend}.

        Only budgets covering this caller count; when several share a period, the most used one is shown.
        """
        with self.lock:
            balance = config.credits_usd - self._spent_usd
            covering = self._covering(config, key_hash, provider, now)
        headers = {"x-credits-balance-microdollars": str(round(balance * 1_000_000))}
        tightest: dict[str, tuple[float, dict, float]] = {}
        for budget, spend in covering:
            used = spend / budget["limit_usd"] if budget["limit_usd"] > 0 else math.inf
            if budget["period"] not in tightest or used > tightest[budget["period"]][0]:
                tightest[budget["period"]] = (used, budget, spend)
        for period in PERIODS:
            if period in tightest:
                _, budget, spend = tightest[period]
                headers[f"X-Budget-{period.capitalize()}-Limit"] = usd_text(budget["limit_usd"])
                headers[f"X-Budget-{period.capitalize()}-Spend"] = usd_text(spend)
        return headers

    # ------------------------------------------------------------ cache and billing

    def settle(self, call: Call, block_hashes: list[bytes]) -> None:
        """Reads and writes the prompt cache, prices the call, and adds its cost to spend and balance."""
        provider = call.routed_provider
        with self.lock:
            shared = self._cache_blocks(call, block_hashes) if block_hashes else 0
            if shared * CACHE_BLOCK_TOKENS >= CACHE_MIN_TOKENS:
                call.cached_tokens = min(
                    shared * CACHE_BLOCK_TOKENS, call.input_tokens // CACHE_BLOCK_TOKENS * CACHE_BLOCK_TOKENS
                )
                call.cache_write_tokens = (len(block_hashes) - shared) * CACHE_BLOCK_TOKENS
            elif block_hashes:
                call.cache_write_tokens = len(block_hashes) * CACHE_BLOCK_TOKENS
            uncached = call.input_tokens - call.cached_tokens
            call.cost_usd = round(
                (
                    uncached * provider.input_price
                    + call.cached_tokens * provider.cache_read_price
                    + call.output_tokens * provider.output_price
                )
                / 1e6,
                12,
            )
            call.cache_savings_usd = round(
                call.cached_tokens * (provider.input_price - provider.cache_read_price) / 1e6, 12
            )
            self._add_spend(call)

    def _cache_blocks(self, call: Call, block_hashes: list[bytes]) -> int:
        """Returns how many leading blocks were cached for (key, provider), then stores all of them (lock held)."""
        entries = self._cache.setdefault((call.key_hash or "", call.routed_provider.name), {})
        now, shared = call.started_s, 0
        for block in block_hashes:
            last_used = entries.get(block)
            if last_used is None or now - last_used > CACHE_TTL_S:
                break
            shared += 1
        for block in block_hashes:
            entries[block] = now
        return shared

    def _add_spend(self, call: Call) -> None:
        self._spent_usd += call.cost_usd
        scopes = [("workspace", WORKSPACE_ID), ("byok_provider", call.routed_provider.name)]
        if call.key_hash:
            scopes.append(("api_key", key_id(call.key_hash)))
        for period in PERIODS:
            start, _ = period_bounds(period, call.started_s)
            for scope, value in scopes:
                bucket = (scope, value, period, start)
                self._spend[bucket] = self._spend.get(bucket, 0.0) + call.cost_usd

    def budget_views(self, config: SimulatorConfig, key_hash: str | None, now: float) -> list[dict]:
        """Returns the budgets as ``GET /v1/workspaces/{id}/budgets`` lists them, with the caller's spend."""
        views = []
        with self.lock:
            for index, budget in enumerate(config.budgets):
                bucket = self._bucket(budget, key_hash, budget.get("scope_provider"))
                start, _ = period_bounds(budget["period"], now)
                spend = self._spend.get((*bucket, budget["period"], start), 0.0) if bucket else 0.0
                limit = budget["limit_usd"]
                views.append(
                    {
                        "id": f"bdgt_{index:04d}",
                        "workspace_id": WORKSPACE_ID,
                        "scope_type": budget["scope_type"],
                        "period": budget["period"],
                        "limit_usd": limit,
                        "enforce": budget["enforce"],
                        "include_byok": bool(budget.get("include_byok", False)),
                        "spend_usd": round(spend, 12),
                        "percent_used": round(100 * spend / limit, 2) if limit > 0 else None,
                        "scope_id": budget.get("scope_id"),
                        "scope_provider": budget.get("scope_provider"),
                        "created_at": "2025-01-01T00:00:00Z",
                        "updated_at": "2025-01-01T00:00:00Z",
                    }
                )
        return views

    def balance_usd(self, config: SimulatorConfig) -> float:
        """Returns the credit balance: starting credits minus everything billed."""
        with self.lock:
            return config.credits_usd - self._spent_usd


def _budget_error(budget: dict, drift: bool, now: float) -> SimError:
    scope, period = budget["scope_type"], budget["period"]
    _, resets_at = period_bounds(period, now)
    return SimError(
        "budget_exceeded" if drift else "budget_exhausted",
        f"The {period} {scope} budget is exhausted; requests resume when the period resets.",
        status=402 if drift else None,
        headers={
            "X-Budget-Exceeded": "true",
            "X-Budget-Exceeded-Scope": scope,
            "X-Budget-Exceeded-Period": period,
            "Retry-After": str(max(1, math.ceil(resets_at - now))),
        },
    )
