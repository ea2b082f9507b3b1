"""The driver-level audit insert (gateway/audit/rows.py) stores what SQLAlchemy Core's
insert stores, column for column, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, insert, select

from gateway.audit.rows import COLUMNS, insert_rows
from gateway.db.access import make_request_db
from gateway.db.models import AuditEvent

AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]


def _row(decision_id: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": decision_id,
        # Not UTC on purpose: both paths must store it converted to UTC.
        "ts": datetime(2026, 11, 27, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=5))),
        "endpoint": "chat.completions",
        "subject": "client-1",
        "client_id": "client-1",
        "org_id": "org-1",
        "token_id": "tok-1",
        "tier": "public",
        "model": "general",
        "decision": "allow",
        "reasons": '["allowed"]',
        "status": 200,
        "policy_version": "abc",
        "latency_ms": 1.234,
        "request_hash": "ff" * 32,
        "upstream_target": "a",
        "upstream_tries": 1,
        "detail": '{"token_type": "Bearer"}',
    }
    return row | changes


async def test_same_rows_as_core(log_url: str) -> None:
    db = make_request_db(log_url, sqlite_synchronous="FULL")
    nulls = {k: None for k in COLUMNS if AUDIT.c[k].nullable and k != "ts"}
    pairs = [("core-1", "driver-1", {}), ("core-2", "driver-2", nulls)]
    try:

        def write(conn: Connection) -> None:
            for core_id, driver_id, changes in pairs:
                conn.execute(insert(AUDIT), [_row(core_id, **changes)])
                insert_rows(conn, [_row(driver_id, **changes)])

        await db.transact(write)
        got = {r.id: r._asdict() for r in await db.read(select(AUDIT), {})}
    finally:
        await db.close()
    for core_id, driver_id, _ in pairs:
        core, driver = got[core_id], got[driver_id]
        assert {**core, "id": None} == {**driver, "id": None}
    assert got["driver-1"]["ts"] == datetime(2026, 11, 26, 20, 2, 3, 456789, tzinfo=UTC)
    assert got["driver-2"]["subject"] is None
