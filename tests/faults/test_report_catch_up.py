"""Every period is delivered once per destination: failed and missed periods are caught up, oldest first; a
run killed mid-send is an error, not a silent skip or a repeat; receivers get an idempotency key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from auriko_obs.cli import main
from auriko_obs.reports import ReportSpec, Retry, run_report
from auriko_obs.reports import _run as report_run

from ..spend_history import call, insert_calls, utc
from .servers import SwitchableReceiver

FAST = Retry(attempts=2, base_s=0.01, max_s=0.02, timeout_s=5)


@pytest.fixture
def store(db_path):
    insert_calls(db_path, [call(utc(2026, 11, day, 10), cost_usd=float(day)) for day in range(1, 30)])
    return db_path


@pytest.fixture
def receiver():
    server = SwitchableReceiver()
    yield server
    server.close()


def _daily(store: str, url: str, **kw) -> ReportSpec:
    return ReportSpec(db=store, period="day", format="json", to=["webhook"], webhook_url=url, retry=FAST, **kw)


def _run(spec: ReportSpec, day: int) -> list[str]:
    return [o.status for o in run_report(spec, now=utc(2026, 11, day, 9), log=lambda _: None)]


def test_a_failed_period_goes_out_with_the_next_run_before_the_newer_one(store, receiver):
    spec = _daily(store, receiver.url)
    assert _run(spec, 25) == ["delivered"]  # the 24th
    receiver.failing = True
    assert _run(spec, 26) == ["failed"]  # the 25th did not arrive
    receiver.failing = False
    assert _run(spec, 27) == ["delivered", "delivered"]  # before: only the 26th, and the 25th never went out
    # the 24th; the 25th twice refused (two attempts); then the 25th and the 26th
    assert receiver.labels() == ["2026-11-24", "2026-11-25", "2026-11-25", "2026-11-25", "2026-11-26"]
    assert _run(spec, 27) == ["skipped"]  # and each once


def test_periods_missed_while_nothing_ran_are_caught_up_oldest_first(store, receiver):
    spec = _daily(store, receiver.url)
    _run(spec, 25)
    assert _run(spec, 29) == ["delivered"] * 4  # the scheduler was down for three days
    assert receiver.labels() == ["2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28"]


def test_catching_up_stops_at_the_limit_and_says_what_it_left(store, receiver, monkeypatch):
    monkeypatch.setattr(report_run, "CATCH_UP_LIMIT", 2)
    spec = _daily(store, receiver.url)
    _run(spec, 21)
    outcomes = run_report(spec, now=utc(2026, 11, 26, 9), log=lambda _: None)
    assert [o.status for o in outcomes] == ["failed", "delivered", "delivered", "delivered"]
    assert "2 older periods (2026-11-21 to 2026-11-22) were never delivered" in outcomes[0].detail
    assert receiver.labels() == ["2026-11-20", "2026-11-23", "2026-11-24", "2026-11-25"]


def test_each_period_and_destination_has_its_own_stable_idempotency_key(store, receiver):
    other = SwitchableReceiver()
    try:
        _run(_daily(store, receiver.url), 25)
        _run(_daily(store, other.url), 25)
        _run(_daily(store, receiver.url, force=True), 25)  # the same period again, to the same receiver
        _run(_daily(store, receiver.url), 26)
    finally:
        other.close()
    first, again, next_day = (r["key"] for r in receiver.requests)
    assert first == again and len(first) == 32
    assert len({first, next_day, other.requests[0]["key"]}) == 3
    assert all(r["json"]["idempotency_key"] == r["key"] for r in [*receiver.requests, *other.requests])


def _report_cli(store: str, url: str, *extra: str) -> list[str]:
    return [
        "report",
        "--db",
        store,
        "--period",
        "day",
        "--to",
        "webhook",
        "--webhook-url",
        url,
        "--retries",
        "1",
        *extra,
    ]


def test_a_run_killed_mid_send_is_an_error_until_forced_and_never_repeated_silently(store, receiver, capsys):
    receiver.hanging = True
    child = subprocess.Popen(
        [sys.executable, "-m", "auriko_obs", *_report_cli(store, receiver.url)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.requests, "the report never reached the receiver"
        os.kill(child.pid, signal.SIGKILL)  # a crash while the POST waits for its answer
    finally:
        child.wait(30)
    receiver.hanging = False
    for _ in range(2):  # before: exit 0 ("being sent by another run"), and after 15 minutes, sent again
        assert main(_report_cli(store, receiver.url)) == 1
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("auriko-obs: delivery failed: report for ") and "interrupted: pid" in line
        assert "--force sends it again" in line and len(receiver.requests) == 1
    assert main(_report_cli(store, receiver.url, "--force")) == 0
    capsys.readouterr()
    assert len(receiver.requests) == 2 and receiver.requests[1]["key"] == receiver.requests[0]["key"]
    assert main(_report_cli(store, receiver.url)) == 0  # delivered now: skipped
    assert "already delivered" in capsys.readouterr().err and len(receiver.requests) == 2
