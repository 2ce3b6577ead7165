"""OTLP trace requests (protobuf or OTLP/JSON) → Arrow tables of ``spans`` rows for the DuckDB store.

The rows have the store's legacy layout (``LEGACY_RAW_SCHEMA``: every attribute in ``attributes``), which
the store's writer (``DuckDBSpanExporter.export_table``) turns into span rows, DuckDB typing the
``llm_calls`` columns from the ``attributes`` JSON. Other instrumentations' attribute
names are mapped onto ours first (``_mapping.normalize``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, cast

import orjson
import pyarrow as pa

from ..store import LEGACY_RAW_SCHEMA as RAW_SCHEMA  # every attribute in `attributes`: the writer types them
from ._mapping import looks_genai, normalize

_KINDS = ("INTERNAL", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")  # index = OTLP SpanKind
_STATUS_ERROR = 2
_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})
# OTLP times are uint64 nanoseconds; the store's (Arrow's) are int64, which ends in April 2262.
_MAX_TIME_NS = (1 << 63) - 1
REJECTED_MESSAGE = "spans with invalid trace or span ids, or times after 2262-04-11"


class MalformedRequest(ValueError):
    """The payload cannot be decoded as an OTLP trace request (answered with 400)."""


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def any_value(value: Any) -> Any:
    """Returns the Python value of an OTLP ``AnyValue``."""
    kind = value.WhichOneof("value")
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def key_values(items: Any) -> dict[str, Any]:
    out = {}
    for kv in items:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = getattr(value, kind) if kind in _SCALARS else any_value(value)
    return out


def parse_protobuf(body: bytes | bytearray) -> Any:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(cast(bytes, body))  # protobuf reads any buffer; its stub names bytes only
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise MalformedRequest(f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    return request


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(obj: dict) -> None:
    # OTLP/JSON writes ids as hex, where the protobuf JSON mapping expects base64.
    for name in _ID_FIELDS:
        value = obj.get(name)
        if isinstance(value, str) and value:
            try:
                obj[name] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise MalformedRequest(f"{name} is not hex: {value[:40]!r}") from None


def parse_json(body: bytes | bytearray, max_spans: int | None = None) -> Any:
    """Returns the ExportTraceServiceRequest of an OTLP/JSON body. With ``max_spans``, raises
    TooManySpans for a body with more spans, or more than MAX_JSON_OBJECTS objects (counted, as an
    upper bound, by its ``{`` bytes before it is parsed)."""
    from google.protobuf.json_format import ParseDict, ParseError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    if max_spans is not None and body.count(b"{") > MAX_JSON_OBJECTS:
        raise TooManySpans(f"more than {MAX_JSON_OBJECTS} JSON objects in one request")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedRequest("an OTLP/JSON request is an object")
    if max_spans is not None:
        check_json_spans(data, max_spans)
    try:
        for resource_spans in data.get("resourceSpans") or data.get("resource_spans") or ():
            for scope_spans in resource_spans.get("scopeSpans") or resource_spans.get("scope_spans") or ():
                for span in scope_spans.get("spans") or ():
                    _hex_ids_to_base64(span)
                    for link in span.get("links") or ():
                        _hex_ids_to_base64(link)
        return ParseDict(data, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except MalformedRequest:
        raise
    except (ParseError, AttributeError, TypeError, ValueError) as exc:
        raise MalformedRequest(f"not an OTLP/JSON trace request: {exc}") from None


def count_spans(request: Any) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


class RequestTooLarge(ValueError):
    """The request is over a size limit (answered with 413)."""


class TooManySpans(RequestTooLarge):
    """The request holds more spans (or, in JSON, more objects) than one request may."""


# An OTLP/JSON request is limited by its objects too: ``orjson`` builds about 70 bytes of Python objects
# per JSON object, and a span with 40 attributes holds about 85 of them.
MAX_JSON_OBJECTS = 2_000_000


def _varint(data: bytes | bytearray, i: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while i < end and shift < 64:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7
    raise MalformedRequest("not an OTLP ExportTraceServiceRequest: a varint runs past its message")


def _skip_field(data: bytes | bytearray, i: int, end: int, key: int) -> int:
    wire = key & 7
    if wire == 2:
        length, i = _varint(data, i, end)
        return i + length
    if wire == 0:
        return _varint(data, i, end)[1]
    if wire == 1:
        return i + 8
    if wire == 5:
        return i + 4
    raise MalformedRequest(f"not an OTLP ExportTraceServiceRequest: wire type {wire}")


def _submessages(data: bytes | bytearray, i: int, end: int, number: int) -> Iterator[tuple[int, int]]:
    """Yields (start, end) of each length-delimited field ``number`` of the message in data[i:end]."""
    while i < end:
        key, i = _varint(data, i, end)
        if key == (number << 3 | 2):
            length, i = _varint(data, i, end)
            if i + length > end:
                break
            yield i, i + length
            i += length
        else:
            i = _skip_field(data, i, end, key)
    if i != end:
        raise MalformedRequest("not an OTLP ExportTraceServiceRequest: a field runs past its message")


def _spans_in_scope(data: bytes | bytearray, i: int, end: int) -> int:
    # The hot loop of the count: a span is field 2 of ScopeSpans, key byte 0x12.
    spans = 0
    while i < end:
        key = data[i]
        i += 1
        if key == 0x12:
            length = data[i] if i < end else 0x80
            if length < 0x80:
                i += 1 + length
            else:
                length, i = _varint(data, i, end)
                i += length
            spans += 1
        else:
            if key >= 0x80:
                key, i = _varint(data, i - 1, end)
            i = _skip_field(data, i, end, key)
    if i != end:
        raise MalformedRequest("not an OTLP ExportTraceServiceRequest: a span runs past its message")
    return spans


def check_protobuf_spans(body: bytes | bytearray, limit: int) -> int:
    """Returns how many spans an encoded ExportTraceServiceRequest holds, read from the wire format
    without decoding it; raises TooManySpans past ``limit`` (as soon as the count passes it) and
    MalformedRequest for broken framing. Costs about 1 µs per span, against tens for decoding."""
    spans = 0
    for rs_start, rs_end in _submessages(body, 0, len(body), 1):  # ExportTraceServiceRequest.resource_spans
        for ss_start, ss_end in _submessages(body, rs_start, rs_end, 2):  # ResourceSpans.scope_spans
            spans += _spans_in_scope(body, ss_start, ss_end)  # ScopeSpans.spans
            if spans > limit:
                raise TooManySpans(f"more than {limit} spans in one request")
    return spans


def check_json_spans(data: dict, limit: int) -> int:
    """Returns how many spans a decoded OTLP/JSON request holds; raises TooManySpans past ``limit``."""
    spans = 0
    try:
        for resource_spans in data.get("resourceSpans") or data.get("resource_spans") or ():
            for scope_spans in resource_spans.get("scopeSpans") or resource_spans.get("scope_spans") or ():
                spans += len(scope_spans.get("spans") or ())
    except (AttributeError, TypeError):
        raise MalformedRequest("not an OTLP/JSON trace request") from None
    if spans > limit:
        raise TooManySpans(f"{spans} spans in one request, over the limit of {limit}")
    return spans


# Rows are built as Python lists this many spans at a time, then moved into Arrow: the lists cost about
# ten times the memory of the Arrow rows.
_CHUNK_SPANS = 8192


def request_to_table(request: Any) -> tuple[pa.Table, int]:
    """Returns (rows, rejected): one row per valid span; spans with invalid ids or times are rejected."""
    cols: dict[str, list] = {name: [] for name in RAW_SCHEMA.names}
    batches: list[pa.RecordBatch] = []
    trace_ids, span_ids, parents = cols["trace_id"], cols["span_id"], cols["parent_span_id"]
    starts, ends, durations = cols["start_time"], cols["end_time"], cols["duration_ms"]
    services, statuses, attrs_col, names = cols["service_name"], cols["status"], cols["attributes"], cols["name"]
    kinds, messages, scopes, resources, events_col = (
        cols["kind"],
        cols["status_message"],
        cols["scope_name"],
        cols["resource"],
        cols["events"],
    )
    rejected = 0
    for resource_spans in request.resource_spans:
        resource_attrs = key_values(resource_spans.resource.attributes)
        service = resource_attrs.get("service.name")
        service = str(service) if service is not None else None
        resource_json = _dumps(resource_attrs)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name or None
            for span in scope_spans.spans:
                trace_id, span_id = span.trace_id, span.span_id
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                if (
                    len(trace_id) != 16
                    or len(span_id) != 8
                    or not any(trace_id)
                    or not any(span_id)
                    or start > _MAX_TIME_NS
                    or end > _MAX_TIME_NS
                ):
                    rejected += 1
                    continue
                attributes = key_values(span.attributes)
                if looks_genai(attributes):
                    normalize(attributes)
                trace_ids.append(trace_id.hex())
                span_ids.append(span_id.hex())
                parent = span.parent_span_id
                parents.append(parent.hex() if len(parent) == 8 and any(parent) else None)
                starts.append(start)
                ends.append(end)
                durations.append((end - start) / 1e6 if start and end else None)
                services.append(service)
                code = span.status.code
                statuses.append("error" if code == _STATUS_ERROR else "ok")
                messages.append(span.status.message or None)
                attrs_col.append(_dumps(attributes))
                names.append(span.name)
                kind = span.kind
                kinds.append(_KINDS[kind] if 0 <= kind < len(_KINDS) else "INTERNAL")
                scopes.append(scope)
                resources.append(resource_json)
                events = span.events
                events_col.append(
                    _dumps(
                        [
                            {"name": e.name, "timestamp": e.time_unix_nano, "attributes": key_values(e.attributes)}
                            for e in events
                        ]
                    )
                    if events
                    else None
                )
                if len(names) >= _CHUNK_SPANS:
                    batches.append(pa.RecordBatch.from_pydict(cols, schema=RAW_SCHEMA))
                    for column in cols.values():
                        column.clear()  # the same lists: the names bound to them above stay valid
    batches.append(pa.RecordBatch.from_pydict(cols, schema=RAW_SCHEMA))
    return pa.Table.from_batches(batches, schema=RAW_SCHEMA), rejected
