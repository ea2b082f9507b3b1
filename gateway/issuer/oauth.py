"""The gateway's own OAuth2 authorization server, via authlib.

- token endpoint: the client-credentials grant (RFC 6749 §4.4);
- revocation (RFC 7009) and introspection (RFC 7662): authlib's endpoint classes;
- client authentication: `client_secret_basic`, `client_secret_post`, and
  `private_key_jwt` (RFC 7523, authlib's `JWTBearerClientAssertion`).

authlib's server is synchronous and asks for the client, the token and the replay check
mid-flow. The issuer (`service.py`) does every database and network read first (async)
and hands the results to authlib through a context variable (`Exchange`); what authlib
decided to write (a revocation, an assertion's `jti`) comes back the same way. No
database call ever blocks the event loop.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jws
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.identity.principal import Principal
from gateway.identity.tokens import LEEWAY_S
from gateway.issuer.keys import SigningKey
from gateway.issuer.metadata import CLIENT_AUTH_METHODS, CLIENT_SIGNING_ALGS
from gateway.issuer.secrets import verify_secret
from gateway.issuer.tokens import TokenIssuer
from gateway.trust.lifecycle import OrgStatus
from gateway.trust.standing import Standing

SUPPORTED_SCOPES = ("models",)
_SECRET_METHODS = ("client_secret_basic", "client_secret_post")
_ENDPOINTS = ("token", "revocation", "introspection")


class OAuthClient(ClientMixin):
    """A client as authlib sees it, backed by its standing in the database."""

    def __init__(self, standing: Standing) -> None:
        self.standing = standing

    def get_client_id(self) -> str:
        return self.standing.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(client_secret, self.standing.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint not in _ENDPOINTS:
            return False
        if method == "private_key_jwt":
            return self.standing.jwks is not None
        return method in _SECRET_METHODS and bool(self.standing.secret_hash)

    def check_grant_type(self, grant_type: str) -> bool:
        # A client of a suspended, revoked or unverified organization gets no new tokens.
        return grant_type == "client_credentials" and self.standing.org_status == OrgStatus.VERIFIED

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(SUPPORTED_SCOPES)
        return " ".join(s for s in scope.split() if s in SUPPORTED_SCOPES)


@dataclass(frozen=True)
class KnownToken:
    """One of the gateway's own access tokens, verified, with its state in the database."""

    principal: Principal
    claims: dict[str, Any]
    # Revoked itself, or its client revoked, or its organization no longer active.
    dead: bool

    def check_client(self, client: OAuthClient) -> bool:
        return self.principal.client_id == client.get_client_id()

    def is_expired(self) -> bool:
        return False  # the verifier refused expired tokens before they got here

    def is_revoked(self) -> bool:
        return self.dead


@dataclass
class Exchange:
    """What one request's async preparation gives authlib, and what authlib gives back."""

    client: OAuthClient | None
    key: SigningKey | None = None  # the current signing key (token endpoint)
    jkt: str | None = None  # the DPoP key a new token is bound to
    token: KnownToken | None = None  # revocation / introspection
    auth_method: str | None = None  # how the client authenticated
    to_revoke: KnownToken | None = None
    assertion: tuple[str, str, int] | None = None  # (client id, jti, exp) to remember
    # Set by authlib's client authentication: the client proved who it is (audited by id).
    authenticated: OAuthClient | None = None
    issued_jti: str | None = None  # the `jti` of the token minted for this request


_exchange: ContextVar[Exchange | None] = ContextVar("tacgw_oauth_exchange", default=None)


def _current() -> Exchange:
    exchange = _exchange.get()
    assert exchange is not None, "authlib called outside TokenServer.run"
    return exchange


class _ClientCredentials(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(CLIENT_AUTH_METHODS)


class _PrivateKeyJwt(JWTBearerClientAssertion):
    """RFC 7523 §2.2 client authentication with the client's registered public JWKS."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, audiences: list[str]) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY_S)
        self._audiences = audiences

    def get_audiences(self) -> list[str]:
        return self._audiences

    def resolve_client_public_key(self, client: OAuthClient) -> KeySet:
        if not client.standing.jwks:
            raise InvalidClientError(description="The client has no registered keys.")
        try:
            return KeySet.import_key_set(json.loads(client.standing.jwks))
        except (JoseError, ValueError) as exc:
            # Registration checks the JWKS; a row edited by hand still fails closed.
            raise InvalidClientError(description="The client's keys are unusable.") from exc

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        # Asymmetric algorithms only: the JWKS holds public keys, never a shared secret.
        algorithms = list(CLIENT_SIGNING_ALGS)
        candidates = [resolve_key]
        if isinstance(resolve_key, KeySet) and _kid(assertion) is None:
            # RFC 7523 does not require a kid (authlib's own client sends none): try the
            # client's keys of the assertion's key type, each on its own.
            kty = _KTY.get(str(_alg(assertion))[:2], "")
            candidates = [k for k in resolve_key.keys if k.key_type == kty] or candidates
        error: JoseError | None = None
        for key in candidates:
            try:
                token = jose_jwt.decode(assertion, key, algorithms=algorithms)
            except JoseError as exc:
                error = exc
                continue
            self.verify_claims(token.claims)
            return token.claims
        assert error is not None
        raise InvalidClientError(description=error.description) from error

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        # The replay check needs the shared store (async): remembered by the issuer right
        # after authlib accepts the signature, before any answer leaves.
        _current().assertion = (str(claims["sub"]), str(jti), int(claims["exp"]))
        return True


_KTY = {"ES": "EC", "RS": "RSA", "PS": "RSA", "Ed": "OKP"}


def _kid(assertion: str) -> Any:
    return _header(assertion).get("kid")


def _alg(assertion: str) -> Any:
    return _header(assertion).get("alg")


def _header(assertion: str) -> dict[str, Any]:
    try:
        return dict(jws.extract_compact(assertion.encode()).headers())
    except (JoseError, ValueError):
        return {}


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = list(CLIENT_AUTH_METHODS)

    def query_token(self, token_string: str, token_type_hint: str | None) -> KnownToken | None:
        return _current().token

    def revoke_token(self, token: KnownToken, request: OAuth2Request) -> None:
        _current().to_revoke = token


class _Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = list(CLIENT_AUTH_METHODS)

    def query_token(self, token_string: str, token_type_hint: str | None) -> KnownToken | None:
        return _current().token

    def check_permission(self, token: KnownToken, client: OAuthClient, request: Any) -> bool:
        # Any authenticated client may introspect: the claims of a JWT are readable by
        # whoever holds it anyway, so the answer adds only whether it is still active.
        return True

    def introspect_token(self, token: KnownToken) -> dict[str, Any]:
        claims = token.claims
        payload: dict[str, Any] = {
            k: claims[k]
            for k in ("iss", "sub", "aud", "client_id", "scope", "exp", "iat", "nbf", "jti")
            if k in claims
        }
        payload |= {
            "active": True,
            "token_type": "DPoP" if token.principal.jkt else "Bearer",
            "org": token.principal.org_id,
            "tier": token.principal.tier_claim,
            "acr": token.principal.auth_strength,
        }
        if token.principal.jkt:
            payload["cnf"] = {"jkt": token.principal.jkt}
        return payload


class FormRequest(OAuth2Request):
    def __init__(self, *, method: str, uri: str, headers: Mapping[str, str], form: dict[str, str]):
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = BasicOAuth2Payload(form)
        self._form = form

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]


class TokenServer(AuthorizationServer):
    def __init__(self, issuer: TokenIssuer, *, audiences: list[str]) -> None:
        super().__init__(scopes_supported=list(SUPPORTED_SCOPES))
        self._issuer = issuer
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", self._generate)
        self.register_client_auth_method("private_key_jwt", _PrivateKeyJwt(audiences))
        self.register_endpoint(_Revocation)
        self.register_endpoint(_Introspection)

    def run(self, endpoint: str, request: FormRequest, exchange: Exchange) -> Answer:
        """Answer `request` at `endpoint` ("token", "revocation", "introspection")."""
        reset = _exchange.set(exchange)
        try:
            if endpoint == "token":
                return self.create_token_response(request)
            return self.create_endpoint_response(endpoint, request)
        finally:
            _exchange.reset(reset)

    def authenticate_client(self, request: Any, methods: Any, endpoint: str = "token") -> Any:
        client = super().authenticate_client(request, methods, endpoint)
        # Reached only when the client proved who it is: from here on it may be named.
        exchange = _current()
        exchange.authenticated = client
        exchange.auth_method = getattr(request, "auth_method", None)
        return client

    def query_client(self, client_id: str) -> OAuthClient | None:
        client = _current().client
        return client if client is not None and client.get_client_id() == client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        # Access tokens are self-contained JWTs; there is nothing to store.
        return None

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        # authlib's hook for framework signals; issuance is observable through metrics instead.
        return None

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def create_json_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> Answer:
        return status, body, headers

    def _generate(
        self, *, grant_type: str, client: OAuthClient, scope: str | None = None, **_: Any
    ) -> dict[str, Any]:
        exchange = _current()
        assert exchange.key is not None, "the issuer loads the signing key first"
        standing = client.standing
        # No scope requested means everything the client may have (RFC 6749 §3.3).
        scope = client.get_allowed_scope(scope)
        method = exchange.auth_method or "client_secret_basic"
        exchange.issued_jti = jti = uuid.uuid4().hex
        access_token = self._issuer.issue(
            key=exchange.key,
            client_id=standing.client_id,
            org_id=standing.org_id,
            tier=standing.tier,
            scope=scope or "",
            auth_strength="private_key_jwt" if method == "private_key_jwt" else "client_secret",
            jkt=exchange.jkt,
            roles=standing.roles,
            jti=jti,
        )
        return {
            "access_token": access_token,
            # RFC 9449 §5: a bound token is a DPoP token, and the client must say so.
            "token_type": "DPoP" if exchange.jkt else "Bearer",
            "expires_in": self._issuer.ttl_s,
            "scope": scope or "",
        }
