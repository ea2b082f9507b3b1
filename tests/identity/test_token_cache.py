"""The verified-token cache never outlives a token's validity window."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.errors import Unauthorized
from gateway.identity.tokens import LEEWAY_S
from gateway.issuer.keys import ALGORITHM, SigningKey, thumbprint
from gateway.reasons import Reason
from tests.support.verify import SyncVerifier

ISSUER, AUDIENCE = "https://gw.test", "tac-gateway"


def _key() -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid=thumbprint(private.public_key()), private_key=private)


def _token(key: SigningKey, *, exp: float, nbf: float) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "c",
        "client_id": "c",
        "org": "o",
        "tier": "public",
        "scope": "models",
        "iat": now,
        "nbf": nbf,
        "exp": exp,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def _verifier(key: SigningKey, cache_size: int = 10) -> SyncVerifier:
    return SyncVerifier([key], issuer=ISSUER, audience=AUDIENCE, cache_size=cache_size)


def test_cached_token_still_expires() -> None:
    """A token verified (and cached) just before expiry is refused once it expires."""
    key = _key()
    verifier = _verifier(key)
    token = _token(key, exp=time.time() - LEEWAY_S + 1.0, nbf=time.time() - 60)
    assert verifier.verify(f"Bearer {token}").subject == "c"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # bounded: the token's window closes within ~1 s
        try:
            verifier.verify(f"Bearer {token}")
        except Unauthorized as exc:
            assert exc.reason == Reason.TOKEN_EXPIRED
            return
        time.sleep(0.2)
    pytest.fail("a cached token outlived its expiry")


def test_cache_hit_returns_the_same_principal_and_is_bounded() -> None:
    """Repeated tokens hit the cache; the cache holds at most `cache_size` tokens."""
    key = _key()
    verifier = _verifier(key, cache_size=3)
    tokens = [_token(key, exp=time.time() + 600, nbf=time.time()) for _ in range(5)]
    first = verifier.verify(f"Bearer {tokens[0]}")
    assert verifier.verify(f"Bearer {tokens[0]}") is first
    for token in tokens:
        verifier.verify(f"Bearer {token}")
    assert len(verifier._verified) == 3


def test_a_tampered_copy_of_a_cached_token_is_refused() -> None:
    """The cache is keyed by the whole token: a changed signature is verified again."""
    key = _key()
    verifier = _verifier(key)
    token = _token(key, exp=time.time() + 600, nbf=time.time())
    verifier.verify(f"Bearer {token}")
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    with pytest.raises(Unauthorized) as refused:
        verifier.verify(f"Bearer {forged}")
    assert refused.value.reason in {Reason.TOKEN_BAD_SIGNATURE, Reason.TOKEN_MALFORMED}
