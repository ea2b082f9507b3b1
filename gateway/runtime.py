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
from gateway.limits.limiter import Limiter
from gateway.limits.quota import Quotas
from gateway.metrics import Metrics
from gateway.policy.bundle import load_bundle
from gateway.policy.factory import make_engine as make_policy_engine
from gateway.policy.service import PolicyService
from gateway.routing.catalog import Catalog
from gateway.settings import Settings
from gateway.trust.resolve import TrustResolver
from gateway.trust.tiers import Tiers
from gateway.usage.book import UsageBook
from gateway.usage.tokenizer import Tokenizer


@dataclass(frozen=True)
class Runtime:
    identity: TokenVerifier
    trust: TrustResolver
    catalog: Catalog
    policy: PolicyService
    limits: Limiter
    upstream: Upstream
    usage: UsageBook
    tokenizer: Tokenizer
    audit: AuditWriter
    issuer: Issuer
    store: RequestDb  # the request path's data access: for readiness and shutdown
    metrics: Metrics
    body_limit: int

    async def close(self) -> None:
        await self.usage.close()
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
    metrics = Metrics()
    limits = Limiter(
        rate=settings.rate_limit,
        storage_uri=settings.rate_limit_storage,
        quotas=Quotas.from_config(
            policy_data=bundle.data, overrides=settings.tier_limits, tiers=bundle.tiers
        ),
        in_flight_ttl_s=settings.in_flight_ttl_s,
        metrics=metrics,
        tiers=bundle.tiers,
    )
    usage = UsageBook(store, flush_s=settings.usage_flush_s, metrics=metrics)
    usage.start()
    return Runtime(
        identity=TokenVerifier(
            jwks=issuer.jwks()["keys"], issuer=settings.issuer, audience=settings.audience
        ),
        trust=TrustResolver(store, tiers),
        catalog=Catalog(store, ttl_s=settings.catalog_ttl_s),
        policy=policy,
        limits=limits,
        upstream=Upstream(
            make_client(settings.upstream),
            api_key=settings.upstream_api_key.get_secret_value(),
            retries=settings.upstream.retries_before_first_byte,
        ),
        usage=usage,
        tokenizer=Tokenizer(),
        audit=audit,
        issuer=issuer,
        store=store,
        metrics=metrics,
        body_limit=settings.max_body_bytes,
    )
