"""The runtime: every long-lived part of one gateway app, built from `Settings` at start."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.writer import AuditWriter
from gateway.db.access import RequestDb, make_request_db
from gateway.db.engine import make_engine
from gateway.forward.client import make_client
from gateway.forward.upstream import Upstream
from gateway.identity.keys import SigningKey, jwks, load_or_create
from gateway.identity.oauth import TokenServer
from gateway.identity.tokens import TokenIssuer, TokenVerifier
from gateway.limits.ratelimit import SubjectLimiter
from gateway.metrics import Metrics
from gateway.policy.bundle import load_bundle
from gateway.policy.engine import PolicyEngine
from gateway.policy.factory import make_engine as make_policy_engine
from gateway.routing.catalog import Catalog
from gateway.settings import Settings
from gateway.trust.resolve import TrustResolver
from gateway.trust.tiers import Tiers


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: AsyncEngine
    request_db: RequestDb
    tiers: Tiers
    signing_key: SigningKey
    verifier: TokenVerifier
    token_server: TokenServer
    trust: TrustResolver
    catalog: Catalog
    policy: PolicyEngine
    limiter: SubjectLimiter
    http: httpx.AsyncClient
    upstream: Upstream
    audit: AuditWriter
    metrics: Metrics


async def start_runtime(settings: Settings) -> Runtime:
    bundle = load_bundle(settings.policy_dir)
    tiers = Tiers(bundle.tiers)
    db = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    request_db = make_request_db(
        settings.database_url, db, sqlite_synchronous=settings.sqlite_synchronous
    )
    key = load_or_create(settings.signing_key_file)
    issuer = TokenIssuer(
        key=key, issuer=settings.issuer, audience=settings.audience, ttl_s=settings.token_ttl_s
    )
    http = make_client(settings.upstream)
    policy = make_policy_engine(settings, bundle)
    await policy.start()
    audit = AuditWriter(request_db)
    audit.start()
    return Runtime(
        settings=settings,
        db=db,
        request_db=request_db,
        tiers=tiers,
        signing_key=key,
        verifier=TokenVerifier(
            jwks=jwks([key])["keys"], issuer=settings.issuer, audience=settings.audience
        ),
        token_server=TokenServer(issuer),
        trust=TrustResolver(request_db, tiers),
        catalog=Catalog(db, ttl_s=settings.catalog_ttl_s),
        policy=policy,
        limiter=SubjectLimiter(rate=settings.rate_limit, storage_uri=settings.rate_limit_storage),
        http=http,
        upstream=Upstream(
            http,
            api_key=settings.upstream_api_key.get_secret_value(),
            retries=settings.upstream.retries_before_first_byte,
        ),
        audit=audit,
        metrics=Metrics(),
    )


async def stop_runtime(rt: Runtime) -> None:
    await rt.audit.close()
    await rt.policy.close()
    await rt.http.aclose()
    rt.request_db.close()
    await rt.db.dispose()
