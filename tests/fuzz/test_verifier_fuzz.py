"""Hypothesis against the access-token verifier (gateway/identity/tokens.py): whatever the
Authorization header, JWT header, payload, signature or claims, the answer is a
`Principal` or a 401 with a documented identity reason, never another exception."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm

from gateway.errors import Unauthorized
from gateway.identity.principal import Principal
from gateway.issuer.keys import SigningKey, thumbprint
from gateway.reasons import Reason
from tests.support.verify import SyncVerifier

ISSUER = "https://gw.example"
AUDIENCE = "tac-gateway"
# The refusals docs/defenders.md documents for a bearer token.
IDENTITY_REASONS = {
    Reason.TOKEN_MISSING,
    Reason.TOKEN_MALFORMED,
    Reason.TOKEN_ALG_NOT_ALLOWED,
    Reason.TOKEN_UNKNOWN_KID,
    Reason.TOKEN_BAD_SIGNATURE,
    Reason.TOKEN_EXPIRED,
    Reason.TOKEN_NOT_YET_VALID,
    Reason.TOKEN_WRONG_ISSUER,
    Reason.TOKEN_WRONG_AUDIENCE,
    Reason.TOKEN_MISSING_CLAIM,
}
FUZZ = settings(
    max_examples=300,  # bounded: a few seconds per property
    deadline=None,  # a shared machine: no per-example timing
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_private = ec.generate_private_key(ec.SECP256R1())
KEY = SigningKey(kid=thumbprint(_private.public_key()), private_key=_private)
_ES256 = ECAlgorithm(ECAlgorithm.SHA256)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _verifier() -> SyncVerifier:
    """The real verifier over the gateway's own issuer (tests/support/verify.py)."""
    return SyncVerifier([KEY], issuer=ISSUER, audience=AUDIENCE)


def check(verifier: SyncVerifier, authorization: str | None) -> Principal | None:
    """Verify; a refusal must be a 401 with a documented reason. Twice: the second call
    takes the verified-token cache's path."""
    try:
        first = verifier.verify(authorization)
    except Unauthorized as refused:
        assert refused.status == 401
        assert refused.reason in IDENTITY_REASONS, refused.reason
        return None
    assert verifier.verify(authorization) == first
    assert all(isinstance(v, str) for v in (first.subject, first.org_id, first.tier_claim))
    return first


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what JSON libraries encode
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
now = int(time.time())
# Claims near the valid ones: each either right, absent, or any JSON value.
CLAIMS = {
    "iss": st.sampled_from([ISSUER, "https://evil.example"]),
    "aud": st.sampled_from([AUDIENCE, [AUDIENCE, "x"], "other"]),
    "sub": st.text(max_size=20),
    "exp": st.sampled_from([now + 600, now - 600, 2**63, -1]),
    "iat": st.sampled_from([now, now + 3600]),
    "nbf": st.sampled_from([now, now + 3600]),
    "jti": st.text(max_size=10),
    "client_id": st.text(max_size=10),
    "org": st.text(max_size=10),
    "tier": st.sampled_from(["public", "verified", "critical"]),
    "scope": st.text(max_size=20),
    "roles": st.lists(st.text(max_size=8), max_size=2),
    "cnf": st.fixed_dictionaries({"jkt": st.text(max_size=12)}),
}


@st.composite
def claims(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, good in CLAIMS.items():
        choice = draw(st.sampled_from(["good", "good", "absent", "any"]))
        if choice == "good":
            out[name] = draw(good)
        elif choice == "any":
            out[name] = draw(json_values)
    out.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return out


@st.composite
def headers(draw: st.DrawFn) -> dict[str, Any]:
    header: dict[str, Any] = {
        "alg": draw(st.sampled_from(["ES256", "none", "HS256", "RS256", "ES384"]) | json_values),
        "kid": draw(st.sampled_from([KEY.kid, "unknown"]) | json_values),
    }
    if draw(st.booleans()):
        header["typ"] = draw(st.sampled_from(["JWT", "at+jwt"]) | json_values)
    header.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return header


def token(header: bytes, payload: bytes, signature: bytes | None) -> str:
    """A compact JWS; `signature` None: signed for real with the trusted key."""
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    if signature is None:
        signature = _ES256.sign(signing_input.encode(), KEY.private_key)
    return f"{signing_input}.{_b64(signature)}"


@FUZZ
@given(authorization=st.none() | st.text() | st.text().map(lambda t: f"Bearer {t}"))
def test_any_authorization_header(authorization: str | None) -> None:
    check(_verifier(), authorization)


@FUZZ
@given(
    header=st.binary(max_size=64),
    payload=st.binary(max_size=64),
    signature=st.none() | st.binary(max_size=80),
)
def test_any_bytes_in_each_part(header: bytes, payload: bytes, signature: bytes | None) -> None:
    check(_verifier(), f"Bearer {token(header, payload, signature)}")


@FUZZ
@given(header=headers(), body=claims(), forged=st.none() | st.binary(max_size=80))
def test_any_claims_and_header_fields(
    header: dict[str, Any], body: dict[str, Any], forged: bytes | None
) -> None:
    """Signed for real (so the claim checks run) or with any signature bytes."""
    raw_header, raw_body = orjson.dumps(header), orjson.dumps(body)
    principal = check(_verifier(), f"Bearer {token(raw_header, raw_body, forged)}")
    if principal is not None:  # only a token the trusted key really signed, for us, now
        assert forged is None and header["alg"] == "ES256" and header["kid"] == KEY.kid
        assert body["iss"] == ISSUER and body["exp"] > now
