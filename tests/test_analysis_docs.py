"""What shows the analyses to people runs as written: the README's examples, docs/make_figures.py, benchmarks/analysis.py."""

from __future__ import annotations

import re
from pathlib import Path

import auriko_obs
from auriko_obs import analysis

from .conftest import API_KEY

ROOT = Path(__file__).parent.parent


def readme_blocks(heading: str) -> dict[str, list[str]]:
    """Returns the fenced code blocks of one README section, by language."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {heading}\n")
    section = text[start:text.index("\n## ", start + 1)]
    blocks: dict[str, list[str]] = {}
    for language, code in re.findall(r"```(\w+)\n(.*?)```", section, re.S):
        blocks.setdefault(language, []).append(code)
    return blocks


def test_readme_analysis_examples_run_against_the_simulator(sim, client, tmp_path, monkeypatch):
    blocks = readme_blocks("Analyses and figures")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "auriko_obs.toml").write_text(blocks["toml"][0])
    auriko_obs.instrument(db=str(tmp_path / "auriko_obs.duckdb"))
    try:
        for i in range(3):
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"question {i}"}],
                extra_body={"gateway": {"metadata": {"tags": ["team:search"], "user_id": "u-42"}}})
        assert auriko_obs.flush(30)
    finally:
        auriko_obs.uninstrument()
    monkeypatch.setenv("AURIKO_BASE_URL", sim.base_url)
    monkeypatch.setenv("AURIKO_API_KEY", API_KEY)
    for code in blocks["python"]:
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
    assert [b.name for b in namespace["budgets"]] == ["search team, daily", "search team"]  # the toml, then code
    assert analysis.budget_burn("auriko_obs.duckdb", namespace["budgets"])["spend_usd"].gt(0).all()
    assert (tmp_path / "mix.html").stat().st_size > 1000 and (tmp_path / "burn.html").stat().st_size > 1000
