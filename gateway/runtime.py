"""The runtime: the stage objects of one gateway app, built from `Settings` at start.

It holds the stages only; each stage owns its own connections and caches, and `close`
releases them in reverse order of the request path.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.service import AdminService
from gateway.audit.checkpoint import NoteSigner, NoteVerifier, load_signer
from gateway.audit.ledger import CheckpointPolicy
from gateway.audit.replay import archive_bundle
from gateway.audit.writer import AuditWriter
from gateway.db.access import RequestDb, make_request_db
from gateway.db.engine import make_engine
from gateway.errors import Unavailable
from gateway.forward.client import make_pool
from gateway.forward.meters import Meters
from gateway.forward.probe import Prober
from gateway.forward.upstream import Upstream
from gateway.identity.replay import ReplayGuard
from gateway.identity.stage import Identity, start_identity
from gateway.issuer.keystore import prepare_signing_keys, sealer_for
from gateway.issuer.service import Issuer
from gateway.issuer.tokens import TokenIssuer
from gateway.limits.limiter import Limiter
from gateway.limits.quota import Quotas
from gateway.metrics import Metrics
from gateway.policy.bundle import load_bundle
from gateway.policy.factory import make_engine as make_policy_engine
from gateway.policy.service import PolicyReloadError, PolicyService
from gateway.routing.balance import Balancer
from gateway.routing.catalog import Catalog
from gateway.routing.gauges import TargetGauges
from gateway.routing.health import Rules
from gateway.settings import Settings, audit_log_origin
from gateway.trust.resolve import TrustResolver
from gateway.trust.tiers import Tiers
from gateway.usage.book import UsageBook
from gateway.usage.tokenizer import Tokenizer

log = logging.getLogger(__name__)

_FIRST_LOAD_S = 5.0


@dataclass(frozen=True)
class Runtime:
    identity: Identity
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
    admin: AdminService  # the admin API's own engine, proof checker and policy
    # version → full SHA-256 of each policy bundle archived by this process (for replay).
    policy_digests: dict[str, str]
    # Checks the audit log's checkpoints; its `vkey` is published for auditors.
    audit_log: NoteVerifier
    # The auditor API's own connections: its reads never queue behind the request path.
    audit_reader: AsyncEngine

    async def archive_policy(self) -> None:
        """Keep the deciding bundle in the archive (at start and after each reload), so that
        every decision it makes can be replayed later."""
        bundle = self.policy.bundle
        if bundle is None or bundle.version in self.policy_digests:
            return
        try:
            await self.store.transact(
                lambda conn: archive_bundle(conn, bundle, now=datetime.now(UTC))
            )
        except IntegrityError:
            pass  # a replica starting at the same moment archived it first: it is there
        except Exception as exc:
            # Not migrated yet, or the database is down: the gateway still starts (readiness
            # says why), and the audit writer's timer tries again.
            log.warning("policy %s not archived yet: %s", bundle.version, type(exc).__name__)
            return
        self.policy_digests[bundle.version] = bundle.sha256

    async def reload_policy(self) -> str:
        """Reload the policy; on refusal (PolicyReloadError) the old one keeps serving."""
        try:
            version = await self.policy.reload()
        except PolicyReloadError as exc:
            self.metrics.policy_reloads.labels("refused").inc()
            log.error("%s; still serving policy %s", exc, self.policy.version)
            raise
        self.metrics.policy_reloads.labels("loaded").inc()
        await self.archive_policy()
        return version

    async def close(self) -> None:
        await self.admin.close()
        await self.usage.close()
        await self.audit.close()
        await self.policy.close()
        await self.upstream.aclose()
        await self.identity.close()
        await self.store.close()
        await self.audit_reader.dispose()


async def start_runtime(settings: Settings) -> Runtime:
    bundle = load_bundle(settings.policy_dir)
    tiers = Tiers(bundle.tiers)
    store = make_request_db(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.database_pool_size,
    )
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
    signer = _log_signer(settings)
    audit = AuditWriter(
        store,
        log_policy=CheckpointPolicy(
            signer=signer,
            every=settings.audit_log.checkpoint_every,
            interval=timedelta(seconds=settings.audit_log.checkpoint_interval_s),
        ),
    )
    audit.start()
    metrics = Metrics()
    upstream, catalog = _routing(settings, store, metrics)
    metrics.watch_screening(
        lambda now: ((r.name, r.screening_status(now)) for r in catalog.snapshot().values())
    )
    await _first_load(catalog)
    upstream.start()
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
    runtime = Runtime(
        identity=identity,
        trust=TrustResolver(store, tiers),
        catalog=catalog,
        policy=policy,
        limits=limits,
        upstream=upstream,
        usage=usage,
        tokenizer=Tokenizer(),
        audit=audit,
        issuer=issuer,
        store=store,
        metrics=metrics,
        body_limit=settings.max_body_bytes,
        policy_digests={},
        audit_log=signer.verifier,
        audit_reader=make_engine(settings.database_url),
        admin=AdminService.from_settings(settings, tiers=tiers, policy=policy),
    )
    # Before the first decision, so that every decision can be replayed; retried on the
    # audit writer's timer until it succeeds (and after each policy reload).
    await runtime.archive_policy()
    audit.on_tick(runtime.archive_policy)
    return runtime


def _log_signer(settings: Settings) -> NoteSigner:
    return load_signer(
        origin=audit_log_origin(settings),
        key_file=settings.audit_log.key_file,
        seed_b64=settings.audit_log.key_seed.get_secret_value(),
    )


def _routing(settings: Settings, store: RequestDb, metrics: Metrics) -> tuple[Upstream, Catalog]:
    """The catalog and the forward stage, sharing one balancer (targets and their health)."""
    up = settings.upstream
    balancer = Balancer(Rules.from_settings(up.health))
    metrics.registry.register(TargetGauges(balancer))
    pool = make_pool(up)
    catalog = Catalog(
        store,
        ttl_s=settings.catalog_ttl_s,
        balancer=balancer,
        fallback_key=settings.upstream_api_key.get_secret_value(),
        allowed_hosts=up.allowed_hosts,
        allowed_schemes=up.allowed_schemes,
    )
    upstream = Upstream(
        pool,
        balancer=balancer,
        meters=Meters(metrics),
        retries=up.retries_before_first_byte,
        max_response_bytes=up.max_response_bytes,
        # Each round first refreshes the catalog (within its TTL), so that targets added
        # while no request comes in are checked too.
        prober=Prober(pool.client, balancer, up.health, refresh=catalog.routes),
    )
    return upstream, catalog


async def _first_load(catalog: Catalog) -> None:
    """Load the catalog at start, resolving credentials and logging unusable targets now.

    Not fatal: the database may not be migrated or reachable yet (readiness says so), and
    the first request loads it again.
    """
    try:
        # Bounded: an unreachable database must not hold the process's start for the
        # driver's own connect timeout.
        await asyncio.wait_for(catalog.reload(), _FIRST_LOAD_S)
    except (Unavailable, TimeoutError):
        log.warning("model catalog not loaded at start; it will be on first use")
