"""Sealing private signing keys with the key-encryption key (AES-256-GCM).

The key-encryption key (KEK) comes from settings and never touches the database; what is
stored is `aesgcm1.<base64url(nonce || ciphertext)>`, authenticated with the key's `kid`
as associated data, so a sealed key copied onto another row does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "aesgcm1."
# Only for dev mode without a configured KEK: a laptop's throwaway keys, never production.
DEV_KEK = "tacgw-dev-mode-key-encryption-key-not-secret"


class SealError(ValueError):
    """A sealed key does not open: wrong key-encryption key, or a corrupted row."""


class Sealer:
    def __init__(self, kek: str) -> None:
        # HKDF, so that a passphrase-like KEK still gives a uniform 256-bit key.
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"tacgw signing keys v1"
        ).derive(kek.encode())
        self._aead = AESGCM(derived)

    def seal(self, plaintext: bytes, *, kid: str) -> str:
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, kid.encode())
        return _PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open(self, sealed: str, *, kid: str) -> bytes:
        if not sealed.startswith(_PREFIX):
            raise SealError(f"signing key {kid}: unknown sealing format")
        raw = base64.urlsafe_b64decode(sealed[len(_PREFIX) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], kid.encode())
        except InvalidTag:
            raise SealError(
                f"signing key {kid} does not open with the configured key_encryption_key"
            ) from None
