"""Shared fixtures: a real simulator over HTTP on 127.0.0.1, a temporary store, an instrumented process."""

from __future__ import annotations

import os
import shutil

import pytest

import auriko_obs
from auriko_obs.simulator import Simulator, SimulatorConfig

API_KEY = "ak_test_d0n7_l34k_7h15_k3y"


@pytest.fixture
def sim():
    with Simulator(SimulatorConfig(seed=7)) as server:
        yield server


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "spend.duckdb")


@pytest.fixture
def instrumented(db_path):
    """Instruments the openai SDK into a fresh store; yields the store path; restores everything after."""
    auriko_obs.instrument(db=db_path, service_name="tests")
    try:
        yield db_path
    finally:
        auriko_obs.uninstrument()


@pytest.fixture
def client(sim):
    import openai

    with openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
def async_client(sim):
    import openai

    return openai.AsyncOpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0)


def calls(db_path: str):
    """Returns the llm_calls rows after flushing the instrumentation."""
    assert auriko_obs.flush(30)
    return auriko_obs.Store(db_path).calls()


def attrs(row) -> dict:
    import json

    return json.loads(row["attributes"])


@pytest.fixture(autouse=True)
def fresh_internal_errors(monkeypatch):
    """Counts internal errors from zero in every test: the counters are process-wide, so a test that checks
    that none happened (or that a kind is logged on its first occurrence) must see only its own."""
    from collections import Counter

    from auriko_obs._internal_errors import INTERNAL_ERRORS

    monkeypatch.setattr(INTERNAL_ERRORS, "counts", Counter())
    return INTERNAL_ERRORS


@pytest.fixture(autouse=True)
def _no_real_api(monkeypatch):
    # Tests never reach the internet; the live test opts back in explicitly.
    if not os.environ.get("AURIKO_OBS_LIVE_TEST"):
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


# CI's second leg (openai 2.x with the auriko SDK, AURIKO_OBS_SDK_LEG=1) reruns every test that makes a
# call through the openai or auriko SDK (directly, through instrument(), or in a notebook kernel); these
# modules never do (they build stores from rows, or read them) and ran in the first leg with the same code.
SDK_INDEPENDENT_MODULES = {
    "test_analysis.py",
    "test_analysis_routing.py",
    "test_budget_check.py",
    "test_engine_conformance.py",
    "test_spark_connect.py",
    "test_report_delivery.py",
    "test_schedule.py",
}


# The Debian programs that tests marked `browser` or `prometheus` drive (the markers are in pyproject.toml).
SYSTEM_PROGRAMS = {"browser": ("chromium", "chromium-browser"), "prometheus": ("prometheus",)}


def system_program(marker: str) -> str | None:
    """Returns the path of the program a marked test drives, or None when it is not installed."""
    return next((path for name in SYSTEM_PROGRAMS[marker] if (path := shutil.which(name))), None)


def pytest_runtest_setup(item):
    # A marked test skips without its program, or fails when CI requires it (AURIKO_OBS_REQUIRE_SYSTEM_TOOLS=1).
    for marker, names in SYSTEM_PROGRAMS.items():
        if item.get_closest_marker(marker) is not None and system_program(marker) is None:
            message = f"needs Debian's {names[0]} (apt-get install {names[0]})"
            if os.environ.get("AURIKO_OBS_REQUIRE_SYSTEM_TOOLS") == "1":
                pytest.fail(f"{message}, which AURIKO_OBS_REQUIRE_SYSTEM_TOOLS=1 requires")
            pytest.skip(message)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("AURIKO_OBS_SDK_LEG") != "1":
        return
    keep = [item for item in items if item.path.name not in SDK_INDEPENDENT_MODULES]
    dropped = [item for item in items if item.path.name in SDK_INDEPENDENT_MODULES]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
