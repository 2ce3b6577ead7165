"""Issue 11, item 11: a store path that cannot exist must not break the application that instruments itself."""

from __future__ import annotations

import auriko_obs

MESSAGES = [{"role": "user", "content": "hi"}]


def test_a_store_under_a_regular_file_is_warned_about_and_counted_instead_of_raising(
    tmp_path, client, monkeypatch, caplog
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    db_path = blocker / "calls.duckdb"
    monkeypatch.setenv("AURIKO_OBS_DB", str(db_path))
    active = auriko_obs.instrument(service_name="tests")  # raised FileExistsError into the application
    try:
        assert active.db_path == str(db_path)
        reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert reply.choices[0].message.content
        assert auriko_obs.flush() is False  # the call is not in a store
        stats = auriko_obs.stats()
    finally:
        auriko_obs.uninstrument()
    assert stats["internal_errors"]["store.path"] == 1
    assert stats["store"]["held_spans"] == 1 and stats["export_failures"] == {"DuckDBSpanExporter": 1}
    [warning] = [r.getMessage() for r in caplog.records if "cannot be created" in r.getMessage()]
    assert str(db_path) in warning and "File exists" in warning
    assert blocker.read_text() == "not a folder"


def test_a_span_the_store_cannot_take_still_reaches_the_collector_at_flush(
    tmp_path, client, otlp_collector, no_otel_env
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    auriko_obs.instrument(db=str(blocker / "calls.duckdb"), otlp=otlp_collector.endpoint)
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush() is False  # not in the store …
        sent = auriko_obs.stats()["otlp"]["exported_spans"]
    finally:
        auriko_obs.uninstrument()
    assert sent == 1  # … but sent to the collector by that same flush
    assert otlp_collector.flush(20) and len(auriko_obs.Store(otlp_collector.path).calls()) == 1
