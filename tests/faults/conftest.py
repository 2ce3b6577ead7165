"""Fixtures for the fault tests: a server that answers with hostile values, and a small file system."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

API_KEY = "ak_test_faults"


def _completion(usage: dict) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-faults",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": usage,
        }
    ).encode()


class HostileValuesServer:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 whose answer is chosen by the request's
    ``metadata.answer``: ``tokens_2_64`` (usage.prompt_tokens = 2**64), ``tokens_1e20`` (1e20, a JSON float),
    ``remaining_25_digits`` (a 25-digit X-RateLimit-Remaining-Requests header), anything else a plain answer."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                answer = (request.get("metadata") or {}).get("answer")
                usage: dict = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
                if answer == "tokens_2_64":
                    usage = {**usage, "prompt_tokens": 2**64, "total_tokens": 2**64 + 2}
                elif answer == "tokens_1e20":
                    usage = {**usage, "prompt_tokens": 1e20}
                body = _completion(usage)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if answer == "remaining_25_digits":
                    self.send_header("X-RateLimit-Remaining-Requests", "9" * 25)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile_values() -> Iterator[HostileValuesServer]:
    server = HostileValuesServer()
    yield server
    server.close()


@pytest.fixture
def hostile_client(hostile_values):
    import openai

    with openai.OpenAI(base_url=hostile_values.base_url, api_key=API_KEY, max_retries=0) as client:
        yield client


def ask(client, answer: str = "plain", model: str = "gpt-4o"):
    """Returns the completion of one chat call asking the hostile server for ``answer``."""
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], metadata={"answer": answer}
    )


@pytest.fixture
def small_fs(tmp_path) -> Iterator[Path]:
    """Yields a folder on a 2 MiB tmpfs of its own (root only: mounting needs it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder = tmp_path / "small-fs"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Returns a ballast file that fills the file system of ``folder`` up to its last byte."""
    ballast = folder / "ballast"
    chunk = b"\0" * 4096
    with open(ballast, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        for size in (1024, 256, 64, 16, 1):  # the last partial block too
            try:
                while True:
                    out.write(chunk[:size])
            except OSError:
                pass
    return ballast


@pytest.fixture
def otlp_collector(tmp_path):
    """Yields an OTLP/HTTP receiver (``auriko-obs collect``'s) on 127.0.0.1 writing to a store of its own;
    ``.endpoint`` is its traces URL."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from auriko_obs.otlp._receiver import Receiver, start_http

    receiver = Receiver(str(tmp_path / "collector.duckdb"), flush_interval_s=0.05)
    http = start_http(receiver, port=0)
    receiver.endpoint = f"http://127.0.0.1:{http.server_address[1]}/v1/traces"
    yield receiver
    http.shutdown()
    http.server_close()
    receiver.close()


@pytest.fixture
def no_otel_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
