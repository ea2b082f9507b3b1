"""One query for a client's standing now: its organization, status and grants.

Every grant that applies to the subject (its own, or its organization's for every
member) comes back, live or not, in the same indexed read: the live ones give the tier,
and a lapsed one that would have given more says why it no longer does
(`grant_expired`, `grant_revoked`).

The read runs at driver level (`RequestDb.fetch`, gateway/db/prepared.py): it is the one
query of every `/v1` request, and SQLAlchemy's per-call execution was most of its cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_, select

from gateway.db.access import RequestDb
from gateway.db.models import Client, Organization, RevokedToken, TrustGrant
from gateway.db.prepared import PreparedRead
from gateway.reasons import Reason
from gateway.trust.lifecycle import OrgStatus
from gateway.trust.tiers import Tiers


@dataclass(frozen=True, slots=True)
class Standing:
    client_id: str
    client_active: bool
    secret_hash: str
    jwks: str | None  # public keys for private_key_jwt, as registered (JSON)
    roles: tuple[str, ...]
    org_id: str
    org_status: str
    # Highest tier held through a live grant; the lowest tier when there is none, or when
    # the organization is not verified (nothing above the lowest tier without that).
    tier: str
    tier_expires_at: datetime | None
    # A dead grant above `tier`, and why it died: what the caller would hold otherwise.
    lapsed_tier: str | None = None
    lapsed_reason: Reason | None = None
    # The token being checked (by `jti`) is on the revocation list.
    token_revoked: bool = False


_c, _o, _g = Client.__table__.c, Organization.__table__.c, TrustGrant.__table__.c  # type: ignore[attr-defined]
_r = RevokedToken.__table__.c  # type: ignore[attr-defined]

# The revocation list, folded into the same read: one primary-key probe in the query the
# request makes anyway, so a revocation holds on the next request on every replica at no
# extra round trip (docs/architecture.md, "Revocation").
_REVOKED = exists().where(_r.jti == bindparam("jti")).label("token_revoked")

# Built once: the hot path only binds parameters (SQLAlchemy caches the compiled form).
_APPLIES = and_(
    _g.org_id == _o.id,
    or_(_g.subject.is_(None), _g.subject == bindparam("subject")),
)
STANDING_QUERY = (
    select(
        _c.revoked_at,
        _c.secret_hash,
        _c.jwks,
        _c.roles,
        _REVOKED,
        _o.id,
        _o.status,
        _g.tier,
        _g.expires_at,
        _g.revoked_at,
    )
    .select_from(Client.__table__.join(Organization.__table__, _c.org_id == _o.id))  # type: ignore[attr-defined]
    .outerjoin(TrustGrant.__table__, _APPLIES)  # type: ignore[attr-defined]
    .where(_c.id == bindparam("client_id"))
)
STANDING = PreparedRead(STANDING_QUERY)


async def load_standing(
    db: RequestDb,
    *,
    client_id: str,
    subject: str,
    tiers: Tiers,
    jti: str | None = None,
    now: datetime | None = None,
) -> Standing | None:
    rows = await db.fetch(STANDING, {"client_id": client_id, "subject": subject, "jti": jti})
    return standing_of(rows, client_id=client_id, tiers=tiers, now=now or datetime.now(UTC))


def standing_of(
    rows: Sequence[Sequence[Any]], *, client_id: str, tiers: Tiers, now: datetime
) -> Standing | None:
    """The standing that `STANDING_QUERY`'s rows describe (none: no such client)."""
    if not rows:
        return None
    revoked_at, secret_hash, jwks, roles, token_revoked, org_id, org_status = rows[0][:7]
    best, expires = tiers.lowest, None
    lapsed, why = tiers.lowest, None
    for *_, tier, tier_expires, grant_revoked in rows:
        if tier is None:
            continue  # the outer join's row for an organization without grants
        rank = tiers.rank(tier)
        if grant_revoked is None and (tier_expires is None or tier_expires > now):
            if rank > tiers.rank(best):
                best, expires = tier, tier_expires
        elif rank > tiers.rank(lapsed) or (rank == tiers.rank(lapsed) and grant_revoked):
            # Revocation outranks expiry at equal tier: it is the more deliberate act.
            lapsed = tier
            why = Reason.GRANT_REVOKED if grant_revoked is not None else Reason.GRANT_EXPIRED
    if org_status != OrgStatus.VERIFIED:
        best, expires = tiers.lowest, None
    return Standing(
        client_id=client_id,
        client_active=revoked_at is None,
        secret_hash=secret_hash,
        jwks=jwks,
        roles=tuple(roles.split()),
        org_id=org_id,
        org_status=org_status,
        tier=best,
        tier_expires_at=expires,
        lapsed_tier=lapsed if why is not None and tiers.rank(lapsed) > tiers.rank(best) else None,
        lapsed_reason=why if tiers.rank(lapsed) > tiers.rank(best) else None,
        token_revoked=bool(token_revoked),
    )
