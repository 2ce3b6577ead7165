"""The layout of stored span rows, in SQL terms only (no pyarrow: the read side imports it).

``span_rows`` holds one row per span: the columns of ``spans`` (``fields.spans_columns()``), except that
``attributes`` is replaced by ``extra_attributes``, the JSON object of the attributes that no column holds
verbatim (``_rows`` says when a column does). ``attributes_sql()`` merges both back into the JSON object of
every attribute, which the ``spans`` view shows as ``attributes``.
"""

from __future__ import annotations

from .. import fields

STORED_TABLE = "span_rows"
EXTRA_ATTRIBUTES = "extra_attributes"
ATTRIBUTE_COLUMNS = tuple(c for c in fields.ATTRIBUTE_COLUMNS if c.attribute is not None)
# The columns that may hold their attribute verbatim (left out of extra_attributes): a column that transforms
# its attribute (first element, scaled, defaulted) never does, and its attribute is always kept.
VERBATIM_COLUMNS = tuple(c for c in ATTRIBUTE_COLUMNS if not (c.first or c.scale is not None or c.default))


def stored_columns() -> list[tuple[str, str]]:
    """Returns (name, DuckDB type) of each column of a span row: the ``spans`` columns, with
    ``extra_attributes`` (JSON) in place of ``attributes``."""
    return [(EXTRA_ATTRIBUTES if name == "attributes" else name, sql) for name, sql in fields.spans_columns()]


def attributes_sql(alias: str = "") -> str:
    """Returns the SQL expression of the JSON object of every attribute of a span row (aliased ``alias``):
    ``extra_attributes`` and the columns holding attributes verbatim, merged.

    Columns that are NULL add nothing; where an attribute is in both (a row whose ``extra_attributes`` hold
    every attribute, or a value its column converted) the one in ``extra_attributes`` is the original and
    wins; an attribute whose value is JSON null (a non-finite float) stays, as null. It is three
    ``json_merge_patch`` calls a row, paid only by queries that read ``attributes``."""
    prefix = f"{alias}." if alias else ""
    pairs = ", ".join(f"'{c.attribute}', {prefix}\"{c.name}\"" for c in VERBATIM_COLUMNS)
    extra = f"coalesce({prefix}{EXTRA_ATTRIBUTES}, '{{}}')"
    columns = f"json_merge_patch('{{}}', json_object({pairs}))"  # patching {} leaves the NULL columns out
    return f"json_merge_patch(json_merge_patch({extra}, {columns}), json_merge_patch('{{}}', {extra}))"


def spans_select_sql(source: str) -> str:
    """Returns ``SELECT`` of the ``spans`` columns, ``attributes`` merged, from a source of span rows, and
    ``extra_attributes`` last: reading an attribute that has no column there costs no merge."""
    columns = ", ".join(
        f"{attributes_sql('r')}::JSON AS attributes" if name == "attributes" else f'r."{name}"'
        for name, _ in fields.spans_columns()
    )
    return f"SELECT {columns}, r.{EXTRA_ATTRIBUTES} FROM {source} AS r"


def unmerged_attribute_sql(name: str) -> str:
    """Returns the SQL expression of an attribute that no column holds (``fields.py`` gives it none), as text,
    read from ``extra_attributes`` of ``spans``: without the merge that ``attributes`` costs every row."""
    if any(c.attribute == name for c in ATTRIBUTE_COLUMNS):
        raise ValueError(f"{name} has a column: read the column")
    path = '$."' + name.replace('"', '\\"') + '"'
    return f"json_extract_string({EXTRA_ATTRIBUTES}, '{path}')"
