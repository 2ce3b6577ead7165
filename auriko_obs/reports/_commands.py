"""The commands ``report``, ``schedule`` and ``budget check`` (added to ``auriko-obs`` by ``auriko_obs.cli``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .._cli_shared import UserError, db_option, db_path, readable_db_path


def _time(value: str | None, option: str):
    from ..store import parse_time

    try:
        return parse_time(value)
    except ValueError as exc:
        raise UserError(f"{option}: {exc}") from None


@click.command()
@db_option
@click.option(
    "--period",
    type=click.Choice(["day", "week", "month"]),
    default="week",
    show_default=True,
    help="The last complete UTC day, ISO week or month (or the one --since/--until choose).",
)
@click.option("--since", default=None, help="Start of a custom range: ISO-8601 or a span back from now (7d).")
@click.option("--until", default=None, help="End of a custom range (default: now with --since).")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "csv", "json"]), default="html", show_default=True)
@click.option("--out", default=None, help="File to write (--to file); may hold {name} {period} {start} {end} {format}.")
@click.option(
    "--to",
    "to",
    multiple=True,
    type=click.Choice(["file", "webhook", "email"]),
    help="Where to deliver (repeatable). Default: file with --out, else the report goes to stdout.",
)
@click.option(
    "--webhook-url",
    envvar="AURIKO_OBS_WEBHOOK_URL",
    default=None,
    help="Webhook for --to webhook (Slack-compatible JSON; default $AURIKO_OBS_WEBHOOK_URL).",
)
@click.option(
    "--email-to",
    multiple=True,
    help="Recipient for --to email (repeatable; default $AURIKO_OBS_EMAIL_TO). "
    "SMTP settings come from $AURIKO_OBS_SMTP_*.",
)
@click.option(
    "--retries",
    type=click.IntRange(1, 20),
    default=5,
    show_default=True,
    help="Webhook attempts in all (waits of about 1, 2, 4… s between them).",
)
@click.option("--top", "top_n", type=click.IntRange(1, 1000), default=10, show_default=True, help="Rows per breakdown.")
@click.option("--name", default="report", show_default=True, help="Report name in the delivery log (once per period).")
@click.option(
    "--budgets-config",
    type=click.Path(dir_okay=False),
    default=None,
    help="Budgets file (default: ./auriko_obs.toml or ./pyproject.toml [tool.auriko_obs]).",
)
@click.option("--force", is_flag=True, help="Deliver again even if this period was already delivered.")
@click.option("--cron-line", is_flag=True, help="Print a crontab line running this report instead of running it.")
@click.option(
    "--cron",
    "cron_expression",
    default=None,
    help="Crontab schedule for --cron-line (default: early in each new period, in local time).",
)
def report(
    db: Path | None,
    period: str,
    since: str | None,
    until: str | None,
    fmt: str,
    out: str | None,
    to: tuple[str, ...],
    webhook_url: str | None,
    email_to: tuple[str, ...],
    retries: int,
    top_n: int,
    name: str,
    budgets_config: str | None,
    force: bool,
    cron_line: bool,
    cron_expression: str | None,
) -> None:
    """Build a spend report for a period and deliver it to a file, a webhook or email."""
    from ._deliver import Retry
    from ._run import ReportSpec, run_report

    if cron_line:
        _print_cron_line(click.get_current_context(), cron_expression)
        return
    path = readable_db_path(db)
    email_to = email_to or tuple(a.strip() for a in os.environ.get("AURIKO_OBS_EMAIL_TO", "").split(",") if a.strip())
    if not to and out is None:
        _print_report(path, period, since, until, fmt, top_n, budgets_config)
        return
    spec = ReportSpec(
        db=path,
        period=period,
        since=_time(since, "--since"),
        until=_time(until, "--until"),
        format=fmt,
        to=to or ("file",),
        out=out,
        webhook_url=webhook_url,
        email_to=email_to,
        name=name,
        top_n=top_n,
        budgets_config=budgets_config,
        force=force,
        retry=Retry(attempts=retries),
    )
    try:
        outcomes = run_report(spec, log=lambda line: click.echo(line, err=True))
    except ValueError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        several = len({o.period for o in failed}) > 1  # catching up: say which period each failure is for
        details = [f"{o.period}: {o.detail}" if several else o.detail for o in failed]
        click.echo(f"auriko-obs: delivery failed: {'; '.join(details)}", err=True)
        raise click.exceptions.Exit(1)


def _print_cron_line(ctx: click.Context, expression: str | None) -> None:
    """Prints a crontab line for the options given (paths made absolute; defaults and env values left out)."""
    from click.core import ParameterSource

    from ._schedule import cron_line

    p = ctx.params
    argv = ["--db", os.path.abspath(db_path(p["db"])), "--period", p["period"], "--format", p["fmt"]]
    for option, key in (
        ("--since", "since"),
        ("--until", "until"),
        ("--out", "out"),
        ("--budgets-config", "budgets_config"),
        ("--top", "top_n"),
        ("--name", "name"),
        ("--retries", "retries"),
    ):
        if p[key] is not None and ctx.get_parameter_source(key) == ParameterSource.COMMANDLINE:
            value = os.path.abspath(p[key]) if key in ("out", "budgets_config") else str(p[key])
            argv += [option, value]
    argv += [a for t in p["to"] for a in ("--to", t)] + [a for e in p["email_to"] for a in ("--email-to", e)]
    try:
        print(cron_line(argv, p["period"], expression))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if p["webhook_url"] is not None and ctx.get_parameter_source("webhook_url") == ParameterSource.COMMANDLINE:
        # the URL is a secret (a crontab is readable in `crontab -l`, backups, and by whoever edits it)
        click.echo(
            "auriko-obs: the webhook URL is left out of the cron line: set AURIKO_OBS_WEBHOOK_URL in the env file "
            "the job sources (see docs/guides/reports.md, 'Cron, in one line')",
            err=True,
        )


def _print_report(path: str, period: str, since, until, fmt: str, top_n: int, budgets_config) -> None:
    from ._budget_verdicts import load as load_budgets
    from ._data import build_report
    from ._periods import report_period
    from ._render import render

    try:
        chosen = report_period(period, since=_time(since, "--since"), until=_time(until, "--until"))
        budgets = load_budgets(budgets_config)
    except ValueError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    sys.stdout.write(render(build_report(path, chosen, top_n=top_n, budgets=budgets), fmt))


@click.command()
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="TOML file of [[report]] entries with cron expressions (see docs/guides/reports.md).",
)
@db_option
def schedule(config: str, db: Path | None) -> None:
    """Run scheduled reports until interrupted (a long-running process, e.g. a systemd service)."""
    import logging

    from ._schedule import ScheduleConfigError, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        serve(config, db=os.fspath(db) if db else None)
    except ScheduleConfigError as exc:
        raise UserError(str(exc)) from None


@click.group()
def budget() -> None:
    """Budgets: check them against spend (monitoring-plugin exit codes)."""


class _PluginCommand(click.Command):
    """A command whose usage errors exit 3 (UNKNOWN), as monitoring plugins must, not click's 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            click.echo(f"BUDGET UNKNOWN - {exc.format_message()}")
            ctx.exit(3)


@budget.command(cls=_PluginCommand)
@db_option
@click.option(
    "--config",
    "config",
    default=None,
    help="Budgets file (default: ./auriko_obs.toml or ./pyproject.toml [tool.auriko_obs]).",
)
@click.option("--name", "names", multiple=True, help="Check only these budgets (repeatable).")
@click.option(
    "--warning",
    "warning_pct",
    type=float,
    default=80.0,
    show_default=True,
    help="Percent of a limit that makes a WARNING.",
)
@click.option(
    "--critical",
    "critical_pct",
    type=float,
    default=100.0,
    show_default=True,
    help="Percent of a limit that makes it CRITICAL (a forecast to reach the limit before the reset does too).",
)
@click.option("--now", default=None, help="Evaluate at this time instead of now (ISO-8601).")
def check(
    db: Path | None,
    config: str | None,
    names: tuple[str, ...],
    warning_pct: float,
    critical_pct: float,
    now: str | None,
) -> None:
    """Check budgets like a monitoring plugin: one line, and exit 0 OK, 1 WARNING (threshold crossed),
    2 CRITICAL (limit reached, or forecast to be before the period resets), 3 UNKNOWN (no data, bad config)."""
    from ._budget_verdicts import check_budgets

    code, line = check_budgets(
        db_path(db), config=config, names=names, now=now, warning_pct=warning_pct, critical_pct=critical_pct
    )
    click.echo(line)
    raise click.exceptions.Exit(code)
