"""Verified claims → `Principal`: the gateway's own token format, and federated mappings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import Unauthorized
from gateway.identity.principal import Principal
from gateway.identity.tokens import KeySource, TrustedIssuer
from gateway.reasons import Reason
from gateway.settings import ClaimMapping

# Pinned for the gateway's own tokens, whatever else is configured (gateway/issuer/keys.py).
OWN_ALGORITHM = "ES256"
# The claims every gateway-issued token carries (gateway/issuer/tokens.py).
OWN_REQUIRED = ["iss", "aud", "sub", "exp", "iat", "jti", "client_id", "org", "tier"]


def own_principal(claims: Mapping[str, Any]) -> Principal:
    cnf = claims.get("cnf")
    return Principal(
        subject=str(claims["sub"]),
        client_id=str(claims["client_id"]),
        org_id=str(claims["org"]),
        tier_claim=str(claims["tier"]),
        scopes=tuple(str(claims.get("scope", "")).split()),
        token_id=str(claims["jti"]),
        issuer=str(claims["iss"]),
        # Tokens minted before `acr` was added came from client secrets.
        auth_strength=str(claims.get("acr") or "client_secret"),
        roles=_own_roles(claims.get("roles", [])),
        jkt=str(cnf["jkt"]) if isinstance(cnf, dict) and "jkt" in cnf else None,
        expires_at=int(claims["exp"]),
    )


def _own_roles(raw: object) -> tuple[str, ...]:
    # Signed, but still checked: a malformed claim must not become a role by accident.
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise Unauthorized(Reason.TOKEN_MALFORMED, "The token's roles claim is malformed.")
    return tuple(raw)


def claim(claims: Mapping[str, Any], path: str | None) -> Any:
    """A claim by dotted path ("realm_access.roles"), or None."""
    if not path:
        return None
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, str | int))
    return ()


def federated_principal(
    claims: Mapping[str, Any], *, mapping: ClaimMapping, max_tier: str
) -> Principal | None:
    """The principal of a federated token, or None if its subject claim is missing."""
    subject = claim(claims, mapping.subject)
    if not isinstance(subject, str | int) or not str(subject):
        return None
    org = claim(claims, mapping.org)
    tier = claim(claims, mapping.tier)
    auth_time = claim(claims, mapping.auth_time)
    client_id = claims.get("client_id") or claims.get("azp") or subject
    jti = claims.get("jti")
    cnf = claims.get("cnf")
    return Principal(
        subject=str(subject),
        client_id=str(client_id),
        org_id=str(org) if isinstance(org, str | int) else "",
        # Without a tier claim the issuer's cap stands in; the database decides below it.
        tier_claim=str(tier) if isinstance(tier, str) and tier else max_tier,
        scopes=_strings(claims.get("scope", "")) + _strings(claims.get("scp")),
        token_id=str(jti) if jti else "",
        issuer=str(claims["iss"]),
        auth_strength=str(claim(claims, mapping.acr) or "federated"),
        auth_time=int(auth_time) if isinstance(auth_time, int | float) else None,
        roles=_strings(claim(claims, mapping.roles)),
        federated=True,
        jkt=str(cnf["jkt"]) if isinstance(cnf, dict) and "jkt" in cnf else None,
        expires_at=int(claims["exp"]),
    )


def own_issuer(*, issuer: str, audience: str, keys: KeySource) -> TrustedIssuer:
    """The gateway's own issuer, as the verifier trusts it: ES256 only, its own claims."""
    return TrustedIssuer(
        issuer=issuer,
        audience=audience,
        algorithms=(OWN_ALGORITHM,),
        keys=keys,
        required=tuple(OWN_REQUIRED),
        to_principal=own_principal,
    )
