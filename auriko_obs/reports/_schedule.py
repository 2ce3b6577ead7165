"""``auriko-obs schedule``: a long-running scheduler (APScheduler) of the reports in a TOML file.

The file::

    db = "spend.duckdb"            # default store of every report (else $AURIKO_OBS_DB)
    timezone = "UTC"               # the time zone of the cron expressions (periods are always UTC)

    [[report]]
    name = "weekly-finance"        # identifies the report in the delivery log (once per period)
    cron = "0 8 * * mon"           # crontab: minute hour day month weekday (a 6th leading field: seconds)
    period = "week"                # day, week or month: the last complete one when it runs
    format = "html"                # html, md, csv, json
    to = ["email", "file"]         # any of file, webhook, email
    email_to = ["finance@example.com"]
    out = "reports/{name}-{start}.html"
    webhook_url = "https://hooks.slack.com/services/..."   # or $AURIKO_OBS_WEBHOOK_URL
    top_n = 10
    budgets_config = "auriko_obs.toml"

Each run delivers only what was not yet delivered for its period, so a restart, a catch-up run at start
(``catch_up = true``, the default) and a manual ``auriko-obs report`` never send a report twice.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._run import ReportSpec, run_report

log = logging.getLogger("auriko_obs.schedule")
# what a [[report]] entry may set: ReportSpec's fields but the command-line-only ones
_SPEC_KEYS = {f.name for f in dataclasses.fields(ReportSpec)} - {"since", "until", "force", "retry"}


class ScheduleConfigError(ValueError):
    """The schedule file cannot be read or is invalid."""


@dataclass
class ScheduledReport:
    spec: ReportSpec
    cron: str
    catch_up: bool = True


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_weekdays(field: str) -> str:
    """Returns a crontab day-of-week field as APScheduler weekday names.

    crontab counts weekdays from Sunday (0 and 7 are Sunday, 1 is Monday), APScheduler 3 from Monday
    (0 is Monday), so ``0 6 * * 1`` handed to APScheduler as it is would run on Tuesdays. Numbers, names,
    ranges, lists and steps are expanded to the days they mean in crontab and passed on by name.
    """
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"bad step in the day-of-week field: {part!r}")
        if span == "*":
            first, last = 0, 6
        else:
            low, _, high = span.partition("-")
            first = _weekday(low)
            last = _weekday(high) if high else 6 if step else first
            if last < first:  # "fri-mon" wraps around the week (and 7 counts as Sunday at the end)
                last += 7
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text in _WEEKDAYS:
        return _WEEKDAYS.index(text)
    raise ValueError(f"bad day of week {text!r} (use 0-7, 0 and 7 being Sunday, or sun-sat)")


def cron_trigger(expression: str, tz: Any = "UTC") -> Any:
    """Returns an APScheduler trigger for a 5-field crontab expression (or 6 fields, seconds first).

    Days of the week mean what they mean in crontab (0 or 7 Sunday, 1 Monday, …), and so does a
    restricted day of the month beside a restricted day of the week (either matching is enough)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    if len(fields) != 6:
        raise ValueError(f"a cron expression has 5 fields (or 6 with seconds first), not {len(fields)}: {expression!r}")
    second, minute, hour, day, month, dow = fields
    weekdays = _cron_weekdays(dow)
    if day not in ("*", "?") and weekdays != "*":
        # crontab runs when either the day of the month or the day of the week matches; APScheduler wants both.
        from apscheduler.triggers.combining import OrTrigger

        return OrTrigger(
            [
                CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month, timezone=tz),
                CronTrigger(second=second, minute=minute, hour=hour, month=month, day_of_week=weekdays, timezone=tz),
            ]
        )
    return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=weekdays, timezone=tz)


def load_schedule(path: str | os.PathLike[str], *, db: str | None = None) -> tuple[list[ScheduledReport], str]:
    """Returns the scheduled reports of a TOML file and their time zone; raises ScheduleConfigError."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScheduleConfigError(f"cannot read schedule {path}: {exc}") from None
    default_db = db or data.get("db") or os.environ.get("AURIKO_OBS_DB") or "auriko_obs.duckdb"
    tz = data.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleConfigError(f"{path}: unknown timezone {tz!r} (an IANA name such as 'Europe/Paris')") from None
    entries = data.get("report") or []
    if not entries:
        raise ScheduleConfigError(f"{path}: no [[report]] entries")
    out = []
    for i, entry in enumerate(entries):
        where = f"{path}: report[{i}] ({entry.get('name', 'unnamed')})"
        unknown = set(entry) - _SPEC_KEYS - {"cron", "catch_up"}
        if unknown:
            raise ScheduleConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        if "cron" not in entry:
            raise ScheduleConfigError(f"{where}: needs cron")
        values = {k: v for k, v in entry.items() if k in _SPEC_KEYS}
        values.setdefault("to", ["file"])
        for key in ("to", "email_to"):  # one value may be written without the list brackets
            if isinstance(values.get(key), str):
                values[key] = [part.strip() for part in values[key].split(",") if part.strip()]
        values.setdefault("webhook_url", os.environ.get("AURIKO_OBS_WEBHOOK_URL"))
        values.setdefault("name", f"report-{i + 1}")
        values["db"] = os.path.abspath(values.get("db") or default_db)
        spec = ReportSpec(**values)
        try:
            cron_trigger(entry["cron"], tz)
            spec.check()
        except ValueError as exc:
            raise ScheduleConfigError(f"{where}: {exc}") from None
        out.append(ScheduledReport(spec, entry["cron"], bool(entry.get("catch_up", True))))
    names = [r.spec.name for r in out]
    if len(set(names)) != len(names):
        raise ScheduleConfigError(f"{path}: report names must be unique")
    return out, tz


def _job(report: ScheduledReport) -> None:
    try:
        outcomes = run_report(report.spec, log=lambda line: log.info("%s: %s", report.spec.name, line))
    except Exception:  # one failing report must not stop the scheduler
        log.exception("%s: the report failed", report.spec.name)
        return
    for o in outcomes:
        if o.status == "failed":
            log.error("%s: delivery to %s failed: %s", report.spec.name, o.destination, o.detail)


def build_scheduler(reports: list[ScheduledReport], tz: str = "UTC") -> Any:
    """Returns a BlockingScheduler with one cron job per report (and a catch-up run at start where asked)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone=tz)
    for report in reports:
        scheduler.add_job(
            _job,
            cron_trigger(report.cron, tz),
            args=[report],
            id=report.spec.name,
            name=report.spec.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )
        if report.catch_up:
            scheduler.add_job(
                _job,
                "date",
                run_date=datetime.now(timezone.utc),
                args=[report],
                id=f"{report.spec.name}:catch-up",
                misfire_grace_time=None,
            )
    return scheduler


def serve(path: str | os.PathLike[str], *, db: str | None = None) -> None:
    """Runs the scheduler of the reports in ``path`` until interrupted (SIGINT or SIGTERM)."""
    import signal

    reports, tz = load_schedule(path, db=db)
    scheduler = build_scheduler(reports, tz)

    def stop(signum: int, frame: Any) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    for report in reports:
        log.info(
            "%s: cron %r (%s), %s report as %s to %s",
            report.spec.name,
            report.cron,
            tz,
            report.spec.period,
            report.spec.format,
            ", ".join(report.spec.to),
        )
    try:
        scheduler.start()
    except KeyboardInterrupt:
        scheduler.shutdown(wait=False)


DEFAULT_CRON = {"day": "{m} {h} * * *", "week": "{m} {h} * * 1", "month": "{m} {h} 1 * *"}


def default_cron(period: str, utc_offset_minutes: int) -> str:
    """Returns a crontab expression, in the machine's local time, that runs early in each new UTC ``period``.

    The local hour is chosen so that the run falls on the same date in UTC as locally (cron's weekday and
    day of month are local), six hours after midnight UTC where the offset allows: a weekly report then
    covers the week that has just ended, whatever the machine's time zone.
    """
    local_minutes = max(0, 6 * 60 + utc_offset_minutes)
    return DEFAULT_CRON[period].format(m=local_minutes % 60, h=local_minutes // 60)


def cron_line(
    argv: list[str],
    period: str,
    expression: str | None = None,
    *,
    program: str | None = None,
    utc_offset_minutes: int | None = None,
) -> str:
    """Returns a crontab line that runs ``auriko-obs report`` with ``argv`` (already absolute paths)."""
    import shlex
    import shutil

    if utc_offset_minutes is None:
        offset = datetime.now().astimezone().utcoffset()
        utc_offset_minutes = int(offset.total_seconds() // 60) if offset else 0
    if expression is not None:
        if len(expression.split()) != 5:
            raise ValueError(f"--cron needs 5 fields (minute hour day month weekday), not {expression!r}")
        try:
            cron_trigger(expression)
        except ValueError as exc:
            raise ValueError(f"--cron {expression!r}: {exc}") from None
    expression = expression or default_cron(period, utc_offset_minutes)
    beside_python = Path(sys.executable).parent / "auriko-obs"  # the same virtualenv as this process
    program = program or (str(beside_python) if beside_python.exists() else shutil.which("auriko-obs"))
    head = [program] if program else [sys.executable, "-m", "auriko_obs"]
    # cron turns an unescaped % into a newline
    command = " ".join(shlex.quote(a) for a in [*head, "report", *argv]).replace("%", "\\%")
    return f"{expression} {command} >> {shlex.quote(os.path.expanduser('~/auriko-obs-report.log'))} 2>&1"
