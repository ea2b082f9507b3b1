"""The trust stage: effective tier = the lower of the token's claim and the database, now."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from gateway.db.access import RequestDb
from gateway.errors import Forbidden, Unauthorized, Unavailable
from gateway.identity.principal import Principal
from gateway.reasons import Reason
from gateway.trust.federated import load_federated_standing
from gateway.trust.standing import load_standing
from gateway.trust.tiers import Tiers

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Trust:
    tier: str
    org_id: str
    org_status: str
    tier_expires_at: datetime | None
    # The tier a dead grant would have given (capped by the claim) and why it is dead
    # (`grant_expired` | `grant_revoked`); None when no dead grant would give more.
    lapsed_tier: str | None = None
    lapsed_reason: str | None = None
    # The roles the client holds now (a token's `roles` claim counts only within these).
    roles: tuple[str, ...] = ()


class TrustResolver:
    def __init__(self, db: RequestDb, tiers: Tiers) -> None:
        self._db = db
        self._tiers = tiers

    async def resolve(self, principal: Principal) -> Trust:
        # Read per request, so that a revocation takes effect on the next call.
        if principal.federated:
            return await self._resolve_federated(principal)
        try:
            standing = await load_standing(
                self._db,
                client_id=principal.client_id,
                subject=principal.subject,
                tiers=self._tiers,
                jti=principal.token_id,
            )
        except (SQLAlchemyError, OSError) as exc:
            # Without the database's word on this principal there is no decision: fail closed.
            log.error("trust read failed: %s", type(exc).__name__)
            raise Unavailable(
                Reason.TRUST_UNAVAILABLE, "The trust store is unavailable; retry later."
            ) from exc
        if standing is None:
            raise Unauthorized(Reason.CLIENT_UNKNOWN, "The token's client no longer exists.")
        if not standing.client_active:
            raise Unauthorized(Reason.CLIENT_REVOKED, "The token's client has been revoked.")
        if standing.token_revoked:
            raise Unauthorized(Reason.TOKEN_REVOKED, "The access token has been revoked.")
        if standing.org_id != principal.org_id:
            # The client moved organizations after the token was issued: the claim is stale.
            raise Unauthorized(Reason.CLIENT_UNKNOWN, "The token's organization is out of date.")
        tier = self._tiers.lower(principal.tier_claim, standing.tier)
        lapsed = None
        if standing.lapsed_tier is not None:
            # What the dead grant would give this token: no more than the token claims.
            lapsed = self._tiers.lower(principal.tier_claim, standing.lapsed_tier)
            if self._tiers.rank(lapsed) <= self._tiers.rank(tier):
                lapsed = None
        return Trust(
            tier=tier,
            org_id=standing.org_id,
            org_status=standing.org_status,
            tier_expires_at=standing.tier_expires_at,
            lapsed_tier=lapsed,
            lapsed_reason=str(standing.lapsed_reason) if lapsed else None,
            roles=standing.roles,
        )

    async def _resolve_federated(self, principal: Principal) -> Trust:
        try:
            standing = await load_federated_standing(
                self._db,
                issuer=principal.issuer,
                org_claim=principal.org_id,
                subject=principal.subject,
                tiers=self._tiers,
            )
        except (SQLAlchemyError, OSError) as exc:
            log.error("trust read failed: %s", type(exc).__name__)
            raise Unavailable(
                Reason.TRUST_UNAVAILABLE, "The trust store is unavailable; retry later."
            ) from exc
        if len(standing.org_ids) != 1:
            # No binding: the token names an organization that does not own this issuer
            # (or subject). Several: the bindings overlap, and none may be guessed.
            why = "is bound to no" if not standing.org_ids else "matches more than one"
            raise Forbidden(
                Reason.ORG_NOT_MAPPED, f"The token's issuer and subject {why} organization."
            )
        return Trust(
            tier=self._tiers.lower(principal.tier_claim, standing.tier),
            org_id=standing.org_ids[0],
            org_status=standing.org_status,
            tier_expires_at=standing.tier_expires_at,
        )
