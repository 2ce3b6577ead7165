"""``auriko-obs lake``: a lake's lifecycle from the command line (compact, prune, export); see ``_lake_lifecycle``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .._cli_shared import UserError, readable_db_path


def _duration(text: str | None, option: str) -> float | None:
    from ._lake_lifecycle import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UserError(f"bad {option}: {exc}") from None


def _lake(location: str) -> Any:
    from ._lake_location import LakeLocation

    try:
        lake = LakeLocation(location)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not lake.remote and not Path(lake.root).is_dir():
        raise UserError(f"no lake at {lake.root} (not a folder)")
    return lake


def _failed(what: str, lake: str, exc: Exception) -> UserError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UserError(f"{what} {lake} failed: {first}")


@click.group()
def lake() -> None:
    """A lake of Parquet files: compact it, drop old days, move a store into it."""


@lake.command()
@click.argument("location", metavar="LAKE")
@click.option("--date", "dates", multiple=True, metavar="YYYY-MM-DD", help="Only this date (repeatable).")
@click.option("--keep", default=None, metavar="DURATION", help="Also drop the dates older than this (e.g. 400d).")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="How long replaced files stay for readers that listed them, before a later run deletes them.",
)
@click.option(
    "--target-mb",
    type=click.FloatRange(1, 10_000),
    default=128.0,
    show_default=True,
    help="Size of the merged files; files this large already are left alone.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def compact(
    location: str, dates: tuple[str, ...], keep: str | None, grace: str, target_mb: float, as_json: bool
) -> None:
    """Merge each day's small files into a few large ones, each span once; safe while collectors write and
    readers query. Run it from cron (hourly or daily): files it replaces are deleted by a later run."""
    from datetime import date

    from ._lake_lifecycle import compact as run

    grace_s = _duration(grace, "--grace")
    keep_s = _duration(keep, "--keep")
    for text in dates:
        try:
            date.fromisoformat(text)
        except ValueError:
            raise UserError(f"bad --date {text!r}: use YYYY-MM-DD") from None
    target = _lake(location)
    try:
        report = run(
            target.root,
            dates=list(dates) or None,
            target_bytes=int(target_mb * (1 << 20)),
            grace_s=grace_s or 0.0,
            keep_s=keep_s,
        )
    except (OSError, ValueError) as exc:
        raise _failed("compacting", target.root, exc) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    for day in report.days:
        click.echo(
            f"{day.date}: {day.files_in} files, {day.rows_in:,} rows ({day.bytes_in / 1e6:,.1f} MB) -> "
            f"{day.files_out} files, {day.rows_out:,} rows ({day.bytes_out / 1e6:,.1f} MB)"
        )
    if not report.days:
        click.echo("nothing to merge")
    click.echo(
        f"deleted {report.deleted_files} files replaced earlier; {report.waiting_files} replaced files wait {grace}"
    )
    if report.pruned_dates:
        click.echo(
            f"dropped {len(report.pruned_dates)} days before {report.pruned_dates[-1]} ({report.pruned_files} files)"
        )


@lake.command()
@click.argument("location", metavar="LAKE")
@click.option(
    "--keep", required=True, metavar="DURATION", help="Keep the dates of this span back from now (e.g. 400d)."
)
def prune(location: str, keep: str) -> None:
    """Drop the dates older than --keep (every file in their folders)."""
    from ._lake_lifecycle import prune as run

    keep_s = _duration(keep, "--keep")
    target = _lake(location)
    try:
        dates, files = run(target, keep_s or 0.0)
    except OSError as exc:
        raise _failed("pruning", target.root, exc) from None
    click.echo(f"dropped {len(dates)} days ({files} files)" + (f", {dates[0]} to {dates[-1]}" if dates else ""))


@lake.command()
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The store file.")
@click.option("--to", "to", required=True, metavar="LAKE", help="The lake: a folder or s3://bucket/prefix.")
def export(db: Path, to: str) -> None:
    """Write a store file's spans into a lake (one file per day), as collectors would have."""
    from ._lake_lifecycle import export_store
    from ._lake_location import check_lake_writable

    path = readable_db_path(db)
    try:
        root = check_lake_writable(to)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        rows, files = export_store(path, root)
    except OSError as exc:
        raise _failed("exporting into", root, exc) from None
    click.echo(f"exported {rows:,} spans from {path} into {root} ({files} files)")
