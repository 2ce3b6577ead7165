"""Returns Arrow tables of span rows built from OpenTelemetry ``ReadableSpan`` objects.

Python does only the span-level columns and one JSON text per span (``attributes``, every attribute);
the typed ``llm_calls`` columns are filled by DuckDB at insert time (``typed_columns_sql``), which parses
that JSON in C++ without holding the GIL, so a busy caller thread is not slowed down by storage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

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
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson refuses integers beyond 64 bits ("Integer exceeds 64-bit range") and lone surrogates
        return _json_wide(value)


def _json_wide(value: Any) -> str:
    # Python's json writes integers of any size as they are, so the raw value stays in `attributes` (its typed
    # column, BIGINT, gets NULL: DuckDB's json_transform turns what does not fit into NULL). Non-finite floats
    # become null, as orjson writes them.
    return json.dumps(_finite(value), default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


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


def encode_spans(spans: Iterable[Any]) -> tuple[pa.Table, list[tuple[Any, Exception]]]:
    """Returns (rows, failures): the Arrow rows (``RAW_SCHEMA``) of every span that can be encoded, and each
    span that cannot with its error. A batch is encoded at once; only when that fails is each span encoded
    alone, so that one bad span costs only itself."""
    spans = list(spans)
    try:
        return spans_to_table(spans), []
    except Exception:
        pass
    tables: list[pa.Table] = []
    failures: list[tuple[Any, Exception]] = []
    for span in spans:
        try:
            tables.append(spans_to_table([span]))
        except Exception as exc:
            failures.append((span, exc))
    return (pa.concat_tables(tables) if tables else empty_table()), failures


def first_of_each_span(table: pa.Table) -> pa.Table:
    """Returns the rows of the table with each (trace_id, span_id) once, the first of its repeats."""
    # In Arrow: a window function in the INSERT cost DuckDB several times as much (it moves whole rows).
    ids = table.select(["trace_id", "span_id"]).append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    first = ids.group_by(["trace_id", "span_id"], use_threads=False).aggregate([("_row", "min")])
    if first.num_rows == table.num_rows:
        return table
    rows = first["_row_min"]  # the row number of each span's first occurrence, in no particular order
    return table.take(rows.take(pc.sort_indices(rows)))


def start_time_range(table: pa.Table) -> tuple[int | None, int | None]:
    """Returns the smallest and largest start time of the rows, in nanoseconds (None for an empty table)."""
    starts = pc.min_max(table["start_time"].cast(pa.int64()))
    return starts["min"].as_py(), starts["max"].as_py()


def _json_type(sql_type: str) -> Any:
    return [sql_type[:-2]] if sql_type.endswith("[]") else sql_type


def typed_columns_sql(source: str) -> str:
    """Returns ``SELECT … FROM source`` giving every ``spans`` column, typed ones parsed from ``attributes``.

    Values of the wrong type (a string where a number belongs, as other instrumentations sometimes
    send) become NULL rather than failing the batch.
    """
    spec: dict[str, Any] = {}
    for column in fields.ATTRIBUTE_COLUMNS:
        if column.attribute is not None:
            spec[column.attribute] = ["VARCHAR"] if column.first else _json_type(column.sql_type)
    select = []
    for name, _ in fields.spans_columns():
        typed = fields.COLUMN_BY_NAME.get(name)
        if typed is None or typed.attribute is None:
            select.append(f'"{name}"')
            continue
        column = typed
        value = f'_typed."{column.attribute}"'
        if column.first:
            value = f"{value}[1]"
        if column.count:
            value = f"CASE WHEN {value} >= 0 THEN {value} END"
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
