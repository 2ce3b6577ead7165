"""Stores with known contents: the real schema (migrations and all), rows written straight into ``spans``."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from auriko_obs import fields
from auriko_obs.store import connect

_ids = itertools.count(1)
_COLUMNS = [name for name, _ in fields.spans_columns()]


def utc(text: str) -> datetime:
    """Returns an aware UTC datetime from an ISO string ending in Z or an offset."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def call(start: str, **values: Any) -> dict:
    """Returns a span row of a successful chat call started at ``start``; keyword arguments set columns.

    ``attributes`` may be a dict (stored as JSON). Unknown column names raise KeyError.
    """
    unknown = set(values) - set(_COLUMNS)
    if unknown:
        raise KeyError(f"not spans columns: {sorted(unknown)}")
    n = next(_ids)
    begin = utc(start)
    row: dict[str, Any] = {
        "trace_id": f"{n:032x}",
        "span_id": f"{n:016x}",
        "start_time": begin,
        "operation": "chat",
        "status": "ok",
        "service_name": "svc",
        "duration_ms": 100.0,
        "name": "chat",
        "kind": "CLIENT",
        "attributes": {},
    }
    row.update(values)
    row["end_time"] = row["start_time"] + timedelta(milliseconds=row["duration_ms"] or 0)
    if isinstance(row["attributes"], dict):
        row["attributes"] = json.dumps(row["attributes"])
    return row


def make_store(path: str, rows: Iterable[dict] = (), prices: Iterable[tuple] = ()) -> str:
    """Returns ``path`` after creating a store there with the real schema code and inserting ``rows``.

    ``prices`` are (model, provider, position, input_usd_per_1m, output_usd_per_1m) rows of the
    provider price cache.
    """
    with connect(path, read_only=False, wait_s=10) as con:
        for row in rows:  # into the table behind the `spans` view; every attribute in extra_attributes
            names = list(row)
            columns = ["extra_attributes" if n == "attributes" else n for n in names]
            con.execute(
                f"INSERT INTO span_rows ({', '.join(columns)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names],
            )
        for model, provider, position, input_price, output_price in prices:
            con.execute(
                "INSERT INTO provider_prices VALUES (?, ?, ?, ?, ?, NULL, 'test', now())",
                [model, provider, position, input_price, output_price],
            )
    return path
