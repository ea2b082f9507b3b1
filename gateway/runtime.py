"""The runtime: the stage objects of one gateway app, built from `Settings` at start.

It holds the stages only; each stage owns its own connections and caches, and `close`
releases them in reverse order of the request path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.admin.service import AdminService
from gateway.audit.writer import AuditWriter
from gateway.db.access import RequestDb, make_request_db
from gateway.forward.client import make_client
from gateway.forward.upstream import Upstream
from gateway.identity.replay import ReplayGuard
from gateway.identity.stage import Identity, start_identity
from gateway.issuer.keystore import prepare_signing_keys, sealer_for
from gateway.issuer.service import Issuer
from gateway.issuer.tokens import TokenIssuer
from gateway.limits.ratelimit import SubjectLimiter
from gateway.metrics import Metrics
from gateway.policy.bundle import load_bundle
from gateway.policy.factory import make_engine as make_policy_engine
from gateway.policy.service import PolicyReloadError, PolicyService
from gateway.routing.catalog import Catalog
from gateway.settings import Settings
from gateway.trust.resolve import TrustResolver
from gateway.trust.tiers import Tiers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    identity: Identity
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
    admin: AdminService  # the admin API's own engine, proof checker and policy

    async def reload_policy(self) -> str:
        """Reload the policy; on refusal (PolicyReloadError) the old one keeps serving."""
        try:
            version = await self.policy.reload()
        except PolicyReloadError as exc:
            self.metrics.policy_reloads.labels("refused").inc()
            log.error("%s; still serving policy %s", exc, self.policy.version)
            raise
        self.metrics.policy_reloads.labels("loaded").inc()
        return version

    async def close(self) -> None:
        await self.admin.close()
        await self.audit.close()
        await self.policy.close()
        await self.upstream.aclose()
        await self.identity.close()
        await self.store.close()


async def start_runtime(settings: Settings) -> Runtime:
    bundle = load_bundle(settings.policy_dir)
    tiers = Tiers(bundle.tiers)
    store = make_request_db(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    # Keys first: the verifier loads them, and a wrong KEK must stop the start here.
    sealer = sealer_for(settings)
    await prepare_signing_keys(settings, sealer)
    replay = ReplayGuard(settings.rate_limit_storage)
    identity = await start_identity(settings, store=store, replay=replay, top_tier=tiers.names[-1])
    issuer = Issuer(
        issuer=settings.issuer,
        keys=identity.own_keys,
        sealer=sealer,
        tokens=TokenIssuer(
            issuer=settings.issuer, audience=settings.audience, ttl_s=settings.token_ttl_s
        ),
        store=store,
        tiers=tiers,
        verifier=identity.verifier,
        replay=replay,
        dpop=identity.dpop,
    )
    policy = PolicyService(make_policy_engine(settings, bundle), policy_dir=settings.policy_dir)
    await policy.start()
    audit = AuditWriter(store)
    audit.start()
    return Runtime(
        identity=identity,
        trust=TrustResolver(store, tiers),
        catalog=Catalog(store, ttl_s=settings.catalog_ttl_s),
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
        metrics=Metrics(),
        body_limit=settings.max_body_bytes,
        admin=AdminService.from_settings(settings, tiers=tiers, policy=policy),
    )
