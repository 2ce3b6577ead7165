"""The DuckDB store: ``spans`` (raw, one row per span) and ``llm_calls`` (typed view, one row per model call).

The read side loads DuckDB only (pandas when a DataFrame is made):

- ``Store(path)``: ``.calls()``, ``.sql()``, ``.summary()``, as DataFrames;
- ``read_connection(path)``: a read-only DuckDB connection whose ``spans`` and ``llm_calls`` include the
  rows waiting in the spool; ``connect(path, read_only=…)``: a plain short-lived connection (writable ones
  have the schema migrated), waiting out other processes' locks;
- ``default_path()``, ``spool_dir()``, ``parse_time()``, ``SCHEMA_VERSION``, ``ensure_schema()``;
- lakes (date-partitioned Parquet, ``_lake``): ``is_lake()``, ``lake_root()``, ``is_remote()``, ``prices_path()``,
  ``PARTITION_COLUMN``, ``PRICES_COLUMNS``; the engines behind ``Store`` (``_engines``): an open engine is a
  ``Connection`` whose ``CALLS_VIEW`` holds ``llm_calls`` and the ``HELPER_COLUMNS``.

The write side is loaded on first use (``DuckDBSpanExporter`` brings in the OpenTelemetry SDK):

- ``StoreWriter``: appends Arrow tables of span rows (``RAW_SCHEMA``: see ``_rows`` for the layout, built by
  ``encode_rows`` from ``SpanRow`` facts or ``encode_spans`` from ReadableSpans) and says what became of
  them (``WriteOutcome``): stored, spooled, held in memory, refused or lost; it holds the file while batches
  keep coming, and lets go as soon as another process or thread wants it;
- ``DuckDBSpanExporter``: the same as an OpenTelemetry ``SpanExporter``;
- ``Spool``: the Parquet files of ``<store>.spool/``, published durably, with a quarantine for files that
  cannot be read and rows that the store refuses; ``fold_spool()`` moves them into the store;
- ``write_isolating()`` and ``HeldBatches``: a batch written with its bad rows isolated, and batches held in
  memory, bounded; like ``Spool`` they know nothing of DuckDB, for any other writer of Arrow batches.
- ``LakeWriter`` and ``LakeSpanExporter``: the same rows, typed the same way, written into a lake
  (date-partitioned zstd Parquet on a file system or S3) by any number of writers at once; ``is_lake()`` and
  ``lake_root()`` tell a lake's location from a store file's.

Several processes may write to one store file at once: see ``_files`` for how, and ``_writer`` for what
happens to a batch when the file is locked, unwritable or on a full disk.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._engines import CALLS_VIEW, HELPER_COLUMNS, Connection
from ._files import (
    StoreLockedError,
    check_readable,
    check_writable,
    connect,
    default_path,
    lock_path,
    spool_dir,
)
from ._isolation import HeldBatches, write_isolating
from ._lake import PARTITION_COLUMN, PRICES_COLUMNS, PRICES_FILE, is_lake, is_remote, lake_root, prices_path
from ._lake_location import LakeLocation, check_lake_writable
from ._layout import EXTRA_ATTRIBUTES, STORED_TABLE, attributes_sql, stored_columns, unmerged_attribute_sql
from ._migrations import SCHEMA_VERSION, applied_version, ensure_schema
from ._read import read_connection
from ._spool import Spool, quarantined_in_process
from ._store import Store, parse_time

if TYPE_CHECKING:
    from ._exporter import DuckDBSpanExporter
    from ._ingest import Ingested, fold_spool, ingest_spool
    from ._lake_writer import LakeSpanExporter, LakeWriter
    from ._rows import (
        LEGACY_RAW_SCHEMA,
        RAW_SCHEMA,
        Origin,
        SpanRow,
        conform,
        encode_isolating,
        encode_rows,
        encode_spans,
        origin_of,
        spans_to_table,
    )
    from ._writer import StoreWriter, WriteOutcome

__all__ = [
    "CALLS_VIEW",
    "EXTRA_ATTRIBUTES",
    "HELPER_COLUMNS",
    "LEGACY_RAW_SCHEMA",
    "PARTITION_COLUMN",
    "PRICES_COLUMNS",
    "PRICES_FILE",
    "RAW_SCHEMA",
    "SCHEMA_VERSION",
    "STORED_TABLE",
    "Connection",
    "DuckDBSpanExporter",
    "HeldBatches",
    "Ingested",
    "LakeLocation",
    "LakeSpanExporter",
    "LakeWriter",
    "Origin",
    "SpanRow",
    "Spool",
    "Store",
    "StoreLockedError",
    "StoreWriter",
    "WriteOutcome",
    "applied_version",
    "attributes_sql",
    "check_lake_writable",
    "check_readable",
    "check_writable",
    "conform",
    "connect",
    "default_path",
    "encode_isolating",
    "encode_rows",
    "encode_spans",
    "ensure_schema",
    "fold_spool",
    "ingest_spool",
    "is_lake",
    "is_remote",
    "lake_root",
    "lock_path",
    "origin_of",
    "parse_time",
    "prices_path",
    "quarantined_in_process",
    "read_connection",
    "spans_to_table",
    "spool_dir",
    "stored_columns",
    "unmerged_attribute_sql",
    "write_isolating",
]

# The write side, imported when first used: readers must not pay for pyarrow's compute kernels or the
# OpenTelemetry SDK.
_LAZY = {
    "DuckDBSpanExporter": "._exporter",
    "Ingested": "._ingest",
    "fold_spool": "._ingest",
    "ingest_spool": "._ingest",
    "LakeSpanExporter": "._lake_writer",
    "LakeWriter": "._lake_writer",
    "RAW_SCHEMA": "._rows",
    "LEGACY_RAW_SCHEMA": "._rows",
    "Origin": "._rows",
    "SpanRow": "._rows",
    "conform": "._rows",
    "encode_isolating": "._rows",
    "encode_rows": "._rows",
    "origin_of": "._rows",
    "encode_spans": "._rows",
    "spans_to_table": "._rows",
    "StoreWriter": "._writer",
    "WriteOutcome": "._writer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
