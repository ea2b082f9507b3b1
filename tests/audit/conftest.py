"""Fixtures for the audit log tests: a signer, events, and a migrated database of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import ledger
from gateway.audit.canonical import canonical_bytes, timestamp
from gateway.audit.checkpoint import NoteSigner
from gateway.db.engine import make_engine
from tests.support.gateway import fresh_database_url

ORIGIN = "audit.test.example/log"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
R = TypeVar("R")


def make_event(i: int, *, decision: str = "allow") -> dict[str, Any]:
    """A decision event shaped like the gateway's, distinct for every i."""
    return {
        "v": 1,
        "kind": "decision",
        "decision_id": f"{i:032x}",
        "ts": timestamp(T0 + timedelta(milliseconds=i)),
        "actor": {"subject": f"analyst-{i % 7}", "org_id": f"org-{i % 3}", "client_id": "c1"},
        "action": "model_call",
        "tier": ["public", "verified", "critical"][i % 3],
        "model": "general",
        "decision": decision,
        "reasons": ["allowed"] if decision == "allow" else ["tier_too_low"],
        "status": 200 if decision == "allow" else 403,
        "latency_us": 1000 + i,
    }


def leaf_input(i: int) -> ledger.LeafInput:
    return ledger.LeafInput(f"{i:032x}", "decision", canonical_bytes(make_event(i)))


@pytest.fixture(scope="session")
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture
def policy(signer: NoteSigner) -> ledger.CheckpointPolicy:
    """A checkpoint every 5 leaves (and never by time, within a test)."""
    return ledger.CheckpointPolicy(signer=signer, every=5, interval=timedelta(days=1))


@dataclass
class LogDb:
    """A migrated database of one kind, and the two ways the writer reaches it."""

    kind: str
    engine: AsyncEngine

    async def run(self, fn: Callable[..., R], /, *args: Any, **kw: Any) -> R:
        """Run a synchronous ledger function in one transaction, as the writer does."""
        async with self.engine.begin() as conn:
            return await conn.run_sync(lambda c: fn(c, *args, **kw))

    async def append(
        self,
        indexes: Sequence[int],
        policy: ledger.CheckpointPolicy | None,
        *,
        now: datetime = T0,
    ) -> ledger.Appended:
        leaves = [leaf_input(i) for i in indexes]
        return await self.run(ledger.append, leaves, now=now, policy=policy)

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        """Raw SQL, as someone with database access (an attacker, here) would run it."""
        async with self.engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []


@pytest.fixture(params=["sqlite", "postgres"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str) -> str:
    return fresh_database_url(request.param, tmp_path, postgres_url)


@pytest.fixture
async def log_db(log_url: str) -> AsyncIterator[LogDb]:
    """A migrated database, once SQLite and once PostgreSQL."""
    engine = make_engine(log_url)
    try:
        yield LogDb("sqlite" if log_url.startswith("sqlite") else "postgres", engine)
    finally:
        await engine.dispose()


@pytest.fixture
def pg_log_url(tmp_path: Path, postgres_url: str) -> str:
    return fresh_database_url("postgres", tmp_path, postgres_url)


@pytest.fixture
async def pg_log_db(pg_log_url: str) -> AsyncIterator[LogDb]:
    """A migrated PostgreSQL database, for what only PostgreSQL does (several writers)."""
    engine = make_engine(pg_log_url)
    try:
        yield LogDb("postgres", engine)
    finally:
        await engine.dispose()
