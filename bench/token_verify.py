"""Benchmark: token verification cost per request, in process (no HTTP, no database).

For ES256 (the gateway's own tokens) and RS256 (a federated IdP's), measures:
- cold: a token never seen before (header parse, issuer pick, signature, claims);
- cached: the same token again (the verified-token cache);
and for the gateway's ES256 tokens, the same with DPoP: a bound token and a fresh proof
per request (the proof's signature and replay check run on every request, cached or not).

    .venv/bin/python bench/token_verify.py --n 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.identity.claims import federated_principal, own_issuer
from gateway.identity.dpop import DpopVerifier
from gateway.identity.federation import FEDERATED_REQUIRED
from gateway.identity.keyring import StaticKeys
from gateway.identity.replay import ReplayGuard
from gateway.identity.stage import Identity
from gateway.identity.tokens import TokenVerifier, TrustedIssuer
from gateway.issuer.keys import new_key
from gateway.issuer.tokens import TokenIssuer
from gateway.settings import ClaimMapping

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the client side of DPoP
from tests.support.dpop import DpopKey

OWN, IDP, AUDIENCE = "https://gw.bench", "https://idp.bench", "tac-gateway"
URL = OWN + "/v1/chat/completions"


def _setup() -> tuple[Identity, Callable[..., str], Callable[[], str]]:
    own_key = new_key()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk = {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "idp-1"}
    mapping = ClaimMapping()
    idp = TrustedIssuer(
        issuer=IDP,
        audience=AUDIENCE,
        algorithms=("RS256",),
        keys=StaticKeys([rsa_jwk]),
        required=FEDERATED_REQUIRED,
        to_principal=lambda c: federated_principal(c, mapping=mapping, max_tier="critical"),
    )
    verifier = TokenVerifier(
        [own_issuer(issuer=OWN, audience=AUDIENCE, keys=StaticKeys([own_key.public_jwk])), idp],
        cache_size=1_000_000,
    )
    dpop = DpopVerifier(replay=ReplayGuard("memory://"), max_age_s=60, base_url=OWN)
    identity = Identity(verifier=verifier, dpop=dpop, own_keys=None)  # type: ignore[arg-type]
    issuer = TokenIssuer(issuer=OWN, audience=AUDIENCE, ttl_s=900)

    def es256(jkt: str | None = None) -> str:
        return issuer.issue(
            key=own_key, client_id="c", org_id="o", tier="critical", scope="models", jkt=jkt
        )

    def rs256() -> str:
        now = int(time.time())
        claims = {
            "iss": IDP,
            "aud": AUDIENCE,
            "sub": "s",
            "org": "acme",
            "iat": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "idp-1"})

    return identity, es256, rs256


async def _time(n: int, call: Callable[[int], Awaitable[Any]]) -> float:
    """Mean µs per call over n calls (process CPU time: the gateway's cost, not waiting)."""
    start = time.process_time()
    for i in range(n):
        await call(i)
    return (time.process_time() - start) / n * 1e6


async def run(n: int) -> list[tuple[str, str, float]]:
    identity, es256, rs256 = _setup()
    results = []
    for alg, make in (("ES256", es256), ("RS256", rs256)):
        tokens = [make() for _ in range(n)]
        headers = [f"Bearer {t}" for t in tokens]
        cold = await _time(n, lambda i, h=headers: identity.authenticate(h[i]))
        cached = await _time(n, lambda i, h=headers: identity.authenticate(h[0]))
        results += [(alg, "cold", cold), (alg, "cached", cached)]
    key = DpopKey()
    bound = [es256(jkt=key.thumbprint) for _ in range(n)]
    proofs = [key.proof("POST", URL, token=t) for t in bound]  # made outside the timing
    one = bound[0]
    again = [key.proof("POST", URL, token=one) for _ in range(n)]

    def dpop(tokens: list[str], proof_of: list[str]) -> Callable[[int], Awaitable[Any]]:
        return lambda i: identity.authenticate(
            f"DPoP {tokens[i % len(tokens)]}",
            proof=proof_of[i],
            method="POST",
            path="/v1/chat/completions",
        )

    results.append(("ES256+DPoP", "cold", await _time(n, dpop(bound, proofs))))
    results.append(("ES256+DPoP", "cached", await _time(n, dpop([one], again))))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="calls per measurement")
    args = parser.parse_args()
    results = asyncio.run(run(args.n))
    print("| token | verification | µs CPU per request |")
    print("|---|---|---:|")
    for alg, kind, micros in results:
        print(f"| {alg} | {kind} | {micros:,.1f} |")


if __name__ == "__main__":
    main()
