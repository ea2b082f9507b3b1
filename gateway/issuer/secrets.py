"""Client credentials: generation and hashing of client secrets.

Secrets are 256-bit random values, so a plain SHA-256 is enough to make a stolen hash
useless (there is nothing to guess); a slow password KDF would only cost CPU per token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_SCHEME = "sha256"


def new_client_id() -> str:
    return "tacc_" + secrets.token_hex(12)


def new_client_secret() -> str:
    # The prefix lets secret scanners recognise a leaked TAC Gateway secret.
    return "tacs_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return f"{_SCHEME}${hashlib.sha256(secret.encode()).hexdigest()}"


def verify_secret(secret: str, stored: str) -> bool:
    scheme, _, digest = stored.partition("$")
    if scheme != _SCHEME:
        return False
    candidate = hashlib.sha256(secret.encode()).hexdigest()
    return hmac.compare_digest(candidate, digest)
