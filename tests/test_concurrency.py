"""Nothing lost: threads, asyncio tasks and several processes writing to one store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

import auriko_obs

from .conftest import API_KEY, calls

MESSAGES = [{"role": "user", "content": "Count to three."}]


def _ledger_totals(sim):
    ok = [e for e in sim.ledger() if e["http_status"] == 200]
    return (
        len(ok),
        sum(e["cost_usd"] for e in ok),
        sum(e["input_tokens"] for e in ok),
        sum(e["output_tokens"] for e in ok),
    )


def test_1000_threaded_and_200_async_calls_match_the_ledger_exactly(instrumented, sim):
    models = ["gpt-4o", "gpt-4o-mini", "llama-3.3-70b", "deepseek-v3"]
    with openai.OpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0) as client:

        def one(i):
            kwargs = dict(model=models[i % 4], messages=[{"role": "user", "content": f"Question {i}"}])
            if i % 5 == 0:
                return list(client.chat.completions.create(stream=True, **kwargs))
            return client.chat.completions.create(**kwargs)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, range(1000)))

    async def many():
        client = openai.AsyncOpenAI(base_url=sim.base_url, api_key=API_KEY, max_retries=0)

        async def one(i):
            kwargs = dict(model=models[i % 4], messages=[{"role": "user", "content": f"Async {i}"}])
            if i % 4 == 0:
                stream = await client.chat.completions.create(stream=True, **kwargs)
                return [c async for c in stream]
            return await client.chat.completions.create(**kwargs)

        await asyncio.gather(*(one(i) for i in range(200)))
        await client.close()

    asyncio.run(many())
    frame = calls(instrumented)
    count, cost, input_tokens, output_tokens = _ledger_totals(sim)
    assert count == 1200
    assert len(frame) == 1200
    assert frame["span_id"].nunique() == 1200
    assert frame["cost_usd"].sum() == pytest.approx(cost, rel=1e-9)
    assert int(frame["input_tokens"].sum()) == input_tokens
    assert int(frame["output_tokens"].sum()) == output_tokens
    assert set(frame["request_id"]) == {e["request_id"] for e in sim.ledger()}
    assert auriko_obs.stats()["dropped_spans"] == 0


WRITER = textwrap.dedent("""
    import sys, json, openai, auriko_obs
    db, base_url, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    auriko_obs.instrument(db=db, service_name=tag)
    client = openai.OpenAI(base_url=base_url, api_key="ak_proc_writer", max_retries=0)
    for i in range(n):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"{tag} {i}"}])
        if i % 25 == 0:
            auriko_obs.flush()   # many small batches: many chances to collide on the file lock
    assert auriko_obs.flush()
    print(json.dumps(auriko_obs.stats()))
""")


def test_two_processes_writing_one_store_lose_nothing_while_a_reader_reads(db_path, sim):
    n = 300
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db_path, sim.base_url, str(n), f"proc{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    reads = []
    reader = auriko_obs.Store(db_path)
    while any(p.poll() is None for p in procs):
        if os.path.exists(db_path):
            reads.append(len(reader.calls()))  # must work while the writers write
        time.sleep(0.05)
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats["exported_spans"] == n and stats["dropped_spans"] == 0, stats
        assert not stats["internal_errors"] and not stats["export_failures"], stats
    frame = reader.calls()
    spans = reader.sql("SELECT count(*) AS n FROM spans").iloc[0]["n"]
    assert len(frame) == 2 * n, (spans, [o[0] for o in outputs])
    assert frame.groupby("service_name").size().to_dict() == {"proc0": n, "proc1": n}
    assert frame["cost_usd"].sum() == pytest.approx(_ledger_totals(sim)[1], rel=1e-9)
    assert reads == sorted(reads), "a reader saw rows disappear"
    assert len(reads) > 3


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


def test_batches_spool_while_another_process_holds_the_file_and_arrive_later(db_path, client, sim):
    from auriko_obs.store import DuckDBSpanExporter, spool_dir

    auriko_obs.instrument(db=db_path)
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush()  # creates the file
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, db_path, "4"], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        exporter = auriko_obs.instrumentation.active().pipeline.exporters[0]
        assert isinstance(exporter, DuckDBSpanExporter)
        exporter.lock_wait_s = 0.2
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush()
        assert auriko_obs.stats()["spooled_spans"] == 3
        assert list(spool_dir(db_path).glob("*.parquet"))
        holder.wait(timeout=30)
        frame = auriko_obs.Store(db_path).calls()  # a reader sees the spooled rows, reading read-only
        assert list(spool_dir(db_path).glob("*.parquet"))
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert auriko_obs.flush()  # the next writer folds the spool into the file
        stored = auriko_obs.Store(db_path).calls()
    finally:
        auriko_obs.uninstrument()
    assert len(frame) == 4 and len(stored) == 5
    assert not list(spool_dir(db_path).glob("*.parquet"))
