"""An OpenTelemetry span exporter that appends span batches to the DuckDB store (the write side).

This is the only module of ``auriko_obs.store`` that imports the OpenTelemetry SDK; readers never load it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._internal_errors import INTERNAL_ERRORS
from ._rows import encode_spans
from ._writer import StoreWriter, WriteOutcome

if TYPE_CHECKING:
    import pyarrow as pa
    from opentelemetry.sdk.trace import ReadableSpan


class DuckDBSpanExporter(StoreWriter, SpanExporter):
    """Exports spans to a DuckDB store file; safe to use from several processes at once.

    Each ``export`` ingests any spooled batches and appends its own, through a connection held while batches
    keep coming (``StoreWriter``, which also says what happens when that cannot be done). A span that cannot
    be encoded as a row is counted lost (``store.rows`` in ``INTERNAL_ERRORS``); the rest of its batch is
    stored. ``export`` returns FAILURE when any span of the batch is not in the store (nor spooled while
    another process holds the file).

    ``export_rows`` takes span rows (``RAW_SCHEMA``) instead: the pipeline hands rows to every sink that has
    it, and builds OpenTelemetry spans only for consumers that need them.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        lock_wait_s: float = 2.0,
        max_held_bytes: int | None = None,
        hold_idle_s: float = 1.0,
    ) -> None:
        StoreWriter.__init__(
            self, path, lock_wait_s=lock_wait_s, max_held_bytes=max_held_bytes, hold_idle_s=hold_idle_s
        )

    def export_rows(self, table: pa.Table, unencodable: int = 0) -> int:
        """Returns how many spans are not in the store, nor on their way to it, after writing the span rows
        of spans made just now (the instrumentation's pipeline: ``StoreWriter.write(fresh=True)``);
        ``unencodable``: spans of the batch that could not be encoded as rows, counted lost here."""
        self.lost_spans += unencodable
        return self.write(table, fresh=True).failed + unencodable

    def export_counting_failures(self, spans: Sequence[ReadableSpan]) -> int:
        """Returns how many of the spans are not in the store, nor on their way to it (see ``WriteOutcome``)."""
        return self.export_spans(spans).failed

    def export_spans(self, spans: Sequence[ReadableSpan]) -> WriteOutcome:
        """Returns what became of each span after writing them."""
        table, failures = encode_spans(spans)
        for _, exc in failures:
            INTERNAL_ERRORS.record("store.rows", exc)
        outcome = self.write(table)
        outcome.rows += len(failures)
        outcome.lost += len(failures)
        self.lost_spans += len(failures)
        return outcome

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        failed = self.export_counting_failures(spans)
        return SpanExportResult.FAILURE if failed else SpanExportResult.SUCCESS

    def export_table(self, table: pa.Table) -> SpanExportResult:
        """Returns SUCCESS once an Arrow table of raw span rows is in the store, or spooled while the file is
        locked; FAILURE when any row is not (see ``StoreWriter.write`` for where they are)."""
        return SpanExportResult.FAILURE if self.write(table).failed else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Returns True once no batch waits in memory (it writes the held batches again first)."""
        return self.retry_held()
