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
from ._delivery_log import claim, log_path, record_delivery, release
from ._periods import PERIOD_KINDS, Period, report_period
from ._render import FORMATS, render, summary_text, usd

DESTINATIONS = ("file", "webhook", "email")
OUT_PLACEHOLDERS = ("name", "period", "start", "end", "format")
MAX_TOP_N = 1000


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

    def _check_out(self) -> None:
        if not self.out:
            raise ValueError("--to file needs --out FILE")
        known = ", ".join("{" + name + "}" for name in OUT_PLACEHOLDERS)
        try:  # what _out_path does, with every placeholder a string as there
            self.out.format(**dict.fromkeys(OUT_PLACEHOLDERS, ""))
        except KeyError as exc:
            raise ValueError(f"--out {self.out!r}: unknown placeholder {{{exc.args[0]}}} (known: {known})") from None
        except (IndexError, ValueError, AttributeError) as exc:
            raise ValueError(f"--out {self.out!r}: bad placeholder ({exc}; known: {known})") from None

    def _check_webhook_url(self) -> None:
        if not self.webhook_url:
            raise ValueError("--to webhook needs --webhook-url or $AURIKO_OBS_WEBHOOK_URL")
        parsed = urllib.parse.urlsplit(self.webhook_url)
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


def _out_path(spec: ReportSpec, period: Period) -> str:
    return os.path.abspath(
        spec.out.format(
            name=spec.name,
            period=period.kind,
            format=spec.format,
            start=period.start.strftime("%Y-%m-%d"),
            end=period.end.strftime("%Y-%m-%d"),
        )
    )


def _destination_id(kind: str, spec: ReportSpec, period: Period) -> str:
    if kind == "file":
        return f"file:{_out_path(spec, period)}"
    if kind == "webhook":  # the URL is a secret: keep a digest only
        return f"webhook:{hashlib.sha256(spec.webhook_url.encode()).hexdigest()[:16]}"
    return "email:" + ",".join(sorted(spec.email_to))


def run_report(spec: ReportSpec, *, now: datetime | None = None, log: Callable[[str], None] = print) -> list[Outcome]:
    """Returns what happened at each destination after building, rendering and delivering the report.

    A destination that already received this report for this period (or is receiving it from another run)
    is skipped unless ``spec.force``. Delivery failures are returned, not raised.
    """
    from ._data import build_report

    spec.check()
    now = now or datetime.now(timezone.utc)
    period = report_period(spec.period, now=now, since=spec.since, until=spec.until)
    pending = []
    outcomes = []
    for kind in dict.fromkeys(spec.to):
        dest = _destination_id(kind, spec, period)
        why_not = claim(spec.db, spec.name, period.key, dest, force=spec.force)
        if why_not is not None:
            outcomes.append(Outcome(kind, "skipped", f"{spec.name} for {period.label} to {kind}: {why_not}"))
            log(outcomes[-1].detail)
        else:
            pending.append((kind, dest))
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
            detail = _deliver(kind, spec, period, report, rendered)
        except BaseException as exc:
            release(spec.db, spec.name, period.key, dest)
            if not isinstance(exc, DeliveryError):
                raise
            outcomes.append(Outcome(kind, "failed", str(exc)))  # the caller reports failures
            continue
        record_delivery(spec.db, spec.name, period.key, dest, detail)
        outcomes.append(Outcome(kind, "delivered", detail))
        log(detail)
    return outcomes


def _deliver(kind: str, spec: ReportSpec, period: Period, report: dict, rendered: str) -> str:
    if kind == "file":
        return deliver_file(rendered.encode(), _out_path(spec, period))
    if kind == "webhook":
        payload = {"text": summary_text(report), "report": report}
        if spec.format in ("md", "csv"):
            payload.update(format=spec.format, content=rendered)
        return deliver_webhook(payload, spec.webhook_url, retry=spec.retry)
    settings = SmtpSettings.from_env()
    html = rendered if spec.format == "html" else render(report, "html")
    message = build_email(
        subject=f"LLM spend report: {report['period']['label']} ({usd(report['totals']['cost_usd'])})",
        text=summary_text(report).replace("*", "") + "\n\n" + render(report, "md"),
        html=html.encode(),
        html_name=f"llm-spend-{period.kind}-{period.start:%Y-%m-%d}.html",
        sender=settings.sender or "auriko-obs@localhost",
        recipients=list(spec.email_to),
    )
    if spec.format in ("csv", "json"):
        message.add_attachment(
            rendered.encode(),
            maintype="text" if spec.format == "csv" else "application",
            subtype=spec.format,
            filename=f"llm-spend-{period.kind}-{period.start:%Y-%m-%d}.{spec.format}",
        )
    return deliver_email(message, settings)
