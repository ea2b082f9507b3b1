"""Server metadata (RFC 8414 / OpenID discovery), and a stock OAuth client library using it."""

from __future__ import annotations

import httpx
import openai
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from gateway.issuer.metadata import metadata
from tests.support.gateway import RunningGateway


@pytest.fixture(scope="module")
def gw(module_gateway: RunningGateway) -> RunningGateway:
    return module_gateway


@pytest.mark.parametrize("path", ["oauth-authorization-server", "openid-configuration"])
def test_discovery_names_every_endpoint_and_method(gw: RunningGateway, path: str) -> None:
    """Both well-known paths serve the metadata: endpoints under the issuer, auth methods,
    signing and DPoP algorithms."""
    reply = httpx.get(f"{gw.base_url}/.well-known/{path}")
    assert reply.status_code == 200
    doc = reply.json()
    base = gw.settings.issuer
    assert doc["issuer"] == base
    assert doc["token_endpoint"] == f"{base}/oauth/token"
    assert doc["jwks_uri"] == f"{base}/.well-known/jwks.json"
    assert doc["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert doc["introspection_endpoint"] == f"{base}/oauth/introspect"
    assert doc["grant_types_supported"] == ["client_credentials"]
    for endpoint in ("token", "revocation", "introspection"):
        assert set(doc[f"{endpoint}_endpoint_auth_methods_supported"]) == {
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        }
    assert "ES256" in doc["dpop_signing_alg_values_supported"]
    assert doc["access_token_signing_alg_values_supported"] == ["ES256"]
    # Every endpoint it names answers (the JWKS with the key the tokens are signed with).
    assert httpx.get(doc["jwks_uri"]).json()["keys"][0]["kid"] == gw.signing_key().kid


def test_metadata_is_valid_rfc8414_for_an_https_issuer() -> None:
    """authlib's RFC 8414 validator accepts the document a production issuer publishes."""
    doc = metadata(issuer="https://gateway.example", scopes=("models",), signing_alg="ES256")
    meta = AuthorizationServerMetadata(doc)
    for check in (
        "issuer",
        "token_endpoint",
        "jwks_uri",
        "scopes_supported",
        "response_types_supported",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "revocation_endpoint",
        "revocation_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_signing_alg_values_supported",
        "introspection_endpoint",
        "introspection_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_signing_alg_values_supported",
    ):
        getattr(meta, f"validate_{check}")()


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_gets_a_token_through_discovery(gw: RunningGateway, method: str) -> None:
    """authlib's stock OAuth2 client finds the token endpoint by discovery and gets a token
    the openai SDK then uses: no custom code on the client side."""
    doc = httpx.get(f"{gw.base_url}/.well-known/openid-configuration").json()
    client_id, secret = gw.credentials["verified"]
    with OAuth2Client(client_id, secret, token_endpoint_auth_method=method) as oauth:
        token = oauth.fetch_token(doc["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "models"
    sdk = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=token["access_token"], max_retries=0)
    assert {m.id for m in sdk.models.list()} == {"general", "general-tac"}
