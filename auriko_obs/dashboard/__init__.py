"""Browser dashboards: TOML definitions of SQL panels (``dashboards/*.toml``) served by ``auriko-obs dashboard``."""

from ._definitions import Dashboard, DashboardError, Panel, load_dashboard, load_dashboards
from ._web_app import make_server, serve

__all__ = ["Dashboard", "DashboardError", "Panel", "load_dashboard", "load_dashboards", "make_server", "serve"]
