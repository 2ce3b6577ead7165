"""Schema of the DuckDB store, and its migrations.

Migrations are small functions registered in order with ``@migration`` and named for what they do
(the approach of simonw/llm). Each runs once per store file and is recorded in ``auriko_obs_migrations``.
After them, ``ensure_schema`` adds any ``spans`` column that ``fields.py`` has gained and rebuilds the
``llm_calls`` view, so adding a field is a one-line change in ``fields.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from .. import fields

Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[Migration] = []
migration = MIGRATIONS.append

# The first `spans` layout, frozen: later changes are new migrations or new fields.py columns.
_M001_COLUMNS = [(c.name, c.sql_type) for c in fields.LLM_CALL_COLUMNS] + list(fields.SPAN_ONLY_COLUMNS)


@migration
def m001_spans(con: duckdb.DuckDBPyConnection) -> None:
    cols = ",\n  ".join(f'"{name}" {sql_type}' for name, sql_type in _M001_COLUMNS)
    con.execute(f"CREATE TABLE IF NOT EXISTS spans (\n  {cols}\n)")


@migration
def m002_meta(con: duckdb.DuckDBPyConnection) -> None:
    # Key/value facts about the store that are not spans: the writer version, price caches later on.
    con.execute("CREATE TABLE IF NOT EXISTS auriko_obs_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")


@migration
def m003_provider_prices(con: duckdb.DuckDBPyConnection) -> None:
    # Per-provider list prices from `GET /v1/models` (USD per 1M tokens), cached by
    # auriko_obs.analysis.refresh_prices for routing_savings and provider_mix. `position` is the order
    # in which /v1/models lists a model's providers; position 0 is the model's default provider.
    con.execute(
        "CREATE TABLE IF NOT EXISTS provider_prices (model VARCHAR NOT NULL, provider VARCHAR NOT NULL, "
        "position INTEGER, input_usd_per_1m DOUBLE, output_usd_per_1m DOUBLE, data_policy VARCHAR, "
        "source VARCHAR, fetched_at TIMESTAMPTZ, PRIMARY KEY (model, provider))"
    )


@migration
def m004_report_deliveries(con: duckdb.DuckDBPyConnection) -> None:
    # One row per report delivery (status sending, then delivered), so that a scheduled report goes out once
    # per period and destination.
    con.execute(
        "CREATE TABLE IF NOT EXISTS auriko_obs_report_deliveries ("
        "report VARCHAR, period_key VARCHAR, destination VARCHAR, delivered_at TIMESTAMPTZ, detail VARCHAR, "
        "status VARCHAR, PRIMARY KEY (report, period_key, destination))"
    )


@migration
def m005_api_column_and_responses_as_chat(con: duckdb.DuckDBPyConnection) -> None:
    # Responses API calls were recorded as operation `responses`; the conventions (and the official OpenAI
    # instrumentation) call them `chat` and tell the API apart by openai.api.type. Existing rows get the
    # new `api` column, and their operation, span name and attributes are rewritten to match new rows.
    # (`service_tier` is new too: older rows never recorded the tier, so it stays NULL for them.)
    # A chat span says which API it called only when it is ours (scope `auriko_obs`: our instrumentation
    # only patches the OpenAI SDK's chat completions under `chat` before this) or says so itself
    # (openai.api.type); other instrumentations' chat spans, received by `collect`, get NULL, as new ones do.
    for name in ("api", "service_tier"):
        con.execute(f'ALTER TABLE spans ADD COLUMN IF NOT EXISTS "{name}" VARCHAR')
    con.execute(
        """
        UPDATE spans SET
          api = CASE
            WHEN operation = 'responses' THEN 'responses'
            WHEN operation = 'embeddings' THEN 'embeddings'
            ELSE coalesce(
              attributes ->> '$."openai.api.type"', CASE WHEN scope_name = 'auriko_obs' THEN 'chat_completions' END
            ) END,
          operation = CASE WHEN operation = 'responses' THEN 'chat' ELSE operation END,
          name = CASE WHEN operation = 'responses' THEN regexp_replace(name, '^responses', 'chat') ELSE name END,
          attributes = CASE WHEN operation = 'responses'
            THEN json_merge_patch(attributes, '{"gen_ai.operation.name": "chat", "openai.api.type": "responses"}')
            ELSE attributes END
        WHERE operation IN ('chat', 'responses', 'embeddings') AND api IS NULL
        """
    )
    con.execute(
        "UPDATE spans SET attributes = json_merge_patch(attributes, json_object('auriko.openai_api', api)) "
        "WHERE api IS NOT NULL AND attributes ->> '$.\"auriko.openai_api\"' IS NULL"
    )


@migration
def m006_no_api_for_foreign_chat_spans(con: duckdb.DuckDBPyConnection) -> None:
    # m005 as first released marked every chat span `chat_completions`, other instrumentations' too. Undo it
    # where only that m005 could have put it: a span not ours (scope) that does not say its API itself
    # (openai.api.type); `collect` gives such a span no API, unless it came with our own auriko.openai_api,
    # which only our instrumentation (scope auriko_obs) writes. A store m005 left right is unchanged.
    con.execute(
        """
        UPDATE spans SET api = NULL, attributes = json_merge_patch(attributes, '{"auriko.openai_api": null}')
        WHERE api = 'chat_completions' AND scope_name IS DISTINCT FROM 'auriko_obs'
          AND attributes ->> '$."openai.api.type"' IS NULL
        """
    )


SCHEMA_VERSION = len(MIGRATIONS)


def applied_version(con: duckdb.DuckDBPyConnection) -> int:
    """Returns how many migrations this store has applied (0 for an empty file)."""
    [(exists,)] = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'auriko_obs_migrations'"
    ).fetchall()
    if not exists:
        return 0
    [(applied,)] = con.execute("SELECT count(*) FROM auriko_obs_migrations").fetchall()
    return int(applied)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> int:
    """Returns the schema version after applying pending migrations and syncing fields.py columns."""
    version = applied_version(con)
    if version == SCHEMA_VERSION and _columns_in_sync(con):
        return version
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"store schema version {version} is newer than this auriko-obs ({SCHEMA_VERSION}); upgrade auriko-obs"
        )
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS auriko_obs_migrations "
            "(version INTEGER, name VARCHAR, applied_at TIMESTAMPTZ DEFAULT now())"
        )
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            step(con)
            con.execute("INSERT INTO auriko_obs_migrations (version, name) VALUES (?, ?)", [number, step.__name__])
        _sync_columns(con)
        con.execute(
            f"CREATE OR REPLACE VIEW llm_calls AS SELECT {fields.llm_calls_select_list()} "
            "FROM spans WHERE operation IS NOT NULL"
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def _existing_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'spans'").fetchall()
    return {r[0] for r in rows}


def _columns_in_sync(con: duckdb.DuckDBPyConnection) -> bool:
    return {name for name, _ in fields.spans_columns()} <= _existing_columns(con)


def _sync_columns(con: duckdb.DuckDBPyConnection) -> None:
    existing = _existing_columns(con)
    for name, sql_type in fields.spans_columns():
        if name not in existing:
            con.execute(f'ALTER TABLE spans ADD COLUMN "{name}" {sql_type}')
