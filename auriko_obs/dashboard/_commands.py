"""The ``auriko-obs dashboard`` command (added to ``auriko-obs`` by ``auriko_obs.cli``)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .._cli_shared import UserError, cannot_listen, db_option, db_path, readable_db_path


@click.command()
@db_option
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8050, show_default=True, help="Port (0 picks a free one)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of dashboard definitions (default: $AURIKO_OBS_DASHBOARDS or ./dashboards).",
)
def dashboard(db: Path | None, port: int, host: str, folder: str | None) -> None:
    """Serve the dashboards as local web pages that refresh while spans arrive."""
    from ..store import is_remote
    from ._definitions import DashboardError
    from ._web_app import serve

    path = db_path(db)
    # A local store yet to be made is fine (the page waits for the first spans); a remote lake is checked
    # now, since a wrong bucket or missing credentials would otherwise show an empty page forever.
    if is_remote(path) or os.path.exists(path):
        path = readable_db_path(db)
    try:
        serve(path, host=host, port=port, folder=folder, ready=lambda line: print(line, flush=True))
    except DashboardError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise cannot_listen(host, port, exc) from None
