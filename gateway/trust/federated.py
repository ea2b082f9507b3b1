"""Standing of a federated principal: the organization its issuer binding names, now.

One query: the `orgissuer` rows that match the token (same issuer; same organization
claim and subject where the row sets them), joined to the organization and its live
grants. A token whose issuer, claim or subject matches no binding belongs to no
organization, whatever it claims; two organizations matching is refused as ambiguous.
Read at driver level, as the standing of the gateway's own clients (standing.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select

from gateway.db.access import RequestDb
from gateway.db.models import Organization, OrgIssuer, TrustGrant
from gateway.db.prepared import PreparedRead
from gateway.trust.lifecycle import OrgStatus
from gateway.trust.tiers import Tiers

_b, _o, _g = OrgIssuer.__table__.c, Organization.__table__.c, TrustGrant.__table__.c  # type: ignore[attr-defined]

_LIVE_GRANT = and_(
    _g.org_id == _o.id,
    or_(_g.subject.is_(None), _g.subject == bindparam("subject")),
    _g.revoked_at.is_(None),
    or_(_g.expires_at.is_(None), _g.expires_at > bindparam("now", type_=_g.expires_at.type)),
)
BINDING_QUERY = (
    select(_o.id, _o.status, _g.tier, _g.expires_at)
    .select_from(OrgIssuer.__table__.join(Organization.__table__, _b.org_id == _o.id))  # type: ignore[attr-defined]
    .outerjoin(TrustGrant.__table__, _LIVE_GRANT)  # type: ignore[attr-defined]
    .where(
        _b.issuer == bindparam("issuer"),
        or_(_b.org_claim.is_(None), _b.org_claim == bindparam("org_claim")),
        or_(_b.subject.is_(None), _b.subject == bindparam("subject")),
    )
)
BINDING = PreparedRead(BINDING_QUERY)


@dataclass(frozen=True, slots=True)
class FederatedStanding:
    org_ids: tuple[str, ...]  # every organization a binding matched (one, normally)
    org_status: str
    tier: str
    tier_expires_at: datetime | None


async def load_federated_standing(
    db: RequestDb,
    *,
    issuer: str,
    org_claim: str,
    subject: str,
    tiers: Tiers,
    now: datetime | None = None,
) -> FederatedStanding:
    params = {
        "issuer": issuer,
        "org_claim": org_claim,
        "subject": subject,
        "now": now or datetime.now(UTC),
    }
    return federated_standing_of(await db.fetch(BINDING, params), tiers=tiers)


def federated_standing_of(rows: Sequence[Sequence[Any]], *, tiers: Tiers) -> FederatedStanding:
    """The standing that `BINDING_QUERY`'s rows describe."""
    org_ids = tuple(sorted({row[0] for row in rows}))
    best, expires, status = tiers.lowest, None, ""
    for _org, org_status, tier, tier_expires in rows:
        status = org_status
        if tier is not None and tiers.rank(tier) > tiers.rank(best):
            best, expires = tier, tier_expires
    if status != OrgStatus.VERIFIED:
        # As for the organization's own clients: nothing above the lowest tier unverified.
        best, expires = tiers.lowest, None
    return FederatedStanding(org_ids=org_ids, org_status=status, tier=best, tier_expires_at=expires)
