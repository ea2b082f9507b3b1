"""The issuer as one object: the token, revocation and introspection endpoints, the JWKS
and the server metadata.

Before authlib's synchronous flow runs, it does every read authlib will need (async): the
client's standing, the current signing key, the token being revoked or introspected, the
DPoP proof. After it, it does the writes authlib asked for: the revocation, the client
assertion's `jti`. It turns authlib's answers into the gateway's own reasons and
messages: an unknown client and a wrong secret get the same `invalid_client` answer, so
client ids cannot be enumerated. Every answer carries its `OAuthFacts` (`facts.py`), what
the pipeline audits it with (`gateway/pipeline/oauth.py`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from gateway.db.access import RequestDb
from gateway.db.models import RevokedToken
from gateway.errors import GatewayError
from gateway.identity.dpop import DpopVerifier
from gateway.identity.keyring import OwnKeys
from gateway.identity.replay import ReplayGuard
from gateway.identity.tokens import LEEWAY_S, TokenVerifier
from gateway.issuer.facts import OAuthFacts, Scalar
from gateway.issuer.keys import ALGORITHM, SigningKey
from gateway.issuer.keystore import load_private
from gateway.issuer.metadata import (
    INTROSPECTION_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    metadata,
)
from gateway.issuer.oauth import (
    SUPPORTED_SCOPES,
    Exchange,
    FormRequest,
    KnownToken,
    OAuthClient,
    TokenServer,
)
from gateway.issuer.sealing import Sealer, SealError
from gateway.issuer.tokens import TokenIssuer
from gateway.reasons import Reason
from gateway.trust.lifecycle import OrgStatus
from gateway.trust.standing import Standing, load_standing
from gateway.trust.tiers import Tiers

log = logging.getLogger(__name__)

_REVOKED = RevokedToken.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class TokenGranted:
    body: dict[str, Any]
    facts: OAuthFacts = field(default_factory=OAuthFacts)
    decision_id: str | None = None  # the audit event's id, once it is committed


@dataclass(frozen=True, slots=True)
class TokenRefused:
    status: int
    reason: Reason
    description: str
    headers: dict[str, str] = field(default_factory=dict)
    facts: OAuthFacts = field(default_factory=OAuthFacts)
    decision_id: str | None = None
    # The RFC 6749 `error` when it is not the reason itself (503 temporarily_unavailable,
    # reason audit_unavailable).
    error: Reason | None = None


class _Refusal(Exception):
    def __init__(self, refused: TokenRefused) -> None:
        self.refused = refused


# authlib's descriptions can name internals ("cannot authenticate with methods [...]");
# these are what a caller reads instead. None keeps authlib's (about the caller's input).
_DESCRIPTIONS: dict[Reason, str | None] = {
    Reason.INVALID_CLIENT: "Client authentication failed.",
    Reason.UNSUPPORTED_GRANT_TYPE: "Only grant_type=client_credentials is supported.",
    Reason.INVALID_GRANT: "The grant is invalid.",
    Reason.INVALID_SCOPE: None,
    Reason.INVALID_REQUEST: None,
    Reason.UNSUPPORTED_TOKEN_TYPE: None,
}


class Issuer:
    def __init__(
        self,
        *,
        issuer: str,
        keys: OwnKeys,
        sealer: Sealer,
        tokens: TokenIssuer,
        store: RequestDb,
        tiers: Tiers,
        verifier: TokenVerifier,
        replay: ReplayGuard,
        dpop: DpopVerifier,
    ) -> None:
        self._issuer = issuer
        self._keys = keys
        self._sealer = sealer
        self._signing: SigningKey | None = None
        self._store = store
        self._tiers = tiers
        self._verifier = verifier
        self._replay = replay
        self._dpop = dpop
        self._token_url = issuer + TOKEN_PATH
        # RFC 7523 §3: the audience of an assertion is the server: its issuer identifier
        # or the endpoint the assertion is sent to.
        paths = (TOKEN_PATH, REVOCATION_PATH, INTROSPECTION_PATH)
        audiences = [issuer] + [issuer + p for p in paths]
        self._server = TokenServer(tokens, audiences=audiences)

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return self._keys.jwks()

    def metadata(self) -> dict[str, Any]:
        return metadata(issuer=self._issuer, scopes=SUPPORTED_SCOPES, signing_alg=ALGORITHM)

    async def token(
        self,
        *,
        form: dict[str, str],
        client_id: str | None,
        uri: str,
        headers: Mapping[str, str],
        dpop_proof: str | None = None,
    ) -> TokenGranted | TokenRefused:
        """Answer a token request; `client_id` is the one named by Basic auth or the form."""
        try:
            standing, exchange = await self._prepare(form, client_id)
            if exchange.client is not None:
                exchange.key = await self._signing_key()
            if dpop_proof is not None:
                # RFC 9449 §5: a proof for the token endpoint binds the token to its key.
                try:
                    exchange.jkt = await self._dpop.token_request(
                        dpop_proof, htm="POST", htu=self._token_url
                    )
                except GatewayError as exc:
                    # Checked before the client authenticates: the event names no client.
                    refused = TokenRefused(400, Reason.INVALID_DPOP_PROOF, exc.message)
                    raise _Refusal(refused) from exc
            answer = await self._run("token", form, uri, headers, standing, exchange)
            return replace(answer, facts=_token_facts(exchange, answer))
        except _Refusal as refusal:
            return refusal.refused

    async def revoke(
        self, *, form: dict[str, str], client_id: str | None, uri: str, headers: Mapping[str, str]
    ) -> TokenGranted | TokenRefused:
        """RFC 7009: revoke one of the gateway's tokens, for the client it was issued to."""
        try:
            standing, exchange = await self._prepare(form, client_id)
            exchange.token = await self._known(form.get("token"))
            answer = await self._run("revocation", form, uri, headers, standing, exchange)
            if isinstance(answer, TokenGranted) and exchange.to_revoke is not None:
                try:
                    await self._record_revocation(exchange.to_revoke)
                except _Refusal as refusal:
                    exchange.to_revoke = None
                    return replace(refusal.refused, facts=_revocation_facts(exchange))
            return replace(answer, facts=_revocation_facts(exchange))
        except _Refusal as refusal:
            return refusal.refused

    async def introspect(
        self, *, form: dict[str, str], client_id: str | None, uri: str, headers: Mapping[str, str]
    ) -> TokenGranted | TokenRefused:
        """RFC 7662: whether a token is active now, and its claims, for a resource server."""
        try:
            standing, exchange = await self._prepare(form, client_id)
            exchange.token = await self._known(form.get("token"))
            answer = await self._run("introspection", form, uri, headers, standing, exchange)
            return replace(answer, facts=_introspection_facts(exchange, answer))
        except _Refusal as refusal:
            return refusal.refused

    async def _prepare(
        self, form: dict[str, str], client_id: str | None
    ) -> tuple[Standing | None, Exchange]:
        client_id = client_id or _assertion_subject(form)
        standing = None
        if client_id:
            standing = await self._standing(client_id=client_id, subject=client_id)
        client = OAuthClient(standing) if standing is not None and standing.client_active else None
        return standing, Exchange(client=client)

    async def _run(
        self,
        endpoint: str,
        form: dict[str, str],
        uri: str,
        headers: Mapping[str, str],
        standing: Standing | None,
        exchange: Exchange,
    ) -> TokenGranted | TokenRefused:
        request = FormRequest(method="POST", uri=uri, headers=headers, form=form)
        status, body, reply_headers = self._server.run(endpoint, request, exchange)
        if status == 200 and exchange.assertion is not None:
            client, jti, exp = exchange.assertion
            ttl = max(exp - datetime.now(UTC).timestamp(), 0) + LEEWAY_S
            # RFC 7523 §3 (7): an assertion is good once; a replayed one authenticates no one.
            if not await self._first_use("assertion", f"{client}:{jti}", ttl):
                exchange.authenticated = None  # a replayed assertion authenticates no one
                return _refusal(401, {"error": "invalid_client"}, {}, None)
        if status == 200:
            return TokenGranted(body)
        return _refusal(status, body, dict(reply_headers), standing)

    async def _first_use(self, kind: str, value: str, ttl: float) -> bool:
        try:
            return await self._replay.first_use(kind=kind, value=value, ttl_s=ttl)
        except GatewayError as exc:
            raise _Refusal(TokenRefused(503, exc.reason, exc.message)) from exc

    async def _standing(self, **where: Any) -> Standing | None:
        try:
            return await load_standing(self._store, tiers=self._tiers, **where)
        except (SQLAlchemyError, OSError) as exc:
            log.error("client read failed: %s", type(exc).__name__)
            raise _Refusal(
                TokenRefused(503, Reason.TRUST_UNAVAILABLE, "The client store is unavailable.")
            ) from exc

    async def _signing_key(self) -> SigningKey:
        """The current key; a rotation made by another replica shows up after its reload."""
        kid = self._keys.current_kid
        if self._signing is not None and self._signing.kid == kid:
            return self._signing
        try:
            if kid is None:
                await self._keys.load()
                kid = self._keys.current_kid
            if kid is None:
                raise LookupError("no current signing key")
            self._signing = await load_private(self._store, kid=kid, sealer=self._sealer)
        except (SQLAlchemyError, OSError, LookupError, SealError) as exc:
            log.error("signing key unavailable: %s", exc)
            raise _Refusal(
                TokenRefused(503, Reason.KEYS_UNAVAILABLE, "No signing key is available; retry.")
            ) from exc
        return self._signing

    async def _known(self, token: str | None) -> KnownToken | None:
        """The gateway's own token, verified, and whether it is dead now; None otherwise."""
        if not token:
            return None
        try:
            principal = await self._verifier.verify(token)
        except GatewayError:
            return None  # expired, forged, not ours: "not active" (RFC 7662 §2.2)
        if principal.federated:
            return None  # another issuer's token: that issuer answers for it
        standing = await self._standing(
            client_id=principal.client_id, subject=principal.subject, jti=principal.token_id
        )
        dead = (
            standing is None
            or not standing.client_active
            or standing.token_revoked
            or standing.org_status != OrgStatus.VERIFIED
            or standing.org_id != principal.org_id
        )
        claims = jwt.decode(token, options={"verify_signature": False})  # verified above
        return KnownToken(principal=principal, claims=claims, dead=dead)

    async def _record_revocation(self, token: KnownToken) -> None:
        now = datetime.now(UTC)
        row = {
            "jti": token.principal.token_id,
            "client_id": token.principal.client_id,
            "exp": datetime.fromtimestamp(token.principal.expires_at, UTC),
            "revoked_at": now,
        }
        try:
            # Revoked before: RFC 7009 answers 200 all the same.
            with contextlib.suppress(IntegrityError):
                await self._store.write(insert(_REVOKED), [row])
            # Entries of expired tokens prove nothing any more: the verifier refuses them.
            cutoff = datetime.fromtimestamp(now.timestamp() - LEEWAY_S, UTC)
            await self._store.write(delete(_REVOKED).where(_REVOKED.c.exp < cutoff), [{}])
        except (SQLAlchemyError, OSError) as exc:
            log.error("revocation write failed: %s", type(exc).__name__)
            raise _Refusal(
                TokenRefused(503, Reason.TRUST_UNAVAILABLE, "The revocation was not stored; retry.")
            ) from exc


def _assertion_subject(form: Mapping[str, str]) -> str | None:
    """The client named by a private_key_jwt assertion (unverified: only to load it)."""
    assertion = form.get("client_assertion")
    if not assertion:
        return None
    try:
        sub = jwt.decode(assertion, options={"verify_signature": False}).get("sub")
    except jwt.InvalidTokenError:
        return None
    return sub if isinstance(sub, str) else None


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


def _client_facts(exchange: Exchange, **detail: Scalar) -> OAuthFacts:
    """The authenticated client and its organization; nothing of a client that was not."""
    client = exchange.authenticated
    if client is None:
        return OAuthFacts()
    standing = client.standing
    detail = {"auth_method": exchange.auth_method, **detail}
    return OAuthFacts(client_id=standing.client_id, org_id=standing.org_id, detail=detail)


def _token_facts(exchange: Exchange, answer: TokenGranted | TokenRefused) -> OAuthFacts:
    client = exchange.authenticated
    if client is None:
        return OAuthFacts()
    if isinstance(answer, TokenRefused):
        # Why an authenticated client is refused may be its organization's standing.
        return _client_facts(exchange, org_status=str(client.standing.org_status))
    facts = _client_facts(
        exchange,
        token_type="DPoP" if exchange.jkt else "Bearer",
        dpop_bound=exchange.jkt is not None,
        scope=str(answer.body.get("scope", "")),
        expires_in=int(answer.body.get("expires_in", 0)),
    )
    return replace(facts, tier=client.standing.tier, token_id=exchange.issued_jti)


def _revocation_facts(exchange: Exchange) -> OAuthFacts:
    """Who revoked which token: the token named only when it is one of ours (verified)."""
    token = exchange.to_revoke or exchange.token
    facts = _client_facts(
        exchange,
        revoked=exchange.to_revoke is not None,
        token_client_id=None if token is None else token.principal.client_id,
    )
    if facts.client_id is None:
        return facts
    return replace(facts, token_id=None if token is None else token.principal.token_id)


def _introspection_facts(exchange: Exchange, answer: TokenGranted | TokenRefused) -> OAuthFacts:
    facts = _client_facts(
        exchange, active=isinstance(answer, TokenGranted) and answer.body.get("active") is True
    )
    token = exchange.token
    if facts.client_id is None or token is None:
        return facts
    return replace(facts, token_id=token.principal.token_id)
