"""The policy input, built in one place: `{principal, trust, model, request}`.

Every engine receives exactly this document (see docs/architecture.md for its fields);
the decision corpus in tests/policy/ is written against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.identity.principal import Principal
from gateway.routing.catalog import Route
from gateway.trust.resolve import Trust


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the policy may know of the request itself (never its prompt text)."""

    endpoint: str
    stream: bool = False
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class PolicyInput:
    principal: Principal
    trust: Trust
    model: Route
    request: RequestFacts
    # When the decision is made: a screening report that has expired by now does not count.
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def document(self) -> dict[str, Any]:
        p, t, m, r = self.principal, self.trust, self.model, self.request
        return {
            "principal": {
                "sub": p.subject,
                "client_id": p.client_id,
                "org_id": p.org_id,
                "tier_claim": p.tier_claim,
                "scopes": list(p.scopes),
                "token_id": p.token_id,
                "issuer": p.issuer,
                "federated": p.federated,
                "roles": list(p.roles),
                # How strongly the caller authenticated, and when (federated `auth_time`).
                "auth_strength": p.auth_strength,
                "auth_time": p.auth_time,
                # Proof of possession: "dpop" when this request proved the token's key.
                "pop": p.pop,
                "token_bound": p.jkt is not None,
            },
            "trust": {
                "tier": t.tier,
                "org_id": t.org_id,
                "org_status": t.org_status,
                "tier_expires_at": t.tier_expires_at.isoformat() if t.tier_expires_at else None,
                # A dead grant that would have given more, and why it is dead: lets the
                # policy say `grant_expired` / `grant_revoked` instead of `tier_too_low`.
                "lapsed": (
                    {"tier": t.lapsed_tier, "reason": t.lapsed_reason} if t.lapsed_tier else None
                ),
            },
            "model": {
                "name": m.name,
                "tier_floor": m.tier_floor,
                "screening": m.screening_status(self.at).policy_input(),
            },
            "request": {
                "endpoint": r.endpoint,
                "stream": r.stream,
                "max_tokens": r.max_tokens,
            },
        }
