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
    """401 echoing the bearer key for `model=auth` (after "API key provided:") and `model=revoked` (alone), 400
    echoing the first message for anything else."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key = self.headers["Authorization"].split()[-1]
            if body["model"] == "revoked":  # the key quoted without "API key provided:" before it
                status, error = (
                    401,
                    {"message": f"The key {key} was revoked.", "type": "authentication_error", "code": "revoked"},
                )
            elif body["model"] == "auth":
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


GROQ_KEY = "gsk_W8mQ2xZp4Lk7Vb9Nc3Fd6Hj1Ts5Ry0Ea2Uo8Ii4"
XAI_KEY = "xai-Qm7Wn2Eb5Rv8Tc1Yx4Uz6Io9Pa3Sd0Fg5Hj8Kl2"
GOOGLE_KEY = "AIzaSyD4x8Qm2Lk7Vb9Nc3Fd6Hj1Ts5Ry0Ea2Uo"


@pytest.mark.parametrize("key", [KEY, OPENAI_KEY, GROQ_KEY, XAI_KEY, GOOGLE_KEY], ids=lambda k: k[:4])
def test_a_key_of_any_providers_shape_quoted_alone_in_an_error_is_not_stored(db_path, echoing_server, key):
    auriko_obs.instrument(db=db_path)
    try:
        with (
            openai.OpenAI(base_url=echoing_server, api_key=key, max_retries=0) as client,
            pytest.raises(openai.AuthenticationError),
        ):
            client.chat.completions.create(model="revoked", messages=[{"role": "user", "content": "hi"}])
        [row] = [attrs(row) for _, row in calls(db_path).iterrows()]
        stored = auriko_obs.Store(db_path).sql("SELECT * FROM spans").to_json(date_format="iso")
    finally:
        auriko_obs.uninstrument()
    assert key not in stored and key[8:20] not in stored
    assert row["auriko.error.message"] == "The key [REDACTED] was revoked."


@pytest.mark.parametrize(
    ("message", "redacted"),
    [
        (
            "upstream said: Authorization: Basic dXNlcjpzM2NyM3Q= rejected",
            "upstream said: Authorization: Basic [REDACTED] rejected",
        ),
        ("Basic dXNlcjpwYXNzd29yZA was refused", "Basic [REDACTED] was refused"),
        (f"groq: invalid key {GROQ_KEY}", "groq: invalid key [REDACTED]"),
        (f"key={XAI_KEY}; retry later", "key=[REDACTED]; retry later"),
        (
            f"https://generativelanguage.googleapis.com/v1?key={GOOGLE_KEY}",
            "https://generativelanguage.googleapis.com/v1?key=[REDACTED]",
        ),
    ],
)
def test_basic_credentials_and_groq_xai_google_keys_are_redacted_from_error_text(message, redacted):
    from auriko_obs.instrumentation._extract import redact_secrets

    assert redact_secrets(message) == redacted


@pytest.mark.parametrize(
    "message",
    [
        "Basic plan workspaces get 10 requests per minute; upgrade for more.",
        "Basic Authentication is not supported by this endpoint.",
        "The task-scheduler and the disk_usage check ask-first: risk-based routing failed.",
        "xAI models are served by the grok-2 deployment; AIzawa is a user name.",
    ],
)
def test_ordinary_words_near_the_key_shapes_are_left_alone(message):
    from auriko_obs.instrumentation._extract import redact_secrets

    assert redact_secrets(message) == message
