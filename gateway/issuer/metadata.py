"""RFC 8414 authorization server metadata, also served as `openid-configuration`.

The gateway is an OAuth authorization server for the client-credentials grant only (no
authorization endpoint, no ID tokens); OpenID clients and libraries read the same
document from the OpenID discovery path to find the token endpoint and the keys.
"""

from __future__ import annotations

from typing import Any

TOKEN_PATH = "/oauth/token"
REVOCATION_PATH = "/oauth/revoke"
INTROSPECTION_PATH = "/oauth/introspect"
JWKS_PATH = "/.well-known/jwks.json"

CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
# What a client may sign its private_key_jwt assertion (RFC 7523) and DPoP proofs with.
CLIENT_SIGNING_ALGS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")


def metadata(*, issuer: str, scopes: tuple[str, ...], signing_alg: str) -> dict[str, Any]:
    auth = list(CLIENT_AUTH_METHODS)
    algs = list(CLIENT_SIGNING_ALGS)
    return {
        "issuer": issuer,
        "token_endpoint": issuer + TOKEN_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "revocation_endpoint": issuer + REVOCATION_PATH,
        "introspection_endpoint": issuer + INTROSPECTION_PATH,
        "grant_types_supported": ["client_credentials"],
        # No authorization endpoint: nothing is returned from one (RFC 8414 §2 requires
        # the member; "none" is the value that says so).
        "response_types_supported": ["none"],
        "scopes_supported": list(scopes),
        "token_endpoint_auth_methods_supported": auth,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": auth,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": auth,
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "dpop_signing_alg_values_supported": algs,
        # What access tokens are signed with (RFC 9068 tokens; no ID tokens are issued).
        "access_token_signing_alg_values_supported": [signing_alg],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [signing_alg],
    }
