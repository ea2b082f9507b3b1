"""The client side of DPoP (RFC 9449), as a caller writes it: a key, proofs, an httpx auth.

`DpopAuth` is the small custom httpx auth hook docs/defenders.md shows for the official
`openai` SDK: `openai.OpenAI(..., http_client=httpx.Client(auth=DpopAuth(key, token)))`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Generator
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm


class DpopKey:
    """A caller's own P-256 key pair; the gateway binds tokens to its thumbprint."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.public_jwk: dict[str, Any] = json.loads(
            ECAlgorithm.to_jwk(self.private_key.public_key())
        )

    @property
    def thumbprint(self) -> str:
        members = {k: self.public_jwk[k] for k in ("crv", "kty", "x", "y")}
        digest = hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def proof(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        iat: float | None = None,
        jti: str | None = None,
    ) -> str:
        claims: dict[str, Any] = {
            "htm": method,
            "htu": url,
            "iat": int(time.time() if iat is None else iat),
            "jti": jti or uuid.uuid4().hex,
        }
        if token is not None:
            digest = hashlib.sha256(token.encode()).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        headers = {"typ": "dpop+jwt", "jwk": self.public_jwk}
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers=headers)


class DpopAuth(httpx.Auth):
    """Sends the token as `DPoP <token>` with a fresh proof for each request."""

    def __init__(self, key: DpopKey, token: str, *, public_base: str | None = None) -> None:
        self.key = key
        self.token = token
        # Behind a load balancer the proof names the public URL (the gateway's issuer),
        # not the replica's address the request happens to go to.
        self.public_base = public_base

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = str(request.url.copy_with(query=None, fragment=None))
        if self.public_base is not None:
            url = self.public_base.rstrip("/") + request.url.path
        request.headers["Authorization"] = f"DPoP {self.token}"
        request.headers["DPoP"] = self.key.proof(request.method, url, token=self.token)
        yield request
