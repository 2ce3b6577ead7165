"""Which reports have been delivered, kept in the store (table ``auriko_obs_report_deliveries``).

A report is identified by its name, its period (``Period.key``) and its destination, so that a
scheduler restarted mid-week, or cron and a manual run on the same Monday, send each report once.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..store._files import connect


def already_delivered(db_path: str, report: str, period_key: str, destination: str) -> datetime | None:
    """Returns when this report was delivered for this period and destination, or None."""
    with connect(db_path, read_only=False, wait_s=30) as con:
        row = con.execute(
            "SELECT delivered_at FROM auriko_obs_report_deliveries WHERE report = ? AND period_key = ? "
            "AND destination = ?", [report, period_key, destination]).fetchone()
    return row[0] if row else None


def record_delivery(db_path: str, report: str, period_key: str, destination: str, detail: str) -> None:
    """Records a delivery (replacing an earlier one for the same report, period and destination)."""
    with connect(db_path, read_only=False, wait_s=30) as con:
        con.execute("INSERT OR REPLACE INTO auriko_obs_report_deliveries VALUES (?, ?, ?, ?, ?)",
                    [report, period_key, destination, datetime.now(timezone.utc), detail])


def deliveries(db_path: str) -> list[tuple]:
    """Returns every recorded delivery as (report, period_key, destination, delivered_at, detail)."""
    with connect(db_path, read_only=False, wait_s=30) as con:
        return con.execute("SELECT * FROM auriko_obs_report_deliveries ORDER BY delivered_at").fetchall()
