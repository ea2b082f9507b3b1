"""The token verifier driven synchronously from an Authorization header, for unit tests."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.identity.claims import own_issuer
from gateway.identity.keyring import StaticKeys
from gateway.identity.principal import Principal
from gateway.identity.tokens import TokenVerifier, credentials
from gateway.issuer.keys import SigningKey


class SyncVerifier:
    """The real `TokenVerifier` over the gateway's own issuer with fixed keys."""

    def __init__(self, keys: list[SigningKey], *, issuer: str, audience: str, **kw: Any):
        source = StaticKeys([k.public_jwk for k in keys])
        self.inner = TokenVerifier(
            [own_issuer(issuer=issuer, audience=audience, keys=source)], **kw
        )

    @property
    def _verified(self) -> dict[str, Any]:
        return self.inner._verified

    def verify(self, authorization: str | None) -> Principal:
        _, token = credentials(authorization)
        return asyncio.run(self.inner.verify(token))
