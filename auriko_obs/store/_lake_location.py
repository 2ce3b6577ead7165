"""Where a lake's files are (a local or mounted folder, or S3), and how a file is published there whole.

Publishing never shows half a file to a reader:

- on a file system, the file is written under a hidden temporary name (``.<name>.tmp``: DuckDB reads only
  ``*.parquet`` and Spark skips names starting with ``.``), fsynced, renamed into place, and the folder is
  fsynced, so that a crash leaves either no file or a complete one (and maybe a stale temporary, which
  ``remove_stale_temporaries`` deletes);
- on S3, the bytes are made in memory first and sent in one PUT (files over pyarrow's part size, 10 MiB, go
  as a multipart upload, which S3 also makes visible only once it completes; a failed part fails the upload).

S3 is reached through pyarrow's ``S3FileSystem`` with the AWS SDK's usual configuration: credentials from
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``~/.aws`` or the instance's role; the
region from ``AWS_REGION``/``AWS_DEFAULT_REGION``; an S3-compatible endpoint (MinIO, Ceph, R2…) from
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (the variables the AWS SDKs read), ``http://`` for plain HTTP.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import _lake
from ._spool import _fsync_folder

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
DATE_PREFIX = f"{_lake.PARTITION_COLUMN}="
SUFFIX = ".parquet"
TEMPORARY = ".tmp"
# A temporary file older than this was left by a writer that crashed mid-write: nobody will rename it.
STALE_TEMPORARY_S = 3600.0
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def s3_endpoint() -> str | None:
    """Returns the S3-compatible endpoint named by ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, or None (AWS)."""
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def s3_region() -> str | None:
    """Returns the region from ``AWS_REGION`` or ``AWS_DEFAULT_REGION``, or None (the SDK's own default)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def arrow_s3_filesystem() -> pafs.S3FileSystem:
    """Returns pyarrow's S3 file system configured from the standard AWS variables (module docstring)."""
    import pyarrow.fs as pafs

    options: dict[str, Any] = {"allow_delayed_open": True}  # small files go in one PutObject at close
    endpoint = s3_endpoint()
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
        options["scheme"] = parts.scheme
    region = s3_region()
    if region:
        options["region"] = region
    elif endpoint:
        options["region"] = "us-east-1"  # S3-compatible servers ignore it; the SDK must not go looking for one
    return pafs.S3FileSystem(**options)


def fsspec_s3_filesystem() -> Any:
    """Returns an fsspec file system over pyarrow's S3 client (``arrow_s3_filesystem``), for DuckDB's
    ``register_filesystem``: DuckDB reads ``s3://`` through it, without its httpfs extension (a download).

    One S3 client for writing and reading, and no s3fs: its aiobotocore pins botocore to a few patch
    releases, which sent pip's resolver backtracking without end beside moto's boto3. pyarrow keeps no
    listing cache, so a reader sees the files published since its last query."""
    try:
        from fsspec.implementations.arrow import ArrowFSWrapper
    except ImportError:
        raise ValueError("reading a lake on S3 needs fsspec: pip install 'auriko-obs[s3]'") from None

    class _S3(ArrowFSWrapper):  # type: ignore[misc]
        protocol = ("s3", "s3a")

    return _S3(arrow_s3_filesystem())


@dataclass(frozen=True)
class LakeFile:
    """One data file of a lake: its path on the lake's file system, size in bytes and modification time."""

    path: str
    size: int
    mtime_s: float

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def unique_prefix() -> str:
    """Returns a name prefix that no other writer has: this host's name, this process's id and a random part."""
    host = _UNSAFE.sub("-", socket.gethostname())[:40].strip("-.") or "host"
    return f"{host}-{os.getpid()}-{os.urandom(4).hex()}"


class FileNames:
    """Unique file names for one writer: ``<kind>-<UTC time>-<host>-<pid>-<random>-<n>.parquet``, in the order
    written. A forked child takes a prefix of its own on its first name."""

    def __init__(self, kind: str = "part") -> None:
        self.kind = kind
        self._lock = threading.Lock()
        self._pid = -1
        self._prefix = ""
        self._n = 0

    def next(self) -> str:
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._prefix, self._n = os.getpid(), unique_prefix(), 0
            self._n += 1
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            return f"{self.kind}-{stamp}-{self._prefix}-{self._n:06d}{SUFFIX}"


class LakeLocation:
    """A lake's root: a local folder (``path`` or ``file://``) or an S3 prefix (``s3://bucket/prefix``)."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.root = _lake.lake_root(location)  # as readers name it: an absolute path, or the URI
        scheme = urlsplit(self.root).scheme.lower()
        self.remote = _lake.is_remote(self.root)
        if self.remote and scheme not in ("s3", "s3a"):
            raise ValueError(f"{self.root}: only local folders and s3:// lakes can be written")
        self._fs: pafs.FileSystem | None = None
        if self.remote:
            parts = urlsplit(self.root)
            if not parts.netloc:
                raise ValueError(f"{self.root}: an S3 lake needs a bucket (s3://bucket/prefix)")
            self.base = f"{parts.netloc}{parts.path}".rstrip("/")
        else:
            self.base = self.root

    def __repr__(self) -> str:
        return f"LakeLocation({self.root!r})"

    @property
    def fs(self) -> pafs.FileSystem:
        """Returns the pyarrow file system the lake is on (made on first use)."""
        if self._fs is None:
            import pyarrow.fs as pafs

            self._fs = arrow_s3_filesystem() if self.remote else pafs.LocalFileSystem()
        return self._fs

    def path(self, *parts: str) -> str:
        """Returns the path of ``parts`` under the root, on the lake's file system."""
        return "/".join([self.base, *parts])

    def uri(self, path: str) -> str:
        """Returns how a user names a path of the lake's file system (``s3://…`` on S3)."""
        return f"s3://{path}" if self.remote else path

    # ------------------------------------------------------------------ listing

    def dates(self) -> list[str]:
        """Returns the dates (``YYYY-MM-DD``) that have a partition, oldest first."""
        import pyarrow.fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.base, allow_not_found=True))
        except FileNotFoundError:
            return []
        dates = []
        for info in infos:
            name = info.base_name
            if info.type == pafs.FileType.Directory and name.startswith(DATE_PREFIX):
                date = name[len(DATE_PREFIX) :]
                if _DATE.match(date):
                    dates.append(date)
        return sorted(dates)

    def files(self, date: str) -> list[LakeFile]:
        """Returns the data files of a date's partition that readers read (not hidden, not temporary)."""
        return [f for f in self._listing(date) if f.name.endswith(SUFFIX) and not f.name.startswith((".", "_"))]

    def files_by_date(self) -> dict[str, list[LakeFile]]:
        """Returns ``files`` of every date, oldest date first, from one recursive listing (on S3, a few requests
        for the whole lake rather than one per date)."""
        import pyarrow.fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.base, allow_not_found=True, recursive=True))
        except FileNotFoundError:
            return {}
        found: dict[str, list[LakeFile]] = {}
        prefix = self.base.rstrip("/") + "/"
        for info in infos:
            if info.type != pafs.FileType.File or not info.path.startswith(prefix):
                continue
            parts = info.path[len(prefix) :].split("/")
            if len(parts) != 2 or not parts[0].startswith(DATE_PREFIX) or not _DATE.match(parts[0][len(DATE_PREFIX) :]):
                continue
            if parts[1].endswith(SUFFIX) and not parts[1].startswith((".", "_")):
                mtime_s = info.mtime.timestamp() if info.mtime else 0.0
                found.setdefault(parts[0][len(DATE_PREFIX) :], []).append(LakeFile(info.path, info.size or 0, mtime_s))
        return dict(sorted(found.items()))

    def stale_temporaries(self, date: str, *, older_than_s: float = STALE_TEMPORARY_S) -> list[LakeFile]:
        """Returns the temporary files in a date's folder left by writers that stopped mid-write."""
        now = time.time()
        return [f for f in self._listing(date) if f.name.endswith(TEMPORARY) and now - f.mtime_s > older_than_s]

    def _listing(self, date: str) -> list[LakeFile]:
        import pyarrow.fs as pafs

        folder = self.path(f"{DATE_PREFIX}{date}")
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        except FileNotFoundError:
            return []
        return [
            LakeFile(info.path, info.size or 0, info.mtime.timestamp() if info.mtime else 0.0)
            for info in infos
            if info.type == pafs.FileType.File
        ]

    # ------------------------------------------------------------------ writing

    def publish(self, folder: str, name: str, write: Callable[[Any], None]) -> int:
        """Returns the size of the new file ``folder/name`` (relative to the root) once it is complete and
        visible; ``write(sink)`` writes its bytes. Raises OSError (a full disk, S3 unreachable…) having
        published nothing."""
        if self.remote:
            return self._publish_remote(folder, name, write)
        try:
            return self._publish_local(folder, name, write)
        except FileNotFoundError:  # the folder was removed meanwhile (retention): make it again, once
            return self._publish_local(folder, name, write)

    def _publish_local(self, folder: str, name: str, write: Callable[[Any], None]) -> int:
        directory = os.path.join(self.base, folder)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{name}{TEMPORARY}")
        final = os.path.join(directory, name)
        try:
            with open(tmp, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
            os.rename(tmp, final)  # atomic: readers never see half a file
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)  # a full disk must not keep the space of a half-written file
            raise
        _fsync_folder(Path(directory))
        return size

    def _publish_remote(self, folder: str, name: str, write: Callable[[Any], None]) -> int:
        import pyarrow as pa

        sink = pa.BufferOutputStream()
        write(sink)  # whole in memory first: an error here must not leave a truncated object behind
        data = sink.getvalue()
        stream = self.fs.open_output_stream(self.path(folder, name))
        try:
            stream.write(data)
        finally:
            stream.close()  # sends it; raises (publishing nothing) when a part failed
        return int(data.size)

    def write_table(self, folder: str, name: str, table: pa.Table, **options: Any) -> int:
        """Returns the size of the new Parquet file holding ``table`` (see ``publish``)."""
        import pyarrow.parquet as pq

        return self.publish(folder, name, lambda out: pq.write_table(table, out, **options))

    def delete(self, path: str) -> bool:
        """Returns True once the file at ``path`` (on the lake's file system) is gone; False when it could not be
        deleted now. A file already gone is fine."""
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass
        except OSError:
            return False
        return True

    def remove_empty_date(self, date: str) -> None:
        """Removes a date's folder when nothing is left in it (on S3 there are no folders to remove)."""
        if not self.remote:
            with suppress(OSError):
                os.rmdir(os.path.join(self.base, f"{DATE_PREFIX}{date}"))

    def exists(self, relative: str) -> bool:
        """Returns whether a file under the root exists."""
        import pyarrow.fs as pafs

        return bool(self.fs.get_file_info(self.path(relative)).type == pafs.FileType.File)

    def read_bytes(self, relative: str) -> bytes | None:
        """Returns the bytes of a file under the root, or None when there is none."""
        try:
            with self.fs.open_input_stream(self.path(relative)) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            return None

    def list_relative(self, folder: str) -> list[LakeFile]:
        """Returns the files directly in ``folder`` (relative to the root); none when it does not exist."""
        import pyarrow.fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path(folder), allow_not_found=True))
        except FileNotFoundError:
            return []
        return [
            LakeFile(info.path, info.size or 0, info.mtime.timestamp() if info.mtime else 0.0)
            for info in infos
            if info.type == pafs.FileType.File
        ]


def check_lake_writable(location: str | os.PathLike[str]) -> str:
    """Returns the lake's root once a file has been written there and deleted; raises ValueError saying, in one
    line, why the lake cannot be written (not a folder, a read-only file system, no such bucket, no access…)."""
    lake = LakeLocation(location)
    if not lake.remote and os.path.exists(lake.root) and not os.path.isdir(lake.root):
        raise ValueError(f"cannot write to the lake {lake.root}: it is a file, not a folder")
    probe = f".auriko-obs-probe-{unique_prefix()}{TEMPORARY}"
    try:
        lake.publish("_auriko_obs", probe, lambda out: out.write(b"probe"))
        lake.fs.delete_file(lake.path("_auriko_obs", probe))
    except (OSError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot write to the lake {lake.root}: {text}") from None
    return lake.root
