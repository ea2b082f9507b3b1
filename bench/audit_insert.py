"""The audit row insert alone: SQLAlchemy Core `insert(table), rows` vs the driver-level
`gateway.audit.rows.insert_rows`, CPU µs per row (time.process_time), alternating.

    .venv/bin/python bench/audit_insert.py [--batch 8] [--batches 2000] [--rounds 3]

On a migrated SQLite file with synchronous=OFF: the figure is the Python work of building
and executing the statement, not the fsync (which both paths pay alike).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, insert, text

from gateway.audit.rows import insert_rows
from gateway.db.migrate import upgrade
from gateway.db.models import AuditEvent

AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]


def audit_row(decision_id: str) -> dict[str, Any]:
    """A typical allowed model call's row (bench/audit_ids.py uses it too)."""
    return {
        "id": decision_id,
        "ts": datetime.now(UTC),
        "endpoint": "chat.completions",
        "subject": "client-1",
        "client_id": "client-1",
        "org_id": "org-1",
        "token_id": "tok-1",
        "tier": "public",
        "model": "demo-general",
        "decision": "allow",
        "reasons": '["allowed"]',
        "status": 200,
        "policy_version": "0123456789ab",
        "latency_ms": 1.234,
        "request_hash": "ff" * 32,
        "upstream_target": "a",
        "upstream_tries": 1,
        "detail": None,
    }


def _rows(n: int) -> list[dict[str, Any]]:
    return [audit_row(uuid.uuid4().hex) for _ in range(n)]


def _core(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(insert(AUDIT), rows)


def _time(conn: Connection, fn: Any, batch: int, batches: int) -> float:
    work = [_rows(batch) for _ in range(batches)]
    t0 = time.process_time()
    for rows in work:
        fn(conn, rows)
    return (time.process_time() - t0) / (batch * batches) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.db"
        upgrade(f"sqlite+aiosqlite:///{path}")
        engine = create_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            conn.execute(text("PRAGMA synchronous=OFF"))
            for fn in (_core, insert_rows):  # warm both (statement caches)
                _time(conn, fn, a.batch, 50)
            for r in range(a.rounds):
                core = _time(conn, _core, a.batch, a.batches)
                driver = _time(conn, insert_rows, a.batch, a.batches)
                print(
                    f"round {r + 1}: Core {core:6.1f} µs/row   driver {driver:6.1f} µs/row   "
                    f"(batches of {a.batch})"
                )


if __name__ == "__main__":
    main()
