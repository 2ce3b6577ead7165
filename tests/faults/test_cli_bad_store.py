"""Every command taking --db, given a file that is not an auriko-obs store, exits with one clear line."""

from __future__ import annotations

import click
import pytest

from auriko_obs.cli import app, main

SCHEDULE = '[[report]]\nname = "daily"\ncron = "0 6 * * *"\nperiod = "day"\nto = ["file"]\nout = "r.html"\n'
BUDGETS = '[[budgets]]\nname = "team"\nscope = "workspace"\nperiod = "daily"\nlimit_usd = 5\n'
# What else each command needs to get as far as opening the store; a new command with --db must be added here.
EXTRA_ARGS = {
    "budget check": ["--config", "{tmp}/budgets.toml"],
    "collect": ["--port", "0"],
    "dashboard": ["--port", "0"],
    "demo": ["--calls", "1"],
    "lake export": ["--to", "{tmp}/lake"],
    "report": [],
    "schedule": ["--config", "{tmp}/schedule.toml"],
    "sql": ["SELECT 1"],
}


def _commands_with_db(group: click.Group, prefix: str = "") -> list[str]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):  # what --help lists (commands load when asked for)
        command = group.get_command(context, name)
        if command is None:
            continue
        if isinstance(command, click.Group):
            found += _commands_with_db(command, f"{prefix}{name} ")
        elif any(p.name == "db" for p in command.params):
            found.append(prefix + name)
    return sorted(found)


def test_every_command_taking_db_is_checked_here():
    assert _commands_with_db(app) == sorted(EXTRA_ARGS)


def _not_a_store(tmp_path, kind: str) -> str:
    path = tmp_path / "notdb.duckdb"
    if kind == "text":
        path.write_text("hello, this is not a database\n")
    else:  # another program's DuckDB database
        import duckdb

        with duckdb.connect(str(path)) as con:
            con.execute("CREATE TABLE invoices (id INTEGER)")
    return str(path)


@pytest.mark.parametrize("kind", ["text", "foreign-duckdb"])
@pytest.mark.parametrize("command", sorted(EXTRA_ARGS))
def test_a_file_that_is_not_a_store_exits_with_one_clear_line(command, kind, tmp_path, monkeypatch, capsys):
    # In this process, through the function `auriko-obs` and `python -m auriko_obs` call (tests/test_cli.py
    # runs those entry points): no interpreter start-up per case.
    (tmp_path / "schedule.toml").write_text(SCHEDULE)
    (tmp_path / "budgets.toml").write_text(BUDGETS)
    db = _not_a_store(tmp_path, kind)
    extra = [a.format(tmp=tmp_path) for a in EXTRA_ARGS[command]]
    monkeypatch.chdir(tmp_path)
    returncode = main([*command.split(), "--db", db, *extra])
    result = capsys.readouterr()
    if command == "budget check":  # a monitoring plugin: UNKNOWN is exit 3, its one line on stdout
        assert returncode == 3 and result.err == ""
        lines = result.out.splitlines()
        assert len(lines) == 1 and lines[0].startswith("BUDGET UNKNOWN - cannot read")
        return
    assert returncode == 2, (returncode, result.err)
    assert result.out == ""
    [line] = result.err.splitlines()
    assert line.startswith("auriko-obs: ") and f"{db} as an auriko-obs store: " in line
    assert "Traceback" not in line and "error:" not in line
    if kind == "foreign-duckdb":  # and the other program's database is left as it was
        import duckdb

        with duckdb.connect(db, read_only=True) as con:
            assert con.execute("SELECT table_name FROM information_schema.tables").fetchall() == [("invoices",)]
