"""A lake: date-partitioned Parquet files that any engine reads, written by many collectors without coordination.

Layout (the contract between writers and readers)::

    <root>/date=YYYY-MM-DD/<any name>.parquet       one folder per UTC date of the spans' start_time
    <root>/_auriko_obs/provider_prices.parquet      the price cache of ``analysis.refresh_prices`` (optional)

Each file holds rows of the store's ``spans`` table: the ``llm_calls`` columns of ``fields.py`` and the raw
span columns, with ``attributes``, ``resource`` and ``events`` as JSON text. A file may lack columns that
``fields.py`` gained after it was written: readers fill them with NULL. A writer publishes a file by renaming
it from a temporary name that starts with a dot (names starting with ``.`` or ``_`` are skipped by every
reader: DuckDB reads ``*.parquet`` in the date folders, Spark skips them as hidden). A span may be in the lake more
than once (an exporter's retry, two collectors): readers keep one row per (trace_id, span_id) of a date.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from .. import fields

PARTITION_COLUMN = "date"
PRICES_FILE = "_auriko_obs/provider_prices.parquet"
_REMOTE_SCHEMES = ("s3", "s3a", "gs", "gcs", "abfs", "az", "hdfs")

# provider_prices as the DuckDB store defines it (store/_migrations.py m003), for lakes without a price file.
PRICES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("position", "INTEGER"),
    ("input_usd_per_1m", "DOUBLE"),
    ("output_usd_per_1m", "DOUBLE"),
    ("data_policy", "VARCHAR"),
    ("source", "VARCHAR"),
    ("fetched_at", "TIMESTAMPTZ"),
)


def is_lake(location: str | os.PathLike[str]) -> bool:
    """Returns whether ``location`` names a lake rather than a DuckDB file: a URI with a scheme (``s3://…``,
    ``file://…``), an existing folder, or a path ending in a slash."""
    text = os.fspath(location)
    scheme = urlsplit(text).scheme.lower()
    if scheme == "file" or scheme in _REMOTE_SCHEMES:
        return True
    return text.endswith(("/", os.sep)) or os.path.isdir(text)


def lake_root(location: str | os.PathLike[str]) -> str:
    """Returns the lake's root without a trailing slash: an absolute path for local lakes, the URI otherwise."""
    text = os.fspath(location)
    parts = urlsplit(text)
    if parts.scheme.lower() == "file":
        text = parts.path
    elif parts.scheme.lower() in _REMOTE_SCHEMES:
        return text.rstrip("/")
    return os.path.abspath(text)


def is_remote(root: str) -> bool:
    """Returns whether the lake is on an object store rather than a local (or mounted) file system."""
    return urlsplit(root).scheme.lower() in _REMOTE_SCHEMES


def files_glob(root: str) -> str:
    """Returns the glob of every data file of the lake."""
    return f"{root}/{PARTITION_COLUMN}=*/*.parquet"


def has_files(root: str) -> bool:
    """Returns whether a local lake holds any data file (an empty lake reads as empty tables)."""
    import glob

    return next(iter(glob.iglob(files_glob(glob.escape(root)))), None) is not None


def prices_path(root: str) -> str:
    return f"{root}/{PRICES_FILE}"


def spans_columns() -> list[tuple[str, str]]:
    """Returns (name, DuckDB type) of the columns a lake file holds (the ``spans`` columns of ``fields.py``)."""
    return fields.spans_columns()
