"""Hostile HTTP servers on 127.0.0.1 that reports are delivered to: one that redirects, one that drips."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RedirectingReceiver:
    """Answers every POST with ``status`` and a Location, and counts what reaches it by method."""

    def __init__(self, status: int = 302) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> bytes:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.command, self.path, body))
                return body

            def do_POST(self) -> None:
                self._record()
                self.send_response(status)
                self.send_header("Location", "/landing")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # where a followed redirect would land
                self._record()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/s3cr3t"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DrippingReceiver:
    """Reads the request, then sends a status line and one header line every ``every_s`` seconds, forever
    (until closed): each read of the client gets a byte long before any socket timeout."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.connections = 0
        self.held_s: list[float] = []  # how long each client stayed, from its request to hanging up
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hooks/s3cr3t"
        self.every_s = every_s
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                conn.recv(65536)
                started = time.monotonic()
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                i = 0
                conn.settimeout(self.every_s)
                while not self._stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:  # a quiet while: drip one more header line
                        conn.sendall(f"X-Drip-{i}: {i}\r\n".encode())
                        i += 1
                        continue
                    if data == b"":  # the client hung up
                        self.held_s.append(time.monotonic() - started)
                        return
            except OSError:
                self.held_s.append(time.monotonic() - started)

    def close(self) -> None:
        self._stop.set()
        time.sleep(0.25)
        self._sock.close()


class SwitchableReceiver:
    """A webhook receiver that answers 200, or 500 while ``failing``, or never while ``hanging``; it records
    every request it reads (the JSON body and the Idempotency-Key header) before deciding."""

    def __init__(self) -> None:
        self.failing = False
        self.hanging = False
        self.requests: list[dict] = []
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import json

                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                receiver.requests.append({"key": self.headers.get("Idempotency-Key"), "json": body})
                if receiver.hanging:
                    receiver._release.wait(60)
                    return
                status = 500 if receiver.failing else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/s3cr3t"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def labels(self) -> list[str]:
        """Returns the period label of each report received, in order."""
        return [r["json"]["report"]["period"]["label"] for r in self.requests]

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
