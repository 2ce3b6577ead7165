"""Real local servers that reports are delivered to: an HTTP webhook receiver and an SMTP server with STARTTLS."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_in_background(server: socketserver.TCPServer) -> Callable[[], None]:
    """Serves on a daemon thread; returns what stops it at once and closes it."""
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        # shutdown() waits until serve_forever looks (every 0.5 s); shutting the listening socket wakes it now.
        stopping = threading.Thread(target=server.shutdown)
        stopping.start()
        with contextlib.suppress(OSError):
            server.socket.shutdown(socket.SHUT_RDWR)
        stopping.join()
        server.server_close()

    return stop


class WebhookReceiver:
    """Collects the JSON bodies POSTed to it; answers ``fail_first`` requests with ``fail_status``."""

    def __init__(self, *, fail_first: int = 0, fail_status: int = 503, retry_after: str | None = None) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.attempts += 1
                if receiver.attempts <= fail_first:
                    self.send_response(fail_status)
                    if retry_after:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver.bodies.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "authorization": self.headers.get("Authorization"),
                        "json": json.loads(body),
                    }
                )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/s3cr3t"
        self.close = serve_in_background(self.server)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def smtp_server(tmp_path, *, user: str = "reports", password: str = "pw-123") -> Iterator[dict]:
    """Runs aiosmtpd on 127.0.0.1 requiring STARTTLS (a trustme CA's certificate) and login; yields what it
    received (``messages``: raw bytes; ``logins``), the port and the CA file to trust."""
    import ssl

    import trustme
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    cafile = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    received: dict = {"messages": [], "logins": [], "envelopes": []}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received["messages"].append(envelope.content)
            received["envelopes"].append((envelope.mail_from, list(envelope.rcpt_tos), session.ssl is not None))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        received["logins"].append((auth_data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        yield {
            **received,
            "received": received,
            "port": port,
            "cafile": str(cafile),
            "user": user,
            "password": password,
        }
    finally:
        controller.stop()
