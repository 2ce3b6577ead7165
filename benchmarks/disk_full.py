"""What becomes of calls made while the store's disk is full (issue 11, item 10). Root only: it mounts a tmpfs.

    sudo python benchmarks/disk_full.py [--calls 3000] [--size 2m] [--max-held-mb 64]

An instrumented client makes ``--calls`` chat calls against the local simulator, storing into a store on a
tmpfs of ``--size``; then it flushes and counts, from the files themselves: rows in the store file, rows in
the spool, and what the writer holds in memory (``stats()["store"]``, where the version has it). The rest
is lost. Then the tmpfs grows to 64 MiB (space returns), and it counts again once the writer has caught up
(at most 60 s). A reader (``Store.calls()``) runs on the full disk too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def _count(db: str) -> dict[str, int]:
    import duckdb
    import pyarrow.parquet as pq

    con = duckdb.connect(db, read_only=True)
    try:
        stored = con.execute("SELECT count(*) FROM spans").fetchall()[0][0]
    finally:
        con.close()
    spool = f"{db}.spool"
    files = [f for f in os.listdir(spool) if f.endswith(".parquet")] if os.path.isdir(spool) else []
    spooled = sum(pq.read_metadata(os.path.join(spool, f)).num_rows for f in files)
    return {"stored": stored, "spooled": spooled}


def _reader(db: str) -> str:
    import auriko_obs

    try:
        return f"ok ({len(auriko_obs.Store(db).calls())} calls)"
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def run(calls: int, size: str) -> dict[str, object]:
    import openai

    import auriko_obs
    from auriko_obs.simulator import Simulator, SimulatorConfig

    folder = tempfile.mkdtemp(prefix="auriko-obs-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder], check=True)
    db = os.path.join(folder, "calls.duckdb")
    result: dict[str, object] = {"calls": calls, "fs": size}
    try:
        with Simulator(SimulatorConfig(seed=1)) as sim:
            auriko_obs.instrument(db=db, service_name="disk-full")
            client = openai.OpenAI(base_url=sim.base_url, api_key="ak_local", max_retries=0)
            started = time.monotonic()
            for i in range(calls):
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"hi {i}"}])
            result["calls_s"] = round(time.monotonic() - started, 1)
            result["flush"] = auriko_obs.flush(30)
            held = auriko_obs.stats().get("store", {}).get("held_spans", 0)
            full = {**_count(db), "held": held}
            full["lost"] = calls - full["stored"] - full["spooled"] - held
            result["disk_full"] = full
            result["reader_on_full_disk"] = _reader(db)
            subprocess.run(["mount", "-o", "remount,size=64m", folder], check=True)  # space returns
            deadline = time.monotonic() + 60
            while not auriko_obs.flush(10) and time.monotonic() < deadline:
                time.sleep(0.5)
            held = auriko_obs.stats().get("store", {}).get("held_spans", 0)
            after = {**_count(db), "held": held}
            after["lost"] = calls - after["stored"] - after["spooled"] - held
            result["after_space_returns"] = after
            result["stats"] = auriko_obs.stats()
            auriko_obs.uninstrument()
    finally:
        subprocess.run(["umount", "-l", folder], check=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--size", default="2m", help="tmpfs size (mount's size=)")
    parser.add_argument("--max-held-mb", type=float, default=None, help="sets $AURIKO_OBS_MAX_HELD_MB")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("disk_full.py mounts a tmpfs: run it as root")
    if args.max_held_mb is not None:
        os.environ["AURIKO_OBS_MAX_HELD_MB"] = str(args.max_held_mb)
    print(json.dumps(run(args.calls, args.size), indent=1, default=str))


if __name__ == "__main__":
    main()
