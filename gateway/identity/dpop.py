"""DPoP (RFC 9449): proofs of possession of the key a token is bound to.

A proof is a JWT the caller signs per request with its own key, carried in the `DPoP`
header: `typ` "dpop+jwt", the public key in `jwk`, and claims `htm` (method), `htu` (URL
without query), `iat` (fresh), `jti` (used once) and, with an access token, `ath` (the
token's SHA-256). The token names the key by its RFC 7638 thumbprint (`cnf.jkt`), so a
copied token is useless without the private key. Failures answer
`WWW-Authenticate: DPoP error="invalid_dpop_proof"` (or `invalid_token`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import jwt

from gateway.errors import Unauthorized
from gateway.identity.principal import Principal
from gateway.identity.replay import ReplayGuard
from gateway.reasons import Reason

ALGORITHMS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")
# A proof made a little ahead of our clock is still fresh (RFC 9449 §11.1).
FUTURE_LEEWAY_S = 5
_KEY_CACHE_SIZE = 10_000
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of a public JWK (base64url SHA-256 of its required members)."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty", ""))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise ValueError("unsupported or incomplete JWK")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def access_token_hash(token: str) -> str:
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _refuse(message: str, *, error: str = "invalid_dpop_proof") -> Unauthorized:
    reason = Reason.INVALID_DPOP_PROOF if error == "invalid_dpop_proof" else Reason.TOKEN_MALFORMED
    exc = Unauthorized(reason, message)
    exc.headers["WWW-Authenticate"] = (
        f'DPoP algs="{" ".join(ALGORITHMS)}", error="{error}", error_description="{message}"'
    )
    return exc


def dpop_required() -> Unauthorized:
    """The challenge for a resource that takes DPoP-bound tokens only (RFC 9449 §7.1)."""
    exc = Unauthorized(Reason.DPOP_REQUIRED, "This model requires a DPoP-bound access token.")
    exc.headers["WWW-Authenticate"] = f'DPoP algs="{" ".join(ALGORITHMS)}"'
    return exc


class DpopVerifier:
    def __init__(self, *, replay: ReplayGuard, max_age_s: int, base_url: str) -> None:
        self._replay = replay
        self._max_age_s = max_age_s
        self._base = base_url.rstrip("/")
        self._keys: dict[tuple[str, str], jwt.PyJWK] = {}

    async def token_request(self, proof: str, *, htm: str, htu: str) -> str:
        """Verify a proof sent to the token endpoint; the thumbprint to bind the token to."""
        jkt, jti = self._check(proof, htm=htm, htu=htu, ath=None)
        await self._once(jkt, jti)
        return jkt

    async def resource_request(
        self,
        principal: Principal,
        *,
        scheme: str,
        token: str,
        proof: str | None,
        method: str,
        path: str,
    ) -> Principal:
        """The principal with `pop="dpop"` if the request proves possession of its key."""
        if principal.jkt is None:
            # RFC 9449 §7.1: the DPoP scheme is for bound tokens only.
            raise _refuse("The access token is not DPoP-bound; use Bearer.", error="invalid_token")
        if scheme != "dpop":
            raise _refuse(
                "The access token is DPoP-bound; send it as 'DPoP <token>' with a proof.",
                error="invalid_token",
            )
        if not proof:
            raise _refuse("A DPoP proof is required with this token.")
        # The URL as the caller addressed us, on our public base: the Host header is the
        # caller's to choose, the base is ours.
        htu = self._base + path
        jkt, jti = self._check(proof, htm=method, htu=htu, ath=access_token_hash(token))
        if jkt != principal.jkt:
            raise _refuse("The DPoP proof is signed by another key than the token's.")
        await self._once(jkt, jti)
        return replace(principal, pop="dpop")

    def _check(self, proof: str, *, htm: str, htu: str, ath: str | None) -> tuple[str, str]:
        header, claims, signing_input, signature = _parse(proof)
        alg, jwk = header.get("alg"), header.get("jwk")
        if header.get("typ") != "dpop+jwt":
            raise _refuse("The DPoP proof's typ must be dpop+jwt.")
        if alg not in ALGORITHMS:
            raise _refuse("The DPoP proof's algorithm is not allowed.")
        if not isinstance(jwk, dict) or "d" in jwk or "p" in jwk:
            raise _refuse("The DPoP proof must carry a public jwk.")
        try:
            jkt = jwk_thumbprint(jwk)
            key = self._key(jkt, alg, jwk)
            valid = key.Algorithm.verify(signing_input, key.key, signature)
        except (jwt.PyJWTError, ValueError, TypeError):
            valid = False
        if not valid:
            raise _refuse("The DPoP proof's signature is invalid.")
        iat, jti = claims.get("iat"), claims.get("jti")
        now = time.time()
        if not isinstance(iat, int | float) or not (
            now - self._max_age_s <= iat <= now + FUTURE_LEEWAY_S
        ):
            raise _refuse("The DPoP proof is not fresh (iat).")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
            raise _refuse("The DPoP proof's jti is invalid.")
        if claims.get("htm") != htm:
            raise _refuse("The DPoP proof is for another HTTP method.")
        proof_htu = claims.get("htu")
        if not isinstance(proof_htu, str) or _normal(proof_htu) != _normal(htu):
            raise _refuse("The DPoP proof is for another URL.")
        if ath is not None and claims.get("ath") != ath:
            raise _refuse("The DPoP proof is not for this access token (ath).")
        return jkt, jti

    def _key(self, jkt: str, alg: str, jwk: dict[str, Any]) -> jwt.PyJWK:
        """The caller's public key, imported once per key (a client keeps its key)."""
        cached = self._keys.get((jkt, alg))
        if cached is None:
            cached = jwt.PyJWK(jwk, algorithm=alg)
            if len(self._keys) >= _KEY_CACHE_SIZE:
                self._keys.pop(next(iter(self._keys)))
            self._keys[(jkt, alg)] = cached
        return cached

    async def _once(self, jkt: str, jti: str) -> None:
        # Remembered for as long as the proof could pass the iat check, with margin.
        ttl = self._max_age_s + FUTURE_LEEWAY_S + 1
        if not await self._replay.first_use(kind="dpop", value=f"{jkt}:{jti}", ttl_s=ttl):
            raise _refuse("The DPoP proof was used before (jti).")


def _parse(proof: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS.

    Parsed here rather than by PyJWT, whose strict base64 check walks every character in
    Python (most of a proof's cost: its header carries a whole JWK). Leniency costs nothing:
    the signature covers the exact signing input.
    """
    parts = proof.split(".")
    if len(parts) != 3 or "," in proof:
        raise _refuse("Send exactly one well-formed DPoP proof.")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise _refuse("The DPoP proof is malformed.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _refuse("The DPoP proof is malformed.")
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), signature


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _normal(url: str) -> str:
    """scheme://host[:port]/path, lower-cased scheme and host, no query or fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = (parts.hostname or "").lower()
    if port is not None and port != default:
        netloc += f":{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path or '/'}"
