"""Returns short-lived DuckDB connections to a store file, waiting out other processes' locks.

DuckDB lets one process at a time open a file for writing, and while it does, no other process can
open it at all (not even read-only). So nobody here keeps a store open: writers open, append a batch
and close; readers open, query and close. Whoever finds the file locked retries with backoff. A writer
that still cannot get in writes its batch to a spool file (``<store>.spool/*.parquet``) that the next
writer to get in ingests, so nothing is lost while, say, a notebook holds the file open.

On top of DuckDB's own lock, every open of a store by auriko-obs is bracketed by a lock of ours on
``<store>.lock`` (``flock``: shared for readers, exclusive for writers), held from before DuckDB opens
the file until after it has closed it. Under heavy load we saw two processes that hand the file to
each other through DuckDB's lock alone lose a just-committed batch now and then (DuckDB 2.0.1, also
with no auriko-obs code involved: ``benchmarks/store_handover.py``). Our lock makes each handover
complete: the next process opens the file only once the previous one has closed it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

try:
    import fcntl
except ImportError:  # Windows: DuckDB's own lock only
    fcntl = None  # type: ignore[assignment]

from ._migrations import ensure_schema

DEFAULT_DB = "auriko_obs.duckdb"
_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


class StoreLockedError(TimeoutError):
    """The store file stayed locked by another process for longer than the wait allowed."""


def default_path() -> str:
    """Returns the store path from ``$AURIKO_OBS_DB``, or ``./auriko_obs.duckdb``."""
    return os.environ.get("AURIKO_OBS_DB") or DEFAULT_DB


def spool_dir(path: str | os.PathLike[str]) -> Path:
    """Returns the folder where batches wait when the store file is locked."""
    return Path(f"{os.fspath(path)}.spool")


def _process_lock(path: str) -> threading.Lock:
    # One process must not open the same file twice with different settings (DuckDB refuses), so
    # threads of this process take turns.
    with _process_locks_guard:
        return _process_locks.setdefault(path, threading.Lock())


def _is_lock_conflict(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def lock_path(path: str | os.PathLike[str]) -> Path:
    """Returns the file whose lock brackets every open of the store by auriko-obs."""
    return Path(f"{os.fspath(path)}.lock")


@contextmanager
def _handover_lock(path: str, *, shared: bool, deadline: float, wait_s: float) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if not shared:
            raise
        yield  # a reader of a store in a folder it cannot write to: DuckDB's own lock only
        return
    try:
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLockedError(f"store {path} stayed locked for {wait_s:.1f}s by another process") from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_writable(path: str | os.PathLike[str], *, wait_s: float = 5.0) -> str:
    """Returns the store's absolute path once it has been opened for writing (created, its schema brought up
    to date); raises ValueError saying why it cannot be a store. A store that another writer holds passes.

    An existing file must be a store already (or an empty DuckDB database): another program's database is
    refused rather than given our tables."""
    path = os.path.abspath(os.fspath(path))
    try:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with connect(path, read_only=True, wait_s=wait_s) as con:
                _check_ours(path, con)
        with connect(path, read_only=False, wait_s=wait_s):
            pass
    except StoreLockedError:
        pass
    except (duckdb.Error, OSError, RuntimeError) as exc:
        raise ValueError(f"cannot use {path} as an auriko-obs store: {_first_line(exc)}") from None
    return path


def configure(con: duckdb.DuckDBPyConnection) -> None:
    """Applies the settings every connection to a store uses."""
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB 2.0.1 computes wrong integer sums with this optimizer on (a sum cast to BIGINT after a
    # LEFT JOIN with an empty table comes out truncated to 8 bits); tests/test_analysis.py checks.
    con.execute("SET disabled_optimizers = 'compressed_materialization'")


def check_readable(path: str | os.PathLike[str], *, wait_s: float = 5.0) -> str:
    """Returns the store's absolute path once it has been opened read-only and found to be an auriko-obs
    store; raises ValueError saying, in one line, why it cannot be read as one (missing, not a DuckDB file,
    another program's database). A store that a writer holds passes: readers wait for it anyway. A lake (a
    folder of Parquet files) is returned as its root once DuckDB has read its files' columns."""
    from . import _lake

    if _lake.is_lake(path):
        return _check_readable_lake(_lake.lake_root(path))
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise ValueError(f"no auriko-obs store at {path}")
    try:
        with connect(path, read_only=True, wait_s=wait_s) as con:
            _check_ours(path, con, empty_ok=False)
    except StoreLockedError:
        pass
    except (duckdb.Error, OSError) as exc:
        raise ValueError(f"cannot read {path} as an auriko-obs store: {_first_line(exc)}") from None
    return path


def _check_readable_lake(root: str) -> str:
    from . import _lake
    from ._engines import DuckDBLake

    if not _lake.is_remote(root) and not os.path.isdir(root):
        raise ValueError(f"no lake at {root}")
    try:
        with DuckDBLake(root).open():
            pass
    except (duckdb.Error, OSError, NotImplementedError) as exc:
        raise ValueError(f"cannot read {root} as a lake: {_first_line(exc)}") from None
    return root


class _NotOurs(duckdb.Error):
    """A DuckDB database that auriko-obs did not make."""


def _check_ours(path: str, con: duckdb.DuckDBPyConnection, *, empty_ok: bool = True) -> None:
    """Raises _NotOurs unless the database has our ``spans`` table (or, with ``empty_ok``, no table at all)."""
    tables = [row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
    if "spans" in tables or (empty_ok and not tables):
        return
    if not tables:
        raise _NotOurs("it is an empty DuckDB database, without a spans table")
    listed = ", ".join(sorted(tables)[:3]) + (", …" if len(tables) > 3 else "")
    raise _NotOurs(f"it is another program's DuckDB database (tables {listed}), without a spans table")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@contextmanager
def connect(path: str | os.PathLike[str], *, read_only: bool, wait_s: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yields a connection to the store, retrying while another process holds the file.

    Raises StoreLockedError after ``wait_s`` seconds of conflicts. A writable connection has the schema
    migrated; a read-only one requires the file to exist.
    """
    path = os.path.abspath(os.fspath(path))
    if read_only and not os.path.exists(path):
        raise FileNotFoundError(f"no auriko-obs store at {path}")
    lock = _process_lock(path)
    deadline = time.monotonic() + wait_s
    delay = 0.002
    if not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with lock, _handover_lock(path, shared=read_only, deadline=deadline, wait_s=wait_s):
        while True:
            try:
                con = duckdb.connect(path, read_only=read_only)
                break
            except duckdb.Error as exc:
                if not _is_lock_conflict(exc) or time.monotonic() >= deadline:
                    if _is_lock_conflict(exc):
                        raise StoreLockedError(f"store {path} stayed locked for {wait_s:.1f}s: {exc}") from exc
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.1)
        try:
            configure(con)
            if not read_only:
                checked = _SCHEMA_CHECKED.get(path)
                if checked is None or checked != _identity(path):
                    ensure_schema(con)
            yield con
        except BaseException:
            _SCHEMA_CHECKED.pop(path, None)
            raise
        else:
            if not read_only:
                con.close()
                _SCHEMA_CHECKED[path] = _identity(path)
        finally:
            con.close()


# Store files whose schema this process brought up to date, by path → the file's identity (device,
# inode, size, modification time) right after our own writable connection closed. Checking the schema
# costs about as much as opening the file, on every batch a writer appends; while nobody else has
# written the file since (the common case: one writing process), the check is skipped. A write by
# another process, a replaced file, or a failed write of ours makes the next connection check again.
_SCHEMA_CHECKED: dict[str, tuple[int, int, int, int] | None] = {}


def _identity(path: str) -> tuple[int, int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns
