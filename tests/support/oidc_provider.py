"""A real OpenID provider on loopback: npm `oidc-provider` under Node (tests/support/oidc).

`OidcProvider` runs `provider.mjs` with keys the test made (so attack tests can also sign
with the IdP's own key), issues client-credentials JWT access tokens through the real
token endpoint, and can be stopped and started again to play an IdP outage.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.services import free_port

PROVIDER = Path(__file__).resolve().parent / "oidc" / "provider.mjs"


def signing_jwk(alg: str, kid: str) -> tuple[Any, dict[str, Any]]:
    """A fresh private key and its private JWK (for the IdP's configuration)."""
    if alg.startswith("ES"):
        key: Any = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(key))
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(key))
    return key, {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class OidcProvider:
    workdir: Path
    audience: str
    alg: str = "RS256"
    kid: str = "idp-key-1"
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → claims
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.private_key, self._jwk = signing_jwk(self.alg, self.kid)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def secret(self, client_id: str) -> str:
        return f"secret-of-{client_id}-0123456789"

    def start(self) -> None:
        node = shutil.which("node")
        modules = os.environ.get("TACGW_TEST_OIDC_NODE_MODULES", "")
        if node is None or not Path(modules, "oidc-provider").is_dir():
            pytest.fail("node and TACGW_TEST_OIDC_NODE_MODULES are set up by scripts/test")
        config = self.workdir / f"oidc-{self.port}.json"
        config.write_text(
            json.dumps(
                {
                    "issuer": self.issuer,
                    "port": self.port,
                    "audience": self.audience,
                    "alg": self.alg,
                    "keys": [self._jwk],
                    "clients": [
                        {"client_id": c, "client_secret": self.secret(c), "claims": claims}
                        for c, claims in self.clients.items()
                    ],
                }
            )
        )
        log = (self.workdir / f"oidc-{self.port}.log").open("wb")
        self._proc = subprocess.Popen(
            [node, str(PROVIDER), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.discovery_url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.workdir / f"oidc-{self.port}.log").read_text()
                pytest.fail(f"oidc-provider did not start:\n{text}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def token(self, client_id: str) -> str:
        """An access token from the IdP's own token endpoint (client credentials)."""
        endpoint = httpx.get(self.discovery_url, timeout=30).json()["token_endpoint"]
        reply = httpx.post(
            endpoint,
            auth=(client_id, self.secret(client_id)),
            data={"grant_type": "client_credentials", "scope": "models"},
            timeout=30,
        )
        reply.raise_for_status()
        return str(reply.json()["access_token"])

    def federation(self, **overrides: Any) -> dict[str, Any]:
        """This IdP as one entry of `Settings.federated_issuers`."""
        return {
            "issuer": self.issuer,
            "discovery_url": self.discovery_url,
            "audience": self.audience,
            "algorithms": [self.alg],
            "claims": {"org": "org", "roles": "roles", "tier": "tacgw_tier"},
            **overrides,
        }
