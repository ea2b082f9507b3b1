"""CPU per trust read on SQLite: async engine (aiosqlite) vs the synchronous fast path.

Run: .venv/bin/python bench/db_access.py [--n 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from gateway.admin import ops
from gateway.db.access import AsyncRequestDb, RequestDb, SqliteRequestDb
from gateway.db.engine import make_engine, make_sync_sqlite_engine
from gateway.db.migrate import upgrade
from gateway.trust.standing import load_standing
from gateway.trust.tiers import Tiers

TIERS = Tiers(["public", "verified", "critical"])


async def per_read_ms(db: RequestDb, client_id: str, n: int) -> float:
    # With a token id, as on the request path: the revocation list is probed in this read.
    jti = uuid.uuid4().hex
    await load_standing(db, client_id=client_id, subject=client_id, tiers=TIERS, jti=jti)
    start = time.process_time()
    for _ in range(n):
        await load_standing(db, client_id=client_id, subject=client_id, tiers=TIERS, jti=jti)
    return (time.process_time() - start) / n * 1000


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        org = await ops.create_org(engine, name="bench")
        await ops.grant_tier(engine, org_id=org.id, tier="verified", granted_by="bench")
        client_id = (await ops.create_client(engine, org_id=org.id, name="c")).client_id
        slow = await per_read_ms(AsyncRequestDb(engine), client_id, n)
        fast_db = SqliteRequestDb(make_sync_sqlite_engine(url))
        fast = await per_read_ms(fast_db, client_id, n)
        fast_db.close()
        await engine.dispose()
    print("| SQLite trust read | CPU ms per read |\n|---|---|")
    print(f"| async engine (aiosqlite) | {slow:.3f} |\n| synchronous, on the loop | {fast:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    asyncio.run(main(parser.parse_args().n))
