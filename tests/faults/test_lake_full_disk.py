"""Issue 14, item 1: a lake on a full disk. The lake writer holds its files in memory, bounded, until space
returns; what does not fit is counted lost; no half-written file stays. (A real 2 MiB tmpfs, root only.)"""

from __future__ import annotations

import os

from auriko_obs.store import LakeWriter

from .._lake_files import lake_rows, raw_rows
from .._stores import call, make_store
from .conftest import fill


def test_a_full_disk_holds_files_in_memory_up_to_the_bound_then_counts_the_rest_lost(tmp_path, small_fs):
    raw = raw_rows(make_store(str(tmp_path / "s.duckdb"), [call(f"2026-06-01T10:00:{i:02d}Z") for i in range(20)]))
    sizing = LakeWriter(tmp_path / "sizing", flush_interval_s=3600)
    sizing.write(raw)
    file_bytes = sizing.stats()["buffered_bytes"]  # what one write's file holds in memory
    writer = LakeWriter(small_fs / "lake", flush_interval_s=3600, max_held_bytes=int(file_bytes * 3.5))
    ballast = fill(small_fs)
    for _ in range(4):
        writer.write(raw)
        writer.flush_buffer()
    assert writer.flush() is False
    stats = writer.stats()
    assert stats["held_spans"] == 60 and stats["lost_spans"] == 20 and stats["published_spans"] == 0
    folder = small_fs / "lake" / "date=2026-06-01"
    assert (os.listdir(folder) if folder.exists() else []) == []  # no half-written file stays
    ballast.unlink()
    assert writer.flush() is True
    assert writer.stats()["held_spans"] == 0 and len(lake_rows(str(small_fs / "lake"))) == 60
