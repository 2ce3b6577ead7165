"""Spend anomalies: an hour or a day whose cost is far above its usual level.

Method (robust z-score, Iglewicz and Hoaglin 1993). Spend is summed per bucket (hours for a daily
report, days for weekly and monthly ones), empty buckets counting as $0. Each bucket of the report
period is compared with the ``window`` buckets just before it (168 hours or 28 days), counted only
from the store's first call on:

    z = 0.6745 × (cost − median) / MAD,     MAD = median(|baseline − median|)

When MAD is 0 (a flat baseline), the mean absolute deviation × 1.2533 stands in, as the authors
advise; when that is 0 too, any rise is infinitely far. A bucket is an anomaly when z > 3.5 (the
authors' cut-off), its cost exceeds the median by at least ``min_excess_usd``, and the baseline has
at least ``min_history`` buckets. Median and MAD ignore the very outliers they look for, which a mean
and standard deviation would not: one earlier spike does not hide the next one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

THRESHOLD = 3.5
_MAD_TO_SIGMA = 0.6745
_MEAN_AD_TO_SIGMA = 1.2533


@dataclass(frozen=True)
class Anomaly:
    bucket_start: str  # ISO-8601 UTC
    granularity: str  # hour or day
    cost_usd: float
    baseline_median_usd: float
    baseline_mad_usd: float
    robust_z: float | None  # None when the baseline is flat (z is infinite)


def robust_z(value: float, baseline: Sequence[float]) -> tuple[float, float, float]:
    """Returns (z, median, MAD) of ``value`` against ``baseline``; z is inf for any rise over a flat one."""
    ordered = sorted(baseline)
    median = _median(ordered)
    mad = _median(sorted(abs(v - median) for v in ordered))
    if mad > 0:
        return _MAD_TO_SIGMA * (value - median) / mad, median, mad
    mean_ad = sum(abs(v - median) for v in ordered) / len(ordered)
    if mean_ad > 0:
        return (value - median) / (_MEAN_AD_TO_SIGMA * mean_ad), median, mad
    return (math.inf if value > median else 0.0), median, mad


def _median(ordered: Sequence[float]) -> float:
    n = len(ordered)
    mid = n // 2
    return float(ordered[mid]) if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def find_anomalies(
    buckets: Sequence[tuple[str, float]],
    first_in_period: int,
    *,
    granularity: str,
    window: int,
    min_history: int = 7,
    threshold: float = THRESHOLD,
    min_excess_usd: float = 0.01,
) -> list[Anomaly]:
    """Returns the buckets from index ``first_in_period`` on that are anomalies (see the module docstring).

    ``buckets`` are (start, cost_usd) in time order, gap-free, beginning at the store's first call or
    ``window`` buckets before the period, whichever is later.
    """
    found = []
    for i in range(first_in_period, len(buckets)):
        baseline = [cost for _, cost in buckets[max(0, i - window) : i]]
        if len(baseline) < min_history:
            continue
        start, cost = buckets[i]
        z, median, mad = robust_z(cost, baseline)
        if z > threshold and cost - median >= min_excess_usd:
            found.append(
                Anomaly(
                    start,
                    granularity,
                    round(cost, 6),
                    round(median, 6),
                    round(mad, 6),
                    None if math.isinf(z) else round(z, 2),
                )
            )
    return found
