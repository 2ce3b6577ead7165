"""The ``auriko-obs collect`` command: receive OTLP traces into the DuckDB store (added by ``auriko_obs.cli``)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

from .._cli_shared import UserError, db_option, writable_db_path


def _writable_lake(lake: str) -> str:
    """Returns the root of a lake that the collector can write to; anything else is a UserError."""
    from ..store import check_lake_writable

    try:
        return check_lake_writable(lake)
    except ValueError as exc:
        raise UserError(str(exc)) from None


@click.command()
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
    "--max-decoded-mb",
    type=click.FloatRange(0.001, 4096),
    default=64.0,
    show_default=True,
    help="Largest request after gunzip (413 above it).",
)
@click.option(
    "--max-spans-per-request",
    type=click.IntRange(1, 100_000_000),
    default=100_000,
    show_default=True,
    help="Most spans in one request, counted before decoding it (413 above it).",
)
@click.option(
    "--max-parsing",
    type=click.IntRange(1, 1024),
    default=2,
    show_default=True,
    help="Requests decoded at once; more wait up to 1 s, then get 503 + Retry-After.",
)
@click.option(
    "--read-timeout",
    type=click.FloatRange(0.1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds a connection may stay silent, and a request body may take to arrive (408 after it).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 100_000),
    default=256,
    show_default=True,
    help="Open HTTP connections (one thread each); past it a new connection gets 503 + Retry-After.",
)
@click.option(
    "--queue-spans",
    type=click.IntRange(1, 10_000_000),
    default=200_000,
    show_default=True,
    help="Spans accepted but not yet written before the receiver answers 503 + Retry-After.",
)
@click.option(
    "--lake",
    default=None,
    metavar="URI",
    help="Write into a lake instead of a store file: a folder or s3://bucket/prefix that many collectors share "
    "(S3 settings from AWS_* variables, endpoint from AWS_ENDPOINT_URL).",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --lake: the folder on this host's disk for the request log (default ./auriko-obs-collect).",
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
    max_decoded_mb: float,
    max_spans_per_request: int,
    max_parsing: int,
    read_timeout: float,
    max_connections: int,
    queue_spans: int,
    lake: str | None,
    log_dir: Path | None,
    flush_interval: float,
) -> None:
    """Receive OTLP traces (HTTP, optionally gRPC) from any instrumentation into the store.

    GenAI spans from OpenLLMetry, OpenInference or Logfire land in llm_calls beside ours. A request is
    acknowledged once it is fsynced to a log beside the store (STORE.collect-log/); after a crash the next
    collect on the store writes what the log holds. Stop it with Ctrl-C or SIGTERM: every span already
    acknowledged is written before it exits. With --lake, any number of collectors on any number of hosts
    write one lake of Parquet files (their request logs stay on each host's disk, under --log-dir).
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

    if lake is not None:
        if db is not None:
            raise UserError("give --db or --lake, not both")
        path = _writable_lake(lake)
    elif log_dir is not None:
        raise UserError("--log-dir goes with --lake (a store's request log is beside the store)")
    else:
        path = writable_db_path(db)
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        click.echo(f"warning: listening on {host} without --token: anyone who can reach it can write spans", err=True)
    max_body = int(max_request_mb * 1024 * 1024)
    receiver = Receiver(
        None if lake else path,
        lake=lake,
        log_dir=os.fspath(log_dir) if log_dir is not None else None,
        max_queue_spans=queue_spans,
        flush_interval_s=flush_interval,
        max_decoded=int(max_decoded_mb * 1024 * 1024),
        max_spans_per_request=max_spans_per_request,
        max_parsing=max_parsing,
    )
    try:
        http = start_http(
            receiver,
            host,
            port,
            token=token,
            max_body=max_body,
            read_timeout_s=read_timeout,
            max_connections=max_connections,
        )
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
