"""Budget verdicts for reports and ``auriko-obs budget check``, over ``auriko_obs.analysis.budget_burn``.

Budgets come from ``auriko_obs.toml`` or ``pyproject.toml [tool.auriko_obs]`` (see
``auriko_obs.analysis.load_budgets``). The verdicts follow the monitoring-plugin convention: ``ok``;
``warning`` once spend crosses ``warning_pct`` of the limit (80% by default); ``critical`` when it
reaches ``critical_pct`` (100%), or when the forecast says the limit will be reached before the
budget's period resets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ._values import iso, missing, number_or_none

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
_CODE = {"ok": OK, "warning": WARNING, "critical": CRITICAL}


def load(config: str | os.PathLike[str] | None = None) -> list[Any]:
    """Returns the configured budgets (``analysis.Budget``); raises ValueError for a missing or bad file."""
    from ..analysis import load_budgets

    if config is not None and not os.path.isfile(config):
        raise ValueError(f"no budget config at {config}")
    try:
        return load_budgets(config)
    except OSError as exc:
        raise ValueError(f"cannot read budget config: {exc}") from None


def state_of(row: Any, warning_pct: float = 80.0, critical_pct: float = 100.0) -> str:
    """Returns ok, warning or critical for one ``budget_burn`` row."""
    if row["percent_used"] >= critical_pct or not missing(row["exhausts_at"]):
        return "critical"
    return "warning" if row["percent_used"] >= warning_pct else "ok"


def budget_rows(
    store: Any, budgets: Sequence[Any], now: datetime, *, warning_pct: float = 80.0, critical_pct: float = 100.0
) -> list[dict]:
    """Returns one JSON-ready dict per budget: its burn at ``now`` (``analysis.budget_burn``) and its state."""
    from ..analysis import budget_burn

    if not budgets:
        return []
    frame = budget_burn(store, list(budgets), now=now)
    return [
        {
            "name": row["budget"],
            "scope": row["scope"],
            "match": None if missing(row["match"]) else row["match"],
            "period": row["period"],
            "period_start": iso(row["period_start"]),
            "period_end": iso(row["period_end"]),
            "limit_usd": number_or_none(row["limit_usd"]),
            "spend_usd": number_or_none(row["spend_usd"]),
            "percent_used": round(float(row["percent_used"]), 2),
            "burn_rate_usd_per_h": number_or_none(row["burn_rate_usd_per_h"]),
            "exhausts_at": iso(row["exhausts_at"]),
            "exhausts_at_low": iso(row["exhausts_at_low"]),
            "exhausts_at_high": iso(row["exhausts_at_high"]),
            "exhaust_probability": number_or_none(row["exhaust_probability"]),
            "observed_spend_usd": number_or_none(row["observed_spend_usd"]),
            "divergence_usd": number_or_none(row["divergence_usd"]),
            "state": state_of(row, warning_pct, critical_pct),
        }
        for _, row in frame.iterrows()
    ]


def _why(b: dict, warning_pct: float, critical_pct: float) -> str:
    scope = b["scope"] if b["match"] is None else f"{b['scope']} {b['match']}"
    text = (
        f"{b['name']} ({scope}, {b['period']}): ${b['spend_usd']:,.2f} of ${b['limit_usd']:,.2f} "
        f"({b['percent_used']:.1f}%)"
    )
    if b["percent_used"] >= critical_pct:
        return text + (", limit reached" if critical_pct >= 100 else f", over the {critical_pct:g}% critical threshold")
    if b["exhausts_at"]:
        return (
            text + f", forecast to run out at {b['exhausts_at'][:16].replace('T', ' ')} UTC, before the period "
            f"resets at {b['period_end'][:16].replace('T', ' ')} UTC"
        )
    if b["state"] == "warning":
        return text + f", over the {warning_pct:g}% warning threshold"
    return text


def check_budgets(
    db_path: str,
    *,
    config: str | None = None,
    names: Sequence[str] = (),
    now: datetime | str | None = None,
    warning_pct: float = 80.0,
    critical_pct: float = 100.0,
) -> tuple[int, str]:
    """Returns (exit code, one line) for ``auriko-obs budget check``: the worst budget decides.

    The line follows the monitoring-plugin format ``BUDGET STATE - why | perfdata``; the perfdata give
    each budget's percent used with the warning and critical thresholds.
    """
    from ..store import Store, parse_time

    if not (math.isfinite(warning_pct) and math.isfinite(critical_pct) and 0 < warning_pct <= critical_pct):
        return UNKNOWN, (
            f"BUDGET UNKNOWN - the thresholds must be 0 < --warning <= --critical, not "
            f"--warning {warning_pct:g} --critical {critical_pct:g}"
        )
    try:
        budgets = load(config)
        moment = parse_time(now) if now else datetime.now(timezone.utc)
    except ValueError as exc:
        return UNKNOWN, f"BUDGET UNKNOWN - {str(exc).splitlines()[0]}"
    if names:
        missing = sorted(set(names) - {b.name for b in budgets})
        if missing:
            return UNKNOWN, f"BUDGET UNKNOWN - no budget named {', '.join(missing)}"
        budgets = [b for b in budgets if b.name in names]
    if not budgets:
        return UNKNOWN, "BUDGET UNKNOWN - no budgets configured (add [[budgets]] to auriko_obs.toml or pass --config)"
    if not os.path.exists(db_path):
        return UNKNOWN, f"BUDGET UNKNOWN - no auriko-obs store at {os.path.abspath(db_path)}"
    store = Store(db_path)
    try:
        if int(store.sql("SELECT count(*) AS n FROM llm_calls").iloc[0]["n"]) == 0:
            return UNKNOWN, f"BUDGET UNKNOWN - no calls recorded in {store.path}"
        rows = budget_rows(store, budgets, moment, warning_pct=warning_pct, critical_pct=critical_pct)
    except Exception as exc:  # an unreadable store is UNKNOWN, never a traceback
        return UNKNOWN, f"BUDGET UNKNOWN - cannot read {store.path}: {str(exc).splitlines()[0]}"
    worst = max(rows, key=lambda b: (_CODE[b["state"]], b["percent_used"]))
    others = sum(1 for b in rows if b is not worst and b["state"] != "ok")
    more = f" (and {others} more not OK)" if others else ""
    perf = " ".join(f"'{b['name']}'={b['percent_used']:.1f}%;{warning_pct:g};{critical_pct:g};0" for b in rows)
    return _CODE[
        worst["state"]
    ], f"BUDGET {worst['state'].upper()} - {_why(worst, warning_pct, critical_pct)}{more} | {perf}"
