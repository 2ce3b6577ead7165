"""The Simulator (a background server with in-process controls) and ``serve`` (blocking, for the CLI)."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from http.server import ThreadingHTTPServer
from typing import Any

from ._accounts import Accounts
from ._config import SimulatorConfig
from ._handler import Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 refuses bursts of concurrent clients
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[Handler]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        """Remembers open connections, so stopping the server also ends idle keep-alive ones."""
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)


class Simulator:
    """A local Auriko-compatible HTTP server on a background thread; a context manager."""

    def __init__(self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._accounts = Accounts(config or SimulatorConfig())
        self._host, self._requested_port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Simulator:
        """Returns self after binding the port and starting to serve on a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        handler = type("SimulatorHandler", (Handler,), {"accounts": self._accounts})
        self._server = _Server((self._host, self._requested_port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"auriko-simulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes every open connection (calling it twice is harmless)."""
        server, self._server = self._server, None
        if server is None:
            return
        # shutdown() returns once serve_forever has noticed, which it does between two waits on the
        # listening socket (up to the poll interval). Shutting that socket down wakes the wait at once.
        stopping = threading.Thread(target=server.shutdown, name="auriko-simulator-stop")
        stopping.start()
        with contextlib.suppress(OSError):  # where a listening socket cannot be shut down: the poll interval
            server.socket.shutdown(socket.SHUT_RDWR)
        stopping.join()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """Returns the bound port (the ephemeral one when started with port 0)."""
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """Returns the OpenAI-style base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        host = self._host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    @property
    def config(self) -> SimulatorConfig:
        """Returns a copy of the current knobs."""
        config = self._accounts.config
        return replace(config, budgets=[dict(b) for b in config.budgets], key_rpm_limits=dict(config.key_rpm_limits))

    def __repr__(self) -> str:
        state = self.base_url if self._server is not None else "stopped"
        return f"Simulator({state}, seed={self._accounts.config.seed})"

    # ------------------------------------------------------------ controls

    def ledger(self) -> list[dict]:
        """Returns a copy of the ledger: one entry per inference request handled, success or error."""
        return self._accounts.ledger()

    def configure(self, **knobs: Any) -> None:
        """Changes knobs while running (see SimulatorConfig); raises ValueError for unknown knobs or bad values."""
        self._accounts.configure(knobs)

    def inject(self, code: str, count: int = 1, *, mid_stream: bool = False) -> None:
        """Makes the next ``count`` inference requests fail with a registry ``code`` (status, type, headers as
        Auriko sends them). ``mid_stream``: a streaming request gets 200, a few events, then the error event."""
        self._accounts.inject(code, count, mid_stream)

    def reset(self) -> None:
        """Clears ledger, spend, cache, rpm windows and injections; the config stays."""
        self._accounts.reset()


def serve(
    host: str = "127.0.0.1",
    port: int = 8787,
    config: SimulatorConfig | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Returns after KeyboardInterrupt or SIGTERM, serving until then; calls ``ready(message)`` once listening."""
    stopping = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():  # signal handlers only work there
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    sim = Simulator(config, host=host, port=port).start()
    try:
        if ready is not None:
            ready(f"Auriko simulator listening on {sim.base_url} (seed {sim.config.seed}); Ctrl-C to stop")
        while not stopping.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
