"""A real gateway for tests: migrated database, seeded orgs/clients/models, real uvicorn.

`GatewayFactory.start(...)` serves `create_app(settings)` on a loopback port in a thread
and returns a `RunningGateway` with helpers to get real tokens (through the real token
endpoint), real `openai` SDK clients, and the audit rows the gateway wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest
from sqlalchemy import text

from gateway.admin import ops
from gateway.app import create_app
from gateway.db.engine import make_engine
from gateway.db.migrate import upgrade
from gateway.demo.upstream import create_upstream_app
from gateway.settings import Settings, UpstreamSettings
from tests.support.screening import seed_reports
from tests.support.services import free_port
from tests.support.uvicorn_server import serve

__all__ = [
    "GatewayFactory",
    "RunningGateway",
    "fresh_database_url",
    "gateway_factory",
    "module_gateway",
    "upstream_url",
]

MODELS = (("general", "public"), ("general-tac", "verified"), ("cyber", "critical"))
TIERS = ("public", "verified", "critical")


def fresh_database_url(
    kind: str, tmp_path: Path, postgres_url: str | None, *, migrate: bool = True
) -> str:
    """An empty database of the given kind, migrated to head unless `migrate` is false."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    else:
        assert postgres_url is not None
        name = f"tacgw_{uuid.uuid4().hex[:12]}"
        asyncio.run(_create_pg_database(postgres_url, name))
        url = postgres_url.rsplit("/", 1)[0] + "/" + name
    if migrate:
        upgrade(url)
    return url


async def _create_pg_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url.replace("+asyncpg", ""))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@dataclass
class RunningGateway:
    base_url: str
    database_url: str
    settings: Settings
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)  # tier → (id, secret)
    org_ids: dict[str, str] = field(default_factory=dict)  # tier → org id

    def token(self, tier: str = "public") -> str:
        client_id, secret = self.credentials[tier]
        reply = httpx.post(
            f"{self.base_url}/oauth/token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials"},
        )
        reply.raise_for_status()
        return str(reply.json()["access_token"])

    def openai(self, tier: str = "public", **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.token(tier), max_retries=0, **kw
        )

    def async_openai(self, tier: str = "public", **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.token(tier), max_retries=0, **kw
        )

    def run(self, coro_fn: Any) -> Any:
        """Run `coro_fn(engine)` against the gateway's database in a fresh loop."""

        async def go() -> Any:
            engine = make_engine(self.database_url)
            try:
                return await coro_fn(engine)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def audit_rows(self, **where: Any) -> list[dict[str, Any]]:
        clause = " AND ".join(f"{k} = :{k}" for k in where) or "1=1"

        async def q(engine: Any) -> list[dict[str, Any]]:
            async with engine.connect() as conn:
                result = await conn.execute(
                    text(f"SELECT * FROM auditevent WHERE {clause} ORDER BY ts"), where
                )
                return [dict(r._mapping) for r in result]

        return list(self.run(q))

    def audit_row(self, decision_id: str) -> dict[str, Any]:
        rows = self.audit_rows(id=decision_id)
        assert len(rows) == 1, f"expected one audit row for {decision_id}, got {rows}"
        return rows[0]


class GatewayFactory:
    def __init__(self, tmp_path: Path, upstream: str, postgres_url: str) -> None:
        self._tmp = tmp_path
        self._upstream = upstream
        self._postgres_url = postgres_url
        self._stack = contextlib.ExitStack()

    def start(
        self,
        *,
        database: str = "sqlite",
        upstream: str | None = None,
        upstream_settings: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> RunningGateway:
        """Serve a seeded gateway; `upstream` is the catalog's URL, `upstream_settings`
        the nested `Settings.upstream` (timeouts, retries, transport)."""
        port = free_port()
        if upstream_settings is not None:
            overrides["upstream"] = UpstreamSettings(**upstream_settings)
        db_dir = self._tmp / uuid.uuid4().hex[:8]
        db_dir.mkdir()
        url = fresh_database_url(database, db_dir, self._postgres_url)
        settings = Settings(
            **{
                "dev_mode": True,
                "database_url": url,
                "signing_key_file": db_dir / "signing-key.pem",
                "audit_log": {"key_file": db_dir / "audit-log-key.pem"},
                "issuer": f"http://127.0.0.1:{port}",
                "rate_limit": "1000/second",
                "catalog_ttl_s": 0,
                **overrides,
            }
        )
        gw = RunningGateway(base_url="", database_url=url, settings=settings)
        # Only the session upstream is screened: a dedicated one counts its requests, and an
        # unreachable one cannot be; their models serve the tiers that need no screening.
        screened = upstream is None or upstream == self._upstream
        gw.run(lambda engine: _seed(engine, gw, upstream or self._upstream, screened=screened))
        gw.base_url = self._stack.enter_context(serve(create_app(settings), port))
        return gw

    def close(self) -> None:
        self._stack.close()


async def _seed(engine: Any, gw: RunningGateway, upstream: str, *, screened: bool) -> None:
    for name, floor in MODELS:
        await ops.add_model(
            engine, name=name, upstream_url=upstream, upstream_model=name, tier_floor=floor
        )
    if screened:
        await seed_reports(engine, upstream=upstream, models=[name for name, _ in MODELS])
    for tier in TIERS:
        org = await ops.create_org(engine, name=f"org-{tier}", status="verified")
        if tier != "public":
            await ops.grant_tier(engine, org_id=org.id, tier=tier, granted_by="test-admin")
        creds = await ops.create_client(engine, org_id=org.id, name=f"client-{tier}")
        gw.credentials[tier] = (creds.client_id, creds.client_secret)
        gw.org_ids[tier] = org.id


@pytest.fixture(scope="session")
def upstream_url() -> Iterator[str]:
    """The demo model server, really serving HTTP and SSE on loopback."""
    with serve(create_upstream_app("test-upstream")) as base:
        yield f"{base}/v1"


@pytest.fixture
def gateway_factory(
    tmp_path: Path, upstream_url: str, postgres_url: str
) -> Iterator[GatewayFactory]:
    factory = GatewayFactory(tmp_path, upstream_url, postgres_url)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def module_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream_url: str, postgres_url: str
) -> Iterator[RunningGateway]:
    """One gateway shared by a module's tests that only read (each finds its own rows)."""
    factory = GatewayFactory(tmp_path_factory.mktemp("module-gw"), upstream_url, postgres_url)
    try:
        yield factory.start()
    finally:
        factory.close()
