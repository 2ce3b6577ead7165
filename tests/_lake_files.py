"""Reading what a lake writer wrote, file by file and row by row (duplicates kept), on a folder or on S3, and an
S3-compatible server (moto's) on 127.0.0.1 for the tests that write to ``s3://``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd

from auriko_obs import fields
from auriko_obs.store import RAW_SCHEMA, connect

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask a metadata service for credentials
}


def lake_connection(root: str) -> duckdb.DuckDBPyConnection:
    """Returns an in-memory DuckDB connection that reads the lake's files (S3 through fsspec over pyarrow's client)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if root.startswith("s3://"):
        from auriko_obs.store._lake_location import fsspec_s3_filesystem

        con.register_filesystem(fsspec_s3_filesystem())
    return con


def lake_rows(root: str, columns: str = "*") -> pd.DataFrame:
    """Returns every row of every data file of the lake (a span written twice appears twice), with the
    ``date`` partition and the file each row is in, ordered by start time and span id."""
    con = lake_connection(root)
    try:
        return con.execute(
            f"SELECT {columns if columns == '*' else columns + ', date, file'} "
            f"FROM read_parquet('{root}/date=*/*.parquet', hive_partitioning = true, union_by_name = true, "
            "filename = 'file', hive_types = {'date': DATE}) "
            "ORDER BY start_time, span_id, trace_id"
        ).df()
    except duckdb.IOException as exc:
        if "No files found" in str(exc):
            return pd.DataFrame()
        raise
    finally:
        con.close()


def store_rows(db: str) -> pd.DataFrame:
    """Returns the store's ``spans`` rows in the lake's shape (JSON as text), ordered as ``lake_rows``."""
    names = ", ".join(
        f'CAST("{n}" AS VARCHAR) AS "{n}"' if t == "JSON" else f'"{n}"' for n, t in fields.spans_columns()
    )
    with connect(db, read_only=True, wait_s=10) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(f"SELECT {names} FROM spans ORDER BY start_time, span_id, trace_id").df()


def raw_rows(db: str):
    """Returns the store's spans as the raw Arrow rows an exporter writes (``RAW_SCHEMA``)."""
    names = ", ".join(f'"{name}"' for name in RAW_SCHEMA.names)
    with connect(db, read_only=True, wait_s=10) as con:
        rows = con.sql(f"SELECT {names} FROM span_rows ORDER BY start_time, span_id, trace_id").to_arrow_table()
    return rows.cast(RAW_SCHEMA)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoS3:
    """moto's S3-compatible server in a process of its own on 127.0.0.1 (stoppable and restartable on the same
    port, to play an S3 outage)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> MotoS3:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **S3_ENV},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("moto's S3 server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, **_boto_credentials())

    def bucket(self, name: str) -> str:
        """Returns ``s3://name`` after creating the bucket."""
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def env(self) -> dict[str, str]:
        """Returns the variables that point the AWS SDKs (pyarrow's, boto3's) at this server."""
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint}


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_REGION"],
    }


@contextmanager
def moto_s3() -> Iterator[MotoS3]:
    server = MotoS3().start()
    try:
        yield server
    finally:
        server.stop()
