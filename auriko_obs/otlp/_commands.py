"""``auriko-obs collect``: receive OTLP traces into the DuckDB store."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

from ..cli import UserError, _writable_db_path, app, db_option


@app.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (both HTTP and gRPC).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=4318,
    show_default=True,
    help="OTLP/HTTP port (protobuf and JSON, gzip).",
)
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve OTLP/gRPC on this port (off by default; 4317 is the usual one).",
)
@click.option(
    "--token",
    envvar="AURIKO_OBS_COLLECT_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' (or $AURIKO_OBS_COLLECT_TOKEN).",
)
@click.option(
    "--max-request-mb",
    type=click.FloatRange(0.001, 1024),
    default=16.0,
    show_default=True,
    help="Largest request body accepted (413 above it).",
)
@click.option(
    "--queue-spans",
    type=click.IntRange(1, 10_000_000),
    default=200_000,
    show_default=True,
    help="Spans accepted but not yet written before the receiver answers 503 + Retry-After.",
)
@click.option(
    "--flush-interval",
    type=click.FloatRange(0.01, 3600),
    default=0.5,
    show_default=True,
    help="Seconds between writes to the store (sooner when 50,000 spans wait).",
)
def collect(
    db: Path | None,
    host: str,
    port: int,
    grpc_port: int | None,
    token: str | None,
    max_request_mb: float,
    queue_spans: int,
    flush_interval: float,
) -> None:
    """Receive OTLP traces (HTTP, optionally gRPC) from any instrumentation into the store.

    GenAI spans from OpenLLMetry, OpenInference or Logfire land in llm_calls beside ours. Stop it with
    Ctrl-C or SIGTERM: every span already acknowledged is written before it exits.
    """
    try:
        # What decodes the requests loads on first use: import it now, so that a missing extra stops the
        # command here instead of failing every request.
        import google.protobuf  # noqa: F401
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: F401

        from ._receiver import Receiver, start_grpc, start_http
    except ImportError as exc:
        raise UserError(
            f"collect needs the otlp extra: pip install 'auriko-obs[otlp]' ({exc.name} is missing)"
        ) from None

    path = _writable_db_path(db)
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        click.echo(f"warning: listening on {host} without --token: anyone who can reach it can write spans", err=True)
    max_body = int(max_request_mb * 1024 * 1024)
    receiver = Receiver(path, max_queue_spans=queue_spans, flush_interval_s=flush_interval)
    try:
        http = start_http(receiver, host, port, token=token, max_body=max_body)
    except OSError as exc:
        receiver.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    grpc_server = None
    if grpc_port is not None:
        # gRPC's C core logs a failed bind on stderr by itself, before we can report it in one line; its
        # other messages are not for a command's user either. GRPC_VERBOSITY set by the user wins.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        try:
            grpc_server, grpc_port = start_grpc(receiver, host, grpc_port, token=token, max_body=max(max_body, 4 << 20))
        except OSError as exc:
            http.shutdown()
            receiver.close()
            raise UserError(f"cannot listen for gRPC: {exc}") from None

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    bound = http.server_address[1]
    where = f"http://{host}:{bound}/v1/traces" + (f" and grpc {host}:{grpc_port}" if grpc_server else "")
    click.echo(f"auriko-obs collect: receiving OTLP traces on {where} into {path} (pid {os.getpid()})", err=True)
    sys.stderr.flush()
    while not stop.wait(1.0):
        pass
    # Stop taking new requests first, then write everything that was acknowledged.
    http.shutdown()
    http.server_close()
    if grpc_server is not None:
        grpc_server.stop(grace=5).wait()
    receiver.close()
    stats = receiver.stats()
    click.echo("auriko-obs collect: stopped; " + ", ".join(f"{k}={v}" for k, v in stats.items()), err=True)
