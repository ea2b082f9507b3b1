"""Minting the gateway's access tokens: ES256 JWTs (RFC 9068 shape) signed with the current key."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from gateway.issuer.keys import ALGORITHM, SigningKey


class TokenIssuer:
    def __init__(self, *, issuer: str, audience: str, ttl_s: int) -> None:
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s

    def issue(
        self,
        *,
        key: SigningKey,
        client_id: str,
        org_id: str,
        tier: str,
        scope: str,
        auth_strength: str = "client_secret",
        jkt: str | None = None,
        roles: tuple[str, ...] = (),
        jti: str | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": client_id,
            "client_id": client_id,
            "org": org_id,
            "tier": tier,
            "scope": scope,
            # How the client authenticated: the policy may ask for more than a secret.
            "acr": auth_strength,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s,
            "jti": jti or uuid.uuid4().hex,
        }
        if roles:
            # Administrative roles (admin, auditor, org_admin); a defender's token has none.
            claims["roles"] = list(roles)
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6: bound to the caller's DPoP key
        # RFC 9068 §2.1: typ "at+jwt" tells an access token from an ID token.
        headers = {"kid": key.kid, "typ": "at+jwt"}
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers=headers)
