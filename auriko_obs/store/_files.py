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

A writer that writes batch after batch keeps its connection (``HeldConnection``) instead of paying DuckDB's
open and its checkpoint on every close (together most of what a batch cost): it holds the file while batches
keep coming, and lets go as soon as anyone else wants it. Whoever waits for the file, in this process or
another, says so: another process by holding a shared ``flock`` on ``<store>.wait`` while it waits, a thread
of this process by a count the holder reads. The holder looks every ``_WATCH_S`` (50 ms): when someone waits,
or when no batch came for ``idle_s`` (1 s), it finishes the batch in hand, closes the file and lets go. A
holder that let go for others waits until they are in before it takes the file again (``_YIELD_S``). So a
reader or another writer waits for at most one batch and the close, as it did for a batch before.
Before this process forks, held connections are closed: a child must never see a DuckDB instance open on
the file (it would reuse it from DuckDB's instance cache, outside our locks). A held connection is the store
file attached to an in-memory DuckDB kept for the writer's life (``_AttachingInstance``): taking the file
again costs an ``ATTACH`` (about 2 ms of CPU), not a new DuckDB instance (about 20 ms).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

import duckdb

try:
    import fcntl
except ImportError:  # Windows: DuckDB's own lock only
    fcntl = None  # type: ignore[assignment]

from ._migrations import ensure_schema

DEFAULT_DB = "auriko_obs.duckdb"
_T = TypeVar("_T")
_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()
_WATCH_S = 0.05  # how often a holder looks for anyone waiting for its file
# DuckDB's threads for a held writer's connection. Appending a batch of span rows on DuckDB's default of one
# thread a core cost 30–50% more CPU than on one (the threads split a few thousand rows and then wait for each
# other), for no gain: the batch is written off the caller's thread anyway (issue 15, docs/benchmarks.md).
WRITER_THREADS = 1
_YIELD_S = 0.5  # how long a holder that let go for others leaves them to get in
_waiting_here: dict[str, int] = {}  # path → threads of this process waiting to open it
_waiting_here_lock = threading.Lock()


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


def wait_path(path: str | os.PathLike[str]) -> Path:
    """Returns the file that processes waiting for the store hold a shared lock on, so that its holder lets go."""
    return Path(f"{os.fspath(path)}.wait")


def _take_handover_lock(path: str, *, shared: bool, deadline: float, wait_s: float) -> int | None:
    """Returns the descriptor holding the store's handover lock (None: no lock file, DuckDB's own lock only);
    raises StoreLockedError when it stayed locked until the deadline. While it waits, it says so."""
    if fcntl is None:
        return None
    try:
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if not shared:
            raise
        return None  # a reader of a store in a folder it cannot write to: DuckDB's own lock only
    waiting: int | None = None
    try:
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if waiting is None:
                    waiting = _say_waiting(path)
                if time.monotonic() >= deadline:
                    raise StoreLockedError(f"store {path} stayed locked for {wait_s:.1f}s by another process") from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.05)
    except BaseException:
        os.close(fd)
        raise
    finally:
        if waiting is not None and waiting >= 0:
            os.close(waiting)


def _say_waiting(path: str) -> int:
    """Returns a descriptor holding a shared lock on the store's wait file (-1 when it cannot be had)."""
    try:
        fd = os.open(wait_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return -1  # a folder this process cannot write to: the holder lets go when idle
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return -1
    return fd


def _others_waiting(wait_fd: int | None) -> bool:
    """Returns whether another process holds the store's wait file (is waiting for the store)."""
    if wait_fd is None or fcntl is None:
        return False
    try:
        fcntl.flock(wait_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    fcntl.flock(wait_fd, fcntl.LOCK_UN)
    return False


@contextmanager
def _handover_lock(path: str, *, shared: bool, deadline: float, wait_s: float) -> Iterator[None]:
    fd = _take_handover_lock(path, shared=shared, deadline=deadline, wait_s=wait_s)
    try:
        yield
    finally:
        if fd is not None:
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


def _acquire_turn(path: str, timeout: float | None = None) -> bool:
    """Returns True once this thread has the process's turn at the file: after another thread's, or after a
    held connection let go (it is told that someone here waits); False after ``timeout`` seconds."""
    lock = _process_lock(path)
    if lock.acquire(blocking=False):
        return True
    with _waiting_here_lock:
        _waiting_here[path] = _waiting_here.get(path, 0) + 1
    holder = _HOLDERS.get(path)
    if holder is not None:
        holder.wake()
    try:
        return lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout))
    finally:
        with _waiting_here_lock:
            _waiting_here[path] -= 1


@contextmanager
def _process_turn(path: str) -> Iterator[None]:
    _acquire_turn(path)
    try:
        yield
    finally:
        _process_lock(path).release()


def _while_locked(path: str, deadline: float, wait_s: float, attempt: Callable[[], _T]) -> _T:
    """Returns what ``attempt`` returns, trying again with a growing random pause while DuckDB says another
    process holds the file, until ``deadline`` (then StoreLockedError); any other error is raised at once."""
    delay = 0.002
    while True:
        try:
            return attempt()
        except duckdb.Error as exc:
            if not _is_lock_conflict(exc) or time.monotonic() >= deadline:
                if _is_lock_conflict(exc):
                    raise StoreLockedError(f"store {path} stayed locked for {wait_s:.1f}s: {exc}") from exc
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.1)


def _open(path: str, read_only: bool, deadline: float, wait_s: float) -> duckdb.DuckDBPyConnection:
    con = _while_locked(path, deadline, wait_s, lambda: duckdb.connect(path, read_only=read_only))
    try:
        configure(con)
        if not read_only:
            checked = _SCHEMA_CHECKED.get(path)
            if checked is None or checked != _identity(path):
                ensure_schema(con)
    except BaseException:
        _SCHEMA_CHECKED.pop(path, None)
        con.close()
        raise
    return con


def _close(path: str, con: duckdb.DuckDBPyConnection, read_only: bool, ok: bool) -> None:
    if read_only:
        con.close()
        return
    if not ok:
        _SCHEMA_CHECKED.pop(path, None)
        con.close()
        return
    con.close()
    _SCHEMA_CHECKED[path] = _identity(path)


@contextmanager
def connect(path: str | os.PathLike[str], *, read_only: bool, wait_s: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yields a connection to the store, retrying while another process holds the file.

    Raises StoreLockedError after ``wait_s`` seconds of conflicts. A writable connection has the schema
    migrated; a read-only one requires the file to exist. A connection this process holds (``HeldConnection``)
    is let go first.
    """
    path = os.path.abspath(os.fspath(path))
    if read_only and not os.path.exists(path):
        raise FileNotFoundError(f"no auriko-obs store at {path}")
    deadline = time.monotonic() + wait_s
    if not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with _process_turn(path), _handover_lock(path, shared=read_only, deadline=deadline, wait_s=wait_s):
        con = _open(path, read_only, deadline, wait_s)
        ok = False
        try:
            yield con
            ok = True
        finally:
            _close(path, con, read_only, ok)


class _AttachingInstance:
    """An in-memory DuckDB of this process that a writer attaches a store file to, and detaches it from.

    Opening a file with ``duckdb.connect`` builds a whole DuckDB instance (its catalog of functions, its
    threads): about 20 ms of CPU, paid again for every batch whenever the file was let go in between (the
    pipeline exports every 5 s, and a writer lets go after 1 s idle). ``ATTACH`` of the file to an instance
    kept for the writer's life takes the same lock and the same file, for about 1 ms; ``DETACH`` checkpoints
    and closes the file as closing a connection does. The schema is brought up to date on a connection of its
    own (``_open``), when this process has not checked it since the file last changed hands."""

    _count = 0

    def __init__(self) -> None:
        self._memory: duckdb.DuckDBPyConnection | None = None
        self._pid = 0
        _AttachingInstance._count += 1
        self._alias = f"auriko_obs_store_{_AttachingInstance._count}"

    def attach(self, path: str, deadline: float, wait_s: float) -> duckdb.DuckDBPyConnection:
        """Returns a connection whose default database is the store file, its schema up to date."""
        checked = _SCHEMA_CHECKED.get(path)
        if checked is None or checked != _identity(path):
            _close(path, _open(path, False, deadline, wait_s), False, True)
        if self._memory is None or self._pid != os.getpid():
            if self._memory is not None:  # the parent's, inherited by fork: its threads are gone, never close it
                _INHERITED.append(self._memory)
            self._memory = duckdb.connect(":memory:")
            self._memory.execute(f"SET threads = {WRITER_THREADS}")
            self._pid = os.getpid()
        con = self._memory.cursor()
        try:
            quoted = path.replace("'", "''")
            _while_locked(path, deadline, wait_s, lambda: con.execute(f"ATTACH '{quoted}' AS {self._alias}"))
            con.execute(f"USE {self._alias}")
            configure(con)
        except BaseException:
            self._drop(con)
            raise
        return con

    def detach(self, path: str, con: duckdb.DuckDBPyConnection, ok: bool) -> None:
        """Detaches the store (DuckDB checkpoints and closes the file); records its identity when ``ok``."""
        try:
            with suppress(duckdb.Error):  # a failed statement may have left its transaction open
                con.execute("ROLLBACK")
            con.execute("USE memory")
            con.execute(f"DETACH {self._alias}")
            con.close()
        except BaseException:
            _SCHEMA_CHECKED.pop(path, None)
            self._drop(con)  # closing the instance closes the file, whatever state it is in
            raise
        if ok:
            _SCHEMA_CHECKED[path] = _identity(path)
        else:
            _SCHEMA_CHECKED.pop(path, None)

    def _drop(self, con: duckdb.DuckDBPyConnection) -> None:
        memory, self._memory = self._memory, None
        for each in (con, memory):
            if each is not None:
                with suppress(Exception):
                    each.close()


# In-memory instances a forked child inherited from its parent (``_AttachingInstance``): kept, never closed.
_INHERITED: list[duckdb.DuckDBPyConnection] = []


class HeldConnection:
    """A writable connection to one store that stays open across batches, and lets go when anyone else wants
    the file or no batch came for ``idle_s`` seconds (see the module's docstring).

    ``use()`` yields the connection (opening it when it is not open); a failure inside closes it. Callers
    serialise their own use (``StoreWriter`` does, with its lock); ``release()`` may be called from any
    thread at any time."""

    def __init__(self, path: str, *, idle_s: float = 1.0) -> None:
        self.path = path
        self.idle_s = idle_s
        self.opened = 0  # connections opened: how often the file was taken
        self._lock = threading.Lock()  # held while the connection is used or closed
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock_fd: int | None = None
        self._wait_fd: int | None = None
        self._last_used = 0.0
        self._let_go_at = 0.0  # when it last let go because someone waited
        self._wake = threading.Event()
        self._watcher: threading.Thread | None = None
        self._instance = _AttachingInstance()

    @property
    def held(self) -> bool:
        return self._con is not None

    @contextmanager
    def use(self, wait_s: float) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yields the open connection; raises StoreLockedError when the file stayed locked for ``wait_s``."""
        with self._lock:
            if self._con is None:
                self._take(wait_s)
            con = self._con
            assert con is not None
            try:
                yield con
            except BaseException:
                self._let_go(ok=False)
                raise
            self._last_used = time.monotonic()

    def release(self) -> None:
        """Closes the connection (DuckDB checkpoints the file) and lets the file go; harmless when not held."""
        with self._lock:
            self._let_go(ok=True)

    def wake(self) -> None:
        """Tells the holder that a thread of this process waits for the file."""
        self._wake.set()

    # ------------------------------------------------------------ with self._lock held

    def _take(self, wait_s: float) -> None:
        path = self.path
        deadline = time.monotonic() + wait_s
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if self._let_go_at and time.monotonic() - self._let_go_at < _YIELD_S:
            self._leave_to_others(min(deadline, self._let_go_at + _YIELD_S))
        lock = _process_lock(path)
        if not _acquire_turn(path, deadline - time.monotonic()):
            raise StoreLockedError(f"store {path} stayed in use by another thread for {wait_s:.1f}s")
        try:
            self._lock_fd = _take_handover_lock(path, shared=False, deadline=deadline, wait_s=wait_s)
            self._con = self._instance.attach(path, deadline, wait_s)
        except BaseException:
            self._drop_locks(lock)
            raise
        self.opened += 1
        self._wait_fd = _open_wait_file(path)
        _HOLDERS[path] = self
        self._last_used = time.monotonic()
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(target=self._watch, name="auriko-obs-store-holder", daemon=True)
            self._watcher.start()

    def _leave_to_others(self, until: float) -> None:
        wait_fd = _open_wait_file(self.path)
        try:
            while time.monotonic() < until and (_others_waiting(wait_fd) or _waiting_here.get(self.path, 0)):
                time.sleep(0.005)
        finally:
            if wait_fd is not None:
                os.close(wait_fd)

    def _let_go(self, ok: bool) -> None:
        con = self._con
        if con is None:
            return
        self._con = None
        if _HOLDERS.get(self.path) is self:
            del _HOLDERS[self.path]
        try:
            self._instance.detach(self.path, con, ok)
        finally:
            self._drop_locks(_process_lock(self.path))

    def _drop_locks(self, process_lock: threading.Lock) -> None:
        for fd in (self._lock_fd, self._wait_fd):
            if fd is not None:
                os.close(fd)  # the handover lock goes with its descriptor
        self._lock_fd = self._wait_fd = None
        if process_lock.locked():
            process_lock.release()

    # ------------------------------------------------------------ watcher thread

    def _watch(self) -> None:
        while True:
            self._wake.wait(_WATCH_S)
            self._wake.clear()
            if self._con is None:
                return
            wanted = _waiting_here.get(self.path, 0) > 0 or _others_waiting(self._wait_fd)
            idle = time.monotonic() - self._last_used >= self.idle_s
            if not (wanted or idle):
                continue
            with self._lock:
                if self._con is None:
                    return
                if wanted:
                    self._let_go_at = time.monotonic()
                with suppress(Exception):  # the next use opens the file again, and reports what fails then
                    self._let_go(ok=True)
                return


def _open_wait_file(path: str) -> int | None:
    try:
        return os.open(wait_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None


_HOLDERS: dict[str, HeldConnection] = {}


def release_held_connections() -> None:
    """Closes every connection this process holds (before a fork, at exit)."""
    for holder in list(_HOLDERS.values()):
        with suppress(Exception):
            holder.release()


def _after_fork_in_child() -> None:
    # Locks held by threads of the parent would never be released here.
    global _waiting_here_lock, _process_locks_guard
    _process_locks.clear()
    _waiting_here.clear()
    _HOLDERS.clear()
    _waiting_here_lock = threading.Lock()
    _process_locks_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=release_held_connections, after_in_child=_after_fork_in_child)


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
