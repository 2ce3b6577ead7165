"""Which way imports run (shared/style.md): import-linter's contracts in pyproject.toml, and what the read
side loads."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import auriko_obs

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
]


def _contracts() -> list[dict]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _lint_imports(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(LINT_IMPORTS, cwd=folder, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    ran = _lint_imports(ROOT)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "0 broken" in ran.stdout and f"Contracts: {len(_contracts())} kept" in ran.stdout


def test_the_simulator_contract_names_every_other_module_of_the_package():
    top_level = {f"auriko_obs.{m.name}" for m in pkgutil.iter_modules(auriko_obs.__path__)} - {"auriko_obs.simulator"}
    [contract] = [c for c in _contracts() if c.get("source_modules") == ["auriko_obs.simulator"]]
    assert set(contract["forbidden_modules"]) == top_level


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("analysis/_spend.py", "from ..store import _files", "private _module BROKEN"),
        ("simulator/_config.py", "from .. import fields", "independent server) BROKEN"),
        ("store/_read.py", "from .. import instrumentation", "(it only receives spans) BROKEN"),
    ],
)
def test_the_contracts_catch_an_import_the_wrong_way(tmp_path, module, line, contract):
    shutil.copytree(ROOT / "auriko_obs", tmp_path / "auriko_obs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "auriko_obs" / module, "a") as source:
        source.write(f"\n{line}  # noqa\n")
    ran = _lint_imports(tmp_path)
    assert ran.returncode == 1 and contract in " ".join(ran.stdout.split()), ran.stdout


READ_WITHOUT_THE_SDK = """
import sys
from auriko_obs import Store, analysis
frame = Store(sys.argv[1]).calls()
analysis.cost_by("model", sys.argv[1])
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk"))
print(len(frame), loaded)
"""


def test_reading_a_store_and_its_analyses_leaves_the_opentelemetry_sdk_unloaded(tmp_path):
    from auriko_obs.store import connect

    path = str(tmp_path / "read.duckdb")
    with connect(path, read_only=False, wait_s=5):
        pass  # an empty store, schema and all
    bare = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, auriko_obs.analysis; print(sorted(m for m in sys.modules if 'opentelemetry' in m))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bare.returncode == 0 and bare.stdout.strip() == "[]", bare.stderr
    ran = subprocess.run(
        [sys.executable, "-c", READ_WITHOUT_THE_SDK, path], capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "0 []", ran.stderr
