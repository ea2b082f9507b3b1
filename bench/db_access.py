"""CPU per trust read: SQLAlchemy Core vs the driver-level read, on SQLite (and PostgreSQL).

Each round reads the standing `--n` times per way, the ways alternating (the order
rotates each round); the figure is the CPU time of this process (`time.process_time`)
per read, the standing built from the rows included (what the trust stage pays):

- `core`: `RequestDb.read(STANDING_QUERY)`, SQLAlchemy Core's execution (before);
- `driver`: `load_standing` → `RequestDb.fetch(STANDING)`, the driver's own execute
  (gateway/db/prepared.py);
- `aiosqlite` (`--aiosqlite`): Core through the async engine, why SQLite reads run on
  the loop (gateway/db/access.py).

`--gap-ms G` adds a probe of lone reads: one read every G ms of idle, wall and CPU time
of each (p50/p90), and the same right after a write commits (an audit row), as a lone
request's trust read follows the previous request's audit commit.

Run: .venv/bin/python bench/db_access.py [--n 3000] [--rounds 3] [--postgres URL | --start-postgres]
(`--start-postgres`: a throwaway PostgreSQL on loopback, bench/services.py, stopped on exit.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from gateway.admin import ops
from gateway.db.access import AsyncRequestDb, RequestDb, make_request_db
from gateway.db.engine import make_engine
from gateway.db.migrate import upgrade
from gateway.trust.standing import STANDING_QUERY, load_standing, standing_of
from gateway.trust.tiers import Tiers

TIERS = Tiers(["public", "verified", "critical"])
Read = Callable[[], Awaitable[object]]


def ways(db: RequestDb, client_id: str) -> dict[str, Read]:
    # With a token id, as on the request path: the revocation list is probed in this read.
    jti = uuid.uuid4().hex
    params = {"client_id": client_id, "subject": client_id, "jti": jti}

    async def core() -> object:
        rows = await db.read(STANDING_QUERY, params)
        return standing_of(rows, client_id=client_id, tiers=TIERS, now=datetime.now(UTC))

    async def driver() -> object:
        return await load_standing(db, client_id=client_id, subject=client_id, tiers=TIERS, jti=jti)

    return {"core": core, "driver": driver}


async def per_read_us(read: Read, n: int) -> float:
    for _ in range(max(n // 5, 1)):  # warm up: the first thousand reads run slower
        await read()
    start = time.process_time()
    for _ in range(n):
        await read()
    return (time.process_time() - start) / n * 1e6


async def lone_reads(read: Read, gap_ms: float, n: int, write: Read | None) -> str:
    walls, cpus = [], []
    for _ in range(n):
        await asyncio.sleep(gap_ms / 1000)
        if write is not None:
            await write()
        w0, c0 = time.perf_counter(), time.thread_time()
        await read()
        cpus.append((time.thread_time() - c0) * 1e6)
        walls.append((time.perf_counter() - w0) * 1e6)

    def pct(xs: list[float]) -> str:
        q = statistics.quantiles(xs, n=10)
        return f"{statistics.median(xs):.0f} ({q[8]:.0f})"

    return f"wall {pct(walls)} µs, CPU {pct(cpus)} µs"


async def setup(url: str) -> str:
    engine = make_engine(url)
    try:
        org = await ops.create_org(engine, name=f"bench-{uuid.uuid4().hex[:8]}")
        await ops.grant_tier(engine, org_id=org.id, tier="verified", granted_by="bench")
        return (await ops.create_client(engine, org_id=org.id, name="c")).client_id
    finally:
        await engine.dispose()


async def bench(label: str, url: str, args: argparse.Namespace) -> None:
    upgrade(url)
    client_id = await setup(url)
    db = make_request_db(url, sqlite_synchronous="FULL")
    chosen = ways(db, client_id)
    if args.aiosqlite and url.startswith("sqlite"):
        engine = make_engine(url)
        chosen["aiosqlite"] = ways(AsyncRequestDb(engine), client_id)["core"]
    names = list(chosen)
    got: dict[str, list[float]] = {name: [] for name in names}
    loads = []
    try:
        for r in range(args.rounds):
            loads.append(os.getloadavg()[0])
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                got[name].append(await per_read_us(chosen[name], args.n))
        print(f"\n{label}: CPU µs per read, {args.n} reads per round; load {loads}")
        print("| way | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " | median |")
        print("|---|" + "---:|" * (args.rounds + 1))
        for name in names:
            cells = " | ".join(f"{v:.1f}" for v in got[name])
            print(f"| {name} | {cells} | {statistics.median(got[name]):.1f} |")
        if args.gap_ms:
            write = audit_write(db)
            print(f"\n{label}: lone reads, {args.gap_ms} ms idle before each, p50 (p90)")
            for name in ("core", "driver"):
                for after, w in (("idle", None), ("after a commit", write)):
                    line = await lone_reads(chosen[name], args.gap_ms, args.lone, w)
                    print(f"- {name}, {after}: {line}")
    finally:
        await db.close()
        if "aiosqlite" in chosen:
            await engine.dispose()


def audit_write(db: RequestDb) -> Read:
    statement = text("UPDATE organization SET name = name WHERE id = 'none'")

    async def write() -> object:
        # A committed write transaction, as the previous request's audit commit.
        await db.write(statement, [{}])
        return None

    return write


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await bench("SQLite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args)
    if args.postgres:
        await bench("PostgreSQL", args.postgres, args)
    elif args.start_postgres:
        from run import Procs  # bench/ modules, importable when run as a script
        from services import Services

        procs = Procs()
        with tempfile.TemporaryDirectory(prefix="tacgw-dbbench-", dir="/tmp") as tmp:
            services = Services(procs, Path(tmp))
            try:
                url = services.postgres_database("trustbench")
                url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
                await bench("PostgreSQL", url, args)
            finally:
                services.close()
                procs.stop_all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="postgresql+asyncpg://... of a database to use")
    parser.add_argument("--start-postgres", action="store_true", help="throwaway PostgreSQL")
    parser.add_argument("--aiosqlite", action="store_true", help="also the async engine")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="probe lone reads")
    parser.add_argument("--lone", type=int, default=300, help="lone reads per probe")
    asyncio.run(main(parser.parse_args()))
