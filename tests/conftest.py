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


# CI's second leg (openai 2.x with the auriko SDK, AURIKO_OBS_SDK_LEG=1) reruns the modules whose subject is
# the call through the SDK: what the instrumentation records of each kind of call (plain, streamed, raw,
# async, Responses, embeddings, errors), the auriko SDK, the simulator as the SDKs see it, the caller's
# experience (never broken, never slowed), the notebook kernel and OTLP export. Every other module ran in
# the first leg with the same code: it builds stores from rows, or makes plain calls only to have data for
# what it tests (a report, a dashboard, the receiver), and what those calls record is checked here on both
# SDKs. tests/test_ci_legs.py keeps the list honest: a module that makes any SDK-specific kind of call must
# be in it, or in SDK_DATA_ONLY_MODULES with the reason its calls don't depend on the SDK.
SDK_LEG_MODULES = {
    "test_auriko_sdk.py",
    "test_ci_legs.py",
    "test_concurrency.py",
    "test_import.py",
    "test_instrumentation.py",
    "test_jupyter.py",
    "test_lake_writer.py",
    "test_live.py",
    "test_otlp_export.py",
    "test_simulator.py",
    "test_bad_values.py",
    "test_disk_full.py",
    "test_error_message_secrets.py",
    "test_stream_usage_request.py",
    "test_cassettes.py",
    "test_official_instrumentation.py",
}
SDK_DATA_ONLY_MODULES = {
    "test_collect.py": "a script's calls feed OpenLLMetry and our exporter; the subject is the receiver",
    "test_dashboard.py": "an injected 429 gives the page an error to show; recording it is test_instrumentation's",
    "test_dashboards.py": "an injected 502 gives the dashboards an error row; recording it is test_instrumentation's",
    "test_lake_s3.py": "calls give the S3 lake rows; the writer's handling of each kind is test_lake_writer's",
    "test_prices.py": "calls give the price estimate rows to price; the cost attributes are test_instrumentation's",
    "test_reports.py": "calls give a report its rows and an error; recording them is test_instrumentation's",
    "test_store.py": "a streamed call and a 429 give a store from before m007 every kind of row to migrate; "
    "recording them is test_instrumentation's",
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


# The modules that take longest (each over 15 s of a worker's time on a quiet 2-core machine), longest first.
# With --dist=loadfile, xdist hands out whole modules in collection order: starting these first leaves the
# short ones to fill the end, instead of one long module running alone after the others are done.
SLOW_MODULES_FIRST = (
    "test_reports.py",
    "test_instrumentation.py",
    "test_engine_conformance.py",
    "test_report_catch_up.py",
    "test_report_delivery.py",
    "test_lake_writer.py",
    "test_lake_s3.py",
    "test_collect.py",
    "test_report_webhook.py",
    "test_jupyter.py",
    "test_collect_durability.py",
    "test_notebooks.py",
    "test_concurrency.py",
    "test_analysis.py",
)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("AURIKO_OBS_SDK_LEG") == "1":
        keep = [item for item in items if item.path.name in SDK_LEG_MODULES]
        dropped = [item for item in items if item.path.name not in SDK_LEG_MODULES]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module keeps its order
