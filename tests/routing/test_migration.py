"""Migration 0006_routing: each model's single upstream becomes its first target, and back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from gateway.db.engine import make_engine
from gateway.db.migrate import alembic_config, check, upgrade
from tests.support.gateway import fresh_database_url


def sql(url: str, statement: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement), params or {})
                return [dict(r._mapping) for r in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(go())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_upstreams_become_targets_and_come_back(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    url = fresh_database_url(kind, tmp_path, postgres_url, migrate=False)
    upgrade(url, "0001")
    for name, upstream, upstream_model in [
        ("general", "http://vllm-a:8000/v1", "llama-3-70b"),
        ("cyber", "https://api.example.com/v1", "cyber"),
    ]:
        sql(
            url,
            "INSERT INTO modelentry (name, upstream_url, upstream_model, tier_floor, enabled,"
            " created_at) VALUES (:n, :u, :m, 'public', true, :ts)",
            {"n": name, "u": upstream, "m": upstream_model, "ts": datetime.now(UTC)},
        )
    upgrade(url)
    check(url)  # the migrated schema is exactly the models' schema
    rows = sql(
        url,
        "SELECT model, name, url, upstream_model, weight, credential, headers, enabled"
        " FROM upstreamtarget ORDER BY model",
    )
    assert [tuple(r.values()) for r in rows] == [
        ("cyber", "api.example.com", "https://api.example.com/v1", "cyber", 1, None, "{}", True),
        ("general", "vllm-a:8000", "http://vllm-a:8000/v1", "llama-3-70b", 1, None, "{}", True),
    ]
    # A second target, then back down: the first target is the model's upstream again.
    sql(
        url,
        "INSERT INTO upstreamtarget (model, name, url, upstream_model, weight, enabled,"
        " headers, created_at) VALUES ('general', 'b', 'http://vllm-b:8000/v1', 'x', 1, true,"
        " '{}', :ts)",
        {"ts": datetime.now(UTC)},
    )
    command.downgrade(alembic_config(url), "0001")
    back = sql(url, "SELECT name, upstream_url, upstream_model FROM modelentry ORDER BY name")
    assert [tuple(r.values()) for r in back] == [
        ("cyber", "https://api.example.com/v1", "cyber"),
        ("general", "http://vllm-a:8000/v1", "llama-3-70b"),
    ]
    upgrade(url)
    check(url)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_audit_rows_gain_target_columns(kind: str, tmp_path: Path, postgres_url: str) -> None:
    """Rows written before the upgrade keep NULL in the new columns."""
    url = fresh_database_url(kind, tmp_path, postgres_url, migrate=False)
    upgrade(url, "0001")
    sql(
        url,
        "INSERT INTO auditevent (id, ts, endpoint, decision, reasons, status, latency_ms)"
        " VALUES ('d1', :ts, 'chat.completions', 'allow', '[]', 200, 1.0)",
        {"ts": datetime.now(UTC)},
    )
    upgrade(url)
    rows = sql(url, "SELECT id, upstream_target, upstream_tries FROM auditevent")
    assert rows == [{"id": "d1", "upstream_target": None, "upstream_tries": None}]
