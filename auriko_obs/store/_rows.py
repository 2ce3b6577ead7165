"""Returns Arrow tables of span rows built from OpenTelemetry ``ReadableSpan`` objects.

Python does only the span-level columns and one JSON text per span (``attributes``, every attribute);
the typed ``llm_calls`` columns are filled by DuckDB at insert time (``typed_columns_sql``), which parses
that JSON in C++ without holding the GIL, so a busy caller thread is not slowed down by storage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson
import pyarrow as pa

from .. import fields

_TS = pa.timestamp("ns", tz="UTC")

# The columns Python fills; the rest of `spans` comes from `attributes` in SQL.
RAW_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_span_id", pa.string()),
        ("start_time", _TS),
        ("end_time", _TS),
        ("duration_ms", pa.float64()),
        ("service_name", pa.string()),
        ("status", pa.string()),
        ("attributes", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("status_message", pa.string()),
        ("scope_name", pa.string()),
        ("resource", pa.string()),
        ("events", pa.string()),
    ]
)


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _attributes_of(span: Any) -> Any:
    # ReadableSpan.attributes wraps the dict in a new MappingProxyType per access; read the dict once.
    raw = getattr(span, "_attributes", None)
    return raw if raw is not None else (span.attributes or {})


def _hex(value: int | None, width: int) -> str | None:
    return None if not value else format(value, f"0{width}x")


def _events_json(span: Any) -> str | None:
    if not span.events:
        return None
    return _json(
        [{"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})} for e in span.events]
    )


def spans_to_table(spans: Iterable[Any]) -> pa.Table:
    """Returns an Arrow table (``RAW_SCHEMA``) with one row per ReadableSpan."""
    spans = list(spans)
    starts = [s.start_time for s in spans]
    ends = [s.end_time for s in spans]
    statuses = [s.status for s in spans]
    resource_json: dict[int, tuple[str | None, str]] = {}  # spans of one process share one Resource
    for s in spans:
        if id(s.resource) not in resource_json:
            attrs = dict(s.resource.attributes) if s.resource is not None else {}
            resource_json[id(s.resource)] = (attrs.get("service.name"), _json(attrs))
    resources = [resource_json[id(s.resource)] for s in spans]
    columns = {
        "trace_id": [_hex(s.context.trace_id, 32) for s in spans],
        "span_id": [_hex(s.context.span_id, 16) for s in spans],
        "parent_span_id": [_hex(s.parent.span_id, 16) if s.parent else None for s in spans],
        "start_time": starts,
        "end_time": ends,
        "duration_ms": [
            (e - b) / 1e6 if e is not None and b is not None else None for b, e in zip(starts, ends, strict=True)
        ],
        "service_name": [r[0] for r in resources],
        "status": ["error" if st.status_code.name == "ERROR" else "ok" for st in statuses],
        "attributes": [_json(_attributes_of(s)) for s in spans],
        "name": [s.name for s in spans],
        "kind": [s.kind.name if s.kind is not None else None for s in spans],
        "status_message": [st.description for st in statuses],
        "scope_name": [s.instrumentation_scope.name if s.instrumentation_scope else None for s in spans],
        "resource": [r[1] for r in resources],
        "events": [_events_json(s) for s in spans],
    }
    return pa.Table.from_pydict(columns, schema=RAW_SCHEMA)


def _json_type(sql_type: str) -> Any:
    return [sql_type[:-2]] if sql_type.endswith("[]") else sql_type


def typed_columns_sql(source: str) -> str:
    """Returns ``SELECT … FROM source`` giving every ``spans`` column, typed ones parsed from ``attributes``.

    Values of the wrong type (a string where a number belongs, as other instrumentations sometimes
    send) become NULL rather than failing the batch.
    """
    spec: dict[str, Any] = {}
    for column in fields.ATTRIBUTE_COLUMNS:
        spec[column.attribute] = ["VARCHAR"] if column.first else _json_type(column.sql_type)
    select = []
    for name, _ in fields.spans_columns():
        column = fields.COLUMN_BY_NAME.get(name)
        if column is None or column.attribute is None:
            select.append(f'"{name}"')
            continue
        value = f'_typed."{column.attribute}"'
        if column.first:
            value = f"{value}[1]"
        if column.scale is not None:
            value = f"{value} * {column.scale!r}"
        if column.default is not None:
            value = f"coalesce({value}, {column.default})"
        select.append(f'{value} AS "{name}"')
    spec_text = json.dumps(spec).replace("'", "''")
    return (
        f"SELECT {', '.join(select)} FROM (SELECT *, json_transform(attributes, '{spec_text}') AS _typed FROM {source})"
    )


def empty_table() -> pa.Table:
    """Returns a zero-row table with the raw columns."""
    return RAW_SCHEMA.empty_table()
