"""The DuckDB store: ``spans`` (raw, one row per span) and ``llm_calls`` (typed view, one row per model call).

Several processes may write to one store file at once: see ``_files`` for how.
"""

from ._exporter import DuckDBSpanExporter
from ._files import StoreLockedError, check_readable, check_writable, default_path, spool_dir
from ._rows import spans_to_table
from ._schema import SCHEMA_VERSION, ensure_schema
from ._store import Store, parse_time

__all__ = [
    "SCHEMA_VERSION",
    "DuckDBSpanExporter",
    "Store",
    "StoreLockedError",
    "check_readable",
    "check_writable",
    "default_path",
    "ensure_schema",
    "parse_time",
    "spans_to_table",
    "spool_dir",
]
