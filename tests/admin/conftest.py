"""Fixtures for the admin operations: a fresh migrated database of each kind, and the
gateway's proof checker pointed at the loopback DNS and web servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.engine import make_engine
from gateway.settings import VerificationSettings
from gateway.trust.proof import ProofChecker
from gateway.trust.tiers import Tiers
from tests.support.gateway import TIERS, fresh_database_url
from tests.support.proof_servers import LoopbackDns, LoopbackWeb


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str) -> str:
    return fresh_database_url(request.param, tmp_path, postgres_url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def checker(loopback_dns: LoopbackDns, loopback_web: LoopbackWeb) -> ProofChecker:
    return ProofChecker(
        VerificationSettings(
            resolvers=[loopback_dns.address],
            dns_timeout_s=2,
            https_base_override=loopback_web.base_url,
        )
    )


@pytest.fixture
def tiers() -> Tiers:
    return Tiers(TIERS)
