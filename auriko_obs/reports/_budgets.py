"""Budget burn for reports and ``auriko-obs budget check``: spend per configured budget and its verdict.

The verdicts follow the monitoring-plugin convention: ``ok``; ``warning`` once spend crosses the
budget's ``warn_pct`` (80% unless set); ``critical`` when the limit is reached, or when the forecast
says it will be before the budget's period ends.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ..store import Store
from ._periods import current_period

_PERIOD_OF = {"daily": "day", "weekly": "week", "monthly": "month"}
SCOPES = ("workspace", "api_key", "service", "tag", "user", "provider", "model")
_SCOPE_SQL = {"api_key": None, "service": "service_name = ?", "tag": "list_contains(tags, ?)",
              "user": "user_id = ?", "provider": "provider = ?", "model": "coalesce(model_canonical, request_model) = ?"}


class BudgetConfigError(ValueError):
    """The budget configuration cannot be read or is invalid."""


@dataclass(frozen=True)
class Budget:
    name: str
    period: str  # daily, weekly, monthly
    limit_usd: float
    scope: str = "workspace"
    value: str | None = None  # the tag, user, service… the budget covers
    warn_pct: float = 80.0


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    spend_usd: float
    percent_used: float
    period_start: datetime
    period_end: datetime
    forecast_period_end_usd: float
    forecast_exhaustion: datetime | None  # None when the forecast stays under the limit this period
    state: str  # ok, warning, critical

    def as_dict(self) -> dict:
        def iso(moment: datetime | None) -> str | None:
            return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if moment else None
        return {**asdict(self.budget), "spend_usd": round(self.spend_usd, 6), "percent_used": round(self.percent_used, 2),
                "period_start": iso(self.period_start), "period_end": iso(self.period_end),
                "forecast_period_end_usd": round(self.forecast_period_end_usd, 6),
                "forecast_exhaustion": iso(self.forecast_exhaustion), "state": self.state}


def _toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BudgetConfigError(f"cannot read {path}: {exc}") from None


def parse_budgets(raw: Sequence[Any], source: str = "config") -> list[Budget]:
    """Returns the budgets of a ``budgets`` list from a config file; raises BudgetConfigError when invalid."""
    out = []
    for i, item in enumerate(raw or []):
        if not isinstance(item, dict):
            raise BudgetConfigError(f"{source}: budgets[{i}] must be a table")
        try:
            budget = Budget(name=str(item.get("name") or f"{item.get('scope', 'workspace')}-{item['period']}"),
                            period=str(item["period"]), limit_usd=float(item["limit_usd"]),
                            scope=str(item.get("scope", "workspace")), value=item.get("value"),
                            warn_pct=float(item.get("warn_pct", 80)))
        except (KeyError, TypeError, ValueError) as exc:
            raise BudgetConfigError(f"{source}: budgets[{i}] needs period and a numeric limit_usd ({exc})") from None
        if budget.period not in _PERIOD_OF:
            raise BudgetConfigError(f"{source}: budgets[{i}].period must be daily, weekly or monthly")
        if budget.scope not in SCOPES:
            raise BudgetConfigError(f"{source}: budgets[{i}].scope must be one of {', '.join(SCOPES)}")
        if budget.limit_usd <= 0:
            raise BudgetConfigError(f"{source}: budgets[{i}].limit_usd must be positive")
        out.append(budget)
    return out


def configured_budgets(config: str | os.PathLike[str] | None = None) -> list[Budget]:
    """Returns the budgets from ``config``, else ``./auriko_obs.toml``, else ``./pyproject.toml [tool.auriko_obs]``."""
    if config is not None:
        path = Path(config)
        if not path.exists():
            raise BudgetConfigError(f"no budget config at {path}")
        data = _toml(path)
        data = data.get("tool", {}).get("auriko_obs", data) if path.name == "pyproject.toml" else data
        return parse_budgets(data.get("budgets", []), str(path))
    for path, pick in ((Path("auriko_obs.toml"), lambda d: d),
                       (Path("pyproject.toml"), lambda d: d.get("tool", {}).get("auriko_obs", {}))):
        if path.exists():
            return parse_budgets(pick(_toml(path)).get("budgets", []), str(path))
    return []


def _spend(store: Store, budget: Budget, start: datetime, end: datetime) -> float:
    clause, params = "", [start, end]
    if budget.scope not in ("workspace", "api_key"):
        clause = f" AND {_SCOPE_SQL[budget.scope]}"
        params.append(budget.value)
    return float(store.sql(f"SELECT coalesce(sum(cost_usd), 0) AS usd FROM llm_calls "
                           f"WHERE start_time >= ? AND start_time < ?{clause}", params).iloc[0]["usd"])


def budget_status(store: Store, budgets: Sequence[Budget], *, now: datetime | None = None) -> list[BudgetStatus]:
    """Returns the status of each budget at ``now``: spend so far in its current period and a forecast.

    Forecast: spend so far plus the average burn rate since the period began times the time left.
    """
    now = now or datetime.now(timezone.utc)
    out = []
    for budget in budgets:
        period = current_period(_PERIOD_OF[budget.period], now)
        spend = _spend(store, budget, period.start, now)
        elapsed = (now - period.start).total_seconds()
        rate = spend / elapsed if elapsed > 0 else 0.0
        forecast = spend + rate * (period.end - now).total_seconds()
        exhaustion = None
        if spend >= budget.limit_usd:
            exhaustion = now
        elif rate > 0 and forecast >= budget.limit_usd:
            from datetime import timedelta
            exhaustion = now + timedelta(seconds=(budget.limit_usd - spend) / rate)
        percent = 100 * spend / budget.limit_usd
        state = "critical" if exhaustion is not None else "warning" if percent >= budget.warn_pct else "ok"
        out.append(BudgetStatus(budget, spend, percent, period.start, period.end, forecast, exhaustion, state))
    return out


OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
_STATE_CODE = {"ok": OK, "warning": WARNING, "critical": CRITICAL}


def _why(status: BudgetStatus) -> str:
    b = status.budget
    scope = b.scope if b.value is None else f"{b.scope} {b.value}"
    text = f"{b.name} ({scope}, {b.period}): ${status.spend_usd:,.2f} of ${b.limit_usd:,.2f} ({status.percent_used:.1f}%)"
    if status.spend_usd >= b.limit_usd:
        return text + ", limit reached"
    if status.forecast_exhaustion is not None:
        return (text + f", forecast to run out {status.forecast_exhaustion:%Y-%m-%d %H:%M} UTC, before the period "
                f"ends {status.period_end:%Y-%m-%d %H:%M} UTC")
    if status.state == "warning":
        return text + f", over the {b.warn_pct:g}% warning threshold"
    return text


def check_budgets(db_path: str, *, config: str | None = None, names: Sequence[str] = (),
                  now: datetime | str | None = None) -> tuple[int, str]:
    """Returns (exit code, one line) for ``auriko-obs budget check``: the worst budget decides.

    The line follows the monitoring-plugin format ``BUDGET STATE - why | perfdata``, the perfdata giving
    each budget's percent used with its warning and critical thresholds.
    """
    from ..store import parse_time

    try:
        budgets = configured_budgets(config)
        moment = parse_time(now) if now else None
    except (BudgetConfigError, ValueError) as exc:
        return UNKNOWN, f"BUDGET UNKNOWN - {exc}"
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
        statuses = budget_status(store, budgets, now=moment)
    except Exception as exc:  # an unreadable store is UNKNOWN, never a traceback
        return UNKNOWN, f"BUDGET UNKNOWN - cannot read {store.path}: {str(exc).splitlines()[0]}"
    worst = max(statuses, key=lambda s: (_STATE_CODE[s.state], s.percent_used))
    code = _STATE_CODE[worst.state]
    others = sum(1 for s in statuses if s is not worst and s.state != "ok")
    more = f" (and {others} more not OK)" if others else ""
    perf = " ".join(f"'{s.budget.name}'={s.percent_used:.1f}%;{s.budget.warn_pct:g};100;0" for s in statuses)
    return code, f"BUDGET {worst.state.upper()} - {_why(worst)}{more} | {perf}"
