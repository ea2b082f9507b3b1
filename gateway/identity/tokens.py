"""Verifying bearer access tokens (ES256 JWTs, algorithm pinned) into a `Principal`."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gateway.errors import Unauthorized
from gateway.identity.principal import Principal
from gateway.reasons import Reason

# Pinned: the only algorithm the gateway's issuer signs with (see gateway.issuer.keys).
ALGORITHM = "ES256"
_REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti", "client_id", "org", "tier"]
# Tolerated clock skew between the issuer and this gateway.
LEEWAY_S = 30


class TokenVerifier:
    """Verifies bearer tokens against a fixed set of public keys; every failure is a 401."""

    def __init__(
        self,
        *,
        jwks: Iterable[dict[str, Any]],
        issuer: str,
        audience: str,
        cache_size: int = 10_000,
    ) -> None:
        # Verified tokens, like Envoy's jwt_authn cache: signature checks dominate the cost
        # of identity, and a client reuses one token for many requests.
        self._verified: dict[str, tuple[Principal, float, float]] = {}
        self._cache_size = max(cache_size, 1)
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        for jwk in jwks:
            key = ECAlgorithm.from_jwk(jwk)
            # A JWKS publishes public keys only; a private one here is a configuration error.
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise ValueError(f"JWKS key {jwk.get('kid')} is not an EC public key")
            self._keys[jwk["kid"]] = key
        self._issuer = issuer
        self._audience = audience

    def verify(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        cached = self._verified.get(token)
        # A token is immutable and its signature covers every claim, so a successful check
        # holds until `exp` (or before `nbf`); only the clock is re-checked on a hit.
        if cached is not None:
            principal, not_before, expires = cached
            if not_before - LEEWAY_S <= time.time() < expires + LEEWAY_S:
                return principal
            del self._verified[token]
        principal, claims = self._verify_fully(token)
        if len(self._verified) >= self._cache_size:
            self._verified.pop(next(iter(self._verified)))  # oldest first (insertion order)
        self._verified[token] = (principal, claims.get("nbf", claims["iat"]), claims["exp"])
        return principal

    def _verify_fully(self, token: str) -> tuple[Principal, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(token)
        # InvalidTokenError, not only DecodeError: a non-string `kid` or an unknown `crit`
        # raises the base class, which would otherwise escape as a 500.
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(Reason.TOKEN_MALFORMED, "The access token is malformed.") from exc
        # Pinned before any key lookup: refuses `none` and HS/RS confusion outright.
        if header.get("alg") != ALGORITHM:
            raise Unauthorized(
                Reason.TOKEN_ALG_NOT_ALLOWED, "The token's algorithm is not allowed."
            )
        key = self._keys.get(header.get("kid", ""))
        if key is None:
            raise Unauthorized(Reason.TOKEN_UNKNOWN_KID, "The token was signed by an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise _map(exc) from exc
        principal = Principal(
            subject=str(claims["sub"]),
            client_id=str(claims["client_id"]),
            org_id=str(claims["org"]),
            tier_claim=str(claims["tier"]),
            scopes=tuple(str(claims.get("scope", "")).split()),
            token_id=str(claims["jti"]),
            issuer=str(claims["iss"]),
            roles=_roles(claims.get("roles", [])),
        )
        return principal, claims


def _roles(raw: object) -> tuple[str, ...]:
    # Signed, but still checked: a malformed claim must not become a role by accident.
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise Unauthorized(Reason.TOKEN_MALFORMED, "The token's roles claim is malformed.")
    return tuple(raw)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized(Reason.TOKEN_MISSING, "Missing bearer token.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(Reason.TOKEN_MALFORMED, "Authorization must be 'Bearer <token>'.")
    return token.strip()


# Order matters: the specific subclasses come before their bases.
_ERRORS: list[tuple[type[jwt.PyJWTError], Reason, str]] = [
    (jwt.ExpiredSignatureError, Reason.TOKEN_EXPIRED, "The access token has expired."),
    (jwt.ImmatureSignatureError, Reason.TOKEN_NOT_YET_VALID, "The access token is not yet valid."),
    (jwt.InvalidAudienceError, Reason.TOKEN_WRONG_AUDIENCE, "The token is not for this gateway."),
    (jwt.InvalidIssuerError, Reason.TOKEN_WRONG_ISSUER, "The token's issuer is not trusted."),
    (jwt.MissingRequiredClaimError, Reason.TOKEN_MISSING_CLAIM, "The token lacks a claim."),
    (jwt.InvalidSignatureError, Reason.TOKEN_BAD_SIGNATURE, "The token's signature is invalid."),
]


def _map(exc: jwt.PyJWTError) -> Unauthorized:
    for cls, reason, message in _ERRORS:
        if isinstance(exc, cls):
            return Unauthorized(reason, message)
    return Unauthorized(Reason.TOKEN_MALFORMED, "The access token is malformed.")
