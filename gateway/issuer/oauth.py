"""The gateway's own OAuth2 authorization server: the client-credentials grant, via authlib.

authlib's server is synchronous and asks for the client by id mid-flow. The issuer
(`service.py`) loads the client's standing from the database first (async), then hands it
to authlib through a context variable, so that no database call ever blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from gateway.issuer.secrets import verify_secret
from gateway.issuer.tokens import TokenIssuer
from gateway.trust.lifecycle import OrgStatus
from gateway.trust.standing import Standing

SUPPORTED_SCOPES = ("models",)
_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class OAuthClient(ClientMixin):
    """A client as authlib sees it, backed by its standing in the database."""

    def __init__(self, standing: Standing) -> None:
        self.standing = standing

    def get_client_id(self) -> str:
        return self.standing.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(client_secret, self.standing.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in _AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        # A client of a suspended, revoked or unverified organization gets no new tokens.
        return (
            grant_type == "client_credentials" and self.standing.org_status == OrgStatus.VERIFIED
        )

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(SUPPORTED_SCOPES)
        return " ".join(s for s in scope.split() if s in SUPPORTED_SCOPES)


class _ClientCredentials(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(_AUTH_METHODS)


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


_loaded_client: ContextVar[OAuthClient | None] = ContextVar("tacgw_oauth_client", default=None)


class TokenServer(AuthorizationServer):
    def __init__(self, issuer: TokenIssuer) -> None:
        super().__init__(scopes_supported=list(SUPPORTED_SCOPES))
        self._issuer = issuer
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", self._generate)

    def issue(
        self, request: FormRequest, client: OAuthClient | None
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = _loaded_client.set(client)
        try:
            return self.create_token_response(request)
        finally:
            _loaded_client.reset(token)

    def query_client(self, client_id: str) -> OAuthClient | None:
        client = _loaded_client.get()
        return client if client is not None and client.get_client_id() == client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        # Access tokens are self-contained JWTs; there is nothing to store.
        return None

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        # authlib's hook for framework signals; issuance is observable through metrics instead.
        return None

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        return status, body, headers

    def _generate(
        self, *, grant_type: str, client: OAuthClient, scope: str | None = None, **_: Any
    ) -> dict[str, Any]:
        standing = client.standing
        # No scope requested means everything the client may have (RFC 6749 §3.3).
        scope = client.get_allowed_scope(scope)
        access_token = self._issuer.issue(
            client_id=standing.client_id,
            org_id=standing.org_id,
            tier=standing.tier,
            scope=scope or "",
            roles=standing.roles,
        )
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self._issuer.ttl_s,
            "scope": scope or "",
        }
