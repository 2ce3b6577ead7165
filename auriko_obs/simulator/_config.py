"""The simulator's knobs, and their validation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

SCOPES = ("workspace", "api_key", "byok_provider")
PERIODS = ("daily", "weekly", "monthly")
METADATA_FAULTS = (None, "missing", "malformed")
DEFAULT_RPM_LIMIT = 10_000  # what the rate-limit headers announce when `rpm_limit` is None


@dataclass
class SimulatorConfig:
    """Knobs of the simulator; ``SimulatorConfig()`` behaves like a healthy Auriko."""

    seed: int = 0
    drift: bool = False  # emit the older [DRIFT] shapes (402 budget_exceeded, legacy routing_metadata keys)
    openai_mode: bool = False  # behave like plain OpenAI: no routing_metadata, credits or budget headers
    latency_ms: float = 0.0  # added before each inference response
    chunk_delay_ms: float = 0.0  # between SSE events
    error_rate_5xx: float = 0.0  # seeded share of inference requests failing with 500/502/503
    metadata_fault: str | None = None  # "missing" or "malformed" routing_metadata
    rpm_limit: int | None = None  # requests per minute per API key (sliding 60 s window on the sim clock)
    key_rpm_limits: dict[str, int] = field(default_factory=dict)  # key_id (as /v1/me) → its own limit, over rpm_limit
    budgets: list[dict] = field(default_factory=list)
    credits_usd: float = 100.0  # starting credit balance
    clock: Callable[[], float] = time.time  # the sim clock, epoch seconds
    api_key_prefix: str = "ak_"


KNOBS = frozenset(f.name for f in fields(SimulatorConfig))


def _budget(raw: Any) -> dict:
    """Returns a budget with defaults filled in; raises ValueError when it cannot be one."""
    if not isinstance(raw, dict):
        raise ValueError(f"a budget must be a dict, not {raw!r}")
    budget = {"scope_type": "workspace", "enforce": True, **raw}
    if budget["scope_type"] not in SCOPES:
        raise ValueError(f"budget scope_type must be one of {SCOPES}, not {budget['scope_type']!r}")
    if budget.get("period") not in PERIODS:
        raise ValueError(f"budget period must be one of {PERIODS}, not {budget.get('period')!r}")
    try:
        budget["limit_usd"] = float(budget["limit_usd"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"budget limit_usd must be a number: {raw!r}") from None
    budget["enforce"] = bool(budget["enforce"])
    return budget


def _key_rpm_limits(raw: Any) -> dict[str, int]:
    """Returns per-key limits as {key_id: int}; raises ValueError when they cannot be."""
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ValueError(f"key_rpm_limits must map key ids to requests per minute, not {raw!r}")
    limits = {}
    for key, limit in raw.items():
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"key_rpm_limits[{key!r}] must be a whole number of at least 1, not {limit!r}")
        limits[key] = limit
    return limits


def updated(config: SimulatorConfig, knobs: dict[str, Any]) -> SimulatorConfig:
    """Returns a new config with ``knobs`` applied; raises ValueError for unknown knobs or bad values."""
    unknown = sorted(set(knobs) - KNOBS)
    if unknown:
        raise ValueError(f"unknown simulator knobs: {unknown}; known: {sorted(KNOBS)}")
    if knobs.get("metadata_fault") not in METADATA_FAULTS:
        raise ValueError(f"metadata_fault must be one of {METADATA_FAULTS}")
    if "budgets" in knobs:
        knobs = {**knobs, "budgets": [_budget(b) for b in knobs["budgets"] or []]}
    if knobs.get("rpm_limit") is not None and int(knobs["rpm_limit"]) < 1:
        raise ValueError("rpm_limit must be at least 1 (or None for no limit)")
    if "key_rpm_limits" in knobs:
        knobs = {**knobs, "key_rpm_limits": _key_rpm_limits(knobs["key_rpm_limits"])}
    if not 0.0 <= float(knobs.get("error_rate_5xx", 0.0)) <= 1.0:
        raise ValueError("error_rate_5xx must be between 0 and 1")
    return replace(config, **knobs)


def validated(config: SimulatorConfig) -> SimulatorConfig:
    """Returns a validated copy of ``config`` (budgets normalised), so callers' objects are never mutated."""
    return updated(
        config,
        {
            "budgets": config.budgets,
            "metadata_fault": config.metadata_fault,
            "rpm_limit": config.rpm_limit,
            "key_rpm_limits": config.key_rpm_limits,
            "error_rate_5xx": config.error_rate_5xx,
        },
    )


def public_view(config: SimulatorConfig) -> dict[str, Any]:
    """Returns the knobs as JSON-able values (the clock is shown by name only)."""
    view = {f.name: getattr(config, f.name) for f in fields(SimulatorConfig) if f.name != "clock"}
    view["clock"] = getattr(config.clock, "__name__", repr(config.clock))
    return view
