"""The extension's state in one kernel: instrumentation, cell tagging, footer, session ledger and budget."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..instrumentation import StopCall, add_before_call, remove_before_call
from ._summary import RUN_ATTR, SESSION_ATTR, Summary, mime_bundle, summarize

log = logging.getLogger("auriko_obs")

CELL_ATTR = "auriko.notebook.cell"  # the llm_calls.notebook_cell column
CELL_ID_ATTR = "auriko.notebook.cell_id"
EXECUTION_COUNT_ATTR = "auriko.notebook.execution_count"
PATH_ATTR = "auriko.notebook.path"
EXPERIMENT_ATTR = "auriko.experiment"
_CLOCK_SKEW = timedelta(seconds=2)  # span start times come from time_ns(); the cell's from datetime.now()


class SessionBudgetExceeded(StopCall):
    """A call was stopped before it was sent: it would take this session's spend past its budget."""

    code = "session_budget_exceeded"
    type = "session_budget"


@dataclass
class CellRun:
    """One execution of one cell: how its calls are tagged, and how many it made."""

    run_id: str
    label: str
    started_at: datetime
    attributes: dict[str, Any]
    calls: int = 0


@dataclass
class SessionLedger:
    """Sums this session's recorded spend as spans are exported (an exporter on the pipeline's worker thread)."""

    session: str
    spent_usd: float = 0.0
    recorded: int = 0
    priced: int = 0
    by_model: dict[str | None, tuple[float, int]] = field(default_factory=dict)  # request model → (cost, priced)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        for span in spans:
            attributes = span.attributes or {}
            if attributes.get(SESSION_ATTR) != self.session:
                continue
            cost = attributes.get("auriko.cost.usd")
            requested = attributes.get("gen_ai.request.model")
            model = requested if isinstance(requested, str) else None
            with self.lock:
                self.recorded += 1
                if isinstance(cost, (int, float)):
                    self.spent_usd += cost
                    self.priced += 1
                    total, n = self.by_model.get(model, (0.0, 0))
                    self.by_model[model] = (total + cost, n + 1)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def estimate_usd(self, model: str | None) -> float:
        """Returns the expected cost of one more call: the session's mean for that model, else its overall mean."""
        with self.lock:
            total, n = self.by_model.get(model, (0.0, 0))
            if n:
                return total / n
            return self.spent_usd / self.priced if self.priced else 0.0


def notebook_path(shell: Any) -> str | None:
    """Returns the notebook's path when the frontend tells the kernel (VS Code, Jupyter Server), else None."""
    path = shell.user_ns.get("__vsc_ipynb_file__") or os.environ.get("JPY_SESSION_NAME")
    return str(path) if path else None


class Extension:
    """Everything ``%load_ext auriko_obs`` sets up in one shell, and takes down again on unload."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.session = uuid.uuid4().hex[:12]
        self.started_at = datetime.now(timezone.utc)
        self.footer = True
        self.budget_usd: float | None = None
        self.ledger = SessionLedger(self.session)
        self.cell: CellRun | None = None
        self.last_summary: Summary | None = None
        self.last_report: Any = None
        self._raw_count = 0
        self.instrumented_here = False
        self._runs = itertools.count(1)
        self._info: Any = None  # the ExecutionInfo of the cell being run (nested runs have their own)
        self._calls_started = 0
        self._lock = threading.Lock()
        self._pipeline: Any = None
        self._counted_early = _counts_before_pre_run_cell()
        self._magics: Any = None

    # ------------------------------------------------------------------ load / unload

    def load(self) -> str:
        """Returns the one line to print after instrumenting the kernel and registering events and magics."""
        from .. import instrumentation
        from ._magics import AurikoObsMagics, register_dataframe_html, register_track_transform, unregister_magics

        active = instrumentation.active()
        if active is None:
            active = self._instrument()
            self.instrumented_here = True
        else:
            # Same store, capture setting and service: this only makes sure the class-level patches are on.
            instrumentation.instrument(active.db_path or False, capture_content=active.capture_content)
        self._attach_ledger()
        add_before_call(self.before_call)
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        unregister_magics(self.shell)
        self._magics = AurikoObsMagics(self.shell, self)
        self.shell.register_magics(self._magics)
        register_track_transform(self.shell)
        register_dataframe_html(self.shell)
        where = active.db_path or "no store (instrument(db=False))"
        path = notebook_path(self.shell)
        already = "" if self.instrumented_here else " (already instrumented)"
        return (
            f"auriko-obs: instrumented openai in this kernel{already}; "
            f"calls are stored in {where}, tagged with session {self.session}"
            f"{f' and notebook {path}' if path else ''} and each cell's number. "
            f"A footer shows each cell's spend; %auriko_obs --help lists the magics."
        )

    def _instrument(self) -> Any:
        """Returns the Instrumentation started for this kernel; a store that cannot be made is a UsageError."""
        from IPython.core.error import UsageError

        from .. import instrumentation
        from ..store import default_path

        service = None if os.environ.get("OTEL_SERVICE_NAME") else "jupyter"
        try:
            # instrument() never raises for a store it cannot write (it warns and counts): in a notebook,
            # where someone reads the answer at once, a folder that cannot exist is said in one line instead.
            Path(default_path()).absolute().parent.mkdir(parents=True, exist_ok=True)
            return instrumentation.instrument(service_name=service)
        except OSError as exc:
            reason = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
            raise UsageError(
                f"auriko-obs: cannot store calls in {os.path.abspath(default_path())} ({reason}); "
                f"set $AURIKO_OBS_DB to a writable path. Nothing was instrumented."
            ) from None

    def unload(self) -> None:
        """Restores the kernel: events, hook, magics, display formatter, and the instrumentation if we made it."""
        from .. import instrumentation
        from ._magics import unregister_dataframe_html, unregister_magics, unregister_track_transform

        for name, callback in (("pre_run_cell", self.pre_run_cell), ("post_run_cell", self.post_run_cell)):
            with contextlib.suppress(ValueError):  # not registered (a failed load)
                self.shell.events.unregister(name, callback)
        remove_before_call(self.before_call)
        unregister_magics(self.shell)
        unregister_track_transform(self.shell)
        unregister_dataframe_html(self.shell)
        instrumentation.flush_store(10)
        self._detach_ledger()
        if self.instrumented_here:
            instrumentation.uninstrument()

    def _attach_ledger(self) -> None:
        from .. import instrumentation

        active = instrumentation.active()
        pipeline = active.pipeline if active is not None else None
        if pipeline is self._pipeline:
            return
        self._detach_ledger()
        if pipeline is not None:
            pipeline.exporters.insert(0, self.ledger)  # first: it is cheap, and budgets want it current
        self._pipeline = pipeline

    def _detach_ledger(self) -> None:
        if self._pipeline is not None and self.ledger in self._pipeline.exporters:
            self._pipeline.exporters.remove(self.ledger)
        self._pipeline = None

    @property
    def store_path(self) -> str | None:
        from .. import instrumentation

        active = instrumentation.active()
        return active.db_path if active is not None else None

    # ------------------------------------------------------------------ IPython events

    def pre_run_cell(self, info: Any) -> None:
        if self.cell is not None:  # a cell run from inside a cell (%%capture, …): part of the outer cell
            return
        self._info = info
        try:
            self._attach_ledger()
            raw_count = self.shell.execution_count
            number = raw_count - 1 if (info.store_history and self._counted_early) else raw_count
            run_id = f"{self.session}:{next(self._runs)}"
            cell_id = getattr(info, "cell_id", None)
            label = f"In[{number}]"
            attributes = {
                SESSION_ATTR: self.session,
                RUN_ATTR: run_id,
                CELL_ATTR: cell_id or label,
                CELL_ID_ATTR: cell_id or run_id,
                EXECUTION_COUNT_ATTR: number,
            }
            path = notebook_path(self.shell)
            if path:
                attributes[PATH_ATTR] = path
            self.cell = CellRun(run_id, label, datetime.now(timezone.utc), attributes)
            self._raw_count = raw_count
        except Exception as exc:  # the user's cell must run whatever happens here
            log.warning("auriko_obs: could not tag this cell: %s", exc)
            self.cell = None

    def post_run_cell(self, result: Any) -> None:
        # Only the cell whose pre_run_cell we saw: not nested runs, nor empty cells (IPython fires
        # post_run_cell for those without a pre_run_cell).
        if result is None or result.info is not self._info:
            return
        cell, self.cell, self._info = self.cell, None, None
        if cell is None:
            return
        if result.info.store_history and result.execution_count is not None:
            self._counted_early = result.execution_count == self._raw_count - 1
        if cell.calls == 0 or not self.footer:
            return
        try:
            summary = self.summarize_run(cell)
            if summary is not None and summary.calls:
                from IPython.display import display

                display(mime_bundle(summary), raw=True)
        except Exception as exc:
            log.warning("auriko_obs: no footer for this cell: %s", exc)

    # ------------------------------------------------------------------ summaries

    def summarize_run(self, cell: CellRun) -> Summary | None:
        """Returns the Summary of one cell run, read from the store after a flush (None without a store)."""
        from .. import instrumentation

        instrumentation.flush_store(10)
        if self.store_path is None:
            return None
        summary = summarize(
            self.store_path, label=cell.label, attr=RUN_ATTR, value=cell.run_id, since=cell.started_at - _CLOCK_SKEW
        )
        self._add_session_budget(summary)
        self.last_summary = summary
        return summary

    def summarize_session(self) -> Summary | None:
        """Returns the Summary of every call this session made (None without a store)."""
        from .. import instrumentation

        instrumentation.flush_store(10)
        if self.store_path is None:
            return None
        summary = summarize(
            self.store_path,
            label=f"session {self.session}",
            attr=SESSION_ATTR,
            value=self.session,
            since=self.started_at - _CLOCK_SKEW,
        )
        self._add_session_budget(summary)
        return summary

    def _add_session_budget(self, summary: Summary) -> None:
        if self.budget_usd is not None:
            summary.session_budget = (self.ledger.spent_usd, self.budget_usd)

    # ------------------------------------------------------------------ the pre-call hook (caller's thread)

    def before_call(self, record: Any) -> None:
        """Tags the call with the current cell, counts it, and stops it when it would break the session budget."""
        __tracebackhide__ = True
        cell = self.cell
        tags = dict(cell.attributes) if cell is not None else {SESSION_ATTR: self.session}
        if record.extra:
            tags.update(record.extra)  # attributes set by the caller (auriko_obs.attributes) win
        record.extra = tags
        with self._lock:
            self._calls_started += 1
            started = self._calls_started
            if cell is not None:
                cell.calls += 1
        if self.budget_usd is not None:
            self._check_budget(record, started)

    def _check_budget(self, record: Any, started: int) -> None:
        # Spend recorded so far, plus what the calls already sent but not yet recorded and this one are
        # expected to cost (the session's mean cost per call, per model when known).
        ledger, budget = self.ledger, self.budget_usd
        if budget is None:  # no session budget set
            return
        if not ledger.priced and started - 1 > ledger.recorded:
            # No cost known yet to estimate the calls sent but not recorded (the pipeline exports every few
            # seconds): export them now. Once one call's cost is known, the estimate covers the rest.
            _export_finished_calls()
        spent = ledger.spent_usd
        pending = max(started - 1 - ledger.recorded, 0)
        estimate = ledger.estimate_usd(record.kwargs.get("model"))
        projected = spent + pending * ledger.estimate_usd(None) + estimate
        if spent >= budget or projected > budget:
            from .._display import usd

            raise SessionBudgetExceeded(
                f"auriko-obs session budget {usd(budget)} reached: this session has spent {usd(spent)}"
                f"{f', {pending} call(s) in flight' if pending else ''} and this call is estimated at "
                f"{usd(estimate)}, so it was not sent. Raise the budget with `%auriko_obs budget <usd>` "
                f"or remove it with `%auriko_obs budget off`."
            )


def _export_finished_calls() -> None:
    from .. import instrumentation

    active = instrumentation.active()
    if active is not None:
        active.pipeline.flush(10.0)


def _counts_before_pre_run_cell() -> bool:
    """Returns True when IPython numbers a cell before firing pre_run_cell (IPython 9); learned again per cell."""
    import IPython

    return IPython.version_info[0] >= 9
