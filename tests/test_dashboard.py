"""Dashboards: definitions, the local server, and the page in headless Chromium (Debian's package)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

import auriko_obs
from auriko_obs.dashboard import DashboardError, load_dashboard, load_dashboards, make_server

from .browser import CHROMIUM_FLAGS, chromium
from .receivers import serve_in_background

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"


def _workload(client, sim, calls: int, seed: int = 0) -> None:
    models = ("gpt-4o", "gpt-4o-mini", "llama-3.3-70b", "claude-sonnet-4-20250514")
    for i in range(calls):
        client.chat.completions.create(
            model=models[(i + seed) % len(models)],
            messages=[{"role": "user", "content": f"question {i}"}],
            max_tokens=20,
            extra_body={
                "gateway": {
                    "routing": {"optimize": ("cost", "ttft")[i % 2]},
                    "metadata": {"tags": [f"team:{('search', 'support')[i % 2]}"], "user_id": f"u-{i % 3}"},
                }
            },
        )
    sim.inject("rate_limit_exceeded")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "again"}])


@pytest.fixture
def served(instrumented, client, sim):
    """A store with real spans from the simulator, and the dashboard server over it on 127.0.0.1."""
    _workload(client, sim, 8)
    assert auriko_obs.flush(30)
    server = make_server(instrumented, host="127.0.0.1", port=0, folder=DASHBOARDS)
    stop = serve_in_background(server)
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    stop()


def test_shipped_definitions_load_and_every_panel_has_sql():
    dashboards = load_dashboards(DASHBOARDS)
    assert {d.name for d in dashboards} >= {"spend", "health"}
    assert all(p.sql.strip() and p.type for d in dashboards for p in d.panels)


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[panels]]\ntitle = "x"\ntype = "donut"\nsql = "SELECT 1"\n', r"bad.toml: panels\[0\]: type must be one of"),
        ('[[panels]]\ntype = "bar"\nsql = "SELECT 1"\ncolour = "x"\n', "unknown keys colour"),
        (
            '[[panels]]\ntype = "bar"\nsql = "SELECT 1"\n[[panels]]\ntype = "bar"\nsql = "SELECT 1"\nwidth = "wide"\n',
            r"bad.toml: panels\[1\]: width must be a positive whole number, not 'wide'$",
        ),
        (
            'columns = 0\n[[panels]]\ntype = "bar"\nsql = "SELECT 1"\n',
            "bad.toml: columns must be a positive whole number, not 0$",
        ),
    ],
)
def test_bad_definitions_are_reported_with_file_and_panel(tmp_path, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(DashboardError, match=message):
        load_dashboard(bad)


def test_the_dashboard_command_names_the_file_and_panel_of_a_bad_width(tmp_path, capsys):
    from auriko_obs.cli import main

    (tmp_path / "team.toml").write_text('[[panels]]\ntype = "bar"\nsql = "SELECT 1"\nwidth = "wide"\n')
    with pytest.raises(DashboardError):  # first, so that a regression fails here rather than serving forever below
        load_dashboards(tmp_path)
    assert main(["dashboard", "--db", str(tmp_path / "s.duckdb"), "--port", "0", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"auriko-obs: {tmp_path / 'team.toml'}: panels[0]: width must be a positive whole number, not 'wide'\n"
    )


def test_api_serves_every_panel_with_rows_and_caches_until_spans_arrive(served, client, sim):
    url, _server = served
    first = json.load(urllib.request.urlopen(f"{url}/api/d/spend"))
    assert first["spans"] == 9
    assert all("error" not in p and p["rows"] > 0 for p in first["panels"]), first["panels"]
    calls = next(p for p in first["panels"] if p["title"] == "Calls, last 24 h")
    assert calls["figure"]["data"][0]["value"] == 9
    assert urllib.request.urlopen(f"{url}/api/d/spend").read() == json.dumps(first).encode()  # cached
    _workload(client, sim, 3, seed=1)
    assert auriko_obs.flush(30)
    second = json.load(urllib.request.urlopen(f"{url}/api/d/spend"))
    assert second["version"] != first["version"] and second["spans"] == 13


def test_plotly_js_is_served_locally_and_other_hosts_are_refused(served):
    url, _ = served
    body = urllib.request.urlopen(f"{url}/static/plotly.min.js").read()
    assert len(body) > 1_000_000 and b"plotly.js" in body[:2000]
    page = urllib.request.urlopen(f"{url}/d/spend").read().decode()
    assert '<script src="/static/plotly.min.js">' in page and "cdn" not in page.lower()
    request = urllib.request.Request(f"{url}/d/spend", headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 403


def test_server_binds_loopback_by_default(instrumented):
    auriko_obs.flush(5)
    server = make_server(instrumented, port=0, folder=DASHBOARDS)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


@pytest.mark.browser
def test_pages_render_every_panel_in_headless_chromium_and_refresh(served, client, sim, tmp_path):
    executable = chromium()
    from playwright.sync_api import sync_playwright

    url, _ = served
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1500},
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            for name in ("spend", "health"):
                page.goto(f"{url}/d/{name}")
                page.wait_for_function(
                    "[...document.querySelectorAll('.panel')].every(p => p.dataset.state === 'rendered')",
                    timeout=60_000,
                )
                panels = page.eval_on_selector_all(
                    ".panel",
                    "els => els.map(e => ({title: e.querySelector('h2')"
                    ".textContent, rows: +e.dataset.rows, svg: !!e.querySelector("
                    "'.main-svg'), err: e.querySelector('.err').textContent}))",
                )
                assert len(panels) == len(load_dashboard(DASHBOARDS / f"{name}.toml").panels)
                for panel in panels:
                    assert panel["svg"] and panel["rows"] > 0 and not panel["err"], panel
                page.screenshot(path=str(tmp_path / f"dashboard-{name}.png"), full_page=True)
                assert (tmp_path / f"dashboard-{name}.png").stat().st_size > 20_000
            # spans arrive while the page is open: it redraws without a reload
            page.goto(f"{url}/d/spend")
            page.wait_for_function("document.body.dataset.version !== ''", timeout=60_000)
            before = page.evaluate("document.body.dataset.version")
            shown = page.inner_text("#panel-1 .plot")
            assert "9" in shown
            _workload(client, sim, 3, seed=2)
            assert auriko_obs.flush(30)
            page.wait_for_function(f"document.body.dataset.version !== {json.dumps(before)}", timeout=30_000)
            page.wait_for_function("document.querySelector('#panel-1 .plot').innerText.includes('13')", timeout=30_000)
        finally:
            browser.close()
    assert problems == []


def test_a_store_that_does_not_exist_yet_shows_waiting_panels(tmp_path):
    server = make_server(str(tmp_path / "later.duckdb"), port=0, folder=DASHBOARDS)
    try:
        data = json.loads(server.app.data("spend"))
    finally:
        server.server_close()
    assert data["version"] is None and data["spans"] is None
    assert all(p["error"].startswith("no store at") for p in data["panels"])


def test_a_failing_query_shows_in_its_panel_only(tmp_path, db_path):
    from .spend_history import call, insert_calls, utc

    insert_calls(db_path, [call(utc(2026, 11, 24, 10), cost_usd=1.0)])
    (tmp_path / "mine.toml").write_text(
        'title = "mine"\n[[panels]]\ntype = "indicator"\nsql = "SELECT sum(cost_usd) FROM llm_calls"\n'
        '[[panels]]\ntype = "bar"\nsql = "SELECT nope FROM llm_calls"\n'
        '[[panels]]\ntype = "bar"\nx = "provider"\ny = "missing"\nsql = "SELECT provider, 1 AS n FROM llm_calls"\n'
    )
    server = make_server(db_path, port=0, folder=tmp_path)
    try:
        panels = json.loads(server.app.data("mine"))["panels"]
    finally:
        server.server_close()
    assert panels[0]["rows"] == 1 and panels[0]["figure"]["data"][0]["value"] == 1.0
    assert "nope" in panels[1]["error"] and "column 'missing' is not in the query result" in panels[2]["error"]


def test_dashboard_command_serves_on_loopback_until_stopped(db_path):
    import re
    import signal
    import subprocess
    import sys

    from .spend_history import call, insert_calls, utc

    insert_calls(db_path, [call(utc(2026, 11, 24, 10), cost_usd=1.0)])
    process = subprocess.Popen(
        [sys.executable, "-m", "auriko_obs", "dashboard", "--db", db_path, "--port", "0", "--dir", str(DASHBOARDS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + process.stderr.read()
        base = match.group(0)
        assert urllib.request.urlopen(f"{base}healthz").read() == b"ok"
        index = urllib.request.urlopen(base).read().decode()
        assert '<a href="/d/spend">' in index and '<a href="/d/health">' in index
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode == 0


def test_new_commands_have_help(capsys):
    from auriko_obs.cli import main

    for command in (["report"], ["schedule"], ["budget", "check"], ["dashboard"]):
        assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--cron-line" in out and "monitoring" in out.lower() and "refresh" in out


@pytest.mark.parametrize(
    "folder, message", [("nonexistent", "no dashboards folder at"), ("empty", "no dashboard definitions (*.toml) in")]
)
def test_a_dir_without_definitions_is_refused_not_replaced_by_the_shipped_ones(
    tmp_path, db_path, capsys, folder, message
):
    from auriko_obs.cli import main

    (tmp_path / "empty").mkdir()
    with pytest.raises(DashboardError):  # first, so that a regression fails here rather than serving forever below
        load_dashboards(tmp_path / folder)
    assert main(["dashboard", "--db", db_path, "--port", "0", "--dir", str(tmp_path / folder)]) == 2
    assert capsys.readouterr().err == f"auriko-obs: {message} {tmp_path / folder}\n"
