"""Verifying access tokens (JWTs) into a `Principal`, for every issuer the gateway trusts.

The issuer named by the token picks everything else: its pinned algorithms (checked
before any key lookup: refuses `none` and HS/RS confusion), its own key source (a key of
issuer A is never even looked up for a token naming issuer B, whatever the `kid`), its
audience and its claim mapping. Verified tokens are cached until they expire.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from gateway.errors import Unauthorized
from gateway.identity.principal import Principal
from gateway.reasons import Reason

# Tolerated clock skew between an issuer and this gateway.
LEEWAY_S = 30


class KeySource(Protocol):
    """Where one issuer's verification keys come from (own table, or a remote JWKS)."""

    def key(self, kid: str, now: float) -> Any | None:
        """The public key for `kid`, or None; may raise `Unavailable` (keys too stale)."""
        ...

    def still_valid(self, kid: str, now: float) -> bool:
        """Whether a verification made earlier with `kid` may still be trusted."""
        ...

    async def refresh_unknown(self, kid: str) -> None:
        """Reload for an unknown `kid`, rate-limited by the source."""
        ...


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    keys: KeySource
    required: tuple[str, ...]
    # Verified claims → Principal; None when a claim the mapping needs is missing.
    to_principal: Callable[[Mapping[str, Any]], Principal | None]


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    not_before: float
    expires: float
    keys: KeySource
    kid: str


class TokenVerifier:
    """Verifies access tokens; every failure is a 401 (503 when an IdP's keys are stale)."""

    def __init__(self, issuers: list[TrustedIssuer], *, cache_size: int = 10_000) -> None:
        # Verified tokens, like Envoy's jwt_authn cache: signature checks dominate the cost
        # of identity, and a client reuses one token for many requests.
        self._verified: dict[str, _Verified] = {}
        self._cache_size = max(cache_size, 1)
        self._issuers = {i.issuer: i for i in issuers}

    async def verify(self, token: str) -> Principal:
        """The principal of `token` (the credentials of an Authorization header)."""
        now = time.time()
        cached = self._verified.get(token)
        # A token is immutable and its signature covers every claim, so a successful check
        # holds until `exp` (or before `nbf`), while the key that signed it is trusted.
        if cached is not None:
            if (
                cached.not_before - LEEWAY_S <= now < cached.expires + LEEWAY_S
                and cached.keys.still_valid(cached.kid, now)
            ):
                return cached.principal
            del self._verified[token]
        verified = await self._verify_fully(token, now)
        if len(self._verified) >= self._cache_size:
            self._verified.pop(next(iter(self._verified)))  # oldest first (insertion order)
        self._verified[token] = verified
        return verified.principal

    async def _verify_fully(self, token: str, now: float) -> _Verified:
        header, unverified = _peek(token)
        iss = unverified.get("iss")
        if iss is None:
            raise Unauthorized(Reason.TOKEN_MISSING_CLAIM, "The token lacks a claim.")
        trusted = self._issuers.get(iss) if isinstance(iss, str) else None
        if trusted is None:
            raise Unauthorized(Reason.TOKEN_WRONG_ISSUER, "The token's issuer is not trusted.")
        alg = header.get("alg")
        # Pinned before any key lookup: refuses `none` and HS/RS confusion outright.
        if alg not in trusted.algorithms:
            raise Unauthorized(
                Reason.TOKEN_ALG_NOT_ALLOWED, "The token's algorithm is not allowed."
            )
        kid = header.get("kid")
        if kid is None:
            raise Unauthorized(Reason.TOKEN_UNKNOWN_KID, "The token was signed by an unknown key.")
        key = trusted.keys.key(kid, now)
        if key is None:
            await trusted.keys.refresh_unknown(kid)
            key = trusted.keys.key(kid, now)
        if key is None:
            raise Unauthorized(Reason.TOKEN_UNKNOWN_KID, "The token was signed by an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=trusted.audience,
                issuer=trusted.issuer,
                leeway=LEEWAY_S,
                options={"require": list(trusted.required)},
            )
        except jwt.PyJWTError as exc:
            raise _map(exc) from exc
        principal = trusted.to_principal(claims)
        if principal is None:
            raise Unauthorized(Reason.TOKEN_MISSING_CLAIM, "The token lacks a claim.")
        return _Verified(
            principal=principal,
            not_before=float(claims.get("nbf", claims.get("iat", 0))),
            expires=float(claims["exp"]),
            keys=trusted.keys,
            kid=kid,
        )


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, unverified: only to pick the issuer (and its key) that verifies.

    Parsed with the C base64 and json decoders rather than PyJWT's (which checks each
    character in Python): the full check follows in `jwt.decode`, once.
    """
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not a compact JWS")
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unauthorized(Reason.TOKEN_MALFORMED, "The access token is malformed.") from exc
    # No extension is understood here (`crit`), and a kid is a string or absent.
    if (
        not isinstance(header, dict)
        or not isinstance(claims, dict)
        or "crit" in header
        or not isinstance(header.get("kid", ""), str)
    ):
        raise Unauthorized(Reason.TOKEN_MALFORMED, "The access token is malformed.")
    return header, claims


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def credentials(authorization: str | None) -> tuple[str, str]:
    """(scheme, token) of an Authorization header; scheme is "bearer" or "dpop"."""
    if not authorization:
        raise Unauthorized(Reason.TOKEN_MISSING, "Missing bearer token.")
    scheme, _, token = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "dpop") or not token.strip():
        raise Unauthorized(Reason.TOKEN_MALFORMED, "Authorization must be 'Bearer <token>'.")
    return scheme, token.strip()


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
