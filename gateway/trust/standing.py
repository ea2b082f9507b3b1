"""One query for a client's standing now: its organization, status and best live grant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select

from gateway.db.access import RequestDb
from gateway.db.models import Client, Organization, TrustGrant
from gateway.trust.tiers import Tiers


@dataclass(frozen=True, slots=True)
class Standing:
    client_id: str
    client_active: bool
    secret_hash: str
    org_id: str
    org_status: str
    # Highest tier held through a live grant; the lowest tier when there is none.
    tier: str
    tier_expires_at: datetime | None
    roles: tuple[str, ...] = ()


_c, _o, _g = Client.__table__.c, Organization.__table__.c, TrustGrant.__table__.c  # type: ignore[attr-defined]

# Built once: the hot path only binds parameters (SQLAlchemy caches the compiled form).
_LIVE_GRANT = and_(
    _g.org_id == _o.id,
    or_(_g.subject.is_(None), _g.subject == bindparam("subject")),
    _g.revoked_at.is_(None),
    or_(_g.expires_at.is_(None), _g.expires_at > bindparam("now", type_=_g.expires_at.type)),
)
STANDING_QUERY = (
    select(_c.revoked_at, _c.secret_hash, _o.id, _o.status, _c.roles, _g.tier, _g.expires_at)
    .select_from(Client.__table__.join(Organization.__table__, _c.org_id == _o.id))  # type: ignore[attr-defined]
    .outerjoin(TrustGrant.__table__, _LIVE_GRANT)  # type: ignore[attr-defined]
    .where(_c.id == bindparam("client_id"))
)


async def load_standing(
    db: RequestDb, *, client_id: str, subject: str, tiers: Tiers, now: datetime | None = None
) -> Standing | None:
    params = {"client_id": client_id, "subject": subject, "now": now or datetime.now(UTC)}
    rows: Sequence[Any] = await db.read(STANDING_QUERY, params)
    if not rows:
        return None
    revoked_at, secret_hash, org_id, org_status, roles = rows[0][:5]
    best, expires = tiers.lowest, None
    for *_, tier, tier_expires in rows:
        if tier is not None and tiers.rank(tier) > tiers.rank(best):
            best, expires = tier, tier_expires
    return Standing(
        client_id=client_id,
        client_active=revoked_at is None,
        secret_hash=secret_hash,
        org_id=org_id,
        org_status=org_status,
        tier=best,
        tier_expires_at=expires,
        roles=tuple(roles.split()),
    )
