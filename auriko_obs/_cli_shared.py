"""What the ``auriko-obs`` commands share: the one-line error, the ``--db`` option, store paths.

The commands themselves live beside what they drive (``_core_commands``, ``otlp/_commands``,
``reports/_commands``, ``dashboard/_commands``); ``auriko_obs.cli`` adds each of them to the group. This
module imports only click, so that any command module can use it without loading anything else.
"""

from __future__ import annotations

import os

import click


class UserError(Exception):
    """Bad input or an unusable environment: reported in one line, exit code 2."""


def cannot_listen(host: str, port: int, exc: OSError) -> UserError:
    """Returns the one-line error for a server that cannot bind ``host:port`` (port taken, unknown host…)."""
    return UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


db_option = click.option(
    "--db",
    # Text, not a Path: a Path would turn an s3:// lake into s3:/.
    type=click.Path(path_type=str),
    default=None,
    help="Store: a DuckDB file, or for reading a lake: a folder of date=YYYY-MM-DD/*.parquet files or "
    "s3://bucket/prefix (default: $AURIKO_OBS_DB or ./auriko_obs.duckdb).",
)


def db_path(db: str | os.PathLike[str] | None) -> str:
    """Returns the store path a command uses: ``--db``, else ``$AURIKO_OBS_DB``, else ``./auriko_obs.duckdb``."""
    from .store import default_path

    return os.fspath(db) if db else default_path()


def readable_db_path(db: str | os.PathLike[str] | None) -> str:
    """Returns the absolute path of an existing store for a command that reads it; anything else is a UserError."""
    from .store import check_readable

    try:
        return check_readable(db_path(db))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def writable_db_path(db: str | os.PathLike[str] | None) -> str:
    """Returns the absolute store path for a command that writes to it; a file that cannot be a store is a UserError."""
    from .store import check_writable, is_lake

    if is_lake(db_path(db)):
        raise UserError(f"{db_path(db)} is a lake (a folder): this command writes to a DuckDB store file")
    try:
        return check_writable(db_path(db))
    except ValueError as exc:
        raise UserError(str(exc)) from None
