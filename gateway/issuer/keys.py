"""The issuer's signing keys as values: a P-256 private key, its `kid` and public JWK."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ALGORITHM = "ES256"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_jwk(self) -> dict[str, Any]:
        return public_jwk(self.private_key.public_key(), kid=self.kid)

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def public_jwk(key: ec.EllipticCurvePublicKey, *, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key))
    return {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK thumbprint, used as `kid` so that a key names itself."""
    jwk = json.loads(ECAlgorithm.to_jwk(public_key))
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_key() -> SigningKey:
    key = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid=thumbprint(key.public_key()), private_key=key)


def from_pem(pem: bytes, *, source: str) -> SigningKey:
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp256r1":
        raise ValueError(f"{source} is not a P-256 private key (ES256 is pinned)")
    return SigningKey(kid=thumbprint(loaded.public_key()), private_key=loaded)


def load_file(path: Path) -> SigningKey:
    """A PEM key file of an install from before keys lived in the database."""
    return from_pem(path.read_bytes(), source=str(path))
