"""Returns Arrow tables of ``spans`` rows built from OpenTelemetry ``ReadableSpan`` objects."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import orjson
import pyarrow as pa

from .. import fields

_TS = pa.timestamp("ns", tz="UTC")
_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR[]": pa.list_(pa.string()),
    "JSON": pa.string(),
    "TIMESTAMPTZ": _TS,
}


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _coerce(value: Any, sql_type: str) -> Any:
    """Returns value in the column's type, or None where it cannot be (a malformed source)."""
    if value is None:
        return None
    try:
        if sql_type in ("BIGINT", "INTEGER"):
            return None if isinstance(value, bool) else int(value)
        if sql_type == "DOUBLE":
            return None if isinstance(value, bool) else float(value)
        if sql_type == "BOOLEAN":
            return value if isinstance(value, bool) else str(value).lower() == "true"
        if sql_type == "VARCHAR[]":
            if isinstance(value, (str, bytes)):
                return [str(value)]
            return [str(v) for v in value]
        return value if isinstance(value, str) else str(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _array(values: list[Any], sql_type: str) -> pa.Array:
    arrow_type = _ARROW_TYPES[sql_type]
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return pa.array([_coerce(v, sql_type) for v in values], type=arrow_type)


def _attribute_column(column: fields.Column, attrs: Sequence[Any]) -> list[Any]:
    key = column.attribute
    values = [a.get(key) for a in attrs]
    if column.first:
        return [v[0] if isinstance(v, (list, tuple)) and v else (v if isinstance(v, str) else None) for v in values]
    if column.scale is not None:
        scale = column.scale
        return [v * scale if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in values]
    return values


def _hex(value: int | None, width: int) -> str | None:
    return None if not value else format(value, f"0{width}x")


# Attributes stored 1:1 in a typed column are left out of the `attributes` JSON (it holds what has no
# column): the JSON text is most of what DuckDB has to compress and write, so this halves the cost.
_IN_COLUMNS = frozenset(c.attribute for c in fields.ATTRIBUTE_COLUMNS if c.scale is None and not c.first)


def _attributes_of(span: Any) -> Any:
    # ReadableSpan.attributes wraps the dict in a new MappingProxyType per access; read it once.
    raw = getattr(span, "_attributes", None)
    return raw if raw is not None else (span.attributes or {})


def _rest_json(attrs: Any) -> str:
    return _json({k: v for k, v in attrs.items() if k not in _IN_COLUMNS})


def spans_to_table(spans: Iterable[Any]) -> pa.Table:
    """Returns an Arrow table with one ``spans`` row per ReadableSpan, columns named as in fields.py."""
    spans = list(spans)
    attrs = [_attributes_of(s) for s in spans]
    starts = [s.start_time for s in spans]
    ends = [s.end_time for s in spans]
    statuses = [s.status for s in spans]
    resources = [s.resource.attributes if s.resource is not None else {} for s in spans]
    span_values: dict[str, list[Any]] = {
        "trace_id": [_hex(s.context.trace_id, 32) for s in spans],
        "span_id": [_hex(s.context.span_id, 16) for s in spans],
        "parent_span_id": [_hex(s.parent.span_id, 16) if s.parent else None for s in spans],
        "start_time": starts,
        "end_time": ends,
        "duration_ms": [(e - b) / 1e6 if e is not None and b is not None else None for b, e in zip(starts, ends)],
        "service_name": [r.get("service.name") for r in resources],
        "status": ["error" if st.status_code.name == "ERROR" else "ok" for st in statuses],
        "attributes": [_rest_json(a) for a in attrs],
        "name": [s.name for s in spans],
        "kind": [s.kind.name if s.kind is not None else None for s in spans],
        "status_message": [st.description for st in statuses],
        "scope_name": [s.instrumentation_scope.name if s.instrumentation_scope else None for s in spans],
        "resource": [_json(dict(r)) for r in resources],
        "events": [_events_json(s) for s in spans],
    }
    columns: dict[str, pa.Array] = {}
    for name, sql_type in fields.spans_columns():
        column = fields.COLUMN_BY_NAME.get(name)
        if column is not None and column.attribute is not None:
            values = _attribute_column(column, attrs)
        else:
            values = span_values[name]
        columns[name] = _array(values, sql_type)
    return pa.table(columns)


def _events_json(span: Any) -> str | None:
    if not span.events:
        return None
    return _json([{"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})} for e in span.events])


def empty_table() -> pa.Table:
    """Returns a zero-row table with the ``spans`` columns."""
    return pa.table({name: pa.array([], type=_ARROW_TYPES[t]) for name, t in fields.spans_columns()})
