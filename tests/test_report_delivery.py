"""Report delivery to real local servers: a webhook receiver over HTTP, and aiosmtpd with STARTTLS and login."""

from __future__ import annotations

import email
import email.policy
import json

import pytest

from auriko_obs.cli import main
from auriko_obs.reports import ReportSpec, Retry, run_report
from auriko_obs.reports._deliver import DeliveryError, deliver_webhook
from auriko_obs.reports._delivery_log import deliveries

from .receivers import WebhookReceiver, smtp_server
from .spend_history import call, insert_calls, utc

NOW = utc(2026, 11, 25, 9)  # a Wednesday: the last complete day is the 24th


@pytest.fixture
def store(db_path):
    insert_calls(
        db_path,
        [
            call(utc(2026, 11, 24, 10), cost_usd=1.5, provider="openai", user_id="u-1"),
            call(
                utc(2026, 11, 24, 11), cost_usd=0.5, provider="together", model_canonical="llama-3.3-70b", user_id="u-2"
            ),
            call(utc(2026, 11, 23, 12), cost_usd=1.0, provider="openai"),
            call(
                utc(2026, 11, 24, 12),
                status="error",
                http_status=429,
                error_code="budget_exhausted",
                budget_exceeded_scope="workspace",
                cost_usd=None,
            ),
        ],
    )
    return db_path


@pytest.fixture
def webhook():
    receivers = []

    def make(**kwargs):
        receivers.append(WebhookReceiver(**kwargs))
        return receivers[-1]

    yield make
    for r in receivers:
        r.close()


FAST = Retry(attempts=4, base_s=0.01, max_s=0.05, timeout_s=5)


def test_webhook_gets_slack_text_and_the_report_json(store, webhook):
    receiver = webhook()
    spec = ReportSpec(db=store, period="day", format="md", to=["webhook"], webhook_url=receiver.url, retry=FAST)
    [outcome] = run_report(spec, now=NOW, log=lambda _: None)
    assert outcome.status == "delivered"
    [got] = receiver.bodies
    assert got["content_type"] == "application/json"
    body = got["json"]
    assert body["text"].startswith("*LLM spend, 2026-11-24*: $2.00 (+$1.00 (+100.0%) vs previous), 3 calls, 1 errors")
    assert "Top provider: openai $1.50 (75%)" in body["text"]
    assert body["report"]["totals"]["cost_usd"] == 2.0 and body["report"]["errors"]["budget_rejections"] == 1
    assert body["format"] == "md" and body["content"].startswith("# LLM spend report: 2026-11-24")
    assert "s3cr3t" not in outcome.detail  # the webhook's secret path is never logged


def test_a_webhook_urls_user_and_password_go_as_basic_auth_not_into_the_host_name(webhook):
    import base64

    receiver = webhook()
    url = receiver.url.replace("http://", "http://hook-user:p%40ss-S3CRET@")
    detail = deliver_webhook({"text": "hi"}, url, retry=FAST)
    [got] = receiver.bodies  # before, urllib looked up "hook-user:p@ss-S3CRET@127.0.0.1" as a host name
    assert got["authorization"] == "Basic " + base64.b64encode(b"hook-user:p@ss-S3CRET").decode()
    assert "S3CRET" not in detail and detail.startswith("posted to http://127.0.0.1:")


def test_webhook_retries_with_backoff_then_succeeds(store, webhook):
    receiver = webhook(fail_first=2, fail_status=503)
    waits = []
    detail = deliver_webhook({"text": "hi"}, receiver.url, retry=FAST, sleep=waits.append)
    assert receiver.attempts == 3 and len(receiver.bodies) == 1
    assert "after 3 attempt(s)" in detail
    # exponential backoff with jitter: the n-th wait is base × factor^(n-1), times 0.5 to 1
    assert len(waits) == 2 and 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02


def test_webhook_honours_retry_after(webhook):
    receiver = webhook(fail_first=1, fail_status=429, retry_after="0.2")
    waits = []
    deliver_webhook({"text": "hi"}, receiver.url, retry=Retry(attempts=3, base_s=5, max_s=0.2), sleep=waits.append)
    assert waits == [0.2] and len(receiver.bodies) == 1


def test_webhook_client_error_fails_at_once(webhook):
    receiver = webhook(fail_first=99, fail_status=404)
    with pytest.raises(DeliveryError, match="refused the report: HTTP 404"):
        deliver_webhook({"text": "hi"}, receiver.url, retry=FAST)
    assert receiver.attempts == 1


def test_cli_exits_nonzero_when_the_webhook_keeps_failing(store, webhook, capsys):
    receiver = webhook(fail_first=99, fail_status=500)
    code = main(
        [
            "report",
            "--db",
            store,
            "--period",
            "day",
            "--to",
            "webhook",
            "--webhook-url",
            receiver.url,
            "--format",
            "json",
            "--retries",
            "2",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    port = receiver.server.server_address[1]
    assert err == [f"auriko-obs: delivery failed: webhook http://127.0.0.1:{port}/… failed after 2 attempts: HTTP 500"]
    assert receiver.attempts == 2
    assert deliveries(store) == []  # a failed delivery is not recorded, so the next run tries again


def test_cli_exits_nonzero_when_nothing_listens(store, capsys):
    from .receivers import free_port

    url = f"http://127.0.0.1:{free_port()}/hook"
    assert main(["report", "--db", store, "--to", "webhook", "--webhook-url", url, "--retries", "1"]) == 1
    assert "Connection refused" in capsys.readouterr().err


def test_email_over_starttls_with_login_attaches_the_html(store, tmp_path, monkeypatch):
    with smtp_server(tmp_path) as smtp:
        monkeypatch.setenv("AURIKO_OBS_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("AURIKO_OBS_SMTP_PORT", str(smtp["port"]))
        monkeypatch.setenv("AURIKO_OBS_SMTP_USER", smtp["user"])
        monkeypatch.setenv("AURIKO_OBS_SMTP_PASSWORD", smtp["password"])
        monkeypatch.setenv("AURIKO_OBS_SMTP_FROM", "spend@example.com")
        monkeypatch.setenv("AURIKO_OBS_SMTP_CAFILE", smtp["cafile"])
        spec = ReportSpec(
            db=store, period="day", format="html", to=["email"], email_to=["finance@example.com", "lead@example.com"]
        )
        [outcome] = run_report(spec, now=NOW, log=lambda _: None)
        assert outcome.status == "delivered", outcome.detail
        assert smtp["logins"] == [("reports", True)]
        [(mail_from, rcpt, over_tls)] = smtp["envelopes"]
        assert mail_from == "spend@example.com" and rcpt == ["finance@example.com", "lead@example.com"] and over_tls
        message = email.message_from_bytes(smtp["messages"][0], policy=email.policy.default)
    assert message["Subject"] == "LLM spend report: 2026-11-24 ($2.00)"
    body = message.get_body(("plain",)).get_content()
    assert "LLM spend, 2026-11-24: $2.00" in body and "| openai | $1.50 | 75.0% |" in body
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "llm-spend-day-2026-11-24.html"
    html = attachment.get_content()
    assert "<title>LLM spend report: 2026-11-24</title>" in html and "Plotly.newPlot" in html


def test_email_with_a_wrong_password_fails_with_one_line(store, tmp_path, monkeypatch, capsys):
    with smtp_server(tmp_path) as smtp:
        for key, value in (
            ("HOST", "127.0.0.1"),
            ("PORT", str(smtp["port"])),
            ("USER", "reports"),
            ("PASSWORD", "wrong"),
            ("CAFILE", smtp["cafile"]),
        ):
            monkeypatch.setenv(f"AURIKO_OBS_SMTP_{key}", value)
        code = main(["report", "--db", store, "--period", "day", "--to", "email", "--email-to", "a@example.com"])
        assert smtp["messages"] == []
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("auriko-obs: delivery failed: email via 127.0.0.1") and "535" in err[-1]


def test_email_refuses_an_unverified_certificate(store, tmp_path, monkeypatch):
    with smtp_server(tmp_path) as smtp:
        monkeypatch.setenv("AURIKO_OBS_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("AURIKO_OBS_SMTP_PORT", str(smtp["port"]))
        spec = ReportSpec(db=store, period="day", to=["email"], email_to=["a@example.com"])
        [outcome] = run_report(spec, now=NOW, log=lambda _: None)  # no CA file: the self-signed CA is unknown
        assert outcome.status == "failed" and "CERTIFICATE_VERIFY_FAILED" in outcome.detail
        assert smtp["messages"] == []


def test_a_period_is_delivered_once_unless_forced(store, webhook, tmp_path):
    receiver = webhook()
    out = tmp_path / "reports" / "{name}-{start}.json"
    spec = ReportSpec(
        db=store,
        period="day",
        format="json",
        to=["file", "webhook"],
        out=str(out),
        webhook_url=receiver.url,
        name="daily",
        retry=FAST,
    )
    first = run_report(spec, now=NOW, log=lambda _: None)
    assert [o.status for o in first] == ["delivered", "delivered"]
    written = tmp_path / "reports" / "daily-2026-11-24.json"
    assert json.loads(written.read_text())["totals"]["calls"] == 3
    again = run_report(spec, now=utc(2026, 11, 25, 18), log=lambda _: None)  # same day, later
    assert [o.status for o in again] == ["skipped", "skipped"] and len(receiver.bodies) == 1
    rows = deliveries(store)
    assert {(r[0], r[1], r[2].split(":")[0]) for r in rows} == {
        ("daily", "day:2026-11-24T00:00:00+00:00/2026-11-25T00:00:00+00:00", "file"),
        ("daily", "day:2026-11-24T00:00:00+00:00/2026-11-25T00:00:00+00:00", "webhook"),
    }
    assert all("s3cr3t" not in str(r) for r in rows)
    spec.force = True
    forced = run_report(spec, now=utc(2026, 11, 25, 18), log=lambda _: None)
    assert [o.status for o in forced] == ["delivered", "delivered"] and len(receiver.bodies) == 2
    next_day = run_report(ReportSpec(**{**spec.__dict__, "force": False}), now=utc(2026, 11, 26, 9), log=lambda _: None)
    assert [o.status for o in next_day] == ["delivered", "delivered"] and len(receiver.bodies) == 3


def test_a_claim_keeps_a_second_run_from_sending_while_the_first_is_sending(store):
    from datetime import datetime, timedelta, timezone

    from auriko_obs.reports._delivery_log import CLAIM_TTL, claim, release
    from auriko_obs.store import connect

    assert claim(store, "weekly", "week:x", "email:a").send
    second = claim(store, "weekly", "week:x", "email:a")  # this process is alive: it is still sending
    assert not second.send and not second.interrupted and second.detail.startswith("being sent by another run")
    release(store, "weekly", "week:x", "email:a")  # the first run never sent it: the next may
    assert claim(store, "weekly", "week:x", "email:a").send
    with connect(store, read_only=False, wait_s=5) as con:  # a run on another host that died mid-send long ago
        con.execute(
            'UPDATE auriko_obs_report_deliveries SET delivered_at = ?, detail = \'{"host": "elsewhere", "pid": 1}\'',
            [datetime.now(timezone.utc) - CLAIM_TTL - timedelta(minutes=1)],
        )
    expired = claim(store, "weekly", "week:x", "email:a")  # not sent again on its own: it may have arrived
    assert not expired.send and expired.interrupted and "pid 1 on elsewhere" in expired.detail
    assert claim(store, "weekly", "week:x", "email:a").interrupted  # and it stays an error
    assert claim(store, "weekly", "week:x", "email:a", force=True).send


def test_an_unwritable_file_is_a_delivery_failure(store, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert main(["report", "--db", store, "--period", "day", "--out", str(blocker / "r.html")]) == 1
    assert capsys.readouterr().err.strip().startswith(f"auriko-obs: delivery failed: cannot write {blocker}/r.html")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--to", "email", "--email-to", "a@example.com"],
            "email needs AURIKO_OBS_SMTP_HOST (and usually _USER, _PASSWORD) in the environment",
        ),
        (
            ["--to", "webhook", "--webhook-url", "file:///tmp/hook"],
            "the webhook URL must be an http:// or https:// URL with a host",
        ),
        (
            ["--out", "{team}.md"],
            "--out '{team}.md': unknown placeholder {team} (known: {name}, {period}, {start}, {end}, {format})",
        ),
    ],
)
def test_report_checks_its_destinations_before_building_the_report(store, monkeypatch, capsys, args, message):
    monkeypatch.delenv("AURIKO_OBS_SMTP_HOST", raising=False)
    monkeypatch.setattr("auriko_obs.reports._data.build_report", lambda *a, **k: pytest.fail("built the report"))
    assert main(["report", "--db", store, "--period", "day", *args]) == 2
    assert capsys.readouterr().err == f"auriko-obs: {message}\n"
    assert deliveries(store) == []


def test_a_report_on_a_missing_store_fails_without_creating_it(tmp_path):
    missing = tmp_path / "nowhere.duckdb"
    with pytest.raises(ValueError, match="no auriko-obs store at"):
        run_report(ReportSpec(db=str(missing), period="day", format="md", out=str(tmp_path / "r.md")), now=NOW)
    assert not missing.exists()
