"""A real gateway for tests: migrated database, seeded orgs/clients/models, real uvicorn.

`GatewayFactory.start(...)` serves `create_app(settings)` on a loopback port in a thread
and returns a `RunningGateway` with helpers to get real tokens (through the real token
endpoint), real `openai` SDK clients, and the audit rows the gateway wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
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
from gateway.issuer import keystore
from gateway.issuer.keys import SigningKey, from_pem
from gateway.settings import Settings, UpstreamSettings
from tests.support.dpop import DpopAuth, DpopKey
from tests.support.screening import seed_reports
from tests.support.services import end_process, free_port
from tests.support.uvicorn_server import serve

__all__ = [
    "GatewayFactory",
    "RunningGateway",
    "fresh_database_url",
    "gateway_factory",
    "module_gateway",
    "upstream_url",
]

# Bounds, not expectations: under the suite's 4 workers on 2 cores a token took over
# httpx's default 5 s once, and a replica over 30 s to start.
CLIENT_TIMEOUT_S = 60.0
START_TIMEOUT_S = 90.0
MODELS = (("general", "public"), ("general-tac", "verified"), ("cyber", "critical"))
TIERS = ("public", "verified", "critical")
# The tiers whose models take DPoP-bound tokens only (policies/data.json).
DPOP_TIERS = ("critical",)


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

    def token(self, tier: str = "public", *, dpop: DpopKey | None = None) -> str:
        """A real token from the token endpoint; bound to `dpop`'s key if given."""
        client_id, secret = self.credentials[tier]
        url = f"{self.base_url}/oauth/token"
        headers = {"DPoP": dpop.proof("POST", url)} if dpop is not None else {}
        reply = httpx.post(
            url,
            auth=(client_id, secret),
            data={"grant_type": "client_credentials"},
            headers=headers,
            timeout=CLIENT_TIMEOUT_S,
        )
        reply.raise_for_status()
        return str(reply.json()["access_token"])

    def caller(self, tier: str = "public") -> httpx.Client:
        """A plain HTTP client for a defender of `tier`, DPoP-bound for a DPoP tier."""
        if tier in DPOP_TIERS:
            key = DpopKey()
            return httpx.Client(
                auth=DpopAuth(key, self.token(tier, dpop=key)), timeout=CLIENT_TIMEOUT_S
            )
        return httpx.Client(
            headers={"authorization": f"Bearer {self.token(tier)}"}, timeout=CLIENT_TIMEOUT_S
        )

    def openai(self, tier: str = "public", **kw: Any) -> openai.OpenAI:
        """The official SDK; for a DPoP tier (critical), with a bound token and the hook."""
        if tier in DPOP_TIERS and "http_client" not in kw:
            key = DpopKey()
            token = self.token(tier, dpop=key)
            kw["http_client"] = httpx.Client(auth=DpopAuth(key, token), timeout=CLIENT_TIMEOUT_S)
        else:
            token = self.token(tier)
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=token, max_retries=0, **kw)

    def async_openai(self, tier: str = "public", **kw: Any) -> openai.AsyncOpenAI:
        if tier in DPOP_TIERS and "http_client" not in kw:
            key = DpopKey()
            token = self.token(tier, dpop=key)
            kw["http_client"] = httpx.AsyncClient(auth=DpopAuth(key, token))
        else:
            token = self.token(tier)
        return openai.AsyncOpenAI(
            base_url=f"{self.base_url}/v1", api_key=token, max_retries=0, **kw
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

    def signing_key(self) -> SigningKey:
        """The issuer's current signing key, unsealed from the database with the KEK."""

        async def current(engine: Any) -> SigningKey:
            rows = await keystore.list_keys(engine)
            row = next(r for r in rows if r.rotated_at is None)
            pem = keystore.sealer_for(self.settings).open(row.private_key, kid=row.kid)
            return from_pem(pem, source=row.kid)

        return self.run(current)  # type: ignore[no-any-return]

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

    def replica(self, gw: RunningGateway, **overrides: Any) -> RunningGateway:
        """A second gateway on `gw`'s database and issuer, in this process (no seeding)."""
        port = free_port()
        settings = Settings(**(gw.settings.model_dump() | overrides))
        other = RunningGateway(
            base_url="",
            database_url=gw.database_url,
            settings=settings,
            credentials=gw.credentials,
            org_ids=gw.org_ids,
        )
        other.base_url = self._stack.enter_context(serve(create_app(settings), port))
        return other

    def replica_process(self, gw: RunningGateway, **env: str) -> RunningGateway:
        """A second gateway as its own OS process (`tac-gateway serve`), on `gw`'s database
        and issuer: shares nothing with `gw` but the database (and Redis, if configured)."""
        port = free_port()
        s = gw.settings
        environment = {
            **os.environ,
            "TACGW_DEV_MODE": "true" if s.dev_mode else "false",
            "TACGW_DATABASE_URL": s.database_url,
            "TACGW_MIGRATE_ON_START": "false",
            "TACGW_ISSUER": s.issuer,
            "TACGW_AUDIENCE": s.audience,
            "TACGW_RATE_LIMIT": s.rate_limit,
            "TACGW_RATE_LIMIT_STORAGE": s.rate_limit_storage,
            "TACGW_CATALOG_TTL_S": str(s.catalog_ttl_s),
            "TACGW_KEY_RELOAD_S": str(s.key_reload_s),
            "TACGW_KEY_REFRESH_MIN_S": str(s.key_refresh_min_s),
            "TACGW_KEY_ENCRYPTION_KEY": s.key_encryption_key.get_secret_value(),
            "TACGW_SIGNING_KEY_FILE": str(s.signing_key_file) + ".unused",
            **env,
        }
        log = self._tmp / f"replica-{port}.log"
        handle = self._stack.enter_context(log.open("wb"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        self._stack.callback(end_process, proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"replica did not start:\n{log.read_text()}")
            time.sleep(0.1)
        return RunningGateway(
            base_url=base,
            database_url=gw.database_url,
            settings=s,
            credentials=gw.credentials,
            org_ids=gw.org_ids,
        )

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
