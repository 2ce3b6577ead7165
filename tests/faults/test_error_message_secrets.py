"""Error messages are stored and exported without API keys, and without echoed prompts unless content
capture is on: a 401 that quotes the key, a 400 that quotes the prompt."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auriko_obs

from ..conftest import attrs, calls

KEY = "ak_live_9f8e7d6c5b4a3210deadbeef"
OPENAI_KEY = "sk-proj-Zx81Qp0Lm2Nb7Vc4Xs6Dk9Fj3Hg5"
PROMPT = "Draft the confidential merger memo for Project Bluebird, due to the board on Friday."


@pytest.fixture
def echoing_server():
    """401 echoing the bearer key for `model=auth`, 400 echoing the first message for anything else."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key = self.headers["Authorization"].split()[-1]
            if body["model"] == "auth":
                status, error = (
                    401,
                    {
                        "message": f"Incorrect API key provided: {key}. You can find your API key in your dashboard.",
                        "type": "authentication_error",
                        "code": "invalid_api_key",
                    },
                )
            else:
                status, error = (
                    400,
                    {
                        "message": f"Invalid prompt: '{body['messages'][0]['content']}' was flagged.",
                        "type": "invalid_request_error",
                        "code": "content_filtered",
                        "param": "messages",
                    },
                )
            payload = json.dumps({"error": {"param": None, **error}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def _fail_twice(base_url: str, key: str) -> None:
    with openai.OpenAI(base_url=base_url, api_key=key, max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="auth", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])


@pytest.mark.parametrize("key", [KEY, OPENAI_KEY])
def test_keys_and_echoed_prompts_are_not_stored_or_exported_with_content_capture_off(db_path, echoing_server, key):
    exported = InMemorySpanExporter()
    auriko_obs.instrument(db=db_path, otlp=exported, tracer_provider=False, metrics=False)
    try:
        _fail_twice(echoing_server, key)
        frame = calls(db_path)
        stored = auriko_obs.Store(db_path).sql("SELECT * FROM spans").to_json(date_format="iso")
    finally:
        auriko_obs.uninstrument()
    sent = json.dumps([dict(s.attributes) | {"status": s.status.description} for s in exported.get_finished_spans()])
    for text in (stored, sent):
        assert key not in text and key[8:20] not in text
        assert "Project Bluebird" not in text and "merger memo" not in text
    auth, flagged = (attrs(row) for _, row in frame.iterrows())
    assert auth["auriko.error.message"].startswith("Incorrect API key provided: [REDACTED]")
    assert auth["auriko.error.code"] == "invalid_api_key" and flagged["auriko.error.code"] == "content_filtered"
    assert "quotes the request" in flagged["auriko.error.message"]


def test_with_content_capture_on_the_echoed_prompt_is_kept_but_the_key_is_not(db_path, echoing_server):
    auriko_obs.instrument(db=db_path, capture_content=True)
    try:
        _fail_twice(echoing_server, KEY)
        frame = calls(db_path)
    finally:
        auriko_obs.uninstrument()
    auth, flagged = (attrs(row) for _, row in frame.iterrows())
    assert KEY not in json.dumps(auth) and "[REDACTED]" in auth["auriko.error.message"]
    assert PROMPT in flagged["auriko.error.message"]
