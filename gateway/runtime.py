"""The runtime: the stage objects of one gateway app, built from `Settings` at start.

It holds the stages only; each stage owns its own connections and caches, and `close`
releases them in reverse order of the request path.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.audit.writer import AuditWriter
from gateway.db.access import RequestDb, make_request_db
from gateway.forward.client import make_client
from gateway.forward.upstream import Upstream
from gateway.identity.tokens import TokenVerifier
from gateway.issuer.service import Issuer
from gateway.limits.ratelimit import SubjectLimiter
from gateway.metrics import Metrics
from gateway.policy.bundle import load_bundle
from gateway.policy.factory import make_engine as make_policy_engine
from gateway.policy.service import PolicyService
from gateway.routing.catalog import Catalog
from gateway.settings import Settings
from gateway.trust.resolve import TrustResolver
from gateway.trust.tiers import Tiers


@dataclass(frozen=True)
class Runtime:
    identity: TokenVerifier
    trust: TrustResolver
    catalog: Catalog
    policy: PolicyService
    limits: SubjectLimiter
    upstream: Upstream
    audit: AuditWriter
    issuer: Issuer
    store: RequestDb  # the request path's data access: for readiness and shutdown
    metrics: Metrics
    body_limit: int

    async def close(self) -> None:
        await self.audit.close()
        await self.policy.close()
        await self.upstream.aclose()
        await self.store.close()


async def start_runtime(settings: Settings) -> Runtime:
    bundle = load_bundle(settings.policy_dir)
    tiers = Tiers(bundle.tiers)
    store = make_request_db(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    issuer = Issuer.from_settings(settings, store=store, tiers=tiers)
    policy = PolicyService(make_policy_engine(settings, bundle), policy_dir=settings.policy_dir)
    await policy.start()
    audit = AuditWriter(store)
    audit.start()
    catalog = Catalog(store, ttl_s=settings.catalog_ttl_s)
    metrics = Metrics()
    metrics.watch_screening(
        lambda now: ((r.name, r.screening_status(now)) for r in catalog.snapshot().values())
    )
    return Runtime(
        identity=TokenVerifier(
            jwks=issuer.jwks()["keys"], issuer=settings.issuer, audience=settings.audience
        ),
        trust=TrustResolver(store, tiers),
        catalog=catalog,
        policy=policy,
        limits=SubjectLimiter(rate=settings.rate_limit, storage_uri=settings.rate_limit_storage),
        upstream=Upstream(
            make_client(settings.upstream),
            api_key=settings.upstream_api_key.get_secret_value(),
            retries=settings.upstream.retries_before_first_byte,
        ),
        audit=audit,
        issuer=issuer,
        store=store,
        metrics=metrics,
        body_limit=settings.max_body_bytes,
    )
