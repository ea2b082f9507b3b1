"""TokenIssuer/TokenVerifier in-process, with freshly generated real keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.errors import Unauthorized
from gateway.identity.tokens import LEEWAY_S
from gateway.issuer.keys import SigningKey, from_pem, thumbprint
from gateway.issuer.tokens import TokenIssuer
from gateway.reasons import Reason
from tests.support.verify import SyncVerifier

ISSUER = "https://gw.example"
AUDIENCE = "tac-gateway"


def _new_key() -> SigningKey:
    key = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid=thumbprint(key.public_key()), private_key=key)


@pytest.fixture
def key() -> SigningKey:
    return _new_key()


@pytest.fixture
def verifier(key: SigningKey) -> SyncVerifier:
    return SyncVerifier([key], issuer=ISSUER, audience=AUDIENCE)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "tacc_1",
        "client_id": "tacc_1",
        "org": "org1",
        "tier": "verified",
        "scope": "models",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "jti-1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key: SigningKey, claims: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(
        claims, key.private_key, algorithm="ES256", headers={"kid": key.kid, **headers}
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)]
    )


def _reason(verifier: SyncVerifier, authorization: str | None) -> str:
    with pytest.raises(Unauthorized) as err:
        verifier.verify(authorization)
    assert err.value.status == 401
    return err.value.reason


def test_issued_token_round_trips_to_principal(key: SigningKey, verifier: SyncVerifier) -> None:
    """A token from the issuer verifies into a Principal carrying its claims."""
    issuer = TokenIssuer(issuer=ISSUER, audience=AUDIENCE, ttl_s=900)
    token = issuer.issue(
        key=key, client_id="tacc_9", org_id="org9", tier="critical", scope="models"
    )
    p = verifier.verify(f"Bearer {token}")
    assert (p.subject, p.client_id, p.org_id, p.tier_claim) == (
        "tacc_9",
        "tacc_9",
        "org9",
        "critical",
    )
    assert p.scopes == ("models",)
    assert p.issuer == ISSUER
    assert p.token_id == jwt.decode(token, options={"verify_signature": False})["jti"]
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}


def test_issued_token_lifetime_is_ttl(key: SigningKey) -> None:
    """exp - iat equals the configured TTL and each token has a fresh jti."""
    issuer = TokenIssuer(issuer=ISSUER, audience=AUDIENCE, ttl_s=120)
    a, b = (
        jwt.decode(
            issuer.issue(key=key, client_id="c", org_id="o", tier="public", scope=""),
            key.private_key.public_key(),
            algorithms=["ES256"],
            audience=AUDIENCE,
        )
        for _ in range(2)
    )
    assert a["exp"] - a["iat"] == 120
    assert a["jti"] != b["jti"]


def test_scheme_is_case_insensitive(key: SigningKey, verifier: SyncVerifier) -> None:
    """RFC 6750 auth-scheme is case-insensitive: 'bearer' works like 'Bearer'."""
    assert verifier.verify(f"bearer {_sign(key, _claims())}").subject == "tacc_1"


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, Reason.TOKEN_MISSING),
        ("", Reason.TOKEN_MISSING),
        ("Bearer", Reason.TOKEN_MALFORMED),
        ("Bearer    ", Reason.TOKEN_MALFORMED),
        ("Basic dXNlcjpwYXNz", Reason.TOKEN_MALFORMED),
        ("Bearer not-a-jwt", Reason.TOKEN_MALFORMED),
        ("Bearer a.b.c", Reason.TOKEN_MALFORMED),
    ],
)
def test_bad_authorization_header(
    verifier: SyncVerifier, authorization: str | None, reason: Reason
) -> None:
    """Missing or non-bearer headers and garbage tokens give their stable reason."""
    assert _reason(verifier, authorization) == reason


def test_alg_none_refused(verifier: SyncVerifier) -> None:
    """An unsigned `alg: none` token is refused before any key lookup."""
    token = jwt.encode(_claims(), None, algorithm="none")
    assert _reason(verifier, f"Bearer {token}") == Reason.TOKEN_ALG_NOT_ALLOWED


def test_hs256_with_public_key_as_secret_refused(key: SigningKey, verifier: SyncVerifier) -> None:
    """The HS/ES confusion attack (public PEM as HMAC secret) is refused."""
    pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": key.kid, "typ": "JWT"}
    signing_input = ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(_claims()).encode())]
    )
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(sig)}"
    assert _reason(verifier, f"Bearer {token}") == Reason.TOKEN_ALG_NOT_ALLOWED


def test_rs256_refused(key: SigningKey, verifier: SyncVerifier) -> None:
    """An RS256 token is refused even when it names a known kid."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": key.kid})
    assert _reason(verifier, f"Bearer {token}") == Reason.TOKEN_ALG_NOT_ALLOWED


def test_es384_refused(key: SigningKey, verifier: SyncVerifier) -> None:
    """Another EC algorithm is not ES256, so it is refused too."""
    p384 = ec.generate_private_key(ec.SECP384R1())
    token = jwt.encode(_claims(), p384, algorithm="ES384", headers={"kid": key.kid})
    assert _reason(verifier, f"Bearer {token}") == Reason.TOKEN_ALG_NOT_ALLOWED


def test_unknown_kid_refused(verifier: SyncVerifier) -> None:
    """A token from another key with its own kid is an unknown key."""
    assert _reason(verifier, f"Bearer {_sign(_new_key(), _claims())}") == Reason.TOKEN_UNKNOWN_KID


def test_missing_kid_refused(key: SigningKey, verifier: SyncVerifier) -> None:
    """A token without a kid header cannot be matched to a key."""
    token = jwt.encode(_claims(), key.private_key, algorithm="ES256")
    assert _reason(verifier, f"Bearer {token}") == Reason.TOKEN_UNKNOWN_KID


@pytest.mark.parametrize("kid", [["k"], {"k": 1}, 7])
def test_non_string_kid_is_401_not_crash(verifier: SyncVerifier, kid: Any) -> None:
    """A non-string kid is a malformed token (401), never an unhandled exception."""
    token = _raw_token({"alg": "ES256", "kid": kid}, _claims(), b"x" * 64)
    assert _reason(verifier, f"Bearer {token}") == Reason.TOKEN_MALFORMED


def test_unsupported_crit_header_is_401(key: SigningKey, verifier: SyncVerifier) -> None:
    """A `crit` header naming an unknown extension is refused with 401."""
    token = _raw_token({"alg": "ES256", "kid": key.kid, "crit": ["x"], "x": 1}, _claims())
    assert _reason(verifier, f"Bearer {token}") == Reason.TOKEN_MALFORMED


def test_foreign_key_claiming_our_kid_refused(key: SigningKey, verifier: SyncVerifier) -> None:
    """A token signed by another key but naming our kid fails the signature check."""
    forged = SigningKey(kid=key.kid, private_key=_new_key().private_key)
    assert _reason(verifier, f"Bearer {_sign(forged, _claims())}") == Reason.TOKEN_BAD_SIGNATURE


def test_tampered_payload_refused(key: SigningKey, verifier: SyncVerifier) -> None:
    """Changing the payload (tier upgrade) after signing breaks the signature."""
    header, _, sig = _sign(key, _claims()).split(".")
    payload = _b64(json.dumps(_claims(tier="critical")).encode())
    assert _reason(verifier, f"Bearer {header}.{payload}.{sig}") == Reason.TOKEN_BAD_SIGNATURE


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iss": "https://evil.example"}, Reason.TOKEN_WRONG_ISSUER),
        ({"aud": "someone-else"}, Reason.TOKEN_WRONG_AUDIENCE),
        # Offsets from now, resolved when the test runs: values computed at collection time
        # went stale when the suite ran longer than the margin (a flaky failure seen in CI).
        ({"exp": -(LEEWAY_S + 60)}, Reason.TOKEN_EXPIRED),
        ({"nbf": LEEWAY_S + 120}, Reason.TOKEN_NOT_YET_VALID),
        ({"org": None}, Reason.TOKEN_MISSING_CLAIM),
        ({"tier": None}, Reason.TOKEN_MISSING_CLAIM),
        ({"jti": None}, Reason.TOKEN_MISSING_CLAIM),
        ({"exp": None}, Reason.TOKEN_MISSING_CLAIM),
        ({"aud": None}, Reason.TOKEN_MISSING_CLAIM),
        ({"exp": "tomorrow"}, Reason.TOKEN_MALFORMED),
    ],
)
def test_claim_failures(
    key: SigningKey, verifier: SyncVerifier, overrides: dict[str, Any], reason: Reason
) -> None:
    """Each claim problem in a correctly signed token maps to its own reason."""
    claims = {
        k: int(time.time()) + v if k in ("exp", "nbf") and isinstance(v, int) else v
        for k, v in overrides.items()
    }
    assert _reason(verifier, f"Bearer {_sign(key, _claims(**claims))}") == reason


def test_leeway_tolerates_small_skew(key: SigningKey, verifier: SyncVerifier) -> None:
    """A token just expired or just not yet valid within the leeway is accepted."""
    now = int(time.time())
    just_expired = _claims(exp=now - LEEWAY_S // 3)
    early = _claims(nbf=now + LEEWAY_S // 3, iat=now + LEEWAY_S // 3)
    for claims in (just_expired, early):
        assert verifier.verify(f"Bearer {_sign(key, claims)}").subject == "tacc_1"


def test_audience_list_containing_ours_accepted(key: SigningKey, verifier: SyncVerifier) -> None:
    """An `aud` list that includes this gateway is accepted (RFC 7519 §4.1.3)."""
    token = _sign(key, _claims(aud=["other", AUDIENCE]))
    assert verifier.verify(f"Bearer {token}").client_id == "tacc_1"


def test_unauthorized_challenge_never_echoes_token(verifier: SyncVerifier) -> None:
    """The WWW-Authenticate challenge names the reason, not the token."""
    with pytest.raises(Unauthorized) as err:
        verifier.verify("Bearer secret-looking-token")
    challenge = err.value.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert "secret-looking-token" not in challenge


def test_signing_key_pem_round_trips_with_its_kid(key: SigningKey) -> None:
    """A key's PEM reloads to the same kid; its public JWK has no private part."""
    first = from_pem(key.pem(), source="test")
    assert first.kid == key.kid
    assert first.public_jwk["kid"] == first.kid
    assert {first.public_jwk[k] for k in ("alg", "use", "crv")} == {"ES256", "sig", "P-256"}
    assert "d" not in first.public_jwk


def test_signing_key_wrong_curve_refused(tmp_path: Path) -> None:
    """A P-384 key file is refused since ES256 is pinned."""
    path = tmp_path / "p384.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="P-256"):
        from_pem(path.read_bytes(), source=str(path))
