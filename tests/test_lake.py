"""Reading a lake (date-partitioned Parquet) with DuckDB: Store(folder), every command that takes --db, the notebook
magics; a span stored twice counts once; since/until prune the date folders; files lacking newer columns."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from auriko_obs import analysis
from auriko_obs.cli import main
from auriko_obs.store import Store

from ._lakes import lake_from_store
from ._stores import call, make_store

PRICES = [("gpt-4o", "openai", 0, 2.5, 10.0), ("gpt-4o", "azure", 1, 2.75, 11.0)]


def three_days() -> list[dict]:
    return [
        call("2026-06-01T10:00:00Z", provider="openai", model_canonical="gpt-4o", request_model="gpt-4o",
             input_tokens=1000, output_tokens=100, cost_usd=0.0035, cost_source="auriko", tags=["team:a"]),
        call("2026-06-02T10:00:00Z", provider="azure", model_canonical="gpt-4o", request_model="gpt-4o",
             input_tokens=2000, output_tokens=200, cost_usd=0.0077, cost_source="auriko", tags=["team:b"]),
        call("2026-06-03T10:00:00Z", provider="openai", model_canonical="gpt-4o", request_model="gpt-4o",
             input_tokens=100, output_tokens=10, cost_usd=0.00035, cost_source="auriko", status="error",
             http_status=502),
    ]  # fmt: skip


@pytest.fixture
def lake(tmp_path):
    """A lake of three calls on three days, the second day's call written twice (a collector's retry)."""
    db = make_store(str(tmp_path / "store.duckdb"), three_days(), PRICES)
    return lake_from_store(db, str(tmp_path / "lake"), duplicate_where="start_time::DATE = DATE '2026-06-02'")


def test_a_folder_is_read_as_a_lake_and_a_span_written_twice_counts_once(lake):
    store = Store(lake)
    assert store.is_lake and store.path == lake
    assert len([n for d in os.listdir(lake) if d.startswith("date=") for n in os.listdir(f"{lake}/{d}")]) == 4
    calls = store.calls()
    assert calls["start_time"].dt.day.tolist() == [1, 2, 3]
    assert list(calls.columns) == list(Store(f"{lake}/../store.duckdb").calls().columns)
    assert store.sql("SELECT count(*) AS n FROM spans")["n"][0] == 3
    assert analysis.cost_by("provider", store)["calls"].sum() == 3
    assert store.summary().set_index("provider").loc["total", "calls"] == 3


def test_since_and_until_read_only_the_date_folders_of_the_window(lake):
    # A file outside [since, until) whose cost is text that is no number breaks any read of its rows.
    os.makedirs(f"{lake}/date=2026-05-20")
    bad = {"trace_id": ["f" * 32], "span_id": ["e" * 16], "operation": ["chat"], "cost_usd": ["no number"]}
    pq.write_table(pa.table(bad), f"{lake}/date=2026-05-20/bad.parquet")
    window = analysis.cost_by("provider", lake, since="2026-06-02T00:00:00Z", until="2026-06-03T00:00:00Z")
    assert window[["provider", "calls"]].values.tolist() == [["azure", 1]]
    with pytest.raises(Exception, match="no number"):
        analysis.cost_by("provider", lake)


def test_a_file_written_before_a_column_existed_reads_as_null_there(tmp_path, lake):
    table = pq.read_table(f"{lake}/date=2026-06-01/first-0.parquet")
    older = table.drop_columns(["cache_write_tokens", "warnings", "notebook_cell"])
    os.makedirs(f"{tmp_path}/old/date=2026-06-01")
    pq.write_table(older, f"{tmp_path}/old/date=2026-06-01/old.parquet")
    calls = Store(f"{tmp_path}/old").calls()
    assert len(calls) == 1 and calls["cache_write_tokens"].isna().all() and calls["notebook_cell"].isna().all()
    assert analysis.errors(f"{tmp_path}/old").empty


def test_an_empty_lake_gives_empty_frames_with_their_columns(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert Store(str(folder)).calls().empty
    mix = analysis.provider_mix(str(folder))
    assert mix.empty and "off_default_share" in mix.columns
    assert analysis.latency(str(folder)).empty and analysis.prices(str(folder)).empty


def test_refresh_prices_into_a_lake_writes_its_price_file(sim, tmp_path, lake):
    os.remove(f"{lake}/_auriko_obs/provider_prices.parquet")
    with pytest.raises(ValueError, match="refresh_prices"):
        analysis.routing_savings(lake)
    table = analysis.refresh_prices(lake, sim.base_url, "ak_test")
    assert len(table) > 2 and os.path.exists(f"{lake}/_auriko_obs/provider_prices.parquet")
    assert [n for n in os.listdir(f"{lake}/_auriko_obs") if n.endswith(".tmp")] == []
    assert analysis.routing_savings(lake, by="model")["calls"].sum() == 3


def test_the_sql_command_reads_a_lake(lake, capsys):
    assert main(["sql", "--db", lake, "--format", "json", "SELECT count(*) AS calls FROM llm_calls"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"calls": 3}]


def test_budget_check_reads_a_lake(lake, tmp_path, capsys):
    config = tmp_path / "auriko_obs.toml"
    config.write_text('[[budgets]]\nname = "daily"\nperiod = "daily"\nlimit_usd = 0.001\n')
    code = main(["budget", "check", "--db", lake, "--config", str(config), "--now", "2026-06-02T12:00:00Z"])
    assert code == 2 and "BUDGET CRITICAL" in capsys.readouterr().out  # 0.0077 of 0.001 spent


def test_a_report_of_a_lake_keeps_its_delivery_log_beside_the_parquet_files(lake, tmp_path):
    out = tmp_path / "report.json"
    window = ["--since", "2026-06-02T00:00:00Z", "--until", "2026-06-03T00:00:00Z"]
    args = ["report", "--db", lake, *window, "--format", "json", "--to", "file", "--out", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["totals"]["calls"] == 1 and report["cost_by"]["provider"][0]["key"] == "azure"
    assert os.path.exists(f"{lake}/_auriko_obs/deliveries.duckdb")


def test_the_dashboard_draws_its_panels_from_a_lake(lake):
    from auriko_obs.dashboard._web_app import DashboardApp

    app = DashboardApp(lake)
    name = next(iter(app.dashboards))
    panels = json.loads(app.data(name))["panels"]
    assert panels and not [p for p in panels if "error" in p]


def test_commands_that_write_refuse_a_lake_with_one_line(lake, capsys):
    assert main(["demo", "--db", lake, "--calls", "1"]) == 2
    err = capsys.readouterr().err
    assert "is a lake" in err and err.count("\n") == 1


def test_the_notebook_magics_read_a_lake_given_with_db(lake, tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    from auriko_obs.jupyter import current

    monkeypatch.setenv("AURIKO_OBS_DB", str(tmp_path / "kernel.duckdb"))
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "auriko_obs")
        frame = shell.run_line_magic("auriko_obs", f"sql --db {lake} SELECT count(*) AS n FROM llm_calls")
        assert frame["n"].tolist() == [3]
        shell.run_line_magic("auriko_obs", f"report --db {lake} --by tag")
        table, _ = current().last_report
        assert sorted(table["tag"]) == ["(none)", "team:a", "team:b"]
    finally:
        shell.run_line_magic("unload_ext", "auriko_obs")
        InteractiveShell.clear_instance()


def test_a_lake_file_is_typed_as_the_store(lake):
    schema = pq.read_schema(f"{lake}/date=2026-06-01/first-0.parquet")
    assert schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert schema.field("attributes").type == pa.string()
