"""The DuckDB store: schema, migrations, the llm_calls contract, and the Store reader."""

from __future__ import annotations

import json
import os
import re

import duckdb
import pytest

import auriko_obs
from auriko_obs import analysis, fields
from auriko_obs.store import SCHEMA_VERSION, ensure_schema, parse_time

DESIGN_COLUMNS = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "start_time",
    "end_time",
    "duration_ms",
    "service_name",
    "operation",
    "api",
    "streaming",
    "request_model",
    "response_model",
    "model_canonical",
    "provider",
    "provider_model_id",
    "routing_strategy",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "service_tier",
    "cost_usd",
    "cost_source",
    "cache_savings_usd",
    "cache_savings_percent",
    "hosted_tool_usd",
    "ttft_ms",
    "provider_ttft_ms",
    "throughput_tps",
    "finish_reason",
    "status",
    "http_status",
    "error_type",
    "error_code",
    "retry_after_s",
    "budget_exceeded_scope",
    "budget_exceeded_period",
    "http_attempts",
    "request_id",
    "ratelimit_remaining_requests",
    "credits_balance_usd",
    "warnings",
    "tags",
    "user_id",
    "notebook_cell",
    "attributes",
]


def test_llm_calls_has_exactly_the_design_columns_and_types(instrumented, client):
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert auriko_obs.flush()
    described = auriko_obs.Store(instrumented).sql("DESCRIBE llm_calls")
    assert list(described["column_name"]) == DESIGN_COLUMNS
    types = dict(zip(described["column_name"], described["column_type"], strict=True))
    assert types["start_time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["warnings"] == "VARCHAR[]" and types["attributes"] == "JSON"
    assert types["input_tokens"] == "BIGINT" and types["http_status"] == "INTEGER"


def test_schema_is_versioned_and_migrations_are_recorded(tmp_path):
    path = str(tmp_path / "s.duckdb")
    con = duckdb.connect(path)
    assert ensure_schema(con) == SCHEMA_VERSION
    assert ensure_schema(con) == SCHEMA_VERSION  # idempotent
    rows = con.execute("SELECT version, name FROM auriko_obs_migrations ORDER BY version").fetchall()
    con.close()
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert rows[0][1] == "m001_spans"
    assert auriko_obs.Store(path).schema_version == SCHEMA_VERSION


def test_a_column_added_to_fields_is_added_to_existing_stores(tmp_path, monkeypatch):
    path = str(tmp_path / "s.duckdb")
    con = duckdb.connect(path)
    ensure_schema(con)
    extra = fields.Column("tier", "VARCHAR", "auriko.routing.tier", "routing_metadata.tier")
    monkeypatch.setattr(fields, "LLM_CALL_COLUMNS", (*fields.LLM_CALL_COLUMNS, extra))
    ensure_schema(con)
    columns = [r[0] for r in con.execute("DESCRIBE llm_calls").fetchall()]
    con.close()
    assert columns[-1] == "tier"


def test_store_refuses_a_newer_schema(tmp_path):
    path = str(tmp_path / "s.duckdb")
    con = duckdb.connect(path)
    ensure_schema(con)
    con.execute("INSERT INTO auriko_obs_migrations (version, name) VALUES (999, 'm999_future')")
    with pytest.raises(RuntimeError, match="newer"):
        ensure_schema(con)
    con.close()


def test_calls_filters_by_time_and_sql_runs_any_query(instrumented, client):
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert auriko_obs.flush()
    store = auriko_obs.Store(instrumented)
    frame = store.calls()
    assert len(frame) == 3 and frame["start_time"].is_monotonic_increasing
    middle = frame.iloc[1]["start_time"]
    assert len(store.calls(since=middle)) == 2
    assert len(store.calls(until=middle)) == 1
    assert len(store.calls(since="1h")) == 3
    assert len(store.calls(since="2000-01-01", until="2001-01-01")) == 0
    assert store.sql("SELECT count(*) AS n FROM spans").iloc[0]["n"] == 3


def test_reading_a_missing_store_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no auriko-obs store"):
        auriko_obs.Store(str(tmp_path / "missing.duckdb")).calls()


def test_parse_time_rejects_garbage_with_a_clear_message():
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday-ish")
    assert parse_time("2026-11-25T10:00Z").isoformat() == "2026-11-25T10:00:00+00:00"


def test_schema_markdown_documents_every_column():
    text = fields.schema_markdown()
    for name in DESIGN_COLUMNS:
        assert f"| {name} |" in text


def test_writers_check_the_schema_again_only_when_someone_else_changed_the_file(tmp_path, monkeypatch):
    from auriko_obs.store import _files

    path = str(tmp_path / "s.duckdb")
    checks = []
    real = _files.ensure_schema
    monkeypatch.setattr(_files, "ensure_schema", lambda con: checks.append(1) or real(con))
    for _ in range(3):  # this process alone writes: one check
        with _files.connect(path, read_only=False, wait_s=5) as con:
            con.execute("INSERT INTO auriko_obs_meta VALUES (?, 'x')", [f"k{len(checks)}-{_}"])
    assert len(checks) == 1
    other = duckdb.connect(path)  # someone else writes the file: checked again
    other.execute("INSERT INTO auriko_obs_meta VALUES ('other', 'y')")
    other.close()
    with _files.connect(path, read_only=False, wait_s=5):
        pass
    assert len(checks) == 2
    os.remove(path)  # replaced by a file without our schema: checked again, the tables come back
    other = duckdb.connect(path)
    other.execute("CREATE TABLE unrelated (x INTEGER)")
    other.close()
    with _files.connect(path, read_only=False, wait_s=5) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert len(checks) == 3 and {"spans", "llm_calls", "unrelated"} <= tables


def test_a_file_that_is_not_a_store_is_warned_about_once_and_counted_truthfully(tmp_path, client, monkeypatch, caplog):
    from collections import Counter

    from auriko_obs._internal_errors import INTERNAL_ERRORS
    from auriko_obs.store import spool_dir

    monkeypatch.setattr(INTERNAL_ERRORS, "counts", Counter())
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a DuckDB file\n")
    auriko_obs.instrument(db=str(path), service_name="tests")
    try:
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            # three batches, three failed writes: the spans wait in the spool, not in the store, so flush says so
            assert auriko_obs.flush() is False
        stats = auriko_obs.stats()
    finally:
        auriko_obs.uninstrument()
    assert stats["exported_spans"] == 0 and stats["export_failures"] == {"DuckDBSpanExporter": 3}
    assert stats["internal_errors"] == {"store.write": 3}
    assert stats["spooled_spans"] == 3 and len(list(spool_dir(path).glob("*.parquet"))) == 3  # kept, not lost
    logged = [r for r in caplog.records if r.name.startswith("auriko_obs")]
    assert len(logged) == 1 and logged[0].exc_info is None
    assert str(path) in logged[0].getMessage() and "not a valid DuckDB database file" in logged[0].getMessage()
    assert path.read_text().startswith("these are my notes")


def test_check_writable_says_why_a_path_cannot_be_a_store(tmp_path):
    from auriko_obs.store import check_writable

    store = tmp_path / "new.duckdb"
    assert check_writable(store) == str(store) and auriko_obs.Store(store).schema_version == SCHEMA_VERSION
    not_duckdb = tmp_path / "notes.txt"
    not_duckdb.write_text("notes")
    expected = rf"cannot use {re.escape(str(not_duckdb))} as an auriko-obs store: .*not a valid DuckDB"
    with pytest.raises(ValueError, match=expected):
        check_writable(not_duckdb)
    with pytest.raises(ValueError, match=r"cannot use .* as an auriko-obs store"):
        check_writable(tmp_path)  # a folder


def _stored_raw_rows(path: str):
    """Returns the store's spans as the raw Arrow rows an exporter inserts (``RAW_SCHEMA``)."""
    from auriko_obs.store import RAW_SCHEMA, connect

    names = ", ".join(f'"{name}"' for name in RAW_SCHEMA.names)
    with connect(path, read_only=True, wait_s=5) as con:
        return con.sql(f"SELECT {names} FROM span_rows ORDER BY start_time").to_arrow_table().cast(RAW_SCHEMA)


def _span_counts(path: str) -> tuple[int, int, int]:
    frame = auriko_obs.Store(path).sql(
        "SELECT count(*) AS n, count(DISTINCT (trace_id, span_id)) AS spans, "
        "(SELECT count(*) FROM llm_calls) AS calls FROM spans"
    )
    row = frame.iloc[0]
    return int(row["n"]), int(row["spans"]), int(row["calls"])


def test_a_span_delivered_twice_is_stored_once(instrumented, client, tmp_path):
    import pyarrow as pa

    from auriko_obs.store import DuckDBSpanExporter

    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert auriko_obs.flush()
    table = _stored_raw_rows(instrumented)
    assert _span_counts(instrumented) == (3, 3, 3)
    DuckDBSpanExporter(instrumented).export_table(table)  # every span again, as a retrying exporter sends it
    assert _span_counts(instrumented) == (3, 3, 3)
    other = str(tmp_path / "other.duckdb")  # repeats within one batch
    DuckDBSpanExporter(other).export_table(pa.concat_tables([table, table.slice(1, 1), table]))
    assert _span_counts(other) == (3, 3, 3)
    assert _stored_raw_rows(other).equals(table)
    a, b, c = (table.slice(i, 1) for i in range(3))
    mixed = str(tmp_path / "mixed.duckdb")  # a repeat before a new span: A, B, B, A, C
    DuckDBSpanExporter(mixed).export_table(pa.concat_tables([a, b, b, a, c]))
    assert _span_counts(mixed) == (3, 3, 3)
    assert _stored_raw_rows(mixed).equals(table)


def test_fresh_rows_are_inserted_without_a_lookup_and_rows_written_again_are_looked_for(instrumented, client, tmp_path):
    """The pipeline's rows (spans made just now) skip the join with the stored rows; a batch held or spooled
    after a failed write, or delivered by anyone else, is still looked for, so it adds no duplicate."""
    import pyarrow.parquet as pq

    from auriko_obs.store import StoreWriter, spool_dir

    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert auriko_obs.flush()
    table = _stored_raw_rows(instrumented)
    path = str(tmp_path / "fresh.duckdb")
    writer = StoreWriter(path)
    try:
        assert writer.write(table, fresh=True).stored == 3
        assert _span_counts(path) == (3, 3, 3)
        writer.write(table)  # written again (a retry): looked for, none added
        assert _span_counts(path) == (3, 3, 3)
        spool_dir(path).mkdir()  # a batch spooled after a write that stored it and then failed
        pq.write_table(table, spool_dir(path) / "00000000000000000001-1-000001.parquet")
        writer.write(table, fresh=False)
        assert _span_counts(path) == (3, 3, 3)
        assert not list(spool_dir(path).glob("*.parquet"))
        writer.write(table, fresh=True)  # what `fresh` promises is the caller's: the rows go in as they are
        assert _span_counts(path) == (6, 3, 6)
    finally:
        writer.close()


def test_a_writer_appends_on_one_duckdb_thread_and_readers_keep_every_core(instrumented, client, tmp_path):
    """DuckDB's threads split an append of a few thousand rows and wait for each other: one thread costs less
    CPU for the same batch (docs/benchmarks.md). Readers, whose queries scan whole stores, keep the default."""
    from auriko_obs.store import StoreWriter

    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert auriko_obs.flush()
    table = _stored_raw_rows(instrumented)
    writer = StoreWriter(str(tmp_path / "threads.duckdb"))
    try:
        assert writer.write(table, fresh=True).stored == 1
        with writer.connection.use(5.0) as con:
            assert con.execute("SELECT current_setting('threads')").fetchone() == (1,)
    finally:
        writer.close()
    default = duckdb.connect(":memory:").execute("SELECT current_setting('threads')").fetchone()
    read = auriko_obs.Store(str(tmp_path / "threads.duckdb")).sql("SELECT current_setting('threads') AS n")
    assert (int(read["n"][0]),) == default


def test_a_writer_hands_the_file_to_another_process_and_takes_it_back_without_building_duckdb_again(
    instrumented, client, tmp_path
):
    """A writer attaches the file to one DuckDB instance kept for its life (building an instance costs about
    20 ms of CPU, paid on every batch when the file is let go between batches); letting go closes the file
    for anyone else, as closing a connection did, and taking it back attaches it again."""
    import subprocess
    import sys

    from auriko_obs.store import StoreWriter

    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert auriko_obs.flush()
    table = _stored_raw_rows(instrumented)
    path = str(tmp_path / "handover.duckdb")
    writer = StoreWriter(path)
    try:
        assert writer.write(table, fresh=True).stored == 1
        instance = writer.connection._instance._memory
        writer.release()
        other = (
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
            "print(con.execute('SELECT count(*) FROM spans').fetchone()[0])"
        )
        seen = subprocess.run([sys.executable, "-c", other, path], capture_output=True, text=True, check=True)
        assert seen.stdout.strip() == "1"  # opened for writing by another process: the file was let go
        assert writer.write(table, fresh=True).stored == 1
        assert writer.connection._instance._memory is instance
        assert writer.stats()["connections_opened"] == 2
    finally:
        writer.close()
    assert _span_counts(path) == (2, 1, 2)


def test_a_spool_file_ingested_twice_adds_no_duplicates(instrumented, client):
    """A writer that dies between committing a spool file's rows and deleting the file leaves it to be
    ingested again."""
    import pyarrow.parquet as pq

    from auriko_obs.store import connect, ingest_spool, spool_dir

    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert auriko_obs.flush()
    table = _stored_raw_rows(instrumented)
    spool_dir(instrumented).mkdir()
    for _ in range(2):
        pq.write_table(table, spool_dir(instrumented) / "00000000000000000001-1-000001.parquet")
        with connect(instrumented, read_only=False, wait_s=5) as con:
            assert ingest_spool(con, instrumented) == 2
        assert _span_counts(instrumented) == (2, 2, 2)


def test_readers_show_spooled_rows_even_when_the_store_file_is_gone(instrumented, client):
    from auriko_obs.store import Spool, spool_dir

    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert auriko_obs.flush()
    table = _stored_raw_rows(instrumented)
    Spool(spool_dir(instrumented)).publish(table)  # as a writer locked out of the file leaves them
    os.remove(instrumented)
    assert _span_counts(instrumented) == (2, 2, 2)
    assert list(spool_dir(instrumented).glob("*.parquet"))  # a reader moves nothing


def test_spooled_rows_are_read_with_the_stored_columns_and_types(instrumented, client):
    import pyarrow as pa

    from auriko_obs.store import Spool, spool_dir

    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert auriko_obs.flush()
    store = auriko_obs.Store(instrumented)
    described = {table: store.sql(f"DESCRIBE {table}") for table in ("spans", "llm_calls")}
    table = _stored_raw_rows(instrumented)
    new_ids = pa.array([f"{i:016x}" for i in range(1, 3)])
    Spool(spool_dir(instrumented)).publish(table.set_column(1, "span_id", new_ids))  # two more spans
    for name, before in described.items():
        assert store.sql(f"DESCRIBE {name}")[["column_name", "column_type"]].equals(
            before[["column_name", "column_type"]]
        ), name
    assert _span_counts(instrumented) == (4, 4, 4)


def _store_from_before_the_api_column(path: str) -> None:
    """Writes a store as schema 4 left it: Responses calls stored as operation `responses`, no `api` column."""
    from auriko_obs.store._migrations import MIGRATIONS

    con = duckdb.connect(path)
    con.execute("CREATE TABLE auriko_obs_migrations (version INTEGER, name VARCHAR, applied_at TIMESTAMPTZ)")
    for number, step in enumerate(MIGRATIONS[:4], start=1):
        step(con)
        con.execute("INSERT INTO auriko_obs_migrations VALUES (?, ?, now())", [number, step.__name__])
    con.execute("ALTER TABLE spans DROP COLUMN api")
    con.execute("ALTER TABLE spans DROP COLUMN service_tier")
    for n, (operation, name, extra, scope) in enumerate(
        [
            ("responses", "responses gpt-4o-mini", {}, "auriko_obs"),
            ("chat", "chat gpt-4o", {}, "auriko_obs"),
            ("embeddings", "embeddings text-embedding-3-small", {}, "auriko_obs"),
            ("chat", "chat gpt-4o", {"openai.api.type": "responses"}, "opentelemetry.instrumentation.openai_v2"),
            (None, "GET /health", {}, "opentelemetry.instrumentation.flask"),  # not a model call
            ("chat", "openai.chat", {}, "opentelemetry.instrumentation.openai.v1"),  # OpenLLMetry, via collect
            ("chat", "anthropic.chat", {}, "opentelemetry.instrumentation.anthropic"),
        ]
    ):
        attributes = {"gen_ai.operation.name": operation, **extra} if operation else {"http.route": "/health"}
        con.execute(
            "INSERT INTO spans (trace_id, span_id, start_time, end_time, operation, name, status, attributes, "
            "scope_name) VALUES (?, ?, now(), now(), ?, ?, 'ok', ?, ?)",
            [f"{n:032x}", f"{n:016x}", operation, name, json.dumps(attributes), scope],
        )
    con.close()


def test_migration_gives_existing_rows_the_api_and_records_responses_calls_as_chat(tmp_path):
    path = str(tmp_path / "old.duckdb")
    _store_from_before_the_api_column(path)
    con = duckdb.connect(path)
    assert ensure_schema(con) == SCHEMA_VERSION
    rows = con.execute(
        "SELECT operation, api, name, attributes ->> '$.\"gen_ai.operation.name\"', "
        "attributes ->> '$.\"auriko.openai_api\"', service_tier FROM spans ORDER BY span_id"
    ).fetchall()
    in_view = con.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
    con.close()
    assert rows == [
        ("chat", "responses", "chat gpt-4o-mini", "chat", "responses", None),
        ("chat", "chat_completions", "chat gpt-4o", "chat", "chat_completions", None),
        ("embeddings", "embeddings", "embeddings text-embedding-3-small", "embeddings", "embeddings", None),
        ("chat", "responses", "chat gpt-4o", "chat", "responses", None),
        (None, None, "GET /health", None, None, None),
        # other instrumentations' chat spans do not say which API they called: NULL, as collect gives new ones
        ("chat", None, "openai.chat", "chat", None, None),
        ("chat", None, "anthropic.chat", "chat", None, None),
    ]
    assert in_view == 6


def test_a_store_whose_migration_marked_foreign_chat_spans_chat_completions_is_put_right(tmp_path):
    path = str(tmp_path / "migrated.duckdb")
    con = duckdb.connect(path)
    _migrated_up_to(con, 5)  # then written by the first release of m005
    rows = [  # (scope, attributes as the first release of m005 left them)
        ("auriko_obs", {"gen_ai.operation.name": "chat", "auriko.openai_api": "chat_completions"}),
        (
            "opentelemetry.instrumentation.openai_v2",  # says its API itself: kept
            {
                "gen_ai.operation.name": "chat",
                "openai.api.type": "chat_completions",
                "auriko.openai_api": "chat_completions",
            },
        ),
        (
            "opentelemetry.instrumentation.openai.v1",
            {"gen_ai.operation.name": "chat", "auriko.openai_api": "chat_completions"},
        ),
    ]
    for n, (scope, attributes) in enumerate(rows):
        con.execute(
            "INSERT INTO spans (trace_id, span_id, start_time, end_time, operation, api, name, status, attributes, "
            "scope_name) VALUES (?, ?, now(), now(), 'chat', 'chat_completions', 'chat', 'ok', ?, ?)",
            [f"{n:032x}", f"{n:016x}", json.dumps(attributes), scope],
        )
    assert ensure_schema(con) == SCHEMA_VERSION
    fixed = con.execute("SELECT api, attributes ->> '$.\"auriko.openai_api\"' FROM spans ORDER BY span_id").fetchall()
    con.close()
    assert fixed == [("chat_completions", "chat_completions"), ("chat_completions", "chat_completions"), (None, None)]


def _migrated_up_to(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Applies the first ``version`` migrations, as an auriko-obs of that schema version did."""
    from auriko_obs.store._migrations import MIGRATIONS

    con.execute("CREATE TABLE auriko_obs_migrations (version INTEGER, name VARCHAR, applied_at TIMESTAMPTZ)")
    for number, step in enumerate(MIGRATIONS[:version], start=1):
        step(con)
        con.execute("INSERT INTO auriko_obs_migrations VALUES (?, ?, now())", [number, step.__name__])


def _store_as_schema_6_left_it(path: str, rows) -> None:
    """Writes a store as schema 6 left it (before span_rows): one `spans` table with the typed columns and
    every attribute in `attributes`, and an `llm_calls` view of it; ``rows``: Arrow rows of `spans`."""

    con = duckdb.connect(path)
    _migrated_up_to(con, 6)
    existing = {r[0] for r in con.execute("DESCRIBE spans").fetchall()}
    for name, sql_type in fields.spans_columns():  # the columns fields.py had gained by then
        if name not in existing:
            con.execute(f'ALTER TABLE spans ADD COLUMN "{name}" {sql_type}')
    con.execute(
        f"CREATE VIEW llm_calls AS SELECT {fields.llm_calls_select_list()} FROM spans WHERE operation IS NOT NULL"
    )
    con.register("old_rows", rows)
    con.execute("INSERT INTO spans BY NAME SELECT * FROM old_rows")
    con.close()


def _spans_as_read(path: str, table: str) -> list[dict]:
    from auriko_obs.store import connect

    with connect(path, read_only=True, wait_s=5) as con:
        # spans: its columns in every layout (extra_attributes differs by layout, and is new in m007)
        columns = ", ".join(f'"{n}"' for n, _ in fields.spans_columns()) if table == "spans" else "*"
        rows = con.sql(f"SELECT {columns} FROM {table} ORDER BY span_id").to_arrow_table()
    return [{**row, "attributes": json.loads(row["attributes"])} for row in rows.to_pylist()]


def test_a_store_from_before_span_rows_migrates_reads_the_same_and_takes_new_spans(instrumented, client, sim, tmp_path):
    """m007: the `spans` table of a schema-6 store becomes `span_rows` behind the `spans` view, its
    `attributes` becoming `extra_attributes` without a row rewritten."""
    import openai
    import pyarrow as pa

    from auriko_obs.store import DuckDBSpanExporter, connect

    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    for _ in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True):
        pass
    sim.inject("rate_limit_exceeded")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert auriko_obs.flush()
    spans, calls = _spans_as_read(instrumented, "spans"), _spans_as_read(instrumented, "llm_calls")
    assert len(spans) == 3 and all(len(s["attributes"]) > 10 for s in spans)
    old = str(tmp_path / "schema6.duckdb")
    with connect(instrumented, read_only=True, wait_s=5) as con:
        as_stored_then = con.sql("SELECT * EXCLUDE (extra_attributes) FROM spans").to_arrow_table()
    _store_as_schema_6_left_it(old, as_stored_then)

    # A reader never migrates: it reads the file as it is, and the analyses too.
    assert auriko_obs.Store(old).schema_version == 6
    assert _spans_as_read(old, "spans") == spans and _spans_as_read(old, "llm_calls") == calls
    analysed = {"cost": analysis.cost_by("model", instrumented), "errors": analysis.errors(instrumented)}
    assert analysed["errors"]["calls"].sum() >= 1  # the 429's error.type is an attribute without a column
    assert analysis.cost_by("model", old).equals(analysed["cost"])
    assert analysis.errors(old).equals(analysed["errors"])
    table = _stored_raw_rows(instrumented)
    new_ids = pa.array([f"{i:016x}" for i in range(1, 4)])
    DuckDBSpanExporter(old).export_table(table.set_column(1, "span_id", new_ids))  # a writer migrates
    assert auriko_obs.Store(old).schema_version == SCHEMA_VERSION
    assert analysis.errors(old)["calls"].sum() == 2 * analysed["errors"]["calls"].sum()
    assert _span_counts(old) == (6, 6, 6)
    assert [s for s in _spans_as_read(old, "spans") if s["span_id"] not in new_ids.to_pylist()] == spans
    with connect(old, read_only=True, wait_s=5) as con:  # migrated rows keep every attribute where they were
        [(kept,)] = con.execute(
            "SELECT count(*) FROM spans WHERE len(json_keys(extra_attributes)) = len(json_keys(attributes)) "
            "AND span_id NOT IN (SELECT unnest(?))",
            [new_ids.to_pylist()],
        ).fetchall()
    assert kept == 3
    written_after = {s["span_id"]: s for s in _spans_as_read(old, "spans") if s["span_id"] in new_ids.to_pylist()}
    assert [written_after[f"{i:016x}"] for i in range(1, 4)] == [
        {**s, "span_id": f"{i:016x}"} for i, s in enumerate(_spans_as_read_in_order(instrumented), start=1)
    ]


def _spans_as_read_in_order(path: str) -> list[dict]:
    """The spans of ``path`` in the order of ``_stored_raw_rows`` (start time)."""
    ids = _stored_raw_rows(path).column("span_id").to_pylist()
    by_id = {s["span_id"]: s for s in _spans_as_read(path, "spans")}
    return [by_id[i] for i in ids]
