"""Appending Arrow tables of span rows to a store file: what happens to a batch when things go wrong.

Each write folds in the spool and inserts the batch, through a connection held across batches while they
keep coming, and let go as soon as another process or thread wants the file (``_files.HeldConnection``).
Then:

- the file is locked by another process for ``lock_wait_s``: the batch goes to the spool, and the next
  writer folds it in (the write succeeded: the spans are durable and will be in the store);
- the file cannot be written (not a DuckDB file, a full disk, a folder that cannot exist): the batch goes
  to the spool if it can, and the write fails (the spans are not in the store);
- neither the file nor the spool can be written (a full disk): the batch is held in memory, up to
  ``max_held_bytes`` (``$AURIKO_OBS_MAX_HELD_MB``, 64 MiB by default), and written again, oldest first,
  before every later batch and from a retry thread with backoff, until space returns. A batch that does
  not fit is lost, and counted;
- rows that DuckDB refuses are isolated and set aside in ``<store>.spool/quarantine/``; the rest of the
  batch is stored.

The first failure of each kind is logged once; every one is counted (``stats()``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from .._internal_errors import INTERNAL_ERRORS
from ._files import HeldConnection, StoreLockedError, default_path, spool_dir
from ._ingest import fold_spool, store_rows
from ._isolation import HeldBatches
from ._rows import conform
from ._spool import Spool

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("auriko_obs")

MAX_HELD_ENV = "AURIKO_OBS_MAX_HELD_MB"
DEFAULT_MAX_HELD_MB = 64
_RETRY_ROWS = 50_000  # rows per write when held batches are written again
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 30.0


@dataclass
class WriteOutcome:
    """What became of the rows of one write."""

    rows: int = 0
    stored: int = 0  # in the store file (or there already)
    spooled: int = 0  # in the spool while another process held the file: durable, stored by the next writer
    spooled_unwritable: int = 0  # in the spool because the file cannot be written
    held: int = 0  # in memory, to be written again
    refused: int = 0  # refused by the store, set aside in quarantine
    lost: int = 0  # gone: did not fit in memory, could not be set aside, could not be encoded

    @property
    def failed(self) -> int:
        """Returns how many rows are not in the store, nor on their way to it from the spool."""
        return self.spooled_unwritable + self.held + self.refused + self.lost


def max_held_bytes_from_env() -> int:
    """Returns the bound on batches held in memory, from ``$AURIKO_OBS_MAX_HELD_MB`` (MiB; 0 holds none)."""
    text = os.environ.get(MAX_HELD_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_HELD_MB << 20
    try:
        megabytes = float(text)
        if megabytes < 0:
            raise ValueError
    except ValueError:
        INTERNAL_ERRORS.warn(
            "store.max_held",
            f"{MAX_HELD_ENV}={text!r} is not a number of MiB ≥ 0; using {DEFAULT_MAX_HELD_MB}.",
        )
        return DEFAULT_MAX_HELD_MB << 20
    return int(megabytes * (1 << 20))


class StoreWriter:
    """Writes Arrow tables of span rows (``RAW_SCHEMA``; the legacy layout is accepted too) to a store file;
    safe to use from several threads and processes at once. ``write`` never raises: it says what became of
    the rows. The file stays open between writes that keep coming (``hold_idle_s``), and is let go at once
    when anyone else wants it; ``release()`` lets it go now."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        lock_wait_s: float = 2.0,
        max_held_bytes: int | None = None,
        hold_idle_s: float = 1.0,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path or default_path()))
        self.lock_wait_s = lock_wait_s
        self.connection = HeldConnection(self.path, idle_s=hold_idle_s)
        self.spool = Spool(spool_dir(self.path))
        self.held = HeldBatches(max_held_bytes_from_env() if max_held_bytes is None else max_held_bytes)
        self.exported_spans = 0  # written into the store file by this writer (held ones included)
        self.spooled_spans = 0
        self.folded_spans = 0  # moved from the spool into the store file
        self.lost_spans = 0
        self._lock = threading.Lock()
        self._retry_thread: threading.Thread | None = None
        self._retry_wake = threading.Event()
        self._closed = False
        _WRITERS.add(self)
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            INTERNAL_ERRORS.warn(
                "store.path",
                f"the store {self.path} cannot be created ({exc.strerror or exc}); calls are not stored until it "
                f"can be. Batches wait in memory (up to {self.held.max_bytes >> 20} MiB, {MAX_HELD_ENV}).",
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def stats(self) -> dict[str, Any]:
        """Returns the writer's counters (rows of spans), including what waits in memory now."""
        return {
            "stored_spans": self.exported_spans,
            "spooled_spans": self.spooled_spans,
            "folded_spans": self.folded_spans,
            "held_spans": self.held.rows,
            "held_bytes": self.held.nbytes,
            "max_held_bytes": self.held.max_bytes,
            "refused_spans": self.spool.set_aside_rows,
            "lost_spans": self.lost_spans,
            "quarantined_files": self.spool.quarantined_files,
            "connections_opened": self.connection.opened,
        }

    def write(self, table: pa.Table, *, fresh: bool = False) -> WriteOutcome:
        """Returns what became of the table's rows: stored, spooled, held in memory, refused or lost.

        ``fresh``: the rows are spans this process made just now (new random ids) and hands to a sink for the
        first time, as the instrumentation's pipeline does; their first insert then skips looking for them
        among the stored rows. Rows written again (held in memory, spooled) are always looked for, so that a
        write that failed after storing part of a batch adds no duplicate."""
        outcome = WriteOutcome(rows=table.num_rows)
        if not table.num_rows:
            return outcome
        try:
            table = conform(table)
        except Exception as exc:
            INTERNAL_ERRORS.record("store.rows", exc)
            self.lost_spans += table.num_rows
            outcome.lost += table.num_rows
            return outcome
        with self._lock:
            if len(self.held) and not self._write_held():
                self._hold(table, outcome)  # the store and the spool are still unwritable: no use trying
            elif not self._deliver(table, outcome, fresh=fresh):
                self._hold(table, outcome)
        return outcome

    def retry_held(self) -> bool:
        """Returns True once no batch waits in memory, after trying to write the held ones again."""
        with self._lock:
            return self._write_held()

    def release(self) -> None:
        """Lets the store file go now (DuckDB checkpoints it as it closes); the next write takes it again."""
        with self._lock:
            try:
                self.connection.release()
            except Exception as exc:
                INTERNAL_ERRORS.record("store.release", exc)

    def close(self) -> None:
        """Stops retrying and lets the file go; the batches still held in memory are counted lost (and logged)."""
        self._closed = True
        self._retry_wake.set()
        with self._lock:
            self._write_held()
            self._drop_held("the writer was closed")
            try:
                self.connection.release()
            except Exception as exc:
                INTERNAL_ERRORS.record("store.release", exc)

    # ------------------------------------------------------------------ with self._lock held

    def _deliver(self, table: pa.Table, outcome: WriteOutcome, *, fresh: bool = False) -> bool:
        """Returns True once the rows are stored, refused or spooled; False when nothing could be written."""
        locked = False
        try:
            with self.connection.use(self.lock_wait_s) as con:
                folded = fold_spool(con, self.spool) if self.spool.folder.exists() else None
                ingested = store_rows(con, table, self.spool, fresh=fresh)
            if folded is not None:
                self.folded_spans += folded.stored
                self.lost_spans += folded.lost
            self.lost_spans += ingested.lost
            self.exported_spans += ingested.stored
            outcome.stored += ingested.stored
            outcome.refused += ingested.set_aside
            outcome.lost += ingested.lost
            return True
        except StoreLockedError:
            locked = True
        except (duckdb.Error, OSError, RuntimeError) as exc:  # the file, not our code: a plain warning
            INTERNAL_ERRORS.warn(
                "store.write",
                f"cannot write to the store {self.path} ({str(exc).splitlines()[0]}); spans wait in "
                f"{self.spool.folder}. Further failures are counted in stats(), not logged.",
            )
        except Exception as exc:
            INTERNAL_ERRORS.record("store.write", exc)
        try:
            self.spool.publish(table)
        except Exception as exc:
            INTERNAL_ERRORS.warn(
                "store.spool",
                f"cannot write to the spool {self.spool.folder} either ({str(exc).splitlines()[0]}); batches "
                f"wait in memory (up to {self.held.max_bytes >> 20} MiB, {MAX_HELD_ENV}) and are written "
                "again until there is room.",
            )
            return False
        self.spooled_spans += table.num_rows
        if locked:
            outcome.spooled += table.num_rows
        else:
            outcome.spooled_unwritable += table.num_rows
        return True

    def _write_held(self) -> bool:
        while len(self.held):
            import pyarrow as pa

            tables = self.held.take(_RETRY_ROWS)
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
            if not self._deliver(table, WriteOutcome(rows=table.num_rows)):
                return False
            self.held.drop_oldest(len(tables))
        return True

    def _hold(self, table: pa.Table, outcome: WriteOutcome) -> None:
        if self._closed or not self.held.add(table):
            self.lost_spans += table.num_rows
            outcome.lost += table.num_rows
            INTERNAL_ERRORS.warn(
                "store.lost",
                f"spans lost: the store {self.path} and its spool cannot be written, and more than "
                f"{self.held.max_bytes >> 20} MiB of batches wait in memory ({MAX_HELD_ENV}). "
                "Every lost span is counted in stats()['store']['lost_spans'].",
            )
            return
        outcome.held += table.num_rows
        if self._retry_thread is None:
            self._retry_thread = threading.Thread(target=self._retry_loop, name="auriko-obs-store-retry", daemon=True)
            self._retry_thread.start()

    def _drop_held(self, why: str) -> None:
        lost = self.held.clear()
        if lost:
            self.lost_spans += lost
            log.warning("auriko_obs: %d spans waiting in memory for the store %s are lost: %s", lost, self.path, why)

    # ------------------------------------------------------------------ retry thread

    def _retry_loop(self) -> None:
        delay = _RETRY_FIRST_S
        while True:
            self._retry_wake.wait(delay)
            with self._lock:
                if self._closed or self._write_held():
                    self._retry_thread = None
                    return
            delay = min(delay * 2, _RETRY_MAX_S)


_WRITERS: weakref.WeakSet[StoreWriter] = weakref.WeakSet()


def _report_held_at_exit() -> None:
    for writer in list(_WRITERS):
        try:
            with writer._lock:
                if len(writer.held) and not writer._write_held():
                    writer._drop_held("the process exited while the store could not be written")
                writer.connection.release()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    # The held batches belong to the parent, which writes them; the lock may have been held by a thread that
    # does not exist in the child.
    for writer in list(_WRITERS):
        writer._lock = threading.Lock()
        writer._retry_thread = None
        writer.held.clear()


atexit.register(_report_held_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
