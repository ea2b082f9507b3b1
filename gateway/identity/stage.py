"""The identity stage: Authorization (and DPoP) headers → verified `Principal`.

It owns the verifier's key sources (the gateway's own keys, each federated issuer's
JWKS) and their refresh tasks.
"""

from __future__ import annotations

import httpx

from gateway.db.access import RequestDb
from gateway.identity.claims import own_issuer
from gateway.identity.dpop import DpopVerifier
from gateway.identity.federation import RemoteJwks, trusted_issuer
from gateway.identity.keyring import OwnKeys
from gateway.identity.principal import Principal
from gateway.identity.replay import ReplayGuard
from gateway.identity.tokens import TokenVerifier, credentials
from gateway.settings import Settings


class Identity:
    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        dpop: DpopVerifier,
        own_keys: OwnKeys,
        remote: list[RemoteJwks] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.verifier = verifier
        self.dpop = dpop
        self.own_keys = own_keys
        self._remote = remote or []
        self._http = http

    async def authenticate(
        self,
        authorization: str | None,
        *,
        proof: str | None = None,
        method: str = "GET",
        path: str = "",
    ) -> Principal:
        scheme, token = credentials(authorization)
        principal = await self.verifier.verify(token)
        if principal.jkt is None and scheme == "bearer":
            return principal  # the plain bearer path: nothing more to prove
        return await self.dpop.resource_request(
            principal, scheme=scheme, token=token, proof=proof, method=method, path=path
        )

    async def close(self) -> None:
        await self.own_keys.close()
        for source in self._remote:
            await source.close()
        if self._http is not None:
            await self._http.aclose()


async def start_identity(
    settings: Settings, *, store: RequestDb, replay: ReplayGuard, top_tier: str
) -> Identity:
    """Load the own keys (they must be there: the issuer made them), start the refreshes."""
    own_keys = OwnKeys(
        store, reload_s=settings.key_reload_s, min_refresh_s=settings.key_refresh_min_s
    )
    await own_keys.load()
    own_keys.start()
    issuers = [own_issuer(issuer=settings.issuer, audience=settings.audience, keys=own_keys)]
    remote: list[RemoteJwks] = []
    http = None
    if settings.federated_issuers:
        # No redirects: a JWKS is fetched from where the configuration says, only.
        http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
    for config in settings.federated_issuers:
        if config.issuer == settings.issuer:
            raise ValueError(f"federated issuer {config.issuer} is the gateway's own issuer")
        assert http is not None
        source = RemoteJwks(config, http)
        source.start()
        remote.append(source)
        issuers.append(trusted_issuer(config, source, top_tier=top_tier))
    dpop = DpopVerifier(replay=replay, max_age_s=settings.dpop_max_age_s, base_url=settings.issuer)
    return Identity(
        verifier=TokenVerifier(issuers), dpop=dpop, own_keys=own_keys, remote=remote, http=http
    )
