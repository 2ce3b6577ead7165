"""Which reports have been delivered, kept in the store (table ``auriko_obs_report_deliveries``).

A report is identified by its name, its period (``Period.key``) and its destination, so that a
scheduler restarted mid-week, or cron and a manual run on the same Monday, send each report once.
A run first *claims* a delivery (status ``sending``) in one transaction; DuckDB lets one process at
a time write to the file, so two processes cannot both claim it. A claim left by a process that died
mid-send expires after ``CLAIM_TTL``; a failed delivery drops its claim, so the next run tries again.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from ..store._files import connect
from ..store._lake import is_lake, lake_root

CLAIM_TTL = timedelta(minutes=15)
_KEY = "report = ? AND period_key = ? AND destination = ?"


def log_path(db_path: str) -> str:
    """Returns the DuckDB file that keeps the delivery log: the store itself, or for a lake (whose Parquet files
    are only ever added) a store file of its own in the lake's ``_auriko_obs`` folder."""
    if is_lake(db_path):
        return os.path.join(lake_root(db_path), "_auriko_obs", "deliveries.duckdb")
    return db_path


def claim(db_path: str, report: str, period_key: str, destination: str, *, force: bool = False) -> str | None:
    """Returns None after claiming the delivery, or why it must not be sent (already sent, being sent)."""
    now = datetime.now(timezone.utc)
    with connect(log_path(db_path), read_only=False, wait_s=30) as con:
        con.execute("BEGIN TRANSACTION")
        row = con.execute(
            f"SELECT status, delivered_at FROM auriko_obs_report_deliveries WHERE {_KEY}",
            [report, period_key, destination],
        ).fetchone()
        if row and not force:
            status, at = row
            if status == "delivered":
                con.execute("ROLLBACK")
                return f"already delivered at {at:%Y-%m-%d %H:%M} UTC (--force sends it again)"
            if status == "sending" and now - at < CLAIM_TTL:
                con.execute("ROLLBACK")
                return f"being sent by another run since {at:%H:%M:%S} UTC"
        con.execute(
            "INSERT OR REPLACE INTO auriko_obs_report_deliveries VALUES (?, ?, ?, ?, ?, 'sending')",
            [report, period_key, destination, now, None],
        )
        con.execute("COMMIT")
    return None


def record_delivery(db_path: str, report: str, period_key: str, destination: str, detail: str) -> None:
    """Marks a claimed delivery as done."""
    with connect(log_path(db_path), read_only=False, wait_s=30) as con:
        con.execute(
            f"UPDATE auriko_obs_report_deliveries SET status = 'delivered', delivered_at = ?, detail = ? WHERE {_KEY}",
            [datetime.now(timezone.utc), detail, report, period_key, destination],
        )


def release(db_path: str, report: str, period_key: str, destination: str) -> None:
    """Drops the claim of a delivery that failed, so that the next run tries again."""
    with connect(log_path(db_path), read_only=False, wait_s=30) as con:
        con.execute(
            f"DELETE FROM auriko_obs_report_deliveries WHERE {_KEY} AND status = 'sending'",
            [report, period_key, destination],
        )


def deliveries(db_path: str) -> list[tuple]:
    """Returns every completed delivery as (report, period_key, destination, delivered_at, detail)."""
    with connect(log_path(db_path), read_only=False, wait_s=30) as con:
        return con.execute(
            "SELECT report, period_key, destination, delivered_at, detail "
            "FROM auriko_obs_report_deliveries WHERE status = 'delivered' ORDER BY delivered_at"
        ).fetchall()
