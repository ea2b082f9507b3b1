"""A lone audit commit: on the SQLite writer thread vs on the event loop (`alone`).

    .venv/bin/python bench/audit_handoff.py [--synchronous FULL|NORMAL] [-n 800]

Wall time of `SqliteRequestDb.transact` committing one audit row, alternating the two
paths request by request (so that drifts of the machine touch both alike), with 5 ms of
idle between commits as a lone interactive caller has. The thread path pays the hand-off
to the writer thread and the wake-up back on top of the commit itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from audit_insert import _rows

from gateway.audit.rows import insert_rows
from gateway.db.access import make_request_db
from gateway.db.migrate import upgrade


async def measure(synchronous: str, n: int) -> dict[bool, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}"
        upgrade(url)
        db = make_request_db(url, sqlite_synchronous=synchronous)
        seen: dict[bool, list[float]] = {False: [], True: []}
        try:
            for i in range(n):
                alone = bool(i % 2)
                rows = _rows(1)
                t0 = time.perf_counter()
                await db.transact(lambda conn, rows=rows: insert_rows(conn, rows), alone=alone)
                seen[alone].append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.005)
        finally:
            await db.close()
        return seen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    p.add_argument("-n", type=int, default=800)
    a = p.parse_args()
    seen = asyncio.run(measure(a.synchronous, a.n))
    for alone, ms in seen.items():
        ms.sort()
        where = "event loop (alone)" if alone else "writer thread     "
        print(
            f"synchronous={a.synchronous} {where}: p50 {statistics.median(ms):.3f} ms  "
            f"p90 {ms[int(len(ms) * 0.9)]:.3f} ms  load {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
