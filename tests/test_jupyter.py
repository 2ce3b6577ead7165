"""The Jupyter extension, driven through a real IPython shell against the simulator over HTTP."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("IPython")

import openai
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import auriko_obs
from auriko_obs._display import usd
from auriko_obs.instrumentation import add_before_call, before_call_hooks, remove_before_call
from auriko_obs.instrumentation._patch import HOOKS
from auriko_obs.jupyter import SessionBudgetExceeded, current
from auriko_obs.jupyter._magics import track_cell_as_line

from .conftest import API_KEY

# About 1,400 tokens, so that a repeat hits the simulator's prompt cache (≥ 1,024 shared tokens).
LONG_SYSTEM = "You are a patient tutor. " + " ".join(
    f"Rule {i}: explain each step and check the units." for i in range(150)
)


class Ran:
    """One cell's result, printed text and displayed outputs."""

    def __init__(self, result, captured):
        self.result = result
        self.stdout = captured.stdout
        self.stderr = captured.stderr
        self.outputs = [o.data for o in captured.outputs]

    @property
    def footers(self) -> list[dict]:
        return [o for o in self.outputs if "auriko-obs-footer" in o.get("text/html", "")]


def run(shell, code: str) -> Ran:
    with capture_output() as captured:
        result = shell.run_cell(code, store_history=True)
    return Ran(result, captured)


@pytest.fixture
def shell(sim, db_path, monkeypatch):
    monkeypatch.setenv("AURIKO_OBS_DB", db_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    ip = InteractiveShell.instance()
    ip.user_ns.update(BASE_URL=sim.base_url, API_KEY=API_KEY, LONG_SYSTEM=LONG_SYSTEM, sim=sim)
    run(ip, "import openai\nclient = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0)")
    yield ip
    run(ip, "client.close()")
    if "auriko_obs" in ip.extension_manager.loaded:
        run(ip, "%unload_ext auriko_obs")
    auriko_obs.uninstrument()


@pytest.fixture
def loaded(shell):
    ran = run(shell, "%load_ext auriko_obs")
    assert ran.result.success, ran.stdout
    return shell


def ask(model="gpt-4o-mini", content="What is 2 + 2?", system=None, extra=""):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    return f"client.chat.completions.create(model={model!r}, messages={messages!r}, max_tokens=40{extra})"


def store_rows(db_path):
    assert auriko_obs.flush(30)
    frame = auriko_obs.Store(db_path).calls()
    frame["attrs"] = frame["attributes"].map(json.loads)
    return frame


def test_load_ext_covers_clients_made_before_and_after_and_says_where_data_goes(shell, db_path):
    ran = run(shell, "%load_ext auriko_obs")
    assert db_path in ran.stdout and "instrumented openai" in ran.stdout and ran.stdout.count("\n") == 1
    run(shell, "later = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0)")
    cell = run(shell, f"{ask()}\n{ask().replace('client.', 'later.')}")
    assert cell.result.success
    rows = store_rows(db_path)
    assert len(rows) == 2
    ext = current()
    count = cell.result.execution_count
    for attrs in rows["attrs"]:
        assert attrs["auriko.notebook.session"] == ext.session
        assert attrs["auriko.notebook.execution_count"] == count
        assert attrs["auriko.notebook.cell"] == f"In[{count}]"
        assert attrs["auriko.notebook.run"].startswith(ext.session + ":")
    assert set(rows["notebook_cell"]) == {f"In[{count}]"}
    run(shell, "later.close()")


def test_footer_numbers_match_the_store(loaded, db_path, sim):
    code = "\n".join(
        [
            ask("gpt-4o", "Explain velocity.", LONG_SYSTEM),
            ask("gpt-4o", "Explain acceleration.", LONG_SYSTEM),  # same long prefix: a cache hit
            f"list({ask('claude-sonnet-4-20250514', extra=', stream=True')})",
            "sim.inject('budget_exhausted')",
            "try:\n    " + ask() + "\nexcept openai.RateLimitError as exc:\n    caught = exc.code",
        ]
    )
    cell = run(loaded, code)
    assert cell.result.success and loaded.user_ns["caught"] == "budget_exhausted"
    assert len(cell.footers) == 1
    footer = cell.footers[0]
    rows = store_rows(db_path)
    mine = rows[rows["notebook_cell"] == f"In[{cell.result.execution_count}]"]
    assert len(mine) == 4
    summary = current().last_summary
    assert summary.calls == 4
    assert summary.input_tokens == mine["input_tokens"].sum()
    assert summary.output_tokens == mine["output_tokens"].sum()
    assert summary.cached_tokens == mine["cached_tokens"].sum() > 0
    assert summary.cost_usd == pytest.approx(mine["cost_usd"].sum())
    assert summary.cache_savings_usd == pytest.approx(mine["cache_savings_usd"].sum()) and summary.cache_savings_usd > 0
    ok = mine[mine["status"] == "ok"]
    assert dict(summary.providers) == ok["provider"].value_counts().to_dict()
    assert summary.errors == [("budget_exhausted", 1)]
    last_balance = mine.dropna(subset=["credits_balance_usd"]).sort_values("end_time")["credits_balance_usd"].iloc[-1]
    assert summary.credits_balance_usd == pytest.approx(last_balance)
    # The same numbers, as people read them, in both renderings.
    text, html = footer["text/plain"], footer["text/html"]
    for fragment in (
        "4 calls",
        f"{int(summary.input_tokens):,} in",
        f"{int(summary.output_tokens):,} out",
        f"{int(summary.cached_tokens):,} cached",
        usd(summary.cost_usd),
        f"cache saved {usd(summary.cache_savings_usd)}",
        "1 × budget_exhausted",
        f"credit {usd(last_balance)} left",
    ):
        assert fragment in text, (fragment, text)
        assert fragment in html, (fragment, html)
    for provider in ok["provider"].unique():
        assert provider in text
    # The simulator billed exactly what the footer says.
    billed = sum(e["cost_usd"] for e in sim.ledger() if e["http_status"] == 200)
    assert summary.cost_usd == pytest.approx(billed)


def test_no_footer_for_cells_without_calls_and_footer_can_be_switched_off(loaded, db_path):
    assert run(loaded, "x = 1 + 1").footers == []
    off = run(loaded, "%auriko_obs footer off")
    assert "footer off" in off.stdout
    assert run(loaded, ask()).footers == []
    run(loaded, "%auriko_obs footer on")
    assert len(run(loaded, ask()).footers) == 1
    assert len(store_rows(db_path)) == 2  # footer off hides the footer, not the recording


def test_calls_from_threads_started_by_a_cell_belong_to_that_cell(loaded, db_path):
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "def one(q):\n"
        "    return client.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': q}])\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    replies = list(pool.map(one, ['a', 'b', 'c', 'd']))"
    )
    cell = run(loaded, code)
    assert cell.result.success
    assert "4 calls" in cell.footers[0]["text/plain"]
    rows = store_rows(db_path)
    assert list(rows["notebook_cell"]) == [f"In[{cell.result.execution_count}]"] * 4


def test_status_report_and_sql_magics(loaded, db_path):
    run(loaded, "\n".join([ask("gpt-4o"), ask("gpt-4o-mini"), ask("llama-3.3-70b")]))
    status = run(loaded, "%auriko_obs")
    rows = store_rows(db_path)
    text = status.outputs[0]["text/plain"]
    assert "3 calls" in text and usd(rows["cost_usd"].sum()) in text and db_path in text
    assert run(loaded, "%auriko_obs status").outputs[0]["text/plain"] == text

    report = run(loaded, "%auriko_obs report --by model --session")
    assert report.result.success
    table, figure = current().last_report
    expected = rows.groupby("model_canonical")["cost_usd"].sum().sort_values(ascending=False)
    assert list(table["model"]) == list(expected.index)
    assert list(table["cost_usd"]) == pytest.approx(list(expected.values))
    assert table["cost_share"].sum() == pytest.approx(1.0)
    assert sum(sum(trace.y) for trace in figure.data) == pytest.approx(rows["cost_usd"].sum())
    assert {trace.name for trace in figure.data} == set(expected.index)
    html = report.outputs[0]["text/html"]
    assert usd(expected.iloc[0]) in html  # the table shows dollars
    assert run(loaded, "%auriko_obs report --since 1h").result.success
    assert not run(loaded, "%auriko_obs report --by nonsense").result.success
    assert not run(loaded, "%auriko_obs report --since yesterdayish").result.success

    sql = run(
        loaded, "frame = %auriko_obs sql SELECT provider, count(*) AS n FROM llm_calls WHERE status = 'ok' GROUP BY ALL"
    )
    assert sql.result.success
    frame = loaded.user_ns["frame"]
    assert frame["n"].sum() == 3 and set(frame["provider"]) == set(rows["provider"])
    cell_sql = run(loaded, "%%auriko_obs sql\nSELECT sum(cost_usd) AS total_usd\nFROM llm_calls")
    assert cell_sql.result.result["total_usd"].iloc[0] == pytest.approx(rows["cost_usd"].sum())


def test_report_groups_and_labels_calls_as_the_analyses_do(loaded, db_path):
    from auriko_obs import analysis

    tagged = ", extra_body={'gateway': {'metadata': {'tags': ['team:search']}}}"
    run(loaded, "\n".join([ask("gpt-4o", extra=tagged), ask("gpt-4o-mini"), ask("llama-3.3-70b")]))
    tables = {}
    for by in ("tag", "model", "provider"):
        assert run(loaded, f"%auriko_obs report --by {by} --session").result.success
        tables[by] = table = current().last_report[0]
        expected = analysis.cost_by(by, db_path)
        assert list(table[by]) == list(expected[by])
        assert list(table["cost_usd"]) == pytest.approx(list(expected["cost_usd"]))
    assert set(tables["tag"]["tag"]) == {"team:search", analysis.NONE_LABEL}  # untagged calls: "(none)"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEKT 1", 'UsageError: Parser Error: syntax error at or near "SELEKT"'),
        ("SELECT * FROM nope", "UsageError: Catalog Error: Table with name nope does not exist!"),
        ("DELETE FROM span_rows", 'UsageError: Invalid Input Error: Cannot execute statement of type "DELETE"'),
    ],
)
def test_a_bad_query_is_a_one_line_usage_error(loaded, query, message):
    run(loaded, ask())
    ran = run(loaded, f"%auriko_obs sql {query}")
    assert not ran.result.success
    assert ran.stdout == "" and len(ran.stderr.strip().splitlines()) == 1
    assert ran.stderr.startswith(message)


def test_sql_and_report_before_any_call_say_there_is_no_store_yet(loaded, db_path):
    for line in ("%auriko_obs sql SELECT 1", "%auriko_obs report"):
        ran = run(loaded, line)
        assert not ran.result.success and ran.stdout == ""
        assert ran.stderr.strip() == f"UsageError: no auriko-obs store at {db_path}"


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("%auriko_obs --help", "usage: %auriko_obs [COMMAND] [--help]"),
        ("%auriko_obs status --help", "usage: %auriko_obs status"),
        ("%auriko_obs report --help", "usage: %auriko_obs report [--since SINCE] [--by BY] [--session] [--db DB]"),
        ("%auriko_obs sql --help", "usage: %auriko_obs sql [--db DB] [query ...]"),
        ("%auriko_obs budget --help", "usage: %auriko_obs budget [usd]"),
        ("%auriko_obs footer -h", "usage: %auriko_obs footer [{on,off}]"),
        ("%%auriko_obs_track --help\npass", "usage: %%auriko_obs_track name"),
    ],
)
def test_every_magic_answers_help_in_plain_text(loaded, line, usage):
    ran = run(loaded, line)
    assert ran.result.success
    assert ran.stdout.splitlines()[0] == usage
    assert ran.stdout.count("\n") >= 2
    assert "``" not in ran.stdout and "::" not in ran.stdout  # no reStructuredText markup


def test_report_help_lists_its_options(loaded):
    out = run(loaded, "%auriko_obs report --help").stdout
    assert "--since" in out and "--by" in out and "%auriko_obs report" in out


def test_session_budget_stops_the_call_before_it_is_sent_and_records_the_stop(loaded, db_path, sim):
    run(loaded, ask("gpt-4o"))
    one_call = current().ledger.spent_usd
    assert one_call > 0
    budget = one_call * 3.5
    ran = run(loaded, f"%auriko_obs budget {budget}")
    assert "session budget" in ran.stdout
    loop = f"made = 0\nfor i in range(10):\n    {ask('gpt-4o')}\n    made += 1\n"
    cell = run(loaded, loop)
    assert isinstance(cell.result.error_in_exec, SessionBudgetExceeded)
    assert "not sent" in str(cell.result.error_in_exec) and "%auriko_obs budget" in str(cell.result.error_in_exec)
    assert loaded.user_ns["made"] == 2  # 1 before + 2 = 3 calls; a 4th would pass 3.5 calls' worth
    billed = [e for e in sim.ledger() if e["http_status"] == 200]
    assert len(billed) == 3 and sum(e["cost_usd"] for e in billed) <= budget  # the stopped call never reached it
    rows = store_rows(db_path)
    stopped = rows[rows["error_code"] == "session_budget_exceeded"]
    assert len(stopped) == 1 and stopped["status"].iloc[0] == "error"
    assert stopped["notebook_cell"].iloc[0] == f"In[{cell.result.execution_count}]"
    footer = cell.footers[0]["text/plain"]
    assert "1 × session_budget_exceeded" in footer and f"of {usd(budget)} used" in footer
    # Raising the budget lets calls through again; "off" removes it.
    run(loaded, f"%auriko_obs budget {budget * 10}")
    assert run(loaded, ask("gpt-4o")).result.success
    run(loaded, "%auriko_obs budget off")
    assert current().budget_usd is None
    assert not run(loaded, "%auriko_obs budget lots").result.success


def test_session_budget_stops_streams_and_async_calls_too(loaded, sim):
    run(loaded, ask())
    run(loaded, f"%auriko_obs budget {current().ledger.spent_usd / 2}")  # already spent
    stream = run(loaded, f"list({ask(extra=', stream=True')})")
    assert isinstance(stream.result.error_in_exec, SessionBudgetExceeded)
    run(loaded, "aclient = openai.AsyncOpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0)")
    async_call = run(loaded, f"await {ask().replace('client.', 'aclient.')}")
    assert isinstance(async_call.result.error_in_exec, SessionBudgetExceeded)
    assert len(sim.ledger()) == 1  # the first call only


@pytest.mark.parametrize("amount", ["0", "-1", "nan", "inf"])
def test_session_budget_must_be_a_positive_amount(loaded, amount):
    ran = run(loaded, f"%auriko_obs budget {amount}")
    assert not ran.result.success and current().budget_usd is None
    assert ran.stderr.strip() == f"UsageError: the budget must be a positive amount in USD, not {amount!r}"


def experiments(db_path) -> list:
    return [attrs.get("auriko.experiment") for attrs in store_rows(db_path)["attrs"]]


def test_track_cell_magic_attributes_the_cell_to_an_experiment(loaded, db_path):
    ran = run(loaded, f"%%auriko_obs_track prompt-v2\nreply = {ask()}\nreply.choices[0].finish_reason")
    assert ran.result.success and ran.result.result in ("stop", "length")
    assert len(ran.footers) == 1
    run(loaded, ask())
    assert experiments(db_path) == ["prompt-v2", None]


def test_track_cell_runs_as_an_ordinary_cell_with_top_level_await(loaded, db_path):
    run(loaded, "aclient = openai.AsyncOpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0)")
    call = ask().replace("client.", "aclient.")
    code = f"%%auriko_obs_track async-v1\nreply = await {call}\nreply.choices[0].finish_reason"
    ran = run(loaded, code)
    assert ran.result.success, ran.result.error_in_exec
    assert ran.result.result in ("stop", "length") and f"{ran.result.result!r}" in ran.stdout  # shown as Out[N]
    assert len(ran.footers) == 1 and "1 call" in ran.footers[0]["text/plain"]
    run(loaded, "await aclient.close()")
    assert experiments(db_path) == ["async-v1"]


def test_a_traceback_in_a_tracked_cell_shows_the_cells_source(loaded):
    failing = run(loaded, "%%auriko_obs_track broken\nx = 1\nraise ValueError('inside the tracked cell')")
    assert isinstance(failing.result.error_in_exec, ValueError)  # errors reach the cell, as without the magic
    traceback = re.sub(r"\x1b\[[0-9;]*m", "", failing.stdout)  # without colours
    assert "----> 3 raise ValueError('inside the tracked cell')" in traceback
    assert "Could not get source" not in traceback


def test_track_line_magic_tags_the_rest_of_the_cell_and_a_direct_call_runs_the_body(loaded, db_path):
    run(loaded, f"{ask()}\n%auriko_obs_track later\n{ask()}")
    run(loaded, f"get_ipython().run_cell_magic('auriko_obs_track', 'direct', {ask()!r})")
    assert experiments(db_path) == [None, "later", "direct"]


def test_unload_restores_the_kernel(shell, db_path):
    from openai.resources.chat.completions.completions import Completions

    original = Completions.__dict__["create"]
    pre_before = list(shell.events.callbacks["pre_run_cell"])
    post_before = list(shell.events.callbacks["post_run_cell"])
    run(shell, "%load_ext auriko_obs")
    assert Completions.__dict__["create"] is not original and before_call_hooks() != ()
    run(shell, ask())
    ran = run(shell, "%unload_ext auriko_obs")
    assert ran.result.success
    assert Completions.__dict__["create"] is original
    assert before_call_hooks() == () and HOOKS.submit is None and auriko_obs.instrumentation.active() is None
    assert shell.events.callbacks["pre_run_cell"] == pre_before
    assert shell.events.callbacks["post_run_cell"] == post_before
    assert "auriko_obs" not in shell.magics_manager.magics["line"]
    assert "auriko_obs_track" not in shell.magics_manager.magics["cell"]
    assert track_cell_as_line not in shell.input_transformer_manager.line_transforms
    html = shell.display_formatter.formatters["text/html"]
    printers = list(html.deferred_printers.values()) + list(html.type_printers.values())
    assert not any(getattr(p, "__module__", "").startswith("auriko_obs") for p in printers)
    after = run(shell, ask())
    assert after.result.success and after.footers == []
    assert len(auriko_obs.Store(db_path).calls()) == 1  # the call after unloading was not recorded


def test_an_unwritable_store_is_one_line_and_instruments_nothing(shell, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AURIKO_OBS_DB", str(blocker / "calls.duckdb"))
    ran = run(shell, "%load_ext auriko_obs")
    assert not ran.result.success and ran.stdout == ""
    assert ran.stderr.strip().splitlines() == [
        f"UsageError: auriko-obs: cannot store calls in {blocker / 'calls.duckdb'} (File exists: {blocker}); "
        "set $AURIKO_OBS_DB to a writable path. Nothing was instrumented."
    ]
    assert "auriko_obs" not in shell.extension_manager.loaded and current() is None
    assert auriko_obs.instrumentation.active() is None and before_call_hooks() == ()
    assert "auriko_obs" not in shell.magics_manager.magics["line"]


def test_loading_twice_is_harmless(loaded):
    callbacks = len(loaded.events.callbacks["pre_run_cell"])
    session = current().session
    again = run(loaded, "%load_ext auriko_obs")
    assert again.result.success
    import auriko_obs as package

    with capture_output() as captured:
        package.load_ipython_extension(loaded)
    assert "already loaded" in captured.stdout
    assert len(loaded.events.callbacks["pre_run_cell"]) == callbacks and current().session == session
    assert len(run(loaded, ask()).footers) == 1


def test_an_instrumented_kernel_keeps_its_store_and_stays_instrumented_after_unload(shell, tmp_path):
    own = str(tmp_path / "own.duckdb")
    auriko_obs.instrument(db=own, service_name="mine")
    ran = run(shell, "%load_ext auriko_obs")
    assert own in ran.stdout and "already instrumented" in ran.stdout
    run(shell, ask())
    run(shell, "%unload_ext auriko_obs")
    assert auriko_obs.instrumentation.active() is not None
    run(shell, ask())
    rows = store_rows(own)
    assert len(rows) == 2 and set(rows["service_name"]) == {"mine"}
    assert json.loads(rows["attributes"].iloc[0]).get("auriko.notebook.session")
    assert "auriko.notebook.session" not in json.loads(rows["attributes"].iloc[1])


def test_notebook_path_comes_from_the_jupyter_session(shell, db_path, monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/spend.ipynb")
    assert "/home/me/spend.ipynb" in run(shell, "%load_ext auriko_obs").stdout
    run(shell, ask())
    shell.user_ns["__vsc_ipynb_file__"] = "/code/vs.ipynb"
    try:
        run(shell, ask())
    finally:
        del shell.user_ns["__vsc_ipynb_file__"]
    paths = [attrs["auriko.notebook.path"] for attrs in store_rows(db_path)["attrs"]]
    assert paths == ["/home/me/spend.ipynb", "/code/vs.ipynb"]


def test_caller_attributes_win_over_cell_tags(loaded, db_path):
    run(
        loaded,
        "import auriko_obs\nwith auriko_obs.attributes({'auriko.notebook.cell': 'mine', 'team': 'x'}):\n    " + ask(),
    )
    attrs = store_rows(db_path)["attrs"].iloc[0]
    assert attrs["auriko.notebook.cell"] == "mine" and attrs["team"] == "x" and "auriko.notebook.run" in attrs


def test_dataframes_with_usd_columns_show_dollars_while_loaded(loaded):
    import pandas as pd

    frame = pd.DataFrame({"model": ["a", "b"], "cost_usd": [1.5, 0.00123], "calls": [1200, 3]})
    html = loaded.display_formatter.format(frame)[0]["text/html"]
    assert "$1.5000" in html and "$0.0012" in html and "1,200" in html
    plain = pd.DataFrame({"x": [1.5]})
    assert loaded.display_formatter.format(plain)[0]["text/html"] == plain._repr_html_()


def test_store_renders_as_an_html_summary(loaded, db_path):
    run(loaded, "\n".join([ask("gpt-4o"), ask("llama-3.3-70b")]))
    store = auriko_obs.Store(db_path)
    rows = store_rows(db_path)
    html = store._repr_html_()
    assert db_path in html and "total" in html and usd(rows["cost_usd"].sum()) in html
    for provider in rows["provider"].unique():
        assert provider in html
    summary = store.summary()
    total = summary[summary["provider"] == "total"].iloc[0]
    assert total["calls"] == 2 and total["cost_usd"] == pytest.approx(rows["cost_usd"].sum())


def test_store_html_for_a_missing_file(tmp_path):
    assert "no calls recorded yet" in auriko_obs.Store(str(tmp_path / "none.duckdb"))._repr_html_()


def test_usd_formatting():
    assert usd(None) == "–" and usd(float("nan")) == "–"
    assert usd(0) == "$0.00" and usd(1234.5) == "$1,234.50" and usd(1.5) == "$1.5000"
    assert usd(0.0123) == "$0.0123" and usd(0.0000421) == "$0.000042"
    assert usd(-0.00005) == "-$0.000050" and usd(-1234.5) == "-$1,234.50" and usd(-0.0123) == "-$0.0123"
    assert usd(-0.0) == "$0.00" and usd(-1e-9) == "$0.000000"  # no minus on what shows as zero


def test_tables_format_each_column_by_what_its_name_says(loaded):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "year": [2026],
            "span_id": [123456],
            "http_status": [429],
            "calls": [12000],
            "input_tokens": [1234567],
            "divergence_usd": [-0.00005],
            "percent_used": [33.333],
            "savings_percent": [12.0],
            "exhaust_probability": [0.42],
            "cost_share": [0.5],
            "cache_hit_ratio": [0.25],
            "burn_rate_usd_per_h": [0.031003],
            "exhausts_at": pd.to_datetime(["2026-12-01 05:58:03.504643"], utc=True),
        }
    )
    html = loaded.display_formatter.format(frame)[0]["text/html"]
    cells = re.findall(r"<td>(.*?)</td>", html)
    assert cells == [
        "2026",
        "123456",
        "429",
        "12,000",
        "1,234,567",
        "-$0.000050",
        "33.3%",
        "12.0%",
        "42.0%",
        "50.0%",
        "25.0%",
        "$0.0310",
        "2026-12-01 05:58:03 UTC",
    ]


def test_plain_openai_calls_are_untouched_by_the_hook_when_not_loaded(sim):
    assert before_call_hooks() == ()
    with openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as client:
        assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).choices


def terminal_ipython(sim, db_path: str, cells: str) -> str:
    """Returns what a terminal IPython prints for these input lines (after a client on the simulator is made)."""
    import os
    import subprocess
    import sys

    setup = (
        "%load_ext auriko_obs\n"
        "import openai, os\n"
        "client = openai.OpenAI(base_url=os.environ['SIM_URL'], api_key='ak_t', max_retries=0)\n"
    )
    env = {**os.environ, "SIM_URL": sim.base_url, "AURIKO_OBS_DB": db_path}
    env.pop("JPY_SESSION_NAME", None)
    argv = [
        sys.executable,
        "-m",
        "IPython",
        "--simple-prompt",
        "--no-banner",
        "--colors=nocolor",
        "--HistoryManager.enabled=False",
        "--TerminalInteractiveShell.confirm_exit=False",
    ]
    return subprocess.run(argv, input=setup + cells, capture_output=True, text=True, env=env, timeout=120).stdout


CALL_LINE = "r = client.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'hi'}])\n"


def test_terminal_ipython_prints_the_footer_as_text_and_the_whole_report_table(sim, tmp_path):
    # One IPython process for both (each start-up imports openai, the SDK and the extension).
    db_path = str(tmp_path / "t.duckdb")
    out = terminal_ipython(sim, db_path, CALL_LINE + "x = 1\n" + "%auriko_obs report --by model\n")
    footers = [line for line in out.splitlines() if "auriko-obs · In[" in line]
    assert len(footers) == 1, out  # only the cell that made a call has one
    assert "In [4]: auriko-obs · In[4]: 1 call" in footers[0] and "openai ×1" in footers[0]
    assert "<div" not in out
    report = out[out.index("In [6]: ") :]
    assert "..." not in report, report
    for column in (
        "model",
        "calls",
        "errors",
        "input_tokens",
        "cached_tokens",
        "output_tokens",
        "cost_usd",
        "cache_savings_usd",
        "cost_share",
    ):
        assert column in report
    row = auriko_obs.Store(db_path).calls().iloc[0]
    assert row["model_canonical"] in report and usd(row["cost_usd"]) in report and "100.0%" in report


def test_nested_and_empty_cells_belong_to_the_outer_cell(loaded, db_path):
    cell = run(
        loaded,
        f"from IPython.utils.capture import capture_output\nwith capture_output():\n"
        f"    get_ipython().run_cell({ask()!r})\n    get_ipython().run_cell('')\n{ask()}",
    )
    assert cell.result.success
    assert len(cell.footers) == 1 and "2 calls" in cell.footers[0]["text/plain"]
    assert set(store_rows(db_path)["notebook_cell"]) == {f"In[{cell.result.execution_count}]"}


def test_a_broken_before_call_hook_is_counted_and_the_call_goes_ahead(instrumented, client):
    from auriko_obs.instrumentation._call_record import INTERNAL_ERRORS

    def broken(record):
        raise KeyError("a bug of ours")

    before = INTERNAL_ERRORS.counts["before_call"]
    add_before_call(broken)
    try:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    finally:
        remove_before_call(broken)
    assert reply.choices and INTERNAL_ERRORS.counts["before_call"] == before + 1
    assert auriko_obs.flush(30) and len(auriko_obs.Store(instrumented).calls()) == 1
