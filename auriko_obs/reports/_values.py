"""JSON-ready values from DuckDB/pandas results: NULL, NaN and NaT become None (or 0 where a sum is meant)."""

from __future__ import annotations

from datetime import timezone
from typing import Any


def missing(value: Any) -> bool:
    """Returns whether ``value`` is None, NaN or NaT."""
    import pandas as pd

    return value is None or (not isinstance(value, (str, list, dict)) and bool(pd.isna(value)))


def iso(moment: Any) -> str | None:
    """Returns a datetime (or pandas Timestamp) as ISO-8601 UTC ending in Z; None when missing."""
    if missing(moment):
        return None
    if hasattr(moment, "to_pydatetime"):
        moment = moment.to_pydatetime()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def number(value: Any, digits: int = 6) -> float:
    """Returns ``value`` rounded, 0.0 when missing (a sum over nothing)."""
    return 0.0 if missing(value) else round(float(value), digits)


def number_or_none(value: Any, digits: int = 6) -> float | None:
    """Returns ``value`` rounded, None when missing (unknown)."""
    return None if missing(value) else round(float(value), digits)


def text(value: Any) -> str | None:
    return None if missing(value) else str(value)


def integer(value: Any) -> int | None:
    return None if missing(value) else int(value)
