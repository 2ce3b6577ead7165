"""Which files of a lake hold each span once: the dates readers can read without grouping.

Readers keep one row per (date, trace_id, span_id), because a span may be in a lake twice (an exporter's retry,
two collectors, a compaction that stopped half-way). Grouping every call by its ids is by far the dearest
part of a query over a lake, so compaction, which writes each span once, records which files need none: the
lake's ``_auriko_obs/compaction/unique.json`` holds, per date,

- ``files``: the name, size and modification time of each of that date's files, which *together* hold each
  span once, and
- ``replaced``: the same of the files whose every row is also in ``files`` (the files compaction merged,
  which wait for their grace period before they are deleted).

A reader reads this file *before* it lists the folders. A date is read without grouping, and without its
``replaced`` files, only when what the reader listed is exactly the claim: every file of ``files`` with the
same size and time, nothing else but files of ``replaced`` (same size and time too). Anything else — a file
written since (a new writer, late data, an export), a file gone or rewritten, a compaction that stopped
half-way or whose claim the reader has not seen — and the date is read as if there were no claim: every file
listed, grouped. So a claim is used only while the files it is about are there, unchanged, and alone, and
then it is true: compaction checks it before it writes it (it wrote those files itself, or counted the spans
in them), and publishes the files before the claim.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ._lake_location import LakeFile, LakeLocation

UNIQUE_FILE = "_auriko_obs/compaction/unique.json"
_VERSION = 2

# A file as a claim knows it: its size in bytes and its modification time (seconds since the epoch).
FileState = tuple[int, float]


def state_of(files: Iterable[LakeFile]) -> dict[str, FileState]:
    """Returns the files by name with their size and modification time."""
    return {f.name: (f.size, f.mtime_s) for f in files}


@dataclass(frozen=True)
class UniqueDay:
    """One date's claim: ``files`` together hold each span once; every row of ``replaced`` is in ``files``."""

    files: Mapping[str, FileState]
    replaced: Mapping[str, FileState] = field(default_factory=dict)

    def split(self, listed: Iterable[LakeFile]) -> tuple[list[LakeFile], bool]:
        """Returns (the listed files a reader reads, whether they hold each span once): without the replaced
        files when the listing is exactly the claim's, else every file listed."""
        listed = list(listed)
        read = [f for f in listed if self.replaced.get(f.name) != (f.size, f.mtime_s)]
        if read and state_of(read) == dict(self.files) and len(read) == len(self.files):
            return read, True
        return listed, False


def read_unique(lake: LakeLocation) -> dict[str, UniqueDay]:
    """Returns the claims of the lake's ``unique.json`` by date; none when it is missing or not ours."""
    raw = lake.read_bytes(UNIQUE_FILE)
    if raw is None:
        return {}
    try:
        content = json.loads(raw)
        if content.get("version") != _VERSION:
            return {}
        return {
            day: UniqueDay(_states(entry["files"]), _states(entry.get("replaced", {})))
            for day, entry in content["days"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}  # cut short or not ours: every date is grouped, which is always right


def _states(entry: Mapping[str, list[float]]) -> dict[str, FileState]:
    return {name: (int(size), float(mtime_s)) for name, (size, mtime_s) in entry.items()}


def write_unique(lake: LakeLocation, days: Mapping[str, UniqueDay]) -> None:
    """Replaces the lake's ``unique.json`` with ``days`` (published whole, as every lake file)."""
    content = {
        "version": _VERSION,
        "days": {
            day: {
                "files": {name: list(state) for name, state in sorted(entry.files.items())},
                "replaced": {name: list(state) for name, state in sorted(entry.replaced.items())},
            }
            for day, entry in sorted(days.items())
        },
    }
    data = json.dumps(content, separators=(",", ":")).encode()
    folder, name = UNIQUE_FILE.rsplit("/", 1)
    lake.publish(folder, name, lambda out: out.write(data))


def split_lake(lake: LakeLocation) -> tuple[list[LakeFile], list[LakeFile]]:
    """Returns (the files of the dates that hold each span once, the files of the dates to group), read in the
    order the module docstring gives: the claims first, then the listing."""
    unique = read_unique(lake)
    once: list[LakeFile] = []
    grouped: list[LakeFile] = []
    for day, listed in lake.files_by_date().items():
        entry = unique.get(day)
        if entry is None:
            grouped += listed
            continue
        read, holds_once = entry.split(listed)
        (once if holds_once else grouped).extend(read)
    return once, grouped
