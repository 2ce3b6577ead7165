"""Writing a batch whose bad rows must not take the good ones down with them, and holding batches in memory.

Both are independent of where the rows go (the DuckDB store today, Parquet files tomorrow).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


def write_isolating(
    table: pa.Table, write: Callable[[pa.Table], None], is_row_error: Callable[[BaseException], bool]
) -> list[tuple[pa.Table, BaseException]]:
    """Returns the rows that could not be written, each alone with its error, after writing every other row.

    ``write`` must be all or nothing for the rows it is given (one transaction). A table that fails with a
    row error is split in halves until each bad row stands alone: k bad rows among n cost about
    2·k·log2(n) writes, and a clean table one. Any other error (a full disk, a lock) is raised at once.
    """
    try:
        write(table)
        return []
    except Exception as exc:
        if not is_row_error(exc):
            raise
        if table.num_rows <= 1:
            return [(table, exc)]
    half = table.num_rows // 2
    return write_isolating(table.slice(0, half), write, is_row_error) + write_isolating(
        table.slice(half), write, is_row_error
    )


class HeldBatches:
    """Tables waiting in memory, oldest first, for their destination to take writes again; at most
    ``max_bytes`` of Arrow buffers (0: hold nothing)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.rows = 0
        self._tables: deque[pa.Table] = deque()

    def __len__(self) -> int:
        return len(self._tables)

    def add(self, table: pa.Table) -> bool:
        """Returns True when the table is held, False when it does not fit (the caller counts it lost)."""
        size = table.nbytes
        if self.nbytes + size > self.max_bytes:
            return False
        self._tables.append(table)
        self.nbytes += size
        self.rows += table.num_rows
        return True

    def take(self, max_rows: int) -> list[pa.Table]:
        """Returns the oldest tables, up to ``max_rows`` rows (at least one table), without removing them."""
        taken: list[pa.Table] = []
        rows = 0
        for table in self._tables:
            if taken and rows + table.num_rows > max_rows:
                break
            taken.append(table)
            rows += table.num_rows
        return taken

    def drop_oldest(self, count: int) -> None:
        """Forgets the ``count`` oldest tables (they have been written)."""
        for _ in range(count):
            table = self._tables.popleft()
            self.nbytes -= table.nbytes
            self.rows -= table.num_rows

    def clear(self) -> int:
        """Forgets every table; returns how many rows they held."""
        rows = self.rows
        self._tables.clear()
        self.nbytes = 0
        self.rows = 0
        return rows
