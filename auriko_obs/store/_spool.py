"""A folder of Parquet files waiting to be written elsewhere: the store's spool, ``<store>.spool/``.

A file is published whole or not at all: it is written under a temporary name, fsynced, renamed into
place, and the folder is fsynced, so that a crash leaves either no file or a complete one. A file that
cannot be read all the same (0 bytes, garbage, a disk that lied) is moved to ``quarantine/`` inside
the folder, logged and counted, and everything else goes on: one bad file never stops a write or a
read. Rows that their destination refuses are set aside in ``quarantine/`` too, as Parquet.

Nothing here knows about DuckDB (only Arrow tables and files), so any writer of Parquet batches can
spool, quarantine and set rows aside the same way.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("auriko_obs")

QUARANTINE = "quarantine"
_SUFFIX = ".parquet"
_TEMPORARY = ".tmp"
# A temporary file older than this was left by a writer that crashed mid-write: nobody will rename it.
_STALE_TEMPORARY_S = 3600.0
_sequence = itertools.count(1)  # unique names for files published by this process, whatever the Spool object
_quarantined_lock = threading.Lock()
_quarantined_in_process: list[Path] = []


def quarantined_in_process() -> list[Path]:
    """Returns where each spool file that this process moved to quarantine went, oldest first."""
    with _quarantined_lock:
        return list(_quarantined_in_process)


def _fsync_folder(folder: Path) -> None:
    # Makes a rename (or an unlink) in the folder durable. Not every platform can open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Spool:
    """The Parquet files of one spool folder: publish, list, read, quarantine."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.quarantine_folder = self.folder / QUARANTINE
        self.quarantined_files = 0  # moved to quarantine by this object
        self.set_aside_rows = 0  # rows written to quarantine by this object

    def __repr__(self) -> str:
        return f"Spool({str(self.folder)!r})"

    def pending(self) -> list[Path]:
        """Returns the published files, oldest first (empty when the folder does not exist)."""
        try:
            return sorted(self.folder.glob(f"*{_SUFFIX}"))
        except OSError:
            return []

    def quarantined(self) -> list[Path]:
        """Returns the files in quarantine: unreadable spool files and rows set aside."""
        try:
            return sorted(p for p in self.quarantine_folder.iterdir() if p.is_file())
        except OSError:
            return []

    def publish(self, table: pa.Table) -> Path:
        """Returns the new file holding the table, complete and durable; raises OSError (a full disk…)
        having left nothing behind."""
        return _write_durably(table, self.folder, _unique_name())

    def read(self, file: Path, schema: pa.Schema) -> pa.Table | None:
        """Returns the file's rows with the columns of ``schema``, or None: when the file has gone (another
        process took it), when the machine cannot read it now (left in place), or when its content cannot be
        read (moved to quarantine)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        reason: Exception
        try:
            table = pq.read_table(file)
            return table.select(schema.names).cast(schema)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno is not None:  # the machine, not the file (permissions, too many open files): next time
                log.warning("auriko_obs: cannot read the spool file %s now (%s); it stays for later", file, exc)
                return None
            reason = exc  # pyarrow's own OSError without errno: corrupt data (a bad compressed page)
        except (pa.ArrowException, KeyError, ValueError) as exc:
            reason = exc
        self.quarantine(file, f"{type(reason).__name__}: {str(reason).splitlines()[0] if str(reason) else ''}")
        return None

    def quarantine(self, file: Path, reason: str) -> Path | None:
        """Returns where the unreadable file went, or None when it could not be moved (it is then left in
        place; readers skip it again next time)."""
        target = self.quarantine_folder / file.name
        try:
            self.quarantine_folder.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target = target.with_name(f"{file.stem}-{time.time_ns()}{file.suffix}")
            os.replace(file, target)
            _fsync_folder(self.folder)
            _fsync_folder(self.quarantine_folder)
        except FileNotFoundError:
            return None  # another process quarantined or ingested it first
        except OSError as exc:
            log.warning("auriko_obs: cannot move the unreadable spool file %s to quarantine (%s)", file, exc)
            return None
        self.quarantined_files += 1
        with _quarantined_lock:
            _quarantined_in_process.append(target)
        log.warning(
            "auriko_obs: the spool file %s cannot be read (%s); moved it to %s. Its spans are not in the store.",
            file,
            reason,
            target,
        )
        return target

    def set_aside(self, table: pa.Table, reason: str) -> Path | None:
        """Returns the quarantine file now holding rows that their destination refused, or None when it
        could not be written (the rows are then lost, and the caller counts them)."""
        try:
            target = _write_durably(table, self.quarantine_folder, f"rejected-{_unique_name()}")
        except OSError as exc:
            log.warning("auriko_obs: %d rows refused by the store are lost: cannot write %s (%s)",
                        table.num_rows, self.quarantine_folder, exc)  # fmt: skip
            return None
        self.set_aside_rows += table.num_rows
        log.warning("auriko_obs: %d rows refused by the store (%s) are kept in %s", table.num_rows, reason, target)
        return target

    def remove(self, file: Path) -> None:
        """Deletes a file whose rows are now stored (already gone is fine)."""
        with suppress(FileNotFoundError):
            file.unlink()

    def remove_stale_temporaries(self) -> None:
        """Deletes temporary files that writers which crashed mid-write left behind."""
        now = time.time()
        try:
            for tmp in self.folder.glob(f"*{_TEMPORARY}"):
                with suppress(OSError):
                    if now - tmp.stat().st_mtime > _STALE_TEMPORARY_S:
                        tmp.unlink()
        except OSError:
            pass


def _unique_name() -> str:
    return f"{time.time_ns():020d}-{os.getpid()}-{next(_sequence):06d}"


def _write_durably(table: pa.Table, folder: Path, name: str) -> Path:
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{name}{_TEMPORARY}"
    final = folder / f"{name}{_SUFFIX}"
    try:
        with open(tmp, "wb") as out:
            pq.write_table(table, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, final)  # atomic: readers never see half a file
    except BaseException:
        with suppress(OSError):
            tmp.unlink()  # a full disk must not keep the space of a half-written file
        raise
    _fsync_folder(folder)
    return final
