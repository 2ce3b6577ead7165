"""``auriko-obs dashboard``: serves the dashboard definitions as local web pages that refresh as spans arrive.

Routes: ``/`` (the list of dashboards), ``/d/<name>`` (a page), ``/api/d/<name>`` (its panels as Plotly
JSON), ``/static/plotly.min.js`` (from the installed plotly package: the page needs no internet).
The page polls its API every ``refresh_seconds``; the server answers from a cache until the store
changes (a new span, or one more span ended), so an idle dashboard costs one small query per poll.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._definitions import Dashboard, load_dashboards

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def plotly_js_path() -> Path:
    """Returns the path of plotly.min.js inside the installed plotly package."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class DashboardApp:
    """The dashboards of a folder over one store: renders pages and panel data, caching per store version."""

    def __init__(self, db_path: str, folder: str | os.PathLike[str] | None = None) -> None:
        import jinja2

        from ..store import is_lake, lake_root

        # A lake's root as the store names it: abspath would turn s3://bucket/prefix into ./s3:/bucket/prefix.
        self.db_path = lake_root(db_path) if is_lake(db_path) else os.path.abspath(db_path)
        self.folder = folder
        self.dashboards = {d.name: d for d in load_dashboards(folder)}
        self._cache: dict[str, tuple[Any, bytes]] = {}
        self._lock = threading.Lock()
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("auriko_obs.dashboard", "templates"),
            autoescape=jinja2.select_autoescape(["html"]),
        )

    def version(self) -> tuple[int, str] | None:
        """Returns (spans, latest end time) of the store, or None when it does not exist yet."""
        from ..store import Store, is_remote

        if not is_remote(self.db_path) and not os.path.exists(self.db_path):
            return None
        row = Store(self.db_path).sql("SELECT count(*) AS n, max(end_time)::VARCHAR AS last FROM spans").iloc[0]
        return int(row["n"]), str(row["last"])

    def page(self, name: str) -> bytes:
        dashboard = self.dashboards[name]
        return (
            self._env.get_template("page.html")
            .render(d=dashboard, dashboards=list(self.dashboards.values()), db=self.db_path)
            .encode()
        )

    def index(self) -> bytes:
        return (
            self._env.get_template("index.html")
            .render(dashboards=list(self.dashboards.values()), db=self.db_path)
            .encode()
        )

    def data(self, name: str) -> bytes:
        """Returns the JSON of every panel of dashboard ``name`` (cached while the store is unchanged)."""
        dashboard = self.dashboards[name]
        with self._lock:
            try:
                version = self.version()
            except Exception as exc:  # a locked or broken store: say so in the page, keep serving
                return json.dumps({"version": None, "error": f"{type(exc).__name__}: {exc}", "panels": []}).encode()
            cached = self._cache.get(name)
            if cached and cached[0] == version:
                return cached[1]
            body = json.dumps(self._panels(dashboard, version)).encode()
            self._cache[name] = (version, body)
            return body

    def _frames(self, dashboard: Dashboard) -> list[Any]:
        """Returns each panel's query result (a DataFrame, or the exception it raised), over one connection."""
        from ..store import Store

        results: list[Any] = []
        with Store(self.db_path, lock_wait_s=10).engine.open() as con:  # a store file or a lake
            for panel in dashboard.panels:
                try:
                    results.append(con.df(panel.sql))
                except Exception as exc:  # a bad query shows in its panel; the others still render
                    results.append(exc)
        return results

    def _panels(self, dashboard: Dashboard, version: tuple[int, str] | None) -> dict:
        from .. import plots

        frames = self._frames(dashboard) if version is not None else [None] * len(dashboard.panels)
        panels = []
        for i, (panel, frame) in enumerate(zip(dashboard.panels, frames, strict=True)):
            item: dict[str, Any] = {"id": f"panel-{i}", "title": panel.title}
            if frame is None:
                item["error"] = f"no store at {self.db_path} yet: waiting for the first spans"
            elif isinstance(frame, Exception):
                item["error"] = str(frame).splitlines()[0]
            else:
                try:
                    figure = plots.panel(
                        panel.type, frame, x=panel.x, y=panel.y, color=panel.color, prefix=panel.prefix, height=320
                    )
                    item["figure"] = json.loads(figure.to_json())
                    item["rows"] = len(frame)
                except Exception as exc:  # e.g. a column named in the definition that the query lacks
                    item["error"] = str(exc).splitlines()[0]
            panels.append(item)
        return {
            "version": None if version is None else f"{version[0]}:{version[1]}",
            "spans": None if version is None else version[0],
            "generated_at": datetime.now(timezone.utc).isoformat(),
            "panels": panels,
        }


def _handler(app: DashboardApp) -> type[BaseHTTPRequestHandler]:
    plotly_js = plotly_js_path()

    class Handler(BaseHTTPRequestHandler):
        server_version = "auriko-obs-dashboard"

        def do_GET(self) -> None:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            bound = self.server.server_address
            if host not in _LOCAL_HOSTS and host != (bound[0] if isinstance(bound, tuple) else None):
                return self._send(403, b"forbidden host", "text/plain")  # DNS rebinding guard
            path = urlsplit(self.path).path.rstrip("/") or "/"
            try:
                if path == "/":
                    if len(app.dashboards) == 1:
                        return self._redirect(f"/d/{next(iter(app.dashboards))}")
                    return self._send(200, app.index(), "text/html; charset=utf-8")
                if path.startswith("/d/") and path[3:] in app.dashboards:
                    return self._send(200, app.page(path[3:]), "text/html; charset=utf-8")
                if path.startswith("/api/d/") and path[7:] in app.dashboards:
                    return self._send(200, app.data(path[7:]), "application/json")
                if path == "/static/plotly.min.js":
                    return self._send(200, plotly_js.read_bytes(), "application/javascript", cache=True)
                if path == "/healthz":
                    return self._send(200, b"ok", "text/plain")
                return self._send(404, b"not found", "text/plain")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, status: int, body: bytes, content_type: str, cache: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=86400" if cache else "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def make_server(
    db_path: str, *, host: str = "127.0.0.1", port: int = 8050, folder: str | os.PathLike[str] | None = None
) -> ThreadingHTTPServer:
    """Returns a bound (not yet serving) HTTP server of the dashboards in ``folder`` over ``db_path``."""
    app = DashboardApp(db_path, folder)
    server = ThreadingHTTPServer((host, port), _handler(app))
    server.daemon_threads = True
    server.app = app  # type: ignore[attr-defined]
    return server


def serve(
    db_path: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8050,
    folder: str | os.PathLike[str] | None = None,
    ready: Callable[[str], None] = print,
) -> None:
    """Serves the dashboards until interrupted."""
    server = make_server(db_path, host=host, port=port, folder=folder)
    url = f"http://{host}:{server.server_address[1]}/"
    names = ", ".join(server.app.dashboards)  # type: ignore[attr-defined]
    ready(f"auriko-obs dashboard: {url} ({names}) over {os.path.abspath(db_path)}; Ctrl-C stops")
    # Ctrl-C and SIGTERM stop it, also when started from a script's background job, which starts with
    # SIGINT ignored (Python then installs no KeyboardInterrupt handler of its own).
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.server_close()
