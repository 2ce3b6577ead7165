"""Interop: our OTLP export is received by Arize Phoenix, an OTLP server we did not write.

Run by `.ci/run` in its own step (Phoenix is heavy, so it lives in a virtualenv of its own and is only
started here), with the project's interpreter:

    python tests/interop/phoenix_check.py --phoenix /path/to/phoenix-venv/bin/phoenix

It starts `phoenix serve` on free 127.0.0.1 ports, instruments the openai SDK with
`instrument(otlp="http://127.0.0.1:PORT")`, makes calls against the local simulator inside a span of the
application's own, then reads the spans back from Phoenix's REST API (GraphQL as a fallback) and checks
names, trace/parent ids and token attributes. Prints '1 passed, 0 failed' or exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _phoenix_spans(base: str) -> list[dict]:
    """Returns [{name, span_id, trace_id, parent_id, attributes}] from Phoenix."""
    status, body = _get(f"{base}/v1/projects/default/spans?limit=100")
    if status == 200:
        out = []
        for span in json.loads(body).get("data", []):
            context = span.get("context", {})
            out.append(
                {
                    "name": span.get("name"),
                    "span_id": context.get("span_id"),
                    "trace_id": context.get("trace_id"),
                    "parent_id": span.get("parent_id"),
                    "attributes": span.get("attributes") or {},
                }
            )
        return out
    query = (
        "{ projects { edges { node { name spans(first: 100) { edges { node { name parentId attributes "
        "context { spanId traceId } } } } } } } }"
    )
    status, body = _get(f"{base}/graphql", json.dumps({"query": query}).encode())
    if status != 200:
        raise AssertionError(f"Phoenix REST and GraphQL both failed: {status} {body[:300]}")
    out = []
    for project in json.loads(body)["data"]["projects"]["edges"]:
        for edge in project["node"]["spans"]["edges"]:
            node = edge["node"]
            attributes = node.get("attributes")
            out.append(
                {
                    "name": node["name"],
                    "span_id": node["context"]["spanId"],
                    "trace_id": node["context"]["traceId"],
                    "parent_id": node.get("parentId"),
                    "attributes": json.loads(attributes) if isinstance(attributes, str) else attributes or {},
                }
            )
    return out


def _flat(attributes: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in attributes.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phoenix", required=True, help="the `phoenix` command of Phoenix's virtualenv")
    args = parser.parse_args()

    import openai
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    import auriko_obs
    from auriko_obs.simulator import Simulator, SimulatorConfig

    port, grpc_port = _free_port(), _free_port()
    workdir = tempfile.mkdtemp(prefix="phoenix-")
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_WORKING_DIR": workdir,
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log_path = Path(workdir) / "phoenix.log"
    started = time.monotonic()
    with log_path.open("w") as log:  # the child keeps its own copy of the file
        proc = subprocess.Popen([args.phoenix, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError("phoenix exited:\n" + log_path.read_text()[-3000:])
            try:
                if _get(f"{base}/healthz")[0] == 200 or _get(base)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - started > 120:
                raise AssertionError("phoenix did not start in 120 s")
            time.sleep(0.5)
        print(f"phoenix ready in {time.monotonic() - started:.1f} s on {base}")

        with Simulator(SimulatorConfig(seed=3)) as sim, tempfile.TemporaryDirectory() as folder:
            auriko_obs.instrument(
                db=os.path.join(folder, "own.duckdb"),
                service_name="phoenix-interop",
                otlp={"endpoint": base, "metrics": False},
            )
            app = TracerProvider()
            app.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
            client = openai.OpenAI(base_url=sim.base_url, api_key="ak_interop_key", max_retries=0)
            with app.get_tracer("app").start_as_current_span("answer question") as user_span:
                for model in ("gpt-4o", "gpt-4o-mini"):
                    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
            auriko_obs.uninstrument()  # drains the OTLP queue
            app.shutdown()
            own = auriko_obs.Store(os.path.join(folder, "own.duckdb")).calls()

        user_trace = format(user_span.get_span_context().trace_id, "032x")
        user_id = format(user_span.get_span_context().span_id, "016x")
        deadline = time.monotonic() + 30
        while True:
            spans = _phoenix_spans(base)
            llm = [s for s in spans if str(s["name"]).startswith("chat gpt-4o")]
            if len(llm) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(llm) == 2, f"Phoenix has {len(spans)} spans: {[s['name'] for s in spans]}"
        assert {s["span_id"] for s in llm} == set(own["span_id"]), (llm, list(own["span_id"]))
        for span in llm:
            assert span["trace_id"] == user_trace, (span["trace_id"], user_trace)
            assert span["parent_id"] == user_id, (span["parent_id"], user_id)
            attributes = _flat(span["attributes"])
            mine = own.set_index("span_id").loc[span["span_id"]]
            assert int(attributes["gen_ai.usage.input_tokens"]) == int(mine["input_tokens"]), attributes
            assert attributes["gen_ai.request.model"] == mine["request_model"]
            assert "auriko.cost.usd" in attributes
        print(f"Phoenix received {len(llm)} auriko-obs spans inside the application's trace, attributes intact")
        print("1 passed, 0 failed")
        return 0
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
