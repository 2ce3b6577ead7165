"""Which reports have been delivered, kept in the store (table ``auriko_obs_report_deliveries``).

A report is identified by its name, its period (``Period.key``) and its destination, so that a
scheduler restarted mid-week, or cron and a manual run on the same Monday, send each report once.
Each row has a status:

- ``sending``: a run has *claimed* the delivery, in one transaction (DuckDB lets one process at a time
  write to the file, so two processes cannot both claim it). ``detail`` names the claimant: host, process
  id and the process's start time.
- ``delivered``: it arrived (``detail`` says where and how).
- ``failed``: the last attempt failed; the next run tries it again (``detail`` says why).
- ``interrupted``: a claim whose run ended without recording what happened: its process is gone (same
  host), or the claim is older than ``CLAIM_TTL`` (another host). The receiver may or may not have the
  report, so it is not sent again on its own: every run reports it as an error until ``--force`` sends
  it again (with the same idempotency key, so a receiver that honours it drops the repeat).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..store import connect, is_lake, lake_root

CLAIM_TTL = timedelta(minutes=15)


def log_path(db_path: str) -> str:
    """Returns the DuckDB file that keeps the delivery log: the store itself, or for a lake (whose Parquet files
    are only ever added) a store file of its own in the lake's ``_auriko_obs`` folder."""
    if is_lake(db_path):
        return os.path.join(lake_root(db_path), "_auriko_obs", "deliveries.duckdb")
    return db_path


_KEY = "report = ? AND period_key = ? AND destination = ?"
_TABLE = "auriko_obs_report_deliveries"


@dataclass(frozen=True)
class Claim:
    """What a run may do with one delivery: ``send`` it, or not, and why (``detail``)."""

    send: bool
    interrupted: bool = False
    detail: str = ""


def _process_start(pid: int) -> str | None:
    """Returns the start time of process ``pid`` as the kernel counts it (Linux), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _process_start(os.getpid())}


def _alive(owner: dict) -> bool | None:
    """Returns whether the claimant still runs: None when it cannot be told (another host)."""
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return None
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        pass
    started = _process_start(owner["pid"])
    return started is None or owner.get("started") is None or started == owner["started"]


def _who(owner: dict) -> str:
    return f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}"


def claim(db_path: str, report: str, period_key: str, destination: str, *, force: bool = False) -> Claim:
    """Returns whether this run may send the delivery, after claiming it when it may.

    Not when it was delivered, is being sent by a live run, or was interrupted (unless ``force``)."""
    now = datetime.now(timezone.utc)
    with connect(log_path(db_path), read_only=False, wait_s=30) as con:
        con.execute("BEGIN TRANSACTION")
        row = con.execute(
            f"SELECT status, delivered_at, detail FROM {_TABLE} WHERE {_KEY}", [report, period_key, destination]
        ).fetchone()
        verdict = None if row is None or force else _verdict(row, now)
        if verdict is not None and verdict.interrupted and row is not None and row[0] == "sending":
            con.execute(f"UPDATE {_TABLE} SET status = 'interrupted' WHERE {_KEY}", [report, period_key, destination])
        if verdict is not None:
            con.execute("COMMIT")
            return verdict
        con.execute(
            f"INSERT OR REPLACE INTO {_TABLE} VALUES (?, ?, ?, ?, ?, 'sending')",
            [report, period_key, destination, now, json.dumps(_me())],
        )
        con.execute("COMMIT")
    return Claim(send=True)


def _verdict(row: tuple, now: datetime) -> Claim | None:
    """Returns why a recorded delivery must not be sent now, or None when it may be (it failed before)."""
    status, at, detail = row
    if status == "delivered":
        return Claim(False, detail=f"already delivered at {at:%Y-%m-%d %H:%M} UTC (--force sends it again)")
    if status == "failed":
        return None
    owner = _owner(detail) if status in ("sending", "interrupted") else {}
    if status == "sending" and (_alive(owner) or (_alive(owner) is None and now - at < CLAIM_TTL)):
        return Claim(False, detail=f"being sent by another run ({_who(owner)}) since {at:%H:%M:%S} UTC")
    who = _who(owner) if owner else "a run"
    return Claim(
        False,
        interrupted=True,
        detail=f"interrupted: {who} started sending it at {at:%Y-%m-%d %H:%M} UTC and ended without recording "
        "whether it arrived; the receiver may have it. --force sends it again (with the same Idempotency-Key)",
    )


def _owner(detail: str | None) -> dict:
    try:
        owner = json.loads(detail or "{}")
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def record_delivery(db_path: str, report: str, period_key: str, destination: str, detail: str) -> None:
    """Marks a claimed delivery as done."""
    _set(db_path, report, period_key, destination, "delivered", detail)


def record_failure(db_path: str, report: str, period_key: str, destination: str, detail: str) -> None:
    """Marks a claimed delivery as failed: the next run tries it again, before newer periods."""
    _set(db_path, report, period_key, destination, "failed", detail)


def release(db_path: str, report: str, period_key: str, destination: str) -> None:
    """Drops the claim of a delivery that was never attempted (building the report failed)."""
    with connect(log_path(db_path), read_only=False, wait_s=30) as con:
        con.execute(f"DELETE FROM {_TABLE} WHERE {_KEY} AND status = 'sending'", [report, period_key, destination])


def _set(db_path: str, report: str, period_key: str, destination: str, status: str, detail: str) -> None:
    with connect(log_path(db_path), read_only=False, wait_s=30) as con:
        con.execute(
            f"UPDATE {_TABLE} SET status = ?, delivered_at = ?, detail = ? WHERE {_KEY}",
            [status, datetime.now(timezone.utc), detail, report, period_key, destination],
        )


def owed(db_path: str, report: str, destination: str, kind: str) -> tuple[str | None, list[str]]:
    """Returns, for one report and destination, the key of the newest delivered period of ``kind`` (None
    when none was), and the keys of the periods of ``kind`` that failed or were interrupted."""
    prefix = f"{kind}:%"
    with connect(log_path(db_path), read_only=False, wait_s=30) as con:
        newest = con.execute(
            f"SELECT max(period_key) FROM {_TABLE} WHERE report = ? AND destination = ? AND period_key LIKE ? "
            "AND status = 'delivered'",
            [report, destination, prefix],
        ).fetchone()
        pending = con.execute(
            f"SELECT period_key FROM {_TABLE} WHERE report = ? AND destination = ? AND period_key LIKE ? "
            "AND status IN ('failed', 'interrupted', 'sending') ORDER BY period_key",
            [report, destination, prefix],
        ).fetchall()
    return (newest[0] if newest else None), [key for (key,) in pending]


def deliveries(db_path: str) -> list[tuple]:
    """Returns every completed delivery as (report, period_key, destination, delivered_at, detail)."""
    with connect(log_path(db_path), read_only=False, wait_s=30) as con:
        return con.execute(
            "SELECT report, period_key, destination, delivered_at, detail "
            f"FROM {_TABLE} WHERE status = 'delivered' ORDER BY delivered_at"
        ).fetchall()
