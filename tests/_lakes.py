"""Lakes for tests: a store's spans written as date-partitioned Parquet, as the lake writer lays them out,
and the Spark session that reads them (skipped where pyspark or Java is missing, failed in CI)."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

from auriko_obs import fields
from auriko_obs.store._files import connect
from auriko_obs.store._lake import PARTITION_COLUMN, prices_path


def _select_list() -> str:
    # JSON columns are plain text in a lake; the partition column is the UTC date of start_time.
    columns = [f'CAST("{n}" AS VARCHAR) AS "{n}"' if t == "JSON" else f'"{n}"' for n, t in fields.spans_columns()]
    return ", ".join([*columns, f"CAST(start_time AS DATE) AS {PARTITION_COLUMN}"])


def lake_from_store(db_path: str, root: str, *, duplicate_where: str | None = None) -> str:
    """Returns ``root`` after writing the store's spans there, one folder per UTC date, and its price cache.

    ``duplicate_where`` (SQL over ``spans``) picks spans written a second time, into files of their own, as
    an exporter's retry or a second collector would."""
    with connect(db_path, read_only=False, wait_s=10) as con:
        con.execute(
            f"COPY (SELECT {_select_list()} FROM spans) TO '{root}' "
            f"(FORMAT parquet, PARTITION_BY ({PARTITION_COLUMN}), FILENAME_PATTERN 'first-{{i}}', "
            "COMPRESSION zstd, OVERWRITE_OR_IGNORE)"
        )
        if duplicate_where:
            con.execute(
                f"COPY (SELECT {_select_list()} FROM spans WHERE {duplicate_where}) TO '{root}' "
                f"(FORMAT parquet, PARTITION_BY ({PARTITION_COLUMN}), FILENAME_PATTERN 'again-{{uuid}}', "
                "COMPRESSION zstd, APPEND)"
            )
        if con.execute("SELECT count(*) FROM provider_prices").fetchall()[0][0]:
            os.makedirs(os.path.dirname(prices_path(root)), exist_ok=True)
            con.execute(f"COPY provider_prices TO '{prices_path(root)}' (FORMAT parquet)")
    return root


def skip_without_spark() -> None:
    """Skips the test (the module, from a module fixture) when pyspark or Java is missing; with
    AURIKO_OBS_REQUIRE_SPARK=1, as in CI's Spark step, fails instead."""
    required = os.environ.get("AURIKO_OBS_REQUIRE_SPARK") == "1"
    missing = None
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing = "pyspark is not installed (pip install 'auriko-obs[spark]')"
    if missing is None and shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        missing = "no Java runtime (Spark needs Java 17 or 21)"
    if missing:
        if required:
            pytest.fail(f"AURIKO_OBS_REQUIRE_SPARK=1 but {missing}")
        pytest.skip(missing)


def _configured(builder):
    return (
        builder.config("spark.driver.memory", "1g")  # explicit: Spark's own default grows with the machine
        # Test data is small: 200 shuffle tasks, and compiling generated code for every query, cost more than
        # they save (the 4 analyses of benchmarks took 28 s instead of 66 s without code generation here).
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        # Adaptive execution re-plans every query at each shuffle: with 2 shuffle partitions of test data it has
        # nothing to gain, and the extra planning is what these queries spend their time on.
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC")  # one GC thread: 2 cores, shared in CI
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )


def spark_session(app: str):
    """Returns a classic SparkSession on local[2], one per test module (stopped by the module's fixture)."""
    skip_without_spark()
    from pyspark.sql import SparkSession

    return _configured(SparkSession.builder.master("local[2]").appName(app)).getOrCreate()


def spark_connect_session(app: str):
    """Returns (a Spark Connect session, the classic session serving it): a local[2] Spark with the Connect
    plugin listening on 127.0.0.1, on a port the OS picked (pyspark's own remote("local") takes port 15002)."""
    skip_without_spark()
    from pyspark.sql import SparkSession

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = (
        _configured(SparkSession.builder.master("local[2]").appName(app))
        .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
        .config("spark.connect.grpc.binding.address", "127.0.0.1")
        .config("spark.connect.grpc.binding.port", str(port))
        .getOrCreate()
    )
    # The Connect session class itself: pyspark's generic builder refuses a remote session beside a classic one
    # in the same process, which is how a test serves itself (a real client runs elsewhere).
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    return ConnectSession.builder.remote(f"sc://127.0.0.1:{port}").getOrCreate(), server
