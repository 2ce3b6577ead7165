"""One report run: build the report for a period, render it, deliver it to each destination once per period."""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..store import check_writable
from ._budget_verdicts import load as load_budgets
from ._deliver import DeliveryError, Retry, SmtpSettings, build_email, deliver_email, deliver_file, deliver_webhook
from ._delivery_log import claim, log_path, owed, record_delivery, record_failure, release
from ._periods import PERIOD_KINDS, Period, report_period
from ._render import FORMATS, render, summary_lines, summary_text, usd

DESTINATIONS = ("file", "webhook", "email")
OUT_PLACEHOLDERS = ("name", "period", "start", "end", "format")
MAX_TOP_N = 1000
CATCH_UP_LIMIT = 31  # periods a run catches up at most, per destination (a month of daily reports)


@dataclass
class ReportSpec:
    """What to report and where to send it (the options of ``auriko-obs report`` and of a schedule entry)."""

    db: str
    period: str = "week"
    since: datetime | None = None
    until: datetime | None = None
    format: str = "html"
    to: Sequence[str] = ("file",)
    out: str | None = None  # may hold the OUT_PLACEHOLDERS: {name}, {period}, {start}, {end}, {format}
    webhook_url: str | None = None
    email_to: Sequence[str] = ()
    name: str = "report"
    top_n: int = 10
    budgets_config: str | None = None
    force: bool = False
    retry: Retry = field(default_factory=Retry)

    def check(self) -> None:
        """Raises ValueError when the spec cannot run (so that a bad schedule fails at start, not on Monday)."""
        if self.period not in PERIOD_KINDS:
            raise ValueError(f"period must be one of {', '.join(PERIOD_KINDS)}, not {self.period!r}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if isinstance(self.top_n, bool) or not isinstance(self.top_n, int) or not 1 <= self.top_n <= MAX_TOP_N:
            raise ValueError(f"top_n must be a whole number from 1 to {MAX_TOP_N}, not {self.top_n!r}")
        unknown = set(self.to) - set(DESTINATIONS)
        if unknown:
            raise ValueError(f"unknown destination {', '.join(sorted(unknown))}: use {', '.join(DESTINATIONS)}")
        if "file" in self.to:
            self._check_out()
        if "webhook" in self.to:
            self._check_webhook_url()
        if "email" in self.to:
            self._check_email()
        load_budgets(self.budgets_config)
        if not os.path.exists(self.db):  # opening it to record the delivery would create an empty store
            raise ValueError(f"no auriko-obs store at {os.path.abspath(self.db)}")
        check_writable(log_path(self.db))  # the delivery log is kept in the store (for a lake, beside it)

    def out_template(self) -> str:
        """Returns ``out``; raises ValueError when there is none (file delivery needs it)."""
        if not self.out:
            raise ValueError("--to file needs --out FILE")
        return self.out

    def webhook(self) -> str:
        """Returns ``webhook_url``; raises ValueError when there is none (webhook delivery needs it)."""
        if not self.webhook_url:
            raise ValueError("--to webhook needs --webhook-url or $AURIKO_OBS_WEBHOOK_URL")
        return self.webhook_url

    def _check_out(self) -> None:
        template = self.out_template()
        known = ", ".join("{" + name + "}" for name in OUT_PLACEHOLDERS)
        try:  # what _out_path does, with every placeholder a string as there
            template.format(**dict.fromkeys(OUT_PLACEHOLDERS, ""))
        except KeyError as exc:
            raise ValueError(f"--out {self.out!r}: unknown placeholder {{{exc.args[0]}}} (known: {known})") from None
        except (IndexError, ValueError, AttributeError) as exc:
            raise ValueError(f"--out {self.out!r}: bad placeholder ({exc}; known: {known})") from None

    def _check_webhook_url(self) -> None:
        parsed = urllib.parse.urlsplit(self.webhook())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("the webhook URL must be an http:// or https:// URL with a host")

    def _check_email(self) -> None:
        if not self.email_to:
            raise ValueError("--to email needs --email-to ADDRESS or $AURIKO_OBS_EMAIL_TO")
        try:
            SmtpSettings.from_env()
        except DeliveryError as exc:
            raise ValueError(str(exc)) from None


@dataclass
class Outcome:
    destination: str
    status: str  # delivered, skipped, failed
    detail: str
    period: str = ""  # its label


def _out_path(spec: ReportSpec, period: Period) -> str:
    return os.path.abspath(
        spec.out_template().format(
            name=spec.name,
            period=period.kind,
            format=spec.format,
            start=period.start.strftime("%Y-%m-%d"),
            end=period.end.strftime("%Y-%m-%d"),
        )
    )


def _destination_id(kind: str, spec: ReportSpec) -> str:
    """Returns the destination as the delivery log knows it: the same for every period."""
    if kind == "file":
        return f"file:{os.path.abspath(spec.out_template())}"
    if kind == "webhook":  # the URL is a secret: keep a digest only
        return f"webhook:{hashlib.sha256(spec.webhook().encode()).hexdigest()[:16]}"
    return "email:" + ",".join(sorted(spec.email_to))


def idempotency_key(report: str, period: Period, destination: str) -> str:
    """Returns the key a receiver sees on every delivery of one report's period to one destination."""
    return hashlib.sha256(f"{report}\n{period.key}\n{destination}".encode()).hexdigest()[:32]


def _owed_periods(spec: ReportSpec, dest: str, current: Period) -> tuple[list[Period], str | None]:
    """Returns the periods to deliver to ``dest``, oldest first: those that failed or were interrupted, those
    after the newest delivered one, and ``current``; and a note on those left beyond ``CATCH_UP_LIMIT``."""
    if current.kind not in PERIOD_KINDS:  # a custom --since/--until range stands alone
        return [current], None
    newest, pending = owed(spec.db, spec.name, dest, current.kind)
    periods = {current.key: current}
    for key in pending:
        period = Period.from_key(key)
        if period.start < current.start:
            periods[key] = period
    missed = []
    if newest is not None:
        period = Period.from_key(newest).next()
        while period.start < current.start:
            missed.append(period)
            period = period.next()
    note = None
    if len(missed) > CATCH_UP_LIMIT:
        left, missed = missed[:-CATCH_UP_LIMIT], missed[-CATCH_UP_LIMIT:]
        note = (
            f"{len(left)} older periods ({left[0].label} to {left[-1].label}) were never delivered and are beyond "
            f"the catch-up limit of {CATCH_UP_LIMIT}: send them with --since/--until, one period each"
        )
    periods.update((p.key, p) for p in missed)
    return sorted(periods.values(), key=lambda p: p.start), note


def run_report(spec: ReportSpec, *, now: datetime | None = None, log: Callable[[str], None] = print) -> list[Outcome]:
    """Returns what happened at each destination after building, rendering and delivering the report.

    Each destination gets every period it is owed, oldest first: the current one (the last complete
    period, or ``since``/``until``), any that failed before, and any missed since the newest delivered one
    (a scheduler that was down), at most ``CATCH_UP_LIMIT``. A period already delivered, or being sent by
    a live run, is skipped; one whose sending was interrupted (the run died mid-send) is a failure until
    ``spec.force`` sends it again. ``spec.force`` also sends the current period again. Delivery failures
    are returned, not raised.
    """
    spec.check()
    now = now or datetime.now(timezone.utc)
    current = report_period(spec.period, now=now, since=spec.since, until=spec.until)
    outcomes: list[Outcome] = []
    plan: dict[str, tuple[Period, list[tuple[str, str]]]] = {}
    for kind in dict.fromkeys(spec.to):
        dest = _destination_id(kind, spec)
        periods, note = _owed_periods(spec, dest, current)
        if note:
            outcomes.append(Outcome(kind, "failed", f"{spec.name} to {kind}: {note}", current.label))
        for period in periods:
            plan.setdefault(period.key, (period, []))[1].append((kind, dest))
    for period, destinations in sorted(plan.values(), key=lambda item: item[0].start):
        outcomes += _run_period(spec, period, destinations, now, log)
    return outcomes


def _run_period(
    spec: ReportSpec, period: Period, destinations: list[tuple[str, str]], now: datetime, log: Callable[[str], None]
) -> list[Outcome]:
    """Returns the outcomes of delivering one period's report to the destinations that may have it."""
    from ._data import build_report

    outcomes, pending = [], []
    for kind, dest in destinations:
        verdict = claim(spec.db, spec.name, period.key, dest, force=spec.force)
        if verdict.send:
            pending.append((kind, dest))
            continue
        status = "failed" if verdict.interrupted else "skipped"
        outcomes.append(
            Outcome(kind, status, f"{spec.name} for {period.label} to {kind}: {verdict.detail}", period.label)
        )
        if not verdict.interrupted:  # a failure is reported by the caller
            log(outcomes[-1].detail)
    if not pending:
        return outcomes
    try:
        report = build_report(spec.db, period, top_n=spec.top_n, now=now, budgets=load_budgets(spec.budgets_config))
        rendered = render(report, spec.format)
    except BaseException:
        for _, dest in pending:
            release(spec.db, spec.name, period.key, dest)
        raise
    for kind, dest in pending:
        try:
            detail = _deliver(kind, spec, period, report, rendered, idempotency_key(spec.name, period, dest))
        except BaseException as exc:
            record_failure(spec.db, spec.name, period.key, dest, str(exc).splitlines()[0] if str(exc) else repr(exc))
            if not isinstance(exc, DeliveryError):
                raise
            outcomes.append(Outcome(kind, "failed", str(exc), period.label))
            continue
        record_delivery(spec.db, spec.name, period.key, dest, detail)
        outcomes.append(Outcome(kind, "delivered", detail, period.label))
        log(f"{spec.name} for {period.label}: {detail}")
    return outcomes


def _deliver(kind: str, spec: ReportSpec, period: Period, report: dict, rendered: str, key: str) -> str:
    if kind == "file":
        return deliver_file(rendered.encode(), _out_path(spec, period))
    if kind == "webhook":
        payload = {"text": summary_text(report), "report": report, "idempotency_key": key}
        if spec.format in ("md", "csv"):
            payload.update(format=spec.format, content=rendered)
        return deliver_webhook(payload, spec.webhook(), retry=spec.retry, idempotency_key=key)
    settings = SmtpSettings.from_env()
    html = rendered if spec.format == "html" else render(report, "html")
    message = build_email(
        subject=f"LLM spend report: {report['period']['label']} ({usd(report['totals']['cost_usd'])})",
        text="\n".join(summary_lines(report, bold="")) + "\n\n" + render(report, "md"),
        html=html.encode(),
        html_name=f"llm-spend-{period.kind}-{period.start:%Y-%m-%d}.html",
        sender=settings.sender or "auriko-obs@localhost",
        recipients=list(spec.email_to),
        message_id=f"<{key}@auriko-obs.report>",  # the same on a repeat, so that mail clients show it once
    )
    if spec.format in ("csv", "json"):
        message.add_attachment(
            rendered.encode(),
            maintype="text" if spec.format == "csv" else "application",
            subtype=spec.format,
            filename=f"llm-spend-{period.kind}-{period.start:%Y-%m-%d}.{spec.format}",
        )
    return deliver_email(message, settings)
