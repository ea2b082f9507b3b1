"""The runtime: the stage objects of one gateway app, built from `Settings` at start.

It holds the stages only; each stage owns its own connections and caches, and `close`
releases them in reverse order of the request path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.checkpoint import NoteSigner, NoteVerifier, load_signer
from gateway.audit.ledger import CheckpointPolicy
from gateway.audit.replay import archive_bundle
from gateway.audit.writer import AuditWriter
from gateway.db.access import RequestDb, make_request_db
from gateway.db.engine import make_engine
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
from gateway.settings import Settings, audit_log_origin
from gateway.trust.resolve import TrustResolver
from gateway.trust.tiers import Tiers

log = logging.getLogger(__name__)


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

    async def close(self) -> None:
        await self.audit.close()
        await self.policy.close()
        await self.upstream.aclose()
        await self.store.close()
        await self.audit_reader.dispose()


async def start_runtime(settings: Settings) -> Runtime:
    bundle = load_bundle(settings.policy_dir)
    tiers = Tiers(bundle.tiers)
    store = make_request_db(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    issuer = Issuer.from_settings(settings, store=store, tiers=tiers)
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
    runtime = Runtime(
        identity=TokenVerifier(
            jwks=issuer.jwks()["keys"], issuer=settings.issuer, audience=settings.audience
        ),
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
        policy_digests={},
        audit_log=signer.verifier,
        audit_reader=make_engine(settings.database_url),
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
