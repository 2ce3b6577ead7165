"""A strict OpenAI-compatible server on 127.0.0.1 that rejects request parameters it does not know.

It answers as older Azure OpenAI API versions do: ``stream_options`` is an unknown parameter (400,
``Unrecognized request argument supplied``). Anything else streams three chunks and ``[DONE]``, or, for
the model ``rejected-model``, answers 400 for a reason of its own.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _chunk(**fields: Any) -> bytes:
    body = {"id": "chatcmpl-strict", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-2024-08-06"}
    body.update(fields)
    return b"data: " + json.dumps(body).encode() + b"\n\n"


CHUNKS = [
    _chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
    _chunk(choices=[{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]),
    _chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
]


class StrictServer:
    """Runs the server in a thread; ``requests`` holds each request body it received."""

    def __init__(self, rejects: tuple[str, ...] = ("stream_options",)) -> None:
        self.requests: list[dict] = []
        self.rejects = rejects
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                unknown = [name for name in server.rejects if name in body]
                if unknown:
                    self._json(400, f"Unrecognized request argument supplied: {unknown[0]}")
                elif body.get("model") == "rejected-model":
                    self._json(400, "The model `rejected-model` does not exist.")
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for chunk in CHUNKS:
                        self.wfile.write(chunk)
                    self.wfile.write(b"data: [DONE]\n\n")

            def _json(self, status: int, message: str) -> None:
                payload = json.dumps(
                    {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> StrictServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
