"""Budgets: definitions (code or config file), spend per UTC period, burn rate and exhaustion forecast.

Config (``auriko_obs.toml``, or ``[tool.auriko_obs]`` in ``pyproject.toml``)::

    [[budgets]]
    name = "search team, daily"
    scope = "tag"            # workspace | api_key | tag | user
    match = "team:search"    # the tag (scope tag) or user_id (scope user); not used otherwise
    period = "daily"         # daily | weekly | monthly, resetting at 00:00 UTC (weeks on Monday)
    limit_usd = 50
    service = "search-api"   # optional: count only this service_name's calls
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import parse_time
from ._forecast import Forecast, forecast
from ._query import Session, StoreLike, TimeLike, Values, Where, _ibis, session, where

if TYPE_CHECKING:
    import pandas as pd

SCOPES = ("workspace", "api_key", "tag", "user")
PERIODS = ("daily", "weekly", "monthly")
CONFIG_FILE = "auriko_obs.toml"
# How many of the period's latest Auriko-routed calls are searched for budget headers (with any that started at
# the same instant as the last of them).
_HEADER_SEARCH_CALLS = 500
# How close an observed X-Budget-*-Limit must be to a budget's limit_usd to be taken as that budget's.
_SAME_LIMIT_USD = 0.005
# How long before ``now`` the budget's first call must be for its spend to be forecast. Below that, a burst
# of minutes would be scaled up to an hourly rate and carried to the period's end with no spread to show
# how little it says (a 3-second demo burst "ran out" a $5 daily budget with probability 1): the forecast
# columns are NULL, and no verdict is raised from them. Three hours let the block bootstrap (4-hour blocks)
# draw from more than one partial hour.
MIN_FORECAST_HISTORY = timedelta(hours=3)


@dataclass(frozen=True)
class Budget:
    """A spending limit over a UTC period.

    ``scope`` says which calls count: ``workspace`` (all of them), ``api_key`` (all of them too, since
    API keys are never recorded: give ``service`` when one service uses the key), ``tag`` (calls
    carrying the tag ``match``) or ``user`` (calls whose user_id is ``match``). ``service`` narrows any
    scope to one service_name. Workspace and API-key budgets are compared with the spend Auriko
    reports in its ``X-Budget-*`` headers; tag and user budgets exist only here.
    """

    name: str
    limit_usd: float
    period: str = "monthly"
    scope: str = "workspace"
    match: str | None = None
    service: str | None = None

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"budget {self.name!r}: scope must be one of {', '.join(SCOPES)}, not {self.scope!r}")
        if self.period not in PERIODS:
            raise ValueError(f"budget {self.name!r}: period must be one of {', '.join(PERIODS)}, not {self.period!r}")
        if self.scope in ("tag", "user") and not self.match:
            raise ValueError(f"budget {self.name!r}: scope {self.scope} needs `match` (the {self.scope})")
        try:
            limit = float(self.limit_usd)
        except (TypeError, ValueError):
            raise ValueError(f"budget {self.name!r}: limit_usd must be a number, not {self.limit_usd!r}") from None
        if not limit > 0 or math.isinf(limit):
            raise ValueError(f"budget {self.name!r}: limit_usd must be a positive number, not {self.limit_usd!r}")
        object.__setattr__(self, "limit_usd", limit)

    def where(self, base: Where) -> Where:
        """Returns ``base`` narrowed to the calls this budget counts."""
        w = base
        match, service = self.match, self.service
        if self.scope == "tag":
            w = w.and_(lambda t: t.tags.contains(match))
        elif self.scope == "user":
            w = w.and_(lambda t: t.user_id == match)
        if service is not None:
            w = w.and_(lambda t: t.service_name == service)
        return w


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """Returns (start, end) of the UTC budget period containing ``now``: days, Monday weeks, calendar months."""
    now = now.astimezone(timezone.utc)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day, day + timedelta(days=1)
    if period == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "monthly":
        start = day.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def load_budgets(path: str | os.PathLike[str] | None = None) -> list[Budget]:
    """Returns the budgets of a config file: ``[[budgets]]`` tables (see the module docstring).

    ``path`` may be an ``auriko_obs.toml`` (budgets at the top level) or a ``pyproject.toml`` (under
    ``[tool.auriko_obs]``). Without a path, the budgets of ``./auriko_obs.toml`` are returned, else (when
    it is missing or defines none) those of ``./pyproject.toml``; when neither defines budgets the list
    is empty. Raises ValueError for a malformed budget.
    """
    if path is None:
        for candidate in (Path(CONFIG_FILE), Path("pyproject.toml")):
            found = load_budgets(candidate) if candidate.is_file() else []
            if found:
                return found
        return []
    path = Path(path)
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("auriko_obs", {})
    raw = data.get("budgets", [])
    if not isinstance(raw, list):
        raise ValueError(f"{path}: `budgets` must be an array of tables ([[budgets]])")
    return [_budget_from(entry, path, i) for i, entry in enumerate(raw)]


def _budget_from(entry: Any, path: Path, index: int) -> Budget:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: budget #{index + 1} must be a table")
    known = {f.name for f in fields(Budget)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{path}: budget #{index + 1} has unknown keys {unknown}; known: {sorted(known)}")
    if "limit_usd" not in entry:
        raise ValueError(f"{path}: budget #{index + 1} needs limit_usd")
    entry = {"name": f"{entry.get('scope', 'workspace')} {entry.get('period', 'monthly')}", **entry}
    return Budget(**entry)


def _budgets(budgets: Budget | Iterable[Budget] | str | os.PathLike[str] | None) -> list[Budget]:
    """Returns the budgets given, or those of a config file (None: the default files).

    Raises ValueError when the config defines none: an empty frame would not say why it is empty."""
    if budgets is None or isinstance(budgets, (str, os.PathLike)):
        loaded = load_budgets(budgets)
        if not loaded:
            searched = budgets or f"./{CONFIG_FILE} or [tool.auriko_obs] in ./pyproject.toml"
            raise ValueError(
                f"no budgets: no [[budgets]] in {searched}; pass budgets=[analysis.Budget(...)] "
                f"or the path of a config file that has them"
            )
        return loaded
    if isinstance(budgets, Budget):
        return [budgets]
    return list(budgets)


def _hourly(s: Session, w: Where, start: datetime, now: datetime) -> pd.DataFrame:
    """Returns hourly spend of the budget's calls in [start, now], and when its first call ever was."""
    ibis = _ibis()
    inside = w.between(start, now + timedelta(microseconds=1)).apply(s)
    hourly = inside.group_by(_hour=inside.start_hour).aggregate(
        cost_usd=inside.cost_usd.sum().coalesce(0.0), calls=inside.count()
    )
    everything = w.apply(s)
    first = everything.aggregate(first_call=everything.start_time.min())
    out = hourly.cross_join(first)
    out = out.select(
        hour=(out._hour * 3600).as_timestamp("s").cast("timestamp('UTC')"),
        cost_usd=out.cost_usd,
        calls=out.calls,
        first_call=out.first_call,
    )
    return s.run(out.order_by(ibis.asc("hour")))


def _series(frame: pd.DataFrame, start: datetime, now: datetime) -> tuple[list[datetime], list[float]]:
    """Returns every hour from ``start`` to the hour of ``now`` and its spend (0 where nothing was spent)."""
    spend = {ts.to_pydatetime(): float(v) for ts, v in zip(frame["hour"], frame["cost_usd"], strict=True)}
    hours, values = [], []
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < now:  # the hour starting exactly at `now` has not begun
        hours.append(hour)
        values.append(spend.get(hour, 0.0))
        hour += timedelta(hours=1)
    return hours, values


def _observed(s: Session, budget: Budget, w: Where, period_start: datetime, now: datetime) -> dict:
    """Returns what Auriko's headers said in this period about this budget (those showing its limit): its spend
    and limit, credits, and the local spend then."""
    if budget.scope not in ("workspace", "api_key"):
        return {}
    ibis = _ibis()
    spend_key, limit_key = f"budget_{budget.period}_spend_usd", f"budget_{budget.period}_limit_usd"
    window = w.between(period_start, now + timedelta(microseconds=1))
    calls = window.apply(s)
    auriko = calls.filter(calls.cost_source == "auriko")
    # The newest calls are those from the start time of the _HEADER_SEARCH_CALLS-th newest on: found on the start
    # times alone, so that the header columns (read from JSON) are worked out for those calls only, where an
    # ORDER BY … LIMIT over the calls made the engine read them for every call of the period (17 s of 18 on a
    # lake of 10M calls).
    newest = auriko.select("start_time").order_by(ibis.desc("start_time")).limit(_HEADER_SEARCH_CALLS)
    recent = auriko.filter(auriko.start_time >= newest.start_time.min()).select(
        "start_time", "credits_balance_usd", spend_key, limit_key
    )
    # The X-Budget-{Period}-* headers do not say which budget they are (workspace, this API key or another
    # key: docs/reference/auriko-contract.md#budgets), and one store records calls of several keys. A budget
    # takes only the observations whose limit is its own limit, to the cent; others belong to another scope.
    has_header = recent[spend_key].notnull() & ((recent[limit_key] - budget.limit_usd).abs() < _SAME_LIMIT_USD)
    has_credits = recent.credits_balance_usd.notnull()
    found = s.run(
        recent.aggregate(
            observed_at=recent.start_time.max(where=has_header),
            observed_spend_usd=recent[spend_key].argmax(recent.start_time, where=has_header),
            observed_limit_usd=recent[limit_key].argmax(recent.start_time, where=has_header),
            credits_balance_usd=recent.credits_balance_usd.argmax(recent.start_time, where=has_credits),
        )
    )
    row = {k: (None if _missing(v) else v) for k, v in found.iloc[0].to_dict().items()}
    row["local_spend_at_observed_usd"] = None
    if row["observed_at"] is not None:
        observed_at = row["observed_at"].to_pydatetime()
        upto = w.between(period_start, observed_at + timedelta(microseconds=1)).apply(s)
        spent = s.run(upto.aggregate(spend=upto.cost_usd.sum().coalesce(0.0)))
        row["local_spend_at_observed_usd"] = float(spent["spend"].iloc[0])
    return row


def _no_forecast(rate_usd_per_h: float, exhausted: bool) -> Forecast:
    """Returns the forecast of a budget with too little history: none, unless its limit is already reached."""
    at = 0.0 if exhausted else math.nan
    return Forecast(rate_usd_per_h, at, at, at, 1.0 if exhausted else math.nan, (), (), ())


def _missing(value: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _at(now: datetime, hours: float) -> datetime | None:
    return None if math.isinf(hours) or math.isnan(hours) else now + timedelta(hours=hours)


def _burn(
    store: Session, budget: Budget, base: Where, now: datetime, lookback: timedelta, half_life_h: float, seed: int
) -> tuple[dict, dict]:
    """Returns (the summary row, the hourly series and forecast bands) of one budget."""
    period_start, period_end = period_bounds(budget.period, now)
    w = budget.where(base)
    window_start = min(period_start, now - lookback)
    frame = _hourly(store, w, window_start, now)
    first_call = frame["first_call"].iloc[0].to_pydatetime() if len(frame) else None
    history_start = max(now - lookback, first_call) if first_call else now
    hours, values = _series(frame, window_start, now)
    spend = sum(v for h, v in zip(hours, values, strict=True) if h >= period_start)
    history = [
        v for h, v in zip(hours, values, strict=True) if h >= history_start.replace(minute=0, second=0, microsecond=0)
    ]
    elapsed = (now - now.replace(minute=0, second=0, microsecond=0)).total_seconds() / 3600 or 1.0
    horizon_h = (period_end - now).total_seconds() / 3600
    result = forecast(
        history, budget.limit_usd - spend, horizon_h, half_life_h=half_life_h, seed=seed, last_fraction=elapsed
    )
    if first_call is not None and now - first_call < MIN_FORECAST_HISTORY:  # no calls at all: nothing to run out
        result = _no_forecast(result.rate_usd_per_h, spend >= budget.limit_usd)
    observed = _observed(store, budget, w, period_start, now)
    summary = {
        "budget": budget.name,
        "scope": budget.scope,
        "match": budget.match,
        "period": budget.period,
        "period_start": period_start,
        "period_end": period_end,
        "limit_usd": budget.limit_usd,
        "spend_usd": spend,
        "remaining_usd": budget.limit_usd - spend,
        "percent_used": 100 * spend / budget.limit_usd,
        "burn_rate_usd_per_h": result.rate_usd_per_h,
        "exhausts_at": _at(now, result.exhausts_in_h),
        "exhausts_at_low": _at(now, result.exhausts_in_h_low),
        "exhausts_at_high": _at(now, result.exhausts_in_h_high),
        "exhaust_probability": result.exhaust_probability,
        "observed_at": observed.get("observed_at"),
        "observed_spend_usd": observed.get("observed_spend_usd"),
        "observed_limit_usd": observed.get("observed_limit_usd"),
        "divergence_usd": (
            observed["local_spend_at_observed_usd"] - observed["observed_spend_usd"]
            if observed.get("observed_spend_usd") is not None
            else None
        ),
        "credits_balance_usd": observed.get("credits_balance_usd"),
    }
    series = {
        "hours": [h for h in hours if h >= period_start],
        "values": [v for h, v in zip(hours, values, strict=True) if h >= period_start],
        "forecast": result,
        "period_end": period_end,
        "spend": spend,
    }
    return summary, series


_SUMMARY_COLUMNS = (
    "budget",
    "scope",
    "match",
    "period",
    "period_start",
    "period_end",
    "limit_usd",
    "spend_usd",
    "remaining_usd",
    "percent_used",
    "burn_rate_usd_per_h",
    "exhausts_at",
    "exhausts_at_low",
    "exhausts_at_high",
    "exhaust_probability",
    "observed_at",
    "observed_spend_usd",
    "observed_limit_usd",
    "divergence_usd",
    "credits_balance_usd",
)


def _frame(rows: list[dict], columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(columns))
    for column in columns:
        if column in (
            "period_start",
            "period_end",
            "exhausts_at",
            "exhausts_at_low",
            "exhausts_at_high",
            "observed_at",
            "time",
        ):
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def budget_burn(
    store: StoreLike | Session = None,
    budgets: Budget | Iterable[Budget] | str | os.PathLike[str] | None = None,
    *,
    now: TimeLike = None,
    lookback: str | timedelta = "7d",
    half_life_h: float = 12.0,
    seed: int = 0,
    model: Values = None,
    provider: Values = None,
    service: Values = None,
    tag: Values = None,
    user: Values = None,
) -> pd.DataFrame:
    """Returns one row per budget: spend in its current UTC period, burn rate, and when it will run out.

    Answers: how much of each budget is used, how fast it is burning, when it will be exhausted (with a
    band), and how far our local count is from what Auriko itself reports. ``budgets`` is a list of
    ``Budget``, a config path, or None for ``load_budgets()``; a config that defines no budget raises
    ValueError (an empty list gives an empty frame). ``now`` (default: the current time) fixes
    the period; the forecast is described in ``auriko_obs.analysis._forecast`` (decayed hourly rate plus
    a weighted block bootstrap over ``lookback``).

    Columns: ``budget``, ``scope``, ``match``, ``period``, ``period_start``, ``period_end`` (UTC),
    ``limit_usd``, ``spend_usd``, ``remaining_usd``, ``percent_used`` (0–100+),
    ``burn_rate_usd_per_h``, ``exhausts_at`` (at the burn rate; NaT when not before the reset),
    ``exhausts_at_low`` / ``exhausts_at_high`` (10th / 90th percentile of the bootstrap),
    ``exhaust_probability`` (of running out before the reset); the four forecast columns are NULL while the
    budget's first call is less than ``MIN_FORECAST_HISTORY`` (3 hours) before ``now``, since minutes of
    spend say nothing reliable about the rest of the period (unless the limit is already reached). From
    Auriko's headers (workspace and api_key budgets, from calls whose headers show the budget's own
    ``limit_usd``, since the headers do not name their scope; NULL otherwise): ``observed_at`` (the latest
    call in the period carrying them),
    ``observed_spend_usd``, ``observed_limit_usd`` (X-Budget-{Period}-Spend/-Limit),
    ``divergence_usd`` (local spend up to that call minus Auriko's; positive when we count more,
    negative when spend happened outside this store), ``credits_balance_usd`` (the latest credit balance).
    """
    now_at = parse_time(now) or datetime.now(timezone.utc)
    lookback_td = lookback if isinstance(lookback, timedelta) else now_at - parse_time(lookback, now=now_at)
    base = where(model=model, provider=provider, service=service, tag=tag, user=user)
    listed = _budgets(budgets)
    with session(store) as s:
        rows = [_burn(s, b, base, now_at, lookback_td, half_life_h, seed)[0] for b in listed]
    return _frame(rows, _SUMMARY_COLUMNS)


def budget_burndown(
    budget: Budget,
    store: StoreLike | Session = None,
    *,
    now: TimeLike = None,
    lookback: str | timedelta = "7d",
    half_life_h: float = 12.0,
    seed: int = 0,
    model: Values = None,
    provider: Values = None,
    service: Values = None,
    tag: Values = None,
    user: Values = None,
) -> pd.DataFrame:
    """Returns the hourly burn-down of one budget's current period: spend so far, then the forecast band.

    Columns: ``time`` (UTC, the end of each hour; the first row is the period start), ``kind``
    (``observed`` up to now, ``forecast`` after), ``spend_usd`` (cumulative in the period: observed, or
    the forecast median), ``spend_low_usd`` / ``spend_high_usd`` (10th / 90th percentile band of the
    forecast; equal to spend_usd for observed rows), ``limit_usd``, ``budget``. No forecast rows while the
    budget has less than ``MIN_FORECAST_HISTORY`` of calls (see ``budget_burn``).
    """
    now_at = parse_time(now) or datetime.now(timezone.utc)
    lookback_td = lookback if isinstance(lookback, timedelta) else now_at - parse_time(lookback, now=now_at)
    base = where(model=model, provider=provider, service=service, tag=tag, user=user)
    with session(store) as s:
        _, series = _burn(s, budget, base, now_at, lookback_td, half_life_h, seed)
    rows: list[dict] = []
    total = 0.0
    period_start, _ = period_bounds(budget.period, now_at)
    rows.append({"time": period_start, "kind": "observed", "spend_usd": 0.0})
    for hour, value in zip(series["hours"], series["values"], strict=True):
        total += value
        rows.append({"time": min(hour + timedelta(hours=1), now_at), "kind": "observed", "spend_usd": total})
    for row in rows:
        row["spend_low_usd"] = row["spend_high_usd"] = row["spend_usd"]
    result = series["forecast"]
    for step, (low, mid, high) in enumerate(
        zip(result.spend_low, result.spend_mid, result.spend_high, strict=True), start=1
    ):
        at = now_at + timedelta(hours=step)
        if at > series["period_end"]:
            at = series["period_end"]
        rows.append(
            {
                "time": at,
                "kind": "forecast",
                "spend_usd": total + float(mid),
                "spend_low_usd": total + float(low),
                "spend_high_usd": total + float(high),
            }
        )
        if at == series["period_end"]:
            break
    for row in rows:
        row["limit_usd"] = budget.limit_usd
        row["budget"] = budget.name
    return _frame(rows, ("time", "kind", "spend_usd", "spend_low_usd", "spend_high_usd", "limit_usd", "budget"))
