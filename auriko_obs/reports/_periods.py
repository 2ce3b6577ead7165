"""Report periods: UTC day, ISO week (Monday first) or calendar month, and the period before each.

A report for ``day``/``week``/``month`` covers the last *complete* period before ``now`` (a Monday
morning weekly report covers Monday to Sunday of the week before), which is what a scheduler wants.
``since``/``until`` select any other range; its previous period is the same length just before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

PERIOD_KINDS = ("day", "week", "month")
LOOKBACK = timedelta(days=28)  # how far before a period its report reads (the anomaly baseline)


@dataclass(frozen=True)
class Period:
    """A half-open UTC range [start, end) that a report covers."""

    kind: str  # day, week, month, or custom
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """Returns the identity of the period, used to deliver each report once per period."""
        return f"{self.kind}:{self.start.isoformat()}/{self.end.isoformat()}"

    @property
    def label(self) -> str:
        """Returns a short human label: 2026-11-24, week of 2026-11-16, November 2026, or a range."""
        if self.kind == "day":
            return self.start.strftime("%Y-%m-%d")
        if self.kind == "week":
            last_day = self.end - timedelta(days=1)
            return f"week {self.start.strftime('%G-W%V')} ({self.start:%Y-%m-%d} to {last_day:%Y-%m-%d})"
        if self.kind == "month":
            return self.start.strftime("%B %Y")
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"

    @classmethod
    def from_key(cls, key: str) -> Period:
        """Returns the period whose ``key`` this is."""
        kind, _, span = key.partition(":")
        start, _, end = span.partition("/")
        return cls(kind, datetime.fromisoformat(start), datetime.fromisoformat(end))

    def next(self) -> Period:
        """Returns the period just after this one, of the same kind (same length for custom ranges)."""
        if self.kind == "month":
            return current_period("month", self.end)
        return Period(self.kind, self.end, self.end + (self.end - self.start))

    def previous(self) -> Period:
        """Returns the period just before this one, of the same kind (same length for custom ranges)."""
        if self.kind == "month":
            return current_period("month", self.start - timedelta(days=1))
        return Period(self.kind, self.start - (self.end - self.start), self.start)


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def current_period(kind: str, now: datetime) -> Period:
    """Returns the UTC day, Monday week or month of ``kind`` that contains ``now`` (as budgets reset)."""
    from ..analysis import period_bounds

    if kind not in PERIOD_KINDS:
        raise ValueError(f"period must be one of {', '.join(PERIOD_KINDS)}, not {kind!r}")
    start, end = period_bounds({"day": "daily", "week": "weekly", "month": "monthly"}[kind], _utc(now))
    return Period(kind, start, end)


def report_period(
    kind: str, *, now: datetime | None = None, since: datetime | None = None, until: datetime | None = None
) -> Period:
    """Returns the period a report covers: the last complete ``kind`` before ``now``, or [since, until).

    With only ``since``, the range ends at ``now``; with only ``until``, it is the ``kind`` ending there.
    Raises ValueError for a range that ends before it starts, or that (with what a report reads before it)
    leaves the years 1 to 9999.
    """
    now = _utc(now or datetime.now(timezone.utc))
    if since is None and until is None:
        return current_period(kind, now).previous()
    try:
        period = _range(kind, now, since, until)
        period.previous().start - LOOKBACK  # the earliest moment the report reads must be a date too
    except OverflowError:
        raise ValueError(
            "--since/--until: the range and the period before it must lie within the years 1 to 9999"
        ) from None
    return period


def _range(kind: str, now: datetime, since: datetime | None, until: datetime | None) -> Period:
    if since is None:  # (report_period answers when neither is given)
        end = _utc(until or now)
        # the period of this kind that ends at `until`, then aligned back by one length
        length = current_period(kind, end).end - current_period(kind, end).start
        return Period("custom", end - length, end)
    since, until = _utc(since), _utc(until) if until is not None else now
    if until <= since:
        raise ValueError(f"--until ({until.isoformat()}) must be after --since ({since.isoformat()})")
    aligned = current_period(kind, since)
    if aligned.start == since and aligned.end == until:
        return aligned
    return Period("custom", since, until)
