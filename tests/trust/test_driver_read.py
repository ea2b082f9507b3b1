"""The trust reads at driver level (`RequestDb.fetch`, gateway/db/prepared.py) return the
rows, and so the standing, that SQLAlchemy Core's execution of the same query returns, on
SQLite and PostgreSQL; and a driver failure comes out as Core's would (the trust stage's
503 `trust_unavailable`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops
from gateway.db.access import AsyncRequestDb, RequestDb, make_request_db
from gateway.db.engine import make_engine
from gateway.db.models import Client, RevokedToken
from gateway.reasons import Reason
from gateway.trust.federated import BINDING, BINDING_QUERY, federated_standing_of
from gateway.trust.standing import STANDING, STANDING_QUERY, Standing, standing_of
from gateway.trust.tiers import Tiers
from tests.support.gateway import fresh_database_url

TIERS = Tiers(["public", "verified", "critical"])
NOW = datetime.now(UTC)
ISSUER = "https://idp.test.example"


@dataclass
class Store:
    engine: AsyncEngine  # for setting the cases up, as the admin tools do
    db: RequestDb  # the request path's access, both ways


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str) -> str:
    return fresh_database_url(request.param, tmp_path, postgres_url)


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:
    engine = make_engine(url)
    db = make_request_db(url, sqlite_synchronous="FULL")
    try:
        yield Store(engine, db)
    finally:
        await db.close()
        await engine.dispose()


def _sorted(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in rows), key=repr)


async def _both_ways(store: Store, params: dict[str, Any]) -> Standing | None:
    """The standing read both ways; asserts they agree row for row and field for field."""
    core = await store.db.read(STANDING_QUERY, params)
    driver = await store.db.fetch(STANDING, params)
    assert _sorted(driver) == _sorted(core)
    for row in driver:  # datetimes come back aware, in UTC, as Core's do
        for value in row:
            assert not isinstance(value, datetime) or value.utcoffset() == timedelta(0)
    kw = {"client_id": params["client_id"], "tiers": TIERS, "now": NOW}
    by_core, by_driver = standing_of(core, **kw), standing_of(driver, **kw)
    assert by_driver == by_core
    return by_driver


async def _client(store: Store, name: str, *, status: str = "verified") -> tuple[str, str]:
    org = await ops.create_org(store.engine, name=name, status=status)
    return org.id, (await ops.create_client(store.engine, org_id=org.id, name=name)).client_id


async def test_standing_same_both_ways(store: Store) -> None:
    e = store.engine
    # A live organization grant, and a subject's own grant above it.
    org, client = await _client(store, "live")
    await ops.grant_tier(e, org_id=org, tier="verified", granted_by="t")
    later = NOW + timedelta(days=3)
    await ops.grant_tier(
        e, org_id=org, tier="critical", granted_by="t", subject="s1", expires_at=later
    )
    s = await _both_ways(store, {"client_id": client, "subject": "s1", "jti": "j-live"})
    assert s is not None and s.tier == "critical" and s.lapsed_reason is None
    assert s.tier_expires_at == later and s.client_active and not s.token_revoked
    s = await _both_ways(store, {"client_id": client, "subject": "other", "jti": None})
    assert s is not None and s.tier == "verified" and s.tier_expires_at is None

    # An expired grant above a live one, and a revoked one.
    org, expired = await _client(store, "expired")
    await ops.grant_tier(e, org_id=org, tier="verified", granted_by="t")
    await ops.grant_tier(
        e, org_id=org, tier="critical", granted_by="t", expires_at=NOW - timedelta(hours=1)
    )
    s = await _both_ways(store, {"client_id": expired, "subject": "s", "jti": "j"})
    assert s is not None and (s.tier, s.lapsed_tier) == ("verified", "critical")
    assert s.lapsed_reason == Reason.GRANT_EXPIRED
    org, revoked = await _client(store, "revoked-grant")
    grant = await ops.grant_tier(e, org_id=org, tier="critical", granted_by="t")
    assert grant.id is not None
    await ops.revoke_grant(e, grant_id=grant.id, at=NOW - timedelta(minutes=1))
    s = await _both_ways(store, {"client_id": revoked, "subject": "s", "jti": "j"})
    assert s is not None and (s.tier, s.lapsed_reason) == ("public", Reason.GRANT_REVOKED)

    # A revoked token; a revoked client; a suspended organization; no grant at all.
    async with e.begin() as conn:
        await conn.execute(
            RevokedToken.__table__.insert(),  # type: ignore[attr-defined]
            [{"jti": "j-gone", "client_id": client, "exp": later, "revoked_at": NOW}],
        )
    s = await _both_ways(store, {"client_id": client, "subject": "s1", "jti": "j-gone"})
    assert s is not None and s.token_revoked
    clients = Client.__table__  # type: ignore[attr-defined]
    async with e.begin() as conn:
        await conn.execute(update(clients).where(clients.c.id == expired).values(revoked_at=NOW))
    s = await _both_ways(store, {"client_id": expired, "subject": "s", "jti": "j"})
    assert s is not None and not s.client_active
    await ops.set_org_status(e, org_id=org, status="suspended")
    s = await _both_ways(store, {"client_id": revoked, "subject": "s", "jti": "j"})
    assert s is not None and (s.org_status, s.tier) == ("suspended", "public")
    _, bare = await _client(store, "bare", status="applied")
    s = await _both_ways(store, {"client_id": bare, "subject": "s", "jti": "j"})
    assert s is not None and (s.org_status, s.tier, s.lapsed_tier) == ("applied", "public", None)
    assert await _both_ways(store, {"client_id": "nobody", "subject": "s", "jti": "j"}) is None


async def test_federated_standing_same_both_ways(store: Store) -> None:
    e = store.engine
    org = (await ops.create_org(e, name="fed")).id
    await ops.bind_issuer(e, org_id=org, issuer=ISSUER, org_claim="acme")
    later = NOW + timedelta(days=1)
    await ops.grant_tier(e, org_id=org, tier="verified", granted_by="t", expires_at=later)
    await ops.grant_tier(
        e, org_id=org, tier="critical", granted_by="t", expires_at=NOW - timedelta(seconds=1)
    )
    other = (await ops.create_org(e, name="fed-2", status="suspended")).id
    await ops.bind_issuer(e, org_id=other, issuer=ISSUER, subject="shared")
    cases = [
        ("acme", "alice", (org,), "verified"),  # the expired critical grant does not count
        ("acme", "shared", (org, other), None),  # two bindings match: ambiguous
        ("globex", "alice", (), None),  # bound to no organization
    ]
    for claim, subject, orgs, tier in cases:
        params = {"issuer": ISSUER, "org_claim": claim, "subject": subject, "now": NOW}
        core = await store.db.read(BINDING_QUERY, params)
        driver = await store.db.fetch(BINDING, params)
        assert _sorted(driver) == _sorted(core)
        got = federated_standing_of(driver, tiers=TIERS)
        assert got.org_ids == tuple(sorted(orgs))
        if tier is not None:
            assert (got.tier, got.tier_expires_at) == (tier, later)


async def test_driver_failure_is_core_failure(store: Store) -> None:
    """A failed driver-level read raises what a failed Core read raises (mapped to 503
    trust_unavailable by the trust stage), and the next read works once the cause is gone."""
    _, client = await _client(store, "fail")
    params = {"client_id": client, "subject": "s", "jti": "j"}
    assert await store.db.fetch(STANDING, params)
    if store.engine.dialect.name == "postgresql":
        # The pooled connection's backend goes away, as in a database restart.
        async with store.engine.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        with pytest.raises(OperationalError):
            await store.db.fetch(STANDING, params)
        # The dead connection was dropped, not pooled again.
        assert await store.db.fetch(STANDING, params)
    else:
        async with store.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE revokedtoken RENAME TO revokedtoken_away"))
        with pytest.raises(OperationalError):
            await store.db.fetch(STANDING, params)
        async with store.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE revokedtoken_away RENAME TO revokedtoken"))
        assert await store.db.fetch(STANDING, params)


@pytest.fixture
def pg_url(tmp_path: Path, postgres_url: str) -> str:
    return fresh_database_url("postgres", tmp_path, postgres_url)


async def test_after_a_restart_one_read_fails_not_one_per_pooled_connection(pg_url: str) -> None:
    """Every pooled connection dies with the server; the first read that meets a dead one
    fails and replaces the whole pool, so the next reads all succeed (as Core does on a
    disconnect), instead of each idle connection failing one more request."""
    engine, db = make_engine(pg_url), make_request_db(pg_url, sqlite_synchronous="FULL")
    try:
        store = Store(engine, db)
        _, client = await _client(store, "restart")
        params = {"client_id": client, "subject": "s", "jti": "j"}
        # Eight reads at once: eight connections in the pool.
        await asyncio.gather(*(db.fetch(STANDING, params) for _ in range(8)))
        async with engine.connect() as conn:  # the server drops every session, as on restart
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        failed = 0
        for _ in range(8):
            try:
                assert await db.fetch(STANDING, params)
            except OperationalError:
                failed += 1
        assert failed == 1
    finally:
        await db.close()
        await engine.dispose()


async def test_the_request_pool_never_opens_more_than_its_size(pg_url: str) -> None:
    """64 reads at once on a pool of 4 (no overflow): all succeed through four connections —
    callers wait for one instead of opening one that is closed again on return."""
    engine = make_engine(pg_url)
    db = make_request_db(pg_url, sqlite_synchronous="FULL", pool_size=4)
    assert isinstance(db, AsyncRequestDb)
    opened: list[object] = []
    event.listen(db.engine.sync_engine, "connect", lambda conn, record: opened.append(conn))
    try:
        _, client = await _client(Store(engine, db), "pooled")
        params = {"client_id": client, "subject": "s", "jti": "j"}
        rows = await asyncio.gather(*(db.fetch(STANDING, params) for _ in range(64)))
        assert all(rows)
        assert 1 <= len(opened) <= 4
    finally:
        await db.close()
        await engine.dispose()
