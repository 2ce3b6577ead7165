"""Returns Arrow tables of span rows (``RAW_SCHEMA``): what every sink of spans consumes (the store, the lake).

The layout (the contract between the producers of rows and their sinks):

- one column per column of the store's ``spans`` (``fields.spans_columns()``), the typed ``llm_calls``
  columns included, filled here in Python from the span's attributes, with their SQL type's Arrow type;
- except ``attributes``, which is replaced by ``extra_attributes``: a JSON object of the attributes that
  no column holds *verbatim*. An attribute is held verbatim when its column has the attribute's own type
  (a ``str`` in a VARCHAR column, an ``int`` within range in a BIGINT one, a finite ``float`` in a DOUBLE
  one, a ``bool`` in a BOOLEAN one, a list of ``str`` in a VARCHAR[] one) and the column does not transform
  it (``Column.first``, ``scale`` or ``default``). Every other attribute stays in ``extra_attributes``
  with its value as it was, and its column (if it has one) gets the value that DuckDB's ``json_transform``
  gives, as the store always did: an integer in a DOUBLE column becomes a float, one beyond BIGINT becomes
  NULL, a string in a number column is parsed by DuckDB (``_typed_by_duckdb``).

So every attribute is in the row exactly once as itself, either in its column or in ``extra_attributes``,
and ``attributes_sql()`` gives the SQL expression that merges them back into the JSON object of *every*
attribute: the store's ``spans`` view shows it as ``attributes``, and a reader of any other sink (Parquet
files of a lake) must do the same. Rows whose ``extra_attributes`` hold every attribute (the store's rows
before schema version 7, legacy tables) merge to the same object, so old and new rows read alike.

Why: the attributes JSON of every attribute (about 1.4 KB a call) was most of what the store wrote, and
DuckDB typing the columns from it was most of what the insert cost (issue 15); a row now carries about
400 bytes of JSON and its typed values, which DuckDB appends as they are.

``LEGACY_RAW_SCHEMA`` is the older layout (span-level columns and ``attributes`` with every attribute, the
typed columns filled by DuckDB): spool files written before schema version 7 have it, and a producer may
still hand it to ``StoreWriter.write``; ``conform()`` turns either layout into ``RAW_SCHEMA``.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .. import fields
from ._layout import ATTRIBUTE_COLUMNS as _ATTRIBUTE_COLUMNS
from ._layout import EXTRA_ATTRIBUTES, stored_columns

_TS = pa.timestamp("ns", tz="UTC")
_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMPTZ": _TS,
    "VARCHAR[]": pa.list_(pa.string()),
}


RAW_SCHEMA = pa.schema([(name, _ARROW_TYPES[sql]) for name, sql in stored_columns()])

# The layout before schema version 7: span-level columns, and `attributes` with every attribute.
LEGACY_RAW_SCHEMA = pa.schema(
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


class Origin(NamedTuple):
    """What spans of one process and instrumentation share: ``service.name``, the resource as JSON, the scope."""

    service_name: str | None
    resource_json: str
    scope_name: str | None


class SpanRow(NamedTuple):
    """One span's facts, as the encoder takes them."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    start_ns: int
    end_ns: int | None
    name: str
    kind: str | None
    failed: bool  # status ERROR
    status_message: str | None
    attributes: Mapping[str, Any]
    events_json: str | None
    origin: Origin


def origin_of(resource_attributes: Mapping[str, Any] | None, scope_name: str | None) -> Origin:
    """Returns the Origin of spans with this resource (its attributes) and instrumentation scope."""
    attrs = dict(resource_attributes or {})
    service = attrs.get("service.name")
    return Origin(service if isinstance(service, str) else None, json_text(attrs), scope_name)


# ---------------------------------------------------------------- JSON text of attribute values


def json_text(value: Any) -> str:
    """Returns the JSON text of attributes (or any value), as the store keeps it."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson refuses integers beyond 64 bits ("Integer exceeds 64-bit range") and lone surrogates
        return _json_wide(value)


def _json_wide(value: Any) -> str:
    # Python's json writes integers of any size as they are, so the raw value stays in the attributes (its typed
    # column gets NULL, as DuckDB's json_transform gives). Non-finite floats become null, as orjson writes them.
    return json.dumps(_finite(value), default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ---------------------------------------------------------------- attributes → typed columns

# What a typed column takes from its attribute, by kind: verbatim (the attribute's own value, left out of
# extra_attributes) or converted (a value computed from it, the attribute kept).
_BIGINT_RANGE = (-(2**63), 2**63 - 1)
_FLOAT_INT_LIMIT = 2**1023  # integers a float holds (computed once: Python does not fold a power this large)
_INTEGER_RANGE = (-(2**31), 2**31 - 1)
_ODD = object()  # a value whose column DuckDB must work out (`_typed_by_duckdb`)
_PY_DEFAULTS = {"false": False, "true": True}


def _plain(sql_type: str) -> Callable[[Any], tuple[Any, bool]]:
    """Returns the converter of a column without transformation: value → (column value or _ODD, verbatim)."""
    low, high = _INTEGER_RANGE if sql_type == "INTEGER" else _BIGINT_RANGE
    if sql_type == "VARCHAR":
        return lambda v: (v, True) if type(v) is str else (_ODD, False)
    if sql_type in ("BIGINT", "INTEGER"):

        def integer(v: Any) -> tuple[Any, bool]:
            if type(v) is int:
                if low <= v <= high:
                    return v, True
                return (None, False) if sql_type == "BIGINT" else (_ODD, False)
            return _ODD, False

        return integer
    if sql_type == "DOUBLE":

        def double(v: Any) -> tuple[Any, bool]:
            kind = type(v)
            if kind is float:
                return (v, True) if math.isfinite(v) else (None, False)  # JSON null
            if kind is int and abs(v) < _FLOAT_INT_LIMIT:
                return float(v), False
            return _ODD, False

        return double
    if sql_type == "BOOLEAN":
        return lambda v: (v, True) if type(v) is bool else (_ODD, False)
    if sql_type == "VARCHAR[]":

        def strings(v: Any) -> tuple[Any, bool]:
            if type(v) in (tuple, list) and all(type(s) is str for s in v):
                return list(v), True
            return _ODD, False

        return strings
    raise ValueError(f"no Python conversion for a {sql_type} column")


def _converter(column: fields.Column) -> Callable[[Any], tuple[Any, bool]]:
    plain = _plain(column.sql_type if not column.first else "VARCHAR[]")
    if column.first:

        def first(v: Any) -> tuple[Any, bool]:
            value, _ = plain(v)
            return (_ODD if value is _ODD else (value[0] if value else None)), False

        return first
    if column.scale is not None:
        scale = column.scale

        def scaled(v: Any) -> tuple[Any, bool]:
            kind = type(v)
            if (kind is float and math.isfinite(v)) or (kind is int and abs(v) < _FLOAT_INT_LIMIT):
                return float(v) * scale, False
            return _ODD, False

        return scaled
    if column.default is not None:
        return lambda v: (plain(v)[0], False)
    if column.count:  # a negative count is NULL in its column, kept in extra_attributes

        def count(v: Any) -> tuple[Any, bool]:
            value, verbatim = plain(v)
            return (None, False) if value is not _ODD and value is not None and value < 0 else (value, verbatim)

        return count
    return plain


_FAST_TYPES = {"VARCHAR": str, "BIGINT": int, "INTEGER": int, "DOUBLE": float, "BOOLEAN": bool}
_NO_RANGE = (0, -1)


def _slot(index: int, column: fields.Column) -> tuple[int, Any, int, int, Callable[[Any], tuple[Any, bool]]]:
    """Returns (column index, the type its attribute is held verbatim in (None: never), that type's range for
    integers, the converter of every other value)."""
    verbatim = not (column.first or column.scale is not None or column.default)
    fast = _FAST_TYPES.get(column.sql_type) if verbatim else None
    low, high = (
        _INTEGER_RANGE if column.sql_type == "INTEGER" else _BIGINT_RANGE if column.sql_type == "BIGINT" else _NO_RANGE
    )
    if column.count:  # held verbatim only from 0 up
        low = 0
    return index, fast, low, high, _converter(column)


# attribute → its slot (`_slot`)
_SLOTS = {c.attribute: _slot(i, c) for i, c in enumerate(_ATTRIBUTE_COLUMNS) if c.attribute is not None}
_DEFAULTS = [None if c.default is None else _PY_DEFAULTS[c.default] for c in _ATTRIBUTE_COLUMNS]


def _hex(value: int | None, width: int) -> str | None:
    return None if not value else format(value, f"0{width}x")


def encode_rows(rows: Sequence[SpanRow]) -> pa.Table:
    """Returns the Arrow table (``RAW_SCHEMA``) of the rows; raises when any of them cannot be encoded."""
    n = len(rows)
    typed: list[list[Any]] = [[d] * n for d in _DEFAULTS]
    extras: list[str] = []
    odd_rows: list[int] = []
    slots = _SLOTS.get
    for i, row in enumerate(rows):
        rest: dict[str, Any] = {}
        odd = False
        for key, value in row.attributes.items():
            slot = slots(key)
            if slot is None:
                rest[key] = value
                continue
            column, fast, low, high, convert = slot
            kind = type(value)
            if kind is fast and (
                (low <= value <= high) if kind is int else (kind is not float or value - value == 0.0)
            ):  # held verbatim: the common case, decided without a call (a finite float minus itself is 0)
                typed[column][i] = value
                continue
            converted, verbatim = convert(value)
            if converted is _ODD:
                odd = True
            else:
                typed[column][i] = converted
            if not verbatim:
                rest[key] = value
        extras.append(json_text(rest))
        if odd:
            odd_rows.append(i)
    if odd_rows:
        _typed_by_duckdb([rows[i] for i in odd_rows], odd_rows, typed)
    return _table(rows, typed, extras)


def _table(rows: Sequence[SpanRow], typed: list[list[Any]], extras: list[str]) -> pa.Table:
    starts = pa.array([r.start_ns for r in rows], pa.int64())
    ends = pa.array([r.end_ns for r in rows], pa.int64())
    columns: dict[str, pa.Array] = {
        "trace_id": pa.array([_hex(r.trace_id, 32) for r in rows], pa.string()),
        "span_id": pa.array([_hex(r.span_id, 16) for r in rows], pa.string()),
        "parent_span_id": pa.array([_hex(r.parent_span_id, 16) for r in rows], pa.string()),
        "start_time": starts.cast(_TS),
        "end_time": ends.cast(_TS),
        "duration_ms": pc.divide(pc.subtract(ends, starts).cast(pa.float64()), 1e6),
        "service_name": pa.array([r.origin.service_name for r in rows], pa.string()),
        "status": pa.array(["error" if r.failed else "ok" for r in rows], pa.string()),
        EXTRA_ATTRIBUTES: pa.array(extras, pa.string()),
        "name": pa.array([r.name for r in rows], pa.string()),
        "kind": pa.array([r.kind for r in rows], pa.string()),
        "status_message": pa.array([r.status_message for r in rows], pa.string()),
        "scope_name": pa.array([r.origin.scope_name for r in rows], pa.string()),
        "resource": pa.array([r.origin.resource_json for r in rows], pa.string()),
        "events": pa.array([r.events_json for r in rows], pa.string()),
    }
    for column, values in zip(_ATTRIBUTE_COLUMNS, typed, strict=True):
        columns[column.name] = pa.array(values, RAW_SCHEMA.field(column.name).type)
    return pa.Table.from_arrays([columns[name] for name in RAW_SCHEMA.names], schema=RAW_SCHEMA)


_duckdb_lock = threading.Lock()
_duckdb_con: Any = None


def _typed_by_duckdb(rows: Sequence[SpanRow], indexes: list[int], typed: list[list[Any]]) -> None:
    """Fills the typed values of rows with attributes that DuckDB must convert (a string where a number
    belongs…): every column as ``json_transform`` types it, as the store always did. A row DuckDB cannot
    read (malformed text) keeps NULLs; the store refuses its ``extra_attributes`` in turn."""
    import duckdb

    source = pa.table({"attributes": pa.array([json_text(dict(r.attributes)) for r in rows], pa.string())})
    names = ", ".join(f'"{c.name}"' for c in _ATTRIBUTE_COLUMNS)
    query = f"SELECT {names} FROM ({_typed_select('_rows')})"
    con = _memory_cursor()
    try:
        try:
            con.register("_rows", source)
            found: list[Any] = con.execute(query).fetchall()
        except duckdb.Error:  # one row DuckDB cannot read: each row alone, so that it costs only its own values
            found = []
            for start in range(source.num_rows):
                con.register("_rows", source.slice(start, 1))
                try:
                    found.append(con.execute(query).fetchone())
                except duckdb.Error:
                    found.append(None)
        for index, values in zip(indexes, found, strict=True):
            for column, value in enumerate(values or ()):
                typed[column][index] = value
    finally:
        con.close()


def _memory_cursor() -> Any:
    """Returns a cursor of this process's in-memory DuckDB, which types what Python leaves to it."""
    global _duckdb_con
    import duckdb

    with _duckdb_lock:
        if _duckdb_con is None:
            _duckdb_con = duckdb.connect(":memory:")
            _duckdb_con.execute("SET threads = 1")
        cursor = _duckdb_con.cursor()
    cursor.execute("SET TimeZone = 'UTC'")
    return cursor


def _json_type(sql_type: str) -> Any:
    return [sql_type[:-2]] if sql_type.endswith("[]") else sql_type


def _typed_select(source: str) -> str:
    """Returns ``SELECT *, <typed column>… FROM source`` for a source with ``attributes`` holding every attribute."""
    spec: dict[str, Any] = {}
    for column in _ATTRIBUTE_COLUMNS:
        if column.attribute is not None:
            spec[column.attribute] = ["VARCHAR"] if column.first else _json_type(column.sql_type)
    select = []
    for column in _ATTRIBUTE_COLUMNS:
        value = f'_typed."{column.attribute}"'
        if column.first:
            value = f"{value}[1]"
        if column.count:
            value = f"CASE WHEN {value} >= 0 THEN {value} END"
        if column.scale is not None:
            value = f"{value} * {column.scale!r}"
        if column.default is not None:
            value = f"coalesce({value}, {column.default})"
        select.append(f'{value} AS "{column.name}"')
    spec_text = json.dumps(spec).replace("'", "''")
    return (
        f"SELECT * EXCLUDE (_typed), {', '.join(select)} "
        f"FROM (SELECT *, json_transform(attributes, '{spec_text}') AS _typed FROM {source})"
    )


def typed_columns_sql(source: str) -> str:
    """Returns ``SELECT …`` giving a span row (``RAW_SCHEMA``'s columns, in its order) for each row of a
    legacy source (``LEGACY_RAW_SCHEMA``): typed columns parsed from ``attributes``, which become the
    row's ``extra_attributes`` whole. Values of the wrong type (a string where a number belongs, as other
    instrumentations sometimes send) become NULL rather than failing the batch."""
    names = ", ".join(
        f'"attributes" AS "{EXTRA_ATTRIBUTES}"' if name == EXTRA_ATTRIBUTES else f'"{name}"'
        for name in RAW_SCHEMA.names
    )
    return f"SELECT {names} FROM ({_typed_select(source)})"


def from_legacy(table: pa.Table) -> pa.Table:
    """Returns the span rows (``RAW_SCHEMA``) of a table in the legacy layout, typed by DuckDB. A row whose
    ``attributes`` DuckDB cannot read keeps them, untyped: the store refuses that row alone in turn."""
    import duckdb

    table = table.select(LEGACY_RAW_SCHEMA.names).cast(LEGACY_RAW_SCHEMA)
    con = _memory_cursor()
    try:
        try:
            con.register("_legacy", table)
            return con.sql(typed_columns_sql("_legacy")).to_arrow_table().cast(RAW_SCHEMA)
        except duckdb.Error:
            pass
        parts = []
        for start in range(table.num_rows):
            row = table.slice(start, 1)
            con.register("_legacy", row)
            try:
                parts.append(con.sql(typed_columns_sql("_legacy")).to_arrow_table().cast(RAW_SCHEMA))
            except duckdb.Error:
                parts.append(conform(row.rename_columns([_extra_name(n) for n in row.column_names])))
        return pa.concat_tables(parts) if parts else empty_table()
    finally:
        con.close()


def _extra_name(name: str) -> str:
    return EXTRA_ATTRIBUTES if name == "attributes" else name


def conform(table: pa.Table) -> pa.Table:
    """Returns the table as span rows (``RAW_SCHEMA``): a legacy table is typed by DuckDB; columns that
    ``fields.py`` gained after the table was made are added as NULL."""
    names = set(table.column_names)
    if EXTRA_ATTRIBUTES not in names and "attributes" in names:
        return from_legacy(table)
    if table.schema.equals(RAW_SCHEMA):
        return table
    missing = [f for f in RAW_SCHEMA if f.name not in names]
    for field in missing:
        table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(RAW_SCHEMA.names).cast(RAW_SCHEMA)


# ---------------------------------------------------------------- OpenTelemetry spans → rows


def _attributes_of(span: Any) -> Any:
    # ReadableSpan.attributes wraps the dict in a new MappingProxyType per access; read the dict once.
    raw = getattr(span, "_attributes", None)
    return raw if raw is not None else (span.attributes or {})


def _events_json(span: Any) -> str | None:
    if not span.events:
        return None
    return json_text(
        [{"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})} for e in span.events]
    )


def rows_of_spans(spans: Iterable[Any]) -> list[SpanRow]:
    """Returns the SpanRow of each ReadableSpan."""
    origins: dict[tuple[int, Any], Origin] = {}  # spans of one process share one Resource
    rows = []
    for s in spans:
        scope = s.instrumentation_scope.name if s.instrumentation_scope else None
        key = (id(s.resource), scope)
        origin = origins.get(key)
        if origin is None:
            origin = origins[key] = origin_of(s.resource.attributes if s.resource is not None else None, scope)
        status = s.status
        rows.append(
            SpanRow(
                s.context.trace_id,
                s.context.span_id,
                s.parent.span_id if s.parent else None,
                s.start_time,
                s.end_time,
                s.name,
                s.kind.name if s.kind is not None else None,
                status.status_code.name == "ERROR",
                status.description,
                _attributes_of(s),
                _events_json(s),
                origin,
            )
        )
    return rows


def spans_to_table(spans: Iterable[Any]) -> pa.Table:
    """Returns an Arrow table (``RAW_SCHEMA``) with one row per ReadableSpan."""
    return encode_rows(rows_of_spans(spans))


def encode_isolating(
    rows: Sequence[Any], to_rows: Callable[[list[Any]], list[SpanRow]]
) -> tuple[pa.Table, list[tuple[Any, Exception]]]:
    """Returns (table, failures): the span rows of every item that can be encoded, and each item that
    cannot with its error. A batch is encoded at once; only when that fails is each item encoded alone, so
    that one bad item costs only itself (and an item whose typed values cannot be encoded is tried once more
    with every attribute in ``extra_attributes``, typed by DuckDB)."""
    items = list(rows)
    try:
        return encode_rows(to_rows(items)), []
    except Exception:
        pass
    tables: list[pa.Table] = []
    failures: list[tuple[Any, Exception]] = []
    for item in items:
        try:
            tables.append(encode_rows(to_rows([item])))
            continue
        except Exception:
            pass
        try:
            tables.append(_encode_all_extra(to_rows([item])))
        except Exception as exc:
            failures.append((item, exc))
    return (pa.concat_tables(tables) if tables else empty_table()), failures


def _encode_all_extra(rows: list[SpanRow]) -> pa.Table:
    typed: list[list[Any]] = [[d] * len(rows) for d in _DEFAULTS]
    _typed_by_duckdb(rows, list(range(len(rows))), typed)
    for column, values in zip(_ATTRIBUTE_COLUMNS, typed, strict=True):  # what Arrow cannot take stays NULL
        try:
            pa.array(values, RAW_SCHEMA.field(column.name).type)
        except Exception:
            values[:] = [None] * len(values)
    return _table(rows, typed, [json_text(dict(r.attributes)) for r in rows])


def encode_spans(spans: Iterable[Any]) -> tuple[pa.Table, list[tuple[Any, Exception]]]:
    """Returns (rows, failures): the Arrow rows (``RAW_SCHEMA``) of every ReadableSpan that can be encoded,
    and each span that cannot with its error (see ``encode_isolating``)."""
    return encode_isolating(list(spans), rows_of_spans)


# ---------------------------------------------------------------- batches


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


def empty_table() -> pa.Table:
    """Returns a zero-row table of span rows."""
    return RAW_SCHEMA.empty_table()
