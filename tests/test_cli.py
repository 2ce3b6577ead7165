"""The auriko-obs command line: thin commands, one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from auriko_obs.cli import main
from auriko_obs.demo import EXTRA_CALLS


def test_demo_writes_a_store_and_prints_a_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--calls", "12", "--seed", "3"]) == 0
    out = capsys.readouterr()
    assert "LLM calls in this run, by provider" in out.out
    assert "1 × budget_exhausted" in out.out and "1 × rate_limit_exceeded" in out.out
    from auriko_obs import Store

    frame = Store(str(tmp_path / "auriko_obs.duckdb")).calls()
    assert len(frame) == 12 + EXTRA_CALLS
    assert frame["provider"].nunique() >= 3
    assert (frame["cached_tokens"].fillna(0) > 0).any(), "the repeated long prompt should hit the cache"
    assert frame["streaming"].any()
    assert set(frame["operation"]) == {"chat", "embeddings"}
    assert set(frame["api"]) == {"chat_completions", "responses", "embeddings"}
    assert sorted(frame["error_code"].dropna()) == ["budget_exhausted", "rate_limit_exceeded"]


def test_demo_runs_into_the_simulators_real_budget_and_rpm_limit(tmp_path, capsys, monkeypatch):
    from auriko_obs import Store
    from auriko_obs.demo import AGENT_RPM, BATCH_BUDGET_USD
    from auriko_obs.simulator import Simulator

    def no_injection(*args, **kwargs):
        raise AssertionError("the demo must not inject its errors")

    monkeypatch.setattr(Simulator, "inject", no_injection)
    db = str(tmp_path / "d.duckdb")
    assert main(["demo", "--calls", "4", "--db", db]) == 0
    assert "1 × budget_exhausted" in capsys.readouterr().out
    batch, agent = (
        Store(db).sql("SELECT * FROM llm_calls WHERE list_contains(tags, ?) ORDER BY start_time", [f"team:{team}"])
        for team in ("batch", "agent")
    )
    assert list(batch["status"]) == ["ok", "error"] and batch.iloc[0]["cost_usd"] >= BATCH_BUDGET_USD
    refused = batch.iloc[1]
    assert refused["error_code"] == "budget_exhausted" and refused["budget_exceeded_scope"] == "api_key"
    assert refused["budget_exceeded_period"] == "daily"
    assert list(agent["status"]) == ["ok"] * AGENT_RPM + ["error"]
    assert agent.iloc[-1]["error_code"] == "rate_limit_exceeded" and agent.iloc[-1]["retry_after_s"] > 0


def test_demo_does_not_wait_for_a_collector_that_is_down(tmp_path, capsys, monkeypatch):
    import socket
    import time

    import auriko_obs

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    auriko_obs.uninstrument()
    started = time.monotonic()
    try:
        assert main(["demo", "--calls", "3", "--db", str(tmp_path / "d.duckdb")]) == 0
        took = time.monotonic() - started
    finally:
        auriko_obs.uninstrument()
    assert "budget_exhausted" in capsys.readouterr().out
    assert took < 8, f"the demo took {took:.1f} s"  # flush() waited on the dead collector: 14.6 s here


def test_sql_prints_results_in_each_format(tmp_path, capsys):
    db = str(tmp_path / "d.duckdb")
    assert main(["demo", "--calls", "3", "--db", db]) == 0
    capsys.readouterr()
    assert main(["sql", "SELECT count(*) AS n FROM llm_calls", "--db", db, "--format", "json"]) == 0
    assert capsys.readouterr().out.strip() == f'[{{"n":{3 + EXTRA_CALLS}}}]'
    assert main(["sql", "SELECT 1 AS one", "--db", db, "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ["one", "1"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["sql", "SELECT 1", "--db", "/nonexistent/x.duckdb"], "no auriko-obs store"),
        (["sql"], "Missing argument"),
        (["no-such-command"], "No such command"),
        (["demo", "--calls", "0"], "--calls"),
        (["simulate", "--budget", "galaxy:daily:5"], "bad --budget"),
        (["sql", "SELEKT 1", "--db", "{db}"], "query failed"),
        (["demo", "--db", "{notduck}"], "as an auriko-obs store: IO Error"),
        (["report", "--db", "{notduck}", "--out", "{tmp}/r.md", "--format", "md"], "as an auriko-obs store: IO Error"),
        (["schedule", "--db", "{notduck}", "--config", "{tmp}/schedule.toml"], "as an auriko-obs store: IO Error"),
        (["collect", "--db", "{notduck}", "--port", "0"], "as an auriko-obs store: IO Error"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    db = tmp_path / "exists.duckdb"
    if "{db}" in argv:
        main(["demo", "--calls", "1", "--db", str(db)])
        capsys.readouterr()
    (tmp_path / "notduck.db").write_text("not a DuckDB file")
    (tmp_path / "schedule.toml").write_text(f'[[report]]\ncron = "0 8 * * 1"\nout = "{tmp_path}/w.md"\n')
    names = {"{db}": str(db), "{notduck}": str(tmp_path / "notduck.db"), "{tmp}": str(tmp_path)}
    for name, value in names.items():
        argv = [a.replace(name, value) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("command", ["simulate", "dashboard"])
def test_a_server_that_cannot_listen_exits_2_with_one_line(command, tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [command, "--port", str(port)] + (["--db", str(tmp_path / "d.duckdb")] if command == "dashboard" else [])
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"auriko-obs: cannot listen on 127.0.0.1:{port}: ") and len(err.splitlines()) == 1


def test_bare_command_shows_the_help_as_click_does(capsys):
    from auriko_obs.cli import app

    # click's own behaviour for a group without a command: help on stdout and 0 (8.1), on stderr and 2 (8.2+)
    with pytest.raises(SystemExit) as standalone:
        app.main(args=[], prog_name="auriko-obs", standalone_mode=True)
    expected = capsys.readouterr()
    assert main([]) == standalone.value.code
    shown = capsys.readouterr()
    assert (shown.out, shown.err) == (expected.out, expected.err)
    assert (shown.out + shown.err).startswith("Usage: auriko-obs ") and "Commands:" in shown.out + shown.err


def test_live_demo_without_a_key_is_refused(monkeypatch, capsys):
    monkeypatch.delenv("AURIKO_API_KEY", raising=False)
    assert main(["demo", "--live"]) == 2
    assert "AURIKO_API_KEY" in capsys.readouterr().err


def test_every_command_has_help(capsys):
    from auriko_obs.cli import COMMANDS

    for name in COMMANDS:
        assert main([name, "--help"]) == 0, name
        assert capsys.readouterr().out.startswith(f"Usage: auriko-obs {name} "), name
    assert main(["budget", "check", "--help"]) == 0
    assert "BUDGET UNKNOWN" not in capsys.readouterr().out


@pytest.mark.parametrize("module", ["auriko_obs", "auriko_obs.cli"])
def test_python_dash_m_runs_every_command(module):
    # `python -m auriko_obs.cli` runs cli.py as __main__, a second copy of the module: the commands of
    # subpackages registered themselves on the other copy and were missing ("No such command 'report'").
    result = subprocess.run(
        [sys.executable, "-m", module, "report", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("Usage: auriko-obs report "), result.stderr


def test_help_lists_each_command_with_the_summary_of_its_own_help():
    import click

    from auriko_obs.cli import COMMANDS, app

    for name, lazy in COMMANDS.items():
        command = lazy.load()
        assert command.name == name and lazy.summary == command.get_short_help_str(limit=10**6), name
    eager = click.Group(name="auriko-obs", commands={name: lazy.load() for name, lazy in COMMANDS.items()})
    for width in (40, 80, 200):
        shown = app.get_help(click.Context(app, info_name="auriko-obs", terminal_width=width))
        listed = eager.get_help(click.Context(eager, info_name="auriko-obs", terminal_width=width))
        assert shown.split("Commands:")[1] == listed.split("Commands:")[1], width


def test_help_imports_only_click_and_the_command_line():
    code = (
        "import sys; before = set(sys.modules); from auriko_obs.cli import main; main(['--help']); "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(result.stdout.splitlines()[-1].split())  # after the help text
    assert {m for m in loaded if m.startswith("auriko_obs")} == {
        "auriko_obs",
        "auriko_obs._cli_shared",
        "auriko_obs._version",
        "auriko_obs.cli",
    }
    packages = {m.partition(".")[0] for m in loaded}
    third_party = {p for p in packages if p not in sys.stdlib_module_names and p != "auriko_obs"}
    assert third_party == {"click"}


def test_simulate_serves_until_terminated(tmp_path):
    import json
    import signal
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "auriko_obs.cli", "simulate", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = next(word for word in line.split() if word.startswith("http://127.0.0.1:"))
        base = url.rstrip("/").removesuffix("/v1")
        request = urllib.request.Request(f"{base}/v1/models", headers={"Authorization": "Bearer ak_cli_test"})
        with urllib.request.urlopen(request) as response:
            assert json.load(response)["data"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
