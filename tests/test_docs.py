"""The documentation says what the code does: its examples run against the simulator, every Python block is
either run or marked with the reason it is not, and the schema page's table is generated from fields.py."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

import auriko_obs
from auriko_obs import fields

from . import doc_examples
from .conftest import API_KEY

ROOT = doc_examples.ROOT
PAGES = doc_examples.doc_pages()
RUNNABLE_PAGES = [page for page in PAGES if any(b.runs for b in doc_examples.blocks(page))]


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_python_block_in_the_readme_and_the_docs_is_run_or_says_why_not():
    unmarked_and_unrunnable, bad_reasons = [], []
    for page in PAGES:
        for block in doc_examples.blocks(page):
            if block.language not in doc_examples.PYTHON:
                continue
            if block.directive is not None and not block.not_run_reason:
                bad_reasons.append(f"{block.where}: <!-- example: {block.directive} --> (want 'not run (why)')")
            if block.runs:
                try:
                    compile(block.code, block.where, "exec")
                except SyntaxError as exc:
                    unmarked_and_unrunnable.append(f"{block.where}: {exc.msg}")
    assert unmarked_and_unrunnable == [] and bad_reasons == []
    assert {_page_id(p) for p in RUNNABLE_PAGES} >= {"README.md", "docs/guides/instrumenting.md"}


def test_every_example_directive_stands_before_a_code_block():
    stray = []
    for page in PAGES:
        attached = {b.line - 1 for b in doc_examples.blocks(page) if b.directive}  # the fence lines
        for line, directive in doc_examples.directives(page):
            lines = page.read_text().splitlines()
            following = next((n for n in range(line, len(lines)) if lines[n].strip()), None)
            if following is None or following + 1 not in attached:
                stray.append(f"{_page_id(page)}:{line}: {directive}")
    assert stray == []


@pytest.fixture
def example_folder(tmp_path, sim, client, monkeypatch):
    """An empty folder holding ``auriko_obs.duckdb`` with a few calls (tag team:search, user u-42) made against
    the simulator, which ``$AURIKO_BASE_URL`` / ``$AURIKO_API_KEY`` point the examples at; restores the
    instrumentation after the examples ran."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AURIKO_OBS_DB", raising=False)
    auriko_obs.instrument(db=str(tmp_path / "auriko_obs.duckdb"))
    try:
        for i in range(3):
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"question {i}"}],
                extra_body={"gateway": {"metadata": {"tags": ["team:search"], "user_id": "u-42"}}},
            )
        assert auriko_obs.flush(30)
    finally:
        auriko_obs.uninstrument()
    monkeypatch.setenv("AURIKO_BASE_URL", sim.base_url)
    monkeypatch.setenv("AURIKO_API_KEY", API_KEY)
    yield tmp_path
    auriko_obs.uninstrument()


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=_page_id)
def test_the_pages_python_examples_run_against_the_simulator(page, example_folder):
    namespace = doc_examples.run_page(doc_examples.blocks(page), example_folder)
    counters = auriko_obs.stats()  # empty unless the page left an instrumentation running
    assert auriko_obs.flush(30)
    assert not counters.get("internal_errors") and not counters.get("dropped_spans")
    assert "__builtins__" in namespace  # the blocks ran in it


def test_the_readme_example_stores_the_call_it_makes(example_folder):
    readme = doc_examples.blocks(ROOT / "README.md")
    doc_examples.run_page(readme, example_folder)
    calls = auriko_obs.Store(str(example_folder / "spend.duckdb")).calls()
    assert len(calls) == 1 and calls["tags"][0] == ["team:search"]
    assert calls["provider"][0] and calls["cost_usd"][0] > 0 and calls["routing_strategy"][0] == "cost"


def test_the_analysis_guide_reads_its_budget_file_and_writes_its_figures(example_folder):
    namespace = doc_examples.run_page(doc_examples.blocks(ROOT / "docs/guides/analysis.md"), example_folder)
    assert [b.name for b in namespace["budgets"]] == ["search team, daily", "search team"]  # the toml, then code
    from auriko_obs import analysis

    assert analysis.budget_burn("auriko_obs.duckdb", namespace["budgets"])["spend_usd"].gt(0).all()
    assert (example_folder / "mix.html").stat().st_size > 1000 and (example_folder / "burn.html").stat().st_size > 1000


# The schema page: generated at build time by docs/hooks.py from fields.py, never copied by hand.


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_schema_page_shows_the_llm_calls_table_of_fields_py(hooks):
    source = (ROOT / "docs" / "reference" / "schema.md").read_text()
    built = hooks.render(source)
    assert fields.schema_markdown() in built and "<!-- generated:" not in built
    for name, sql_type in fields.SPAN_ONLY_COLUMNS:
        assert f"| {name} | {sql_type} |" in built
    assert "| trace_id |" not in source  # no hand-copied table to fall out of date


def test_the_attributes_page_lists_every_header_routing_key_and_extra_attribute_of_fields_py(hooks):
    built = hooks.render((ROOT / "docs" / "reference" / "attributes.md").read_text())
    assert "<!-- generated:" not in built
    for header, attribute, _ in fields.HEADER_ATTRIBUTES:
        assert f"| `{header}` | `{attribute}` |" in built
    for key, attribute in fields.ROUTING_ATTRIBUTES:
        assert f"| `{key}` | `{attribute}` |" in built
    for attribute, _ in fields.OTHER_ATTRIBUTES:
        assert f"| `{attribute}` |" in built


def test_a_page_asking_for_an_unknown_generated_table_fails_the_build(hooks):
    from mkdocs.exceptions import PluginError

    with pytest.raises(PluginError, match="llm_calls"):
        hooks.render("intro\n<!-- generated: llm_calls_v2 -->\n")


def test_the_site_navigation_names_only_pages_that_exist_and_every_page_is_in_it():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def paths(nav):
        for entry in nav:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            yield from paths(value) if isinstance(value, list) else [value]

    in_nav = set(paths(config["nav"]))
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert in_nav == on_disk


def test_docstrings_cite_the_contract_page_of_the_docs_not_a_file_outside_the_repository():
    cited = re.compile(r"shared/auriko-api\.md|auriko-api\.md")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("auriko_obs", "tests", "benchmarks", "docs")
        for path in (ROOT / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if cited.search(line)
    ]
    assert offenders == []
    anchors = re.findall(r"docs/reference/auriko-contract\.md#([\w-]+)", _all_python_source())
    headings = {
        re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", (ROOT / "docs/reference/auriko-contract.md").read_text(), re.M)
    }
    assert anchors and set(anchors) <= headings


def _all_python_source() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "auriko_obs").rglob("*.py"))


def test_the_instrumenting_guide_gives_instrument_and_flush_their_real_parameters_and_defaults():
    import ast
    import inspect

    guide = (ROOT / "docs" / "guides" / "instrumenting.md").read_text()
    for name in ("instrument", "flush"):
        documented = re.search(rf"`auriko_obs\.{name}\(([^`]+)\)`", guide)
        assert documented, name
        shown = [part.strip().partition("=") for part in documented.group(1).split(",")]
        real = []
        for parameter in inspect.signature(getattr(auriko_obs, name)).parameters.values():
            if parameter.kind is parameter.KEYWORD_ONLY and ("*", "", "") not in real:
                real.append(("*", "", ""))
            real.append((parameter.name, "=", parameter.default))
        assert [(n, eq, ast.literal_eval(v) if eq else v) for n, eq, v in shown] == real, name
