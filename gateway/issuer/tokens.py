"""Minting the gateway's access tokens: ES256 JWTs signed with the current signing key."""

from __future__ import annotations

import time
import uuid

import jwt

from gateway.issuer.keys import ALGORITHM, SigningKey


class TokenIssuer:
    def __init__(self, *, key: SigningKey, issuer: str, audience: str, ttl_s: int) -> None:
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s

    def issue(
        self, *, client_id: str, org_id: str, tier: str, scope: str, roles: tuple[str, ...] = ()
    ) -> str:
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": client_id,
            "client_id": client_id,
            "org": org_id,
            "tier": tier,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
        }
        if roles:
            # Administrative roles (admin, auditor, org_admin); a defender's token has none.
            claims["roles"] = list(roles)
        return jwt.encode(
            claims, self._key.private_key, algorithm=ALGORITHM, headers={"kid": self._key.kid}
        )
