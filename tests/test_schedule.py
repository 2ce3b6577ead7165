"""``auriko-obs schedule``: the config file, cron triggers, and the long-running process delivering once per period."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from auriko_obs.reports._delivery_log import deliveries
from auriko_obs.reports._schedule import ScheduleConfigError, build_scheduler, cron_trigger, load_schedule

from .receivers import WebhookReceiver
from .spend_history import call, insert_calls, utc


def write(tmp_path, text: str) -> str:
    path = tmp_path / "reports.toml"
    path.write_text(text)
    return str(path)


def test_schedule_file_is_read_and_checked(tmp_path, db_path, monkeypatch):
    monkeypatch.setenv("AURIKO_OBS_SMTP_HOST", "127.0.0.1")  # email is checked at start
    insert_calls(db_path, [])
    path = write(
        tmp_path,
        f'''db = "{db_path}"
[[report]]
name = "weekly-finance"
cron = "0 8 * * mon"
period = "week"
to = ["email", "file"]
email_to = ["finance@example.com"]
out = "{tmp_path}/{{name}}-{{start}}.html"

[[report]]
name = "daily-chat"
cron = "30 7 * * *"
period = "day"
format = "md"
to = "webhook"
webhook_url = "http://127.0.0.1:9/hook"
''',
    )
    reports, tz = load_schedule(path)
    assert tz == "UTC" and [r.spec.name for r in reports] == ["weekly-finance", "daily-chat"]
    assert reports[0].spec.to == ["email", "file"] and reports[1].spec.to == ["webhook"]
    assert reports[0].spec.db == db_path
    trigger = cron_trigger(reports[0].cron)
    monday = trigger.get_next_fire_time(None, datetime(2026, 11, 25, 12, tzinfo=timezone.utc))
    assert monday == datetime(2026, 11, 30, 8, tzinfo=timezone.utc)
    scheduler = build_scheduler(reports, tz)
    assert {job.id for job in scheduler.get_jobs()} == {
        "weekly-finance",
        "daily-chat",
        "weekly-finance:catch-up",
        "daily-chat:catch-up",
    }


def test_one_recipient_may_be_written_without_list_brackets(tmp_path, db_path) -> None:
    insert_calls(db_path, [])
    path = write(
        tmp_path,
        f'db = "{db_path}"\n[[report]]\ncron = "0 8 * * *"\nto = "file"\nout = "x.md"\n'
        'email_to = "a@example.com, b@example.com"\n',
    )
    reports, _ = load_schedule(path)
    assert reports[0].spec.email_to == ["a@example.com", "b@example.com"] and reports[0].spec.to == ["file"]


@pytest.mark.parametrize(
    "dow, first_fire",
    [
        ("1", "2026-11-30"),  # crontab's 1 is Monday (APScheduler's own numbering would make it Tuesday)
        ("0", "2026-11-29"),  # 0 and 7 are Sunday
        ("7", "2026-11-29"),
        ("1-5", "2026-11-26"),  # Wednesday the 25th at 12:00 is past 08:00, so Thursday
        ("*/2", "2026-11-26"),  # Sunday, Tuesday, Thursday, Saturday
        ("sat,sun", "2026-11-28"),
    ],
)
def test_cron_days_of_week_mean_what_they_mean_in_crontab(dow: str, first_fire: str) -> None:
    fire = cron_trigger(f"0 8 * * {dow}").get_next_fire_time(None, datetime(2026, 11, 25, 12, tzinfo=timezone.utc))
    assert fire == datetime.fromisoformat(f"{first_fire}T08:00:00+00:00")


def test_day_of_month_or_day_of_week_as_in_crontab():
    # "0 8 1 * mon": the 1st of the month and every Monday (crontab), not only Mondays that are the 1st.
    trigger = cron_trigger("0 8 1 * mon")
    fires, moment = [], datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
    for _ in range(3):
        moment = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        fires.append(moment.date().isoformat())
    assert fires == ["2026-11-30", "2026-12-01", "2026-12-07"]


@pytest.mark.parametrize("dow", ["8", "mo", "1/x"])
def test_bad_cron_days_of_week_are_refused(dow: str) -> None:
    with pytest.raises(ValueError, match="day"):
        cron_trigger(f"0 8 * * {dow}")


@pytest.mark.parametrize(
    "body, message",
    [
        ('[[report]]\nname = "x"\nperiod = "day"\nout = "x.html"\n', "needs cron"),
        ('[[report]]\ncron = "0 8 * *"\nout = "x.html"\n', "5 fields"),
        ('[[report]]\ncron = "0 8 * * *"\nto = "webhook"\n', "needs --webhook-url"),
        ('[[report]]\ncron = "0 8 * * *"\nout = "x.html"\ncolour = "red"\n', "unknown keys colour"),
        ('title = "nothing"\n', "no [[report]] entries"),
        (
            '[[report]]\ncron = "0 8 * * *"\nout = "x.html"\nperiod = "year"\n',
            "period must be one of day, week, month, not 'year'",
        ),
        (
            '[[report]]\ncron = "0 8 * * *"\nout = "x.pdf"\nformat = "pdf"\n',
            "format must be one of html, md, csv, json, not 'pdf'",
        ),
        (
            '[[report]]\ncron = "0 8 * * *"\nout = "x.html"\ntop_n = "ten"\n',
            "top_n must be a whole number from 1 to 1000, not 'ten'",
        ),
        (
            '[[report]]\ncron = "0 8 * * *"\nout = "x.html"\nbudgets_config = "/nonexistent/b.toml"\n',
            "no budget config at",
        ),
        ('[[report]]\ncron = "0 8 * * *"\nto = "email"\nemail_to = ["a@example.com"]\n', "needs AURIKO_OBS_SMTP_HOST"),
        (
            'timezone = "Mars/Olympus"\n[[report]]\ncron = "0 8 * * *"\nout = "x.html"\n',
            "unknown timezone 'Mars/Olympus'",
        ),
        (
            '[[report]]\ncron = "0 8 * * *"\nto = "webhook"\nwebhook_url = "file:///tmp/hook"\n',
            "must be an http:// or https://",
        ),
        ('[[report]]\ncron = "0 8 * * *"\nout = "{team}.md"\n', "unknown placeholder {team}"),
        ('[[report]]\ncron = "0 8 * * *"\nout = "{}.md"\n', "bad placeholder"),
    ],
)
def test_bad_schedules_fail_at_start(tmp_path, db_path, monkeypatch, body, message):
    monkeypatch.delenv("AURIKO_OBS_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("AURIKO_OBS_SMTP_HOST", raising=False)
    insert_calls(db_path, [])  # a store that exists: each entry fails for its own fault
    with pytest.raises(ScheduleConfigError, match=re.escape(message)):
        load_schedule(write(tmp_path, f'db = "{db_path}"\n' + body))


def test_a_schedule_on_a_missing_store_fails_at_start_without_creating_it(tmp_path):
    missing = tmp_path / "nowhere.duckdb"
    with pytest.raises(ScheduleConfigError, match=f"no auriko-obs store at {re.escape(str(missing))}$"):
        load_schedule(write(tmp_path, f'db = "{missing}"\n[[report]]\ncron = "0 8 * * *"\nout = "x.html"\n'))
    assert not missing.exists()


def test_the_schedule_command_exits_2_with_one_line_at_start(tmp_path, db_path, capsys):
    from auriko_obs.cli import main

    insert_calls(db_path, [])
    path = write(
        tmp_path, f'db = "{db_path}"\ntimezone = "Nowhere/City"\n[[report]]\ncron = "0 8 * * *"\nout = "x.html"\n'
    )
    assert main(["schedule", "--config", path]) == 2
    assert (
        capsys.readouterr().err
        == f"auriko-obs: {path}: unknown timezone 'Nowhere/City' (an IANA name such as 'Europe/Paris')\n"
    )


def test_the_scheduler_process_delivers_once_per_period_and_stops_on_sigterm(tmp_path, db_path):
    insert_calls(db_path, [call(utc(2026, 11, 24, 10), cost_usd=1.0)])
    receiver = WebhookReceiver()
    path = write(
        tmp_path,
        f'''db = "{db_path}"
[[report]]
name = "every-second"
cron = "* * * * * *"        # six fields: seconds first; fires every second
period = "day"
format = "md"
to = ["webhook", "file"]
webhook_url = "{receiver.url}"
out = "{tmp_path}/daily-{{start}}.md"
catch_up = false
''',
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "auriko_obs", "schedule", "--config", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while not receiver.bodies and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert receiver.bodies, process.stderr.read() if process.poll() is not None else "no delivery in 60 s"
        time.sleep(4)  # the trigger fires about four more times: the period was already delivered
        assert len(receiver.bodies) == 1 and process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=20)
        finally:
            process.kill() if process.poll() is None else None
            receiver.close()
    assert process.returncode == 0, stderr
    assert "to webhook: already delivered at" in stderr and "posted to http://127.0.0.1" in stderr
    assert receiver.bodies[0]["json"]["text"].startswith("*LLM spend, ")
    [md] = list(tmp_path.glob("daily-*.md"))
    assert md.read_text().startswith("# LLM spend report: ")
    rows = deliveries(db_path)
    assert sorted(r[2].split(":")[0] for r in rows) == ["file", "webhook"] and {r[0] for r in rows} == {"every-second"}


def test_catch_up_delivers_an_undelivered_period_at_start(tmp_path, db_path):
    import threading

    insert_calls(db_path, [call(utc(2026, 11, 24, 10), cost_usd=1.0)])
    path = write(
        tmp_path,
        f'''db = "{db_path}"
[[report]]
name = "yearly-cron"
cron = "0 0 1 1 *"          # not for a long while: only the catch-up run can deliver
period = "day"
format = "json"
out = "{tmp_path}/catch-up-{{start}}.json"
''',
    )
    reports, tz = load_schedule(path)
    scheduler = build_scheduler(reports, tz)
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("catch-up-*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.shutdown(wait=True)
    [written] = list(tmp_path.glob("catch-up-*.json"))
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    assert written.name == f"catch-up-{yesterday}.json"
    assert [r[0] for r in deliveries(db_path)] == ["yearly-cron"]
