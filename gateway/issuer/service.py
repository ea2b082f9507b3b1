"""The issuer as one object: answer a token request, publish the JWKS.

It loads the client's standing through the request path's data access (async, before
authlib's synchronous flow runs) and turns authlib's answers into the gateway's own
reasons and messages: an unknown client and a wrong secret get the same `invalid_client`
answer, so client ids cannot be enumerated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from gateway.db.access import RequestDb
from gateway.issuer.keys import SigningKey, jwks, load_or_create
from gateway.issuer.oauth import FormRequest, OAuthClient, TokenServer
from gateway.issuer.tokens import TokenIssuer
from gateway.reasons import Reason
from gateway.settings import Settings
from gateway.trust.standing import Standing, load_standing
from gateway.trust.tiers import Tiers

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenGranted:
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TokenRefused:
    status: int
    reason: Reason
    description: str
    headers: dict[str, str] = field(default_factory=dict)


# authlib's descriptions can name internals ("cannot authenticate with methods [...]");
# these are what a caller reads instead. None keeps authlib's (about the caller's input).
_DESCRIPTIONS: dict[Reason, str | None] = {
    Reason.INVALID_CLIENT: "Client authentication failed.",
    Reason.UNSUPPORTED_GRANT_TYPE: "Only grant_type=client_credentials is supported.",
    Reason.INVALID_GRANT: "The grant is invalid.",
    Reason.INVALID_SCOPE: None,
    Reason.INVALID_REQUEST: None,
}


class Issuer:
    def __init__(self, *, key: SigningKey, tokens: TokenIssuer, store: RequestDb, tiers: Tiers):
        self._key = key
        self._server = TokenServer(tokens)
        self._store = store
        self._tiers = tiers

    @classmethod
    def from_settings(cls, settings: Settings, *, store: RequestDb, tiers: Tiers) -> Issuer:
        key = load_or_create(settings.signing_key_file)
        tokens = TokenIssuer(
            key=key, issuer=settings.issuer, audience=settings.audience, ttl_s=settings.token_ttl_s
        )
        return cls(key=key, tokens=tokens, store=store, tiers=tiers)

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return jwks([self._key])

    async def token(
        self,
        *,
        form: dict[str, str],
        client_id: str | None,
        uri: str,
        headers: Mapping[str, str],
    ) -> TokenGranted | TokenRefused:
        """Answer a token request; `client_id` is the one named by Basic auth or the form."""
        standing = None
        if client_id:
            try:
                standing = await load_standing(
                    self._store, client_id=client_id, subject=client_id, tiers=self._tiers
                )
            except (SQLAlchemyError, OSError) as exc:
                log.error("client read failed: %s", type(exc).__name__)
                return TokenRefused(
                    status=503,
                    reason=Reason.TRUST_UNAVAILABLE,
                    description="The client store is unavailable; retry later.",
                )
        client = OAuthClient(standing) if standing is not None and standing.client_active else None
        request = FormRequest(method="POST", uri=uri, headers=headers, form=form)
        status, body, reply_headers = self._server.issue(request, client)
        if status == 200:
            return TokenGranted(body)
        return _refusal(status, body, dict(reply_headers), standing)


def _refusal(
    status: int, body: dict[str, Any], headers: dict[str, str], standing: Standing | None
) -> TokenRefused:
    try:
        reason = Reason(body.get("error", ""))
    except ValueError:
        reason = Reason.INVALID_REQUEST
    if reason == Reason.UNAUTHORIZED_CLIENT and standing is not None:
        # Only reached after the secret was checked: saying why leaks nothing.
        description = (
            f"The client's organization is not active (status: {standing.org_status}); "
            "it cannot obtain tokens."
        )
    else:
        description = _DESCRIPTIONS.get(reason) or str(body.get("error_description", ""))
        description = description or "The token request was refused."
    return TokenRefused(status=status, reason=reason, description=description, headers=headers)
