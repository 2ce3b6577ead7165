"""The Grafana dashboard's PromQL, run by Debian's real `prometheus` against metrics it scraped from us."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.exporter.prometheus", reason="needs the otlp extra")

import openai

import auriko_obs
from auriko_obs.otlp._metrics import DURATION_BUCKETS

from .conftest import calls, system_program

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboards" / "grafana" / "auriko-obs-genai.json"
LONG_SYSTEM = "You answer questions about an online bookshop's orders. " * 120
# What Grafana substitutes before sending a query: the test stands in for it.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$model": ".*", "$provider": ".*"}


def prometheus_binary() -> str:
    """Returns Debian's prometheus, for a test marked ``prometheus`` (conftest.py skips it when it is missing)."""
    path = system_program("prometheus")
    assert path is not None, "a test that runs prometheus must be marked prometheus"
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, binary: str, target_port: int, folder: Path) -> None:
        self.port = _free_port()
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: auriko-obs\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        )
        with (folder / "prometheus.log").open("w") as log:  # the child keeps its own copy of the file
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).read()
                return
            except OSError:
                assert self.proc.poll() is None, (folder / "prometheus.log").read_text()[-2000:]
                time.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    def query(self, expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for_scrapes(self, n: int) -> None:
        """Waits until prometheus has taken n more scrapes of our endpoint."""

        def scrapes() -> float:
            result = self.query('count_over_time(up{job="auriko-obs"}[10m])')
            return float(result[0]["value"][1]) if result else 0.0

        target = scrapes() + n
        deadline = time.monotonic() + 30
        while scrapes() < target:
            assert time.monotonic() < deadline, "prometheus is not scraping"
            time.sleep(0.3)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _expressions() -> list[tuple[int, str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, expr
            out.append((panel["id"], panel["title"], expr))
    return out


def _workload(client, sim) -> None:
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"]
    for i in range(12):
        client.chat.completions.create(
            model=models[i % 3],
            messages=[{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": f"order {i % 4}"}],
            extra_body={"gateway": {"routing": {"optimize": ["cost", "speed"][i % 2]}}},
        )
    sim.inject("upstream_error")
    with pytest.raises(openai.InternalServerError):  # the injected 502, not retried (max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "fails"}])


def _value(sample: dict) -> float:
    return float(sample["value"][1])


@pytest.mark.prometheus
def test_every_dashboard_expression_returns_correct_results(tmp_path, sim, client, db_path):
    binary = prometheus_binary()
    active = auriko_obs.instrument(db=db_path, prometheus=0, otlp=False)
    prometheus = Prometheus(binary, active.export.prometheus_port, tmp_path)
    try:
        _workload(client, sim)  # phase 1: every series appears …
        assert auriko_obs.flush(30)
        prometheus.wait_for_scrapes(2)
        phase2_start = time.time()
        _workload(client, sim)  # … phase 2: what rate() and increase() see
        assert auriko_obs.flush(30)
        prometheus.wait_for_scrapes(3)

        rows = calls(db_path)
        phase2 = rows[rows["start_time"].map(lambda t: t.timestamp()) >= phase2_start]
        ok2 = phase2[phase2["status"] == "ok"]
        results = {}
        for panel_id, title, expr in _expressions():
            result = prometheus.query(expr)
            assert result, f"panel {panel_id} ({title}) is empty: {expr}"
            assert all(math.isfinite(_value(s)) for s in result), (title, result)
            results[panel_id] = result

        def close_to(got: float, expected: float) -> bool:
            # increase()/rate() extrapolate to the window's edges: a few scrapes over ~10 s, so up to ~30%
            return expected > 0 and 0.95 * expected <= got <= 1.35 * expected

        spend = sum(_value(s) for s in results[2])
        assert close_to(spend, ok2["cost_usd"].sum()), (spend, ok2["cost_usd"].sum())
        saved = sum(_value(s) for s in results[3])
        assert close_to(saved, phase2["cache_savings_usd"].fillna(0).sum()), saved
        assert _value(results[1][0]) > 0

        by_provider = {s["metric"]["gen_ai_provider_name"]: _value(s) for s in results[4]}
        expected = ok2.groupby("provider")["cost_usd"].sum()
        assert set(by_provider) == set(expected.index)
        for provider, cost in expected.items():
            assert close_to(by_provider[provider], cost), (provider, by_provider[provider], cost)
        by_model = {s["metric"]["gen_ai_request_model"]: _value(s) for s in results[5]}
        for model, cost in ok2.groupby("request_model")["cost_usd"].sum().items():
            assert close_to(by_model[model], cost), (model, by_model[model], cost)

        token_rates = {s["metric"]["gen_ai_token_type"]: _value(s) for s in results[6]}
        assert set(token_rates) == {"input", "output"} and token_rates["input"] > token_rates["output"] > 0

        p95 = {s["metric"]["gen_ai_request_model"]: _value(s) for s in results[7] if not math.isnan(_value(s))}
        ok = rows[rows["status"] == "ok"]
        for model, durations in ok2.groupby("request_model")["duration_ms"]:
            truth = durations.quantile(0.95) / 1000
            # The window may reach back into phase 1 (its edges are a scrape apart): the bound is the bucket
            # holding the larger of phase 2's p95 and all calls' p95 (on a loaded machine one slow call in
            # phase 1 moved it up a bucket).
            either = max(truth, ok[ok["request_model"] == model]["duration_ms"].quantile(0.95) / 1000)
            upper = next(b for b in DURATION_BUCKETS if b >= either)
            assert 0 < p95[model] <= upper * 1.0001, (model, p95[model], truth, either)

        error_rate = _value(results[8][0])
        truth = (phase2["status"] == "error").mean()
        assert truth > 0 and abs(error_rate - truth) < 0.05, (error_rate, truth)

        strategies = {s["metric"].get("auriko_routing_strategy") for s in results[9]}
        assert set(ok2["routing_strategy"].dropna()) <= strategies

        assert _value(results[10][0]) == pytest.approx(rows["credits_balance_usd"].min())
    finally:
        prometheus.close()
        auriko_obs.uninstrument()
