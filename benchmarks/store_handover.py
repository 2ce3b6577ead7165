"""Do batches survive when processes hand one DuckDB file to each other? (run by hand; not a timed test)

Two writer processes each append ``--rows`` rows in batches of ``--batch``, opening the file, inserting
in a transaction, committing and closing every time, while a reader opens it read-only in a loop: the
access pattern of several instrumented processes sharing one store. Each round counts the rows at the
end; fewer than written is a loss.

Modes:
- ``duckdb``: writers and reader use DuckDB's own file lock only (retrying on conflicts).
- ``auriko-obs``: they go through ``auriko_obs.store.connect``, which brackets each open with a
  lock of ours on ``<store>.lock``.

On a 2-core machine at load average 12–28, DuckDB 2.0.1 in ``duckdb`` mode lost a committed batch in
about half the rounds; see docs/benchmarks.md for the figures of the last run. Losses only show
under load, so run it while the machine is busy (for example next to ``pytest``), e.g.:

    python benchmarks/store_handover.py --mode duckdb --rounds 10
    python benchmarks/store_handover.py --mode auriko-obs --rounds 10
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

WRITER = textwrap.dedent("""
    import os, random, sys, time
    import duckdb
    path, tag, rows, batch, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

    def plain_connect():
        while True:
            try:
                return duckdb.connect(path)
            except duckdb.Error as exc:
                if "lock" not in str(exc).lower():
                    raise
                time.sleep(random.random() * 0.01)

    done = 0
    while done < rows:
        if mode == "duckdb":
            con = plain_connect()
            con.execute("CREATE TABLE IF NOT EXISTS t (tag VARCHAR, i INTEGER, pad VARCHAR)")
            con.execute("BEGIN TRANSACTION")
            con.execute("INSERT INTO t SELECT ?, range, repeat('x', 1400) FROM range(?, ?)", [tag, done, done + batch])
            con.execute("COMMIT")
            con.close()
        else:
            from auriko_obs.store import connect
            with connect(path, read_only=False, wait_s=120) as con:
                con.execute("CREATE TABLE IF NOT EXISTS t (tag VARCHAR, i INTEGER, pad VARCHAR)")
                con.execute("BEGIN TRANSACTION")
                con.execute(
                    "INSERT INTO t SELECT ?, range, repeat('x', 1400) FROM range(?, ?)", [tag, done, done + batch]
                )
                con.execute("COMMIT")
        done += batch
        time.sleep(random.random() * 0.02)
""")


def _count(path: str, mode: str) -> int | None:
    import duckdb

    try:
        if mode == "duckdb":
            con = duckdb.connect(path, read_only=True)
            try:
                return con.execute("SELECT count(*) FROM t").fetchone()[0]
            finally:
                con.close()
        from auriko_obs.store import connect

        with connect(path, read_only=True, wait_s=120) as con:
            return con.execute("SELECT count(*) FROM t").fetchone()[0]
    except Exception:
        return None


def run_round(mode: str, rows: int, batch: int) -> tuple[int, int]:
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "handover.duckdb")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH", "")]
        ),
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, path, f"w{i}", str(rows), str(batch), mode], env=env)
        for i in range(2)
    ]
    while any(w.poll() is None for w in writers):
        if os.path.exists(path):
            _count(path, mode)
        time.sleep(0.02)
    if any(w.returncode for w in writers):
        raise SystemExit("a writer failed")
    return 2 * rows, _count(path, mode) or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["duckdb", "auriko-obs"], default="duckdb")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=300, help="rows per writer")
    parser.add_argument("--batch", type=int, default=3)
    args = parser.parse_args()
    import duckdb

    print(
        f"duckdb {duckdb.__version__}, mode {args.mode}, {args.rounds} rounds × 2 writers × {args.rows} rows "
        f"in batches of {args.batch}, load average {os.getloadavg()[0]:.1f}"
    )
    lost_rounds = 0
    for n in range(args.rounds):
        written, stored = run_round(args.mode, args.rows, args.batch)
        lost_rounds += stored != written
        outcome = f"LOST {written - stored}" if stored != written else "ok"
        print(f"round {n + 1}: {stored} of {written} rows {outcome}", flush=True)
    print(f"rounds with a loss: {lost_rounds} of {args.rounds} (load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
