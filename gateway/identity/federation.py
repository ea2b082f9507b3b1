"""Federated identity providers: each configured issuer's JWKS, fetched and cached.

Keys come from the issuer's `jwks_uri` (directly, or found through OpenID discovery,
whose `issuer` must be the configured one). They are refreshed every `jwks_ttl_s`, and
on a token naming an unknown `kid` at most once per `refresh_min_s`. While the IdP is
down the cached keys keep verifying until `max_stale_s` after the last good fetch; then
its tokens are refused with 503 `idp_unavailable`: fail closed, never open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
import jwt

from gateway.errors import Unavailable
from gateway.identity.claims import federated_principal
from gateway.identity.principal import Principal
from gateway.identity.tokens import TrustedIssuer
from gateway.reasons import Reason
from gateway.settings import FederatedIssuer

log = logging.getLogger(__name__)

FEDERATED_REQUIRED = ("iss", "aud", "exp", "iat")


class RemoteJwks:
    """One federated issuer's keys (a key source of the verifier)."""

    def __init__(self, config: FederatedIssuer, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http
        self._jwks_uri = config.jwks_uri
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None  # wall clock of the last good fetch
        self._last_attempt = -float("inf")  # monotonic
        self._task: asyncio.Task[None] | None = None

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at > self._config.max_stale_s

    def key(self, kid: str, now: float) -> Any | None:
        return None if self._stale(now) else self._keys.get(kid)

    def still_valid(self, kid: str, now: float) -> bool:
        return not self._stale(now) and kid in self._keys

    async def refresh_unknown(self, kid: str) -> None:
        if time.monotonic() - self._last_attempt >= self._config.refresh_min_s:
            with contextlib.suppress(Exception):  # logged by refresh
                await self.refresh()
        if self._stale(time.time()):
            raise Unavailable(
                Reason.IDP_UNAVAILABLE,
                "The identity provider's keys cannot be fetched; retry later.",
            )

    async def refresh(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            if self._config.discovery_url and self._jwks_uri is None:
                self._jwks_uri = await self._discover()
            assert self._jwks_uri is not None
            reply = await self._http.get(self._jwks_uri)
            reply.raise_for_status()
            keys = _parse(reply.json(), self._config.algorithms)
        except Exception as exc:
            log.warning("JWKS of %s not fetched: %s", self._config.issuer, type(exc).__name__)
            if self._config.discovery_url:
                self._jwks_uri = None  # the IdP may have moved its keys: discover again
            raise
        self._keys, self._fetched_at = keys, time.time()

    async def _discover(self) -> str:
        assert self._config.discovery_url is not None
        reply = await self._http.get(self._config.discovery_url)
        reply.raise_for_status()
        document = reply.json()
        # OpenID Connect Discovery §4.3: the document must name the issuer we trust, or
        # its keys would verify tokens claiming to come from elsewhere.
        if str(document.get("issuer", "")).rstrip("/") != self._config.issuer:
            raise ValueError("discovery document names another issuer")
        uri = document.get("jwks_uri")
        if not isinstance(uri, str) or not uri:
            raise ValueError("discovery document has no jwks_uri")
        return uri

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
                delay = self._config.jwks_ttl_s
            except Exception:
                delay = min(self._config.jwks_ttl_s, max(self._config.refresh_min_s, 1.0))
            await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _parse(document: Any, algorithms: list[str]) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS")
    keys: dict[str, Any] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use") == "enc" or "d" in jwk:
            continue  # encryption keys and anything private are not for verifying
        kid, alg = jwk.get("kid"), jwk.get("alg")
        if not isinstance(kid, str) or (alg is not None and alg not in algorithms):
            continue
        try:
            keys[kid] = jwt.PyJWK(jwk).key
        except jwt.PyJWTError:
            continue
    return keys


def trusted_issuer(config: FederatedIssuer, keys: RemoteJwks, *, top_tier: str) -> TrustedIssuer:
    mapping = config.claims
    max_tier = config.max_tier or top_tier

    def to_principal(claims: Mapping[str, Any]) -> Principal | None:
        return federated_principal(claims, mapping=mapping, max_tier=max_tier)

    return TrustedIssuer(
        issuer=config.issuer,
        audience=config.audience,
        algorithms=tuple(config.algorithms),
        keys=keys,
        required=FEDERATED_REQUIRED,
        to_principal=to_principal,
    )
