"""Random against time-ordered audit ids: what a commit of a batch of audit rows costs.

    .venv/bin/python bench/audit_ids.py [--prefill 200000] [--batch 6] [--batches 1500]

For each id scheme, a migrated SQLite file (WAL, `synchronous=FULL`, as the gateway runs
it) is filled with `--prefill` rows, then `--batches` transactions of `--batch` rows each
are inserted through the gateway's own `insert_rows` and committed. Reports the CPU of
each commit (insert + COMMIT: time.process_time) and the WAL frames (pages) it wrote. The
two schemes alternate over `--rounds`, each round on fresh files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from audit_insert import audit_row  # bench/audit_insert.py: this directory is on sys.path
from sqlalchemy import Engine

from gateway.audit.ids import new_event_id
from gateway.audit.rows import insert_rows
from gateway.db.engine import make_sync_sqlite_engine
from gateway.db.migrate import upgrade

SCHEMES: dict[str, Callable[[], str]] = {
    "random (uuid4)": lambda: uuid.uuid4().hex,
    "time-ordered": new_event_id,
}


def _wal_frames(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()[1])


def _run(
    make_id: Callable[[], str], *, prefill: int, batch: int, batches: int
) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'audit.db'}"
        upgrade(url.replace("sqlite://", "sqlite+aiosqlite://"))
        engine = make_sync_sqlite_engine(url, sqlite_synchronous="FULL")
        with engine.begin() as conn:
            for start in range(0, prefill, 10_000):
                insert_rows(
                    conn, [audit_row(make_id()) for _ in range(min(10_000, prefill - start))]
                )
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")  # count every frame written
        work = [[audit_row(make_id()) for _ in range(batch)] for _ in range(batches)]
        cpu: list[float] = []
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            conn.commit()
            for rows in work:
                t0 = time.process_time()
                with conn.begin():
                    insert_rows(conn, rows)
                cpu.append(time.process_time() - t0)
        frames = _wal_frames(engine)
        engine.dispose()
        return statistics.mean(cpu) * 1e6, frames / batches


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prefill", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=6, help="rows per commit (~6 at c16)")
    p.add_argument("--batches", type=int, default=1500)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    load = os.getloadavg()[0]
    print(f"prefill {a.prefill:,} rows, {a.batches} commits of {a.batch} rows, load {load:.1f}")
    print("| ids | round | CPU µs per commit | WAL pages per commit |")
    print("|---|---:|---:|---:|")
    for rnd in range(a.rounds):
        names = list(SCHEMES) if rnd % 2 == 0 else list(reversed(SCHEMES))
        for name in names:
            cpu, pages = _run(SCHEMES[name], prefill=a.prefill, batch=a.batch, batches=a.batches)
            print(f"| {name} | {rnd + 1} | {cpu:.1f} | {pages:.1f} |", flush=True)


if __name__ == "__main__":
    main()
