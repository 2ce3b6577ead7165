"""Sample instances of JSON schemas: the arguments of simulated tool calls and json_schema answers."""

from __future__ import annotations

from typing import Any

_STRING_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
}
_MAX_DEPTH = 12


def sample(schema: Any, root: Any = None, depth: int = 0, name: str = "value") -> Any:
    """Returns a value that validates against ``schema`` (objects, arrays, enums, $ref, anyOf/allOf …)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None if depth > _MAX_DEPTH else "sample"
    if "$ref" in schema:
        return sample(_resolve(schema["$ref"], root), root, depth + 1, name)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("allOf"):
        return sample(_merged(schema["allOf"], root), root, depth + 1, name)
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [s for s in schema[key] if not (isinstance(s, dict) and s.get("type") == "null")]
            return sample((options or schema[key])[0], root, depth + 1, name)
    return _SAMPLERS.get(_type_of(schema), _string)(schema, root, depth, name)


def _type_of(schema: dict) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        if "properties" in schema:
            return "object"
        if "items" in schema:
            return "array"
        return "string"
    return kind


def _resolve(ref: str, root: Any) -> Any:
    """Returns the schema a local ``#/…`` reference points to ({} when it cannot be followed)."""
    node = root
    for part in ref.lstrip("#/").split("/") if ref.startswith("#") else []:
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _merged(parts: list, root: Any) -> dict:
    merged: dict = {}
    for part in parts:
        part = _resolve(part["$ref"], root) if isinstance(part, dict) and "$ref" in part else part
        if isinstance(part, dict):
            merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
            merged.setdefault("properties", {}).update(part.get("properties") or {})
            merged["required"] = list(merged.get("required", [])) + list(part.get("required") or [])
    return merged


def _object(schema: dict, root: Any, depth: int, name: str) -> dict:
    properties = schema.get("properties") or {}
    value = {key: sample(sub, root, depth + 1, key) for key, sub in properties.items()}
    for key in schema.get("required") or []:  # required but undeclared: anything goes
        value.setdefault(key, "sample")
    return value


def _array(schema: dict, root: Any, depth: int, name: str) -> list:
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {"type": "string"}
    count = max(int(schema.get("minItems", 1)), 1)
    count = min(count, int(schema.get("maxItems", count)))
    return [sample(items, root, depth + 1, name) for _ in range(count)]


def _number(schema: dict, root: Any, depth: int, name: str) -> float | int:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    integer = _type_of(schema) == "integer"
    if low is not None and high is not None:
        value = (low + high) / 2
    elif low is not None:
        value = low + 1
    elif high is not None:
        value = high - 1
    else:
        value = 42 if integer else 4.5
    return int(value) if integer else float(value)


def _string(schema: dict, root: Any, depth: int, name: str) -> str:
    if schema.get("format") in _STRING_FORMATS:
        return _STRING_FORMATS[schema["format"]]
    text = f"sample {name}"
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    text = text.ljust(low, "x")
    return text[: int(high)] if high is not None else text


_SAMPLERS = {
    "object": _object,
    "array": _array,
    "integer": _number,
    "number": _number,
    "string": _string,
    "boolean": lambda schema, root, depth, name: True,
    "null": lambda schema, root, depth, name: None,
}
