"""Forecast of when a budget runs out, from hourly spend: decayed rate plus a weighted block bootstrap.

The method, in full:

1. Spend is summed per hour over a look-back window (default 7 days, or since the first call when the
   store is younger). Hours without calls count as 0. The current, unfinished hour is scaled up to a
   full hour and weighted by the fraction of it that has passed.
2. Hour *i* (0 = newest) gets the weight ``0.5 ** (i / half_life_h)``. The **burn rate** is the weighted
   mean of hourly spend, so recent traffic counts most and a workload that just started or stopped
   shows within a few half-lives, while one burst does not dominate.
3. The **point forecast** of exhaustion is ``remaining / rate`` hours from now.
4. The **band** comes from a weighted moving-block bootstrap: each of ``paths`` simulated futures is
   built from blocks of ``block_h`` consecutive past hours, a block starting at hour *i* drawn with
   probability proportional to its weight, so bursts keep their length and recent behaviour
   dominates. Each path's exhaustion time is when its cumulative spend reaches the remaining budget;
   the band is the 10th and 90th percentile of those times, and ``exhaust_probability`` the share of
   paths that run out before the period resets.

A straight line through the period's cumulative spend, by contrast, weighs every hour of the period
alike and knows nothing before the period began; on bursty traffic whose level shifts it is late to
see the shift and is thrown by one early burst (``tests/test_analysis_budgets.py`` measures both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Forecast:
    """The forecast for one budget; times are hours from now, ``math.inf`` when not before the horizon."""

    rate_usd_per_h: float
    exhausts_in_h: float
    exhausts_in_h_low: float  # 10th percentile of the bootstrap exhaustion times (early side)
    exhausts_in_h_high: float  # 90th percentile (late side)
    exhaust_probability: float
    # Cumulative extra spend after 1, 2, … horizon hours: 10th, 50th, 90th percentile over the paths.
    spend_low: Any = field(default=None, repr=False)
    spend_mid: Any = field(default=None, repr=False)
    spend_high: Any = field(default=None, repr=False)


def decay_weights(n: int, half_life_h: float) -> Any:
    """Returns weights of hours 0..n-1 (oldest first): ``0.5 ** (age / half_life_h)``, age 0 for the newest."""
    import numpy as np

    ages = np.arange(n - 1, -1, -1, dtype=float)
    return np.power(0.5, ages / float(half_life_h))


def decayed_rate(hourly_usd: Sequence[float], half_life_h: float = 12.0, *, last_fraction: float = 1.0) -> float:
    """Returns the exponentially decayed mean of hourly spend (USD per hour); 0 for an empty series.

    ``last_fraction`` is how much of the last (current) hour has passed: its spend is scaled to a full
    hour and its weight reduced by that fraction.
    """
    import numpy as np

    values, weights = _prepared(hourly_usd, half_life_h, last_fraction)
    if values.size == 0 or weights.sum() <= 0:
        return 0.0
    return float(np.dot(values, weights) / weights.sum())


def _prepared(hourly_usd: Sequence[float], half_life_h: float, last_fraction: float) -> tuple[Any, Any]:
    import numpy as np

    values = np.asarray(hourly_usd, dtype=float).copy()
    weights = decay_weights(values.size, half_life_h)
    if values.size and 0 < last_fraction < 1:
        values[-1] /= last_fraction
        weights[-1] *= last_fraction
    return values, weights


def forecast(
    hourly_usd: Sequence[float],
    remaining_usd: float,
    horizon_h: float,
    *,
    half_life_h: float = 12.0,
    block_h: int = 4,
    paths: int = 500,
    seed: int = 0,
    last_fraction: float = 1.0,
) -> Forecast:
    """Returns the exhaustion forecast for a budget with ``remaining_usd`` left and ``horizon_h`` hours to reset."""
    import numpy as np

    rate = decayed_rate(hourly_usd, half_life_h, last_fraction=last_fraction)
    remaining = max(float(remaining_usd), 0.0)
    point = _hours_at_rate(remaining, rate, horizon_h)
    steps = max(math.ceil(horizon_h), 1)
    values, weights = _prepared(hourly_usd, half_life_h, last_fraction)
    if values.size == 0 or not np.any(values > 0):
        empty = np.zeros(steps)
        exhausted = remaining <= 0
        at = 0.0 if exhausted else math.inf
        return Forecast(rate, point, at, at, 1.0 if exhausted else 0.0, empty, empty, empty)
    cumulative = np.cumsum(_bootstrap(values, weights, steps, block_h, paths, seed), axis=1)
    times = np.array([_crossing(row, remaining) for row in cumulative])
    times = np.where(times <= horizon_h, times, math.inf)
    low, high = np.quantile(times, [0.1, 0.9], method="inverted_cdf")
    bands = np.quantile(cumulative, [0.1, 0.5, 0.9], axis=0)
    return Forecast(rate, point, float(low), float(high), float(np.isfinite(times).mean()), *bands)


def _hours_at_rate(remaining: float, rate: float, horizon_h: float) -> float:
    if remaining <= 0:
        return 0.0
    if rate <= 0:
        return math.inf
    hours = remaining / rate
    return hours if hours <= horizon_h else math.inf


def _bootstrap(values: Any, weights: Any, steps: int, block_h: int, paths: int, seed: int) -> Any:
    """Returns a (paths, steps) array of future hourly spend made of weighted blocks of past hours."""
    import numpy as np

    rng = np.random.default_rng(seed)
    block = max(1, min(int(block_h), values.size))
    starts = values.size - block + 1
    # A block is drawn with the weight of its newest hour, so recent behaviour dominates.
    probabilities = weights[block - 1 : block - 1 + starts]
    probabilities = probabilities / probabilities.sum()
    blocks_per_path = -(-steps // block)
    chosen = rng.choice(starts, size=(paths, blocks_per_path), p=probabilities)
    index = chosen[:, :, None] + np.arange(block)[None, None, :]
    return values[index].reshape(paths, -1)[:, :steps]


def _crossing(cumulative: Any, remaining: float) -> float:
    """Returns the hours until a cumulative path reaches ``remaining`` (linear within the hour), inf if never."""
    import numpy as np

    if remaining <= 0:
        return 0.0
    k = int(np.searchsorted(cumulative, remaining, side="left"))
    if k >= cumulative.size:
        return math.inf
    before = cumulative[k - 1] if k > 0 else 0.0
    step = cumulative[k] - before
    return k + ((remaining - before) / step if step > 0 else 1.0)
