"""The receiver's write-ahead log: a request is acknowledged only once its bytes are on disk.

``auriko-obs collect`` appends every accepted request body to a log file and answers 2xx only after the
file is fsynced; the spans then wait in memory for the writer thread to put them in the store. A log
segment is deleted once every request in it is in the store. After a crash (``kill -9``, power loss) the
next ``collect`` on the same store replays the segments left behind, so an acknowledged span is either
in the store or in the log. The store keeps one row per (trace_id, span_id), so a request both stored
and replayed, or resent by an exporter that never saw its 2xx, is stored once.

Group commit: requests append under a lock and then wait until the log is synced past their record;
one waiting thread (the leader) runs ``fdatasync`` for everything appended so far while the others
wait, so concurrent requests share one sync instead of paying one each.

Layout: ``<store>.collect-log/<pid>-<start ns>/`` per running collector, holding an exclusive ``flock``
on its ``lock`` file for as long as it runs, and numbered segments ``000001.log``… A folder whose lock
can be taken belongs to a collector that is gone, and is replayed. A record is a 13-byte header (magic,
kind, length, CRC-32 of kind and payload) followed by the payload; a record cut short by a crash fails
its check at the end of the segment (such a record was never acknowledged). Damage before a good record
is skipped up to the next record that passes its check, and the segment is moved to
``<store>.collect-log-quarantine/`` after its replay rather than deleted.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so every folder looks orphaned: run one collector per store there
    fcntl = None  # type: ignore[assignment]

KIND_PROTOBUF = 1
KIND_JSON = 2
_HEADER = struct.Struct("<4sBII")  # magic, kind, payload length, CRC-32 of kind + payload
_MAGIC = b"AOR1"
_MAX_RECORD = 1 << 31
_IDLE_ROTATION_BYTES = 1 << 20
_fdatasync = getattr(os, "fdatasync", os.fsync)


def log_root(store_path: str | os.PathLike[str]) -> Path:
    """Returns the folder that holds the request logs of the collectors writing to a store."""
    return Path(f"{os.fspath(store_path)}.collect-log")


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _take_lock(folder: Path) -> int | None:
    """Returns an fd holding the folder's exclusive lock, or None when a live process holds it."""
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@dataclass
class Ticket:
    """Where a request's record ended in the log: the segment it is in and the log position after it."""

    segment: int
    position: int


@dataclass
class _Segment:
    number: int
    path: Path
    fd: int
    size: int = 0
    outstanding: int = 0  # records appended whose spans are not in the store yet
    closed: bool = False
    entry_synced: bool = False  # the folder's entry for the file is on disk


class RequestLog:
    """This process's log of accepted requests (see the module docstring)."""

    def __init__(self, store_path: str | os.PathLike[str], *, segment_bytes: int = 8 << 20, sync: bool = True) -> None:
        self.root = log_root(store_path)
        self.segment_bytes = segment_bytes
        self.sync = sync
        self.syncs = 0
        self.appended_bytes = 0
        self.folder = self.root / f"{os.getpid()}-{time.time_ns()}"
        self.folder.mkdir(parents=True)
        lock = _take_lock(self.folder)
        assert lock is not None, "a folder just made is locked by nobody else"
        self._lock_fd = lock
        if self.sync:
            _sync_dir(self.root)
        self._cond = threading.Condition()
        self._segments: dict[int, _Segment] = {}
        self._current = self._open_segment(1)
        self._appended = 0  # log positions count bytes over all segments of this process
        self._synced = 0
        self._syncing = False
        self._closed = False

    def _open_segment(self, number: int) -> _Segment:
        path = self.folder / f"{number:06d}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        segment = _Segment(number, path, fd)  # its folder entry is synced with its first record
        self._segments[number] = segment
        return segment

    def append(self, kind: int, payload: bytes | bytearray) -> Ticket:
        """Returns where the record ended; raises OSError (the disk is full…) with the log unchanged."""
        header = _HEADER.pack(_MAGIC, kind, len(payload), zlib.crc32(payload, zlib.crc32(bytes([kind]))))
        size = len(header) + len(payload)
        with self._cond:
            if self._closed:  # its fd number may belong to another file by now
                raise OSError("the request log is closed")
            if self._current.size and self._current.size + size > self.segment_bytes:
                self._rotate()
            segment = self._current
            try:
                written = os.writev(segment.fd, [header, payload])
                if written != size:  # a short write to a regular file: the file system is full
                    raise OSError(28, f"short write to {segment.path} ({written} of {size} bytes)")
            except OSError:
                # Cut a partial record off, so that what follows it stays readable.
                os.ftruncate(segment.fd, segment.size)
                raise
            segment.size += size
            segment.outstanding += 1
            self._appended += size
            self.appended_bytes += size
            return Ticket(segment.number, self._appended)

    def wait_durable(self, ticket: Ticket) -> None:
        """Returns once the log is on disk up to the ticket; raises OSError when syncing failed."""
        if not self.sync:
            return
        with self._cond:
            while self._synced < ticket.position:
                if self._closed:
                    raise OSError("the request log is closed")
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                target, segment = self._appended, self._current
                self._cond.release()
                error: OSError | None = None
                try:
                    self._sync_segment(segment)
                except OSError as exc:
                    error = exc
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    self._cond.notify_all()
                if error is not None:
                    raise error
                self.syncs += 1
                self._synced = max(self._synced, target)

    def _sync_segment(self, segment: _Segment) -> None:
        _fdatasync(segment.fd)
        if not segment.entry_synced:
            _sync_dir(self.folder)
            segment.entry_synced = True

    def done(self, segment_number: int, records: int = 1) -> None:
        """Records that requests of a segment are in the store; a closed segment with none left is deleted."""
        with self._cond:
            segment = self._segments[segment_number]
            segment.outstanding -= records
            if segment.closed and segment.outstanding <= 0:
                self._delete(segment)

    def rotate_if_idle(self) -> None:
        """Starts a new segment when every request of the current one, of 1 MiB or more, is in the store
        (deleting it). Smaller ones wait: after a crash, replaying what is stored already costs time only."""
        with self._cond:
            if not self._closed and self._current.size >= _IDLE_ROTATION_BYTES and self._current.outstanding <= 0:
                self._rotate()

    def _rotate(self) -> None:
        while self._syncing:  # the leader is syncing the current segment's fd: let it finish
            self._cond.wait()
        old = self._current
        # A segment whose requests are all stored needs no sync; otherwise sync it before closing its fd.
        if self.sync and old.outstanding > 0 and self._synced < self._appended:
            self._sync_segment(old)
            self.syncs += 1
        self._synced = self._appended
        os.close(old.fd)
        old.closed = True
        self._current = self._open_segment(old.number + 1)
        if old.outstanding <= 0:
            self._delete(old)

    def _delete(self, segment: _Segment) -> None:
        if not segment.closed:
            return
        del self._segments[segment.number]
        with suppress(OSError):  # then replayed after a restart, and stored once: one row per span
            segment.path.unlink()

    def pending_segments(self) -> int:
        with self._cond:
            return sum(1 for s in self._segments.values() if s.outstanding > 0)

    def close(self, *, remove: bool) -> None:
        """Closes the log; with ``remove`` (every request is in the store) its folder is deleted."""
        with self._cond:
            while self._syncing:
                self._cond.wait()
            if self.sync and not remove:
                _fdatasync(self._current.fd)
            self._synced = self._appended
            self._closed = True
            os.close(self._current.fd)
            self._current.closed = True
            if remove:
                shutil.rmtree(self.folder, ignore_errors=True)
                with suppress(OSError):  # the last collector of the store leaves no empty folder behind
                    self.root.rmdir()
            os.close(self._lock_fd)


@dataclass
class Record:
    kind: int
    payload: bytes


@dataclass
class ReadResult:
    records: int = 0
    unreadable_bytes: int = 0  # a record cut short by a crash (never acknowledged), or damage
    damaged_bytes: int = 0  # of those, the ones followed by a good record: damage, not a crash's cut


def _record_at(data: bytes, offset: int) -> tuple[Record, int] | None:
    """Returns the record at ``offset`` and the offset after it, or None when none passes its check there."""
    header = data[offset : offset + _HEADER.size]
    if len(header) < _HEADER.size:
        return None
    magic, kind, length, crc = _HEADER.unpack(header)
    start = offset + _HEADER.size
    if magic != _MAGIC or length > _MAX_RECORD or start + length > len(data):
        return None
    payload = data[start : start + length]
    if zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
        return None
    return Record(kind, payload), start + length


def _next_record(data: bytes, offset: int) -> int | None:
    """Returns where the first record that passes its check begins after ``offset``, None when none does."""
    candidate = data.find(_MAGIC, offset + 1)
    while candidate != -1:
        if _record_at(data, candidate) is not None:
            return candidate
        candidate = data.find(_MAGIC, candidate + 1)
    return None


def read_segment(path: Path, result: ReadResult) -> Iterator[Record]:
    """Yields the records of a segment that pass their check.

    Bytes that fail it at the end of the segment are a record cut short by a crash, never acknowledged.
    Bytes that fail it with a good record after them are damage (a disk that lied, a stray write): the
    reading goes on at the next record magic that starts a record passing its check, since the records
    after the damage were acknowledged."""
    with path.open("rb") as file:
        data = file.read()
    offset = 0
    while offset < len(data):
        found = _record_at(data, offset)
        if found is None:
            resume = _next_record(data, offset)
            if resume is None:
                break
            result.unreadable_bytes += resume - offset
            result.damaged_bytes += resume - offset
            offset = resume
            continue
        record, offset = found
        result.records += 1
        yield record
    result.unreadable_bytes += len(data) - offset


def quarantine_segment(segment: Path) -> Path:
    """Returns where a segment holding damage was moved: ``<store>.collect-log-quarantine/<folder>/``, beside
    the log folder (never inside it, where it would be replayed again), for someone to look at."""
    folder = segment.parent
    target_folder = folder.parent.with_name(folder.parent.name + "-quarantine") / folder.name
    target_folder.mkdir(parents=True, exist_ok=True)
    target = target_folder / segment.name
    os.replace(segment, target)
    return target


@dataclass
class Orphan:
    """The log of a collector that is gone, locked by us while we replay it."""

    folder: Path
    lock_fd: int

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob("*.log"))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self.lock_fd)
        with suppress(OSError):
            self.folder.parent.rmdir()

    def release(self) -> None:
        os.close(self.lock_fd)


def orphaned_logs(store_path: str | os.PathLike[str], own: Path) -> Iterator[Orphan]:
    """Yields, locked, each log folder of the store whose collector is gone (oldest first), except our own."""
    root = log_root(store_path)
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir(), key=lambda p: p.name.rpartition("-")[2].zfill(24)):
        if not folder.is_dir() or folder == own:
            continue
        try:
            fd = _take_lock(folder)
        except OSError:
            continue
        if fd is not None:
            yield Orphan(folder, fd)
