"""Federated identity providers: a real OpenID provider on loopback, and attacks on it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from gateway.admin import ops
from gateway.reasons import Reason
from gateway.settings import Settings
from tests.faults.load import metric
from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.oidc_provider import OidcProvider

AUDIENCE = "tac-gateway-fed"
MSG = [{"role": "user", "content": "hello"}]
DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgres"])


@pytest.fixture(scope="module")
def idps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OidcProvider, OidcProvider]]:
    """Two IdPs whose keys share one kid: a kid never says which issuer a key is from."""
    workdir = tmp_path_factory.mktemp("oidc")
    a = OidcProvider(
        workdir,
        audience=AUDIENCE,
        alg="RS256",
        kid="shared-kid",
        clients={
            "acme-bot": {"org": "acme", "roles": ["analyst"], "tacgw_tier": "verified"},
            "evil-bot": {"org": "grid-ops", "roles": ["analyst"]},
        },
    )
    b = OidcProvider(
        workdir,
        audience=AUDIENCE,
        alg="RS256",
        kid="shared-kid",
        clients={"grid-bot": {"org": "grid-ops"}},
    )
    for idp in (a, b):
        idp.start()
    try:
        yield a, b
    finally:
        for idp in (a, b):
            idp.stop()


def _start(
    factory: GatewayFactory, idps: tuple[OidcProvider, OidcProvider], **kw: Any
) -> RunningGateway:
    a, b = idps
    gw = factory.start(federated_issuers=[a.federation(), b.federation()], **kw)
    # acme owns IdP A for its "acme" claim; grid-ops owns IdP B outright.
    gw.run(
        lambda e: ops.bind_issuer(
            e, org_id=gw.org_ids["critical"], issuer=a.issuer, org_claim="acme"
        )
    )
    gw.run(lambda e: ops.bind_issuer(e, org_id=gw.org_ids["verified"], issuer=b.issuer))
    return gw


def _chat(gw: RunningGateway, token: str, model: str = "general-tac") -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": model, "messages": MSG},
    )


def _code(reply: httpx.Response) -> str:
    return str(reply.json()["error"]["code"])


@DATABASES
def test_idp_token_is_accepted_through_discovery_and_mapped_to_org_and_tier(
    gateway_factory: GatewayFactory, idps: tuple[OidcProvider, OidcProvider], database: str
) -> None:
    """A token from the real IdP works with the openai SDK; the audit row names the bound
    organization and the tier (the lower of the IdP's tier claim and the org's grant).
    Once the binding is removed, the same token is refused on its next request."""
    a, _ = idps
    gw = _start(gateway_factory, idps, database=database)
    token = a.token("acme-bot")
    sdk = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=token, max_retries=0)
    reply = sdk.chat.completions.with_raw_response.create(model="general-tac", messages=MSG)  # type: ignore[arg-type]
    assert reply.http_response.status_code == 200
    row = gw.audit_row(reply.headers["x-decision-id"])
    assert (row["org_id"], row["tier"], row["subject"]) == (
        gw.org_ids["critical"],
        "verified",  # the IdP claims verified; the org holds critical: the lower wins
        "acme-bot",
    )
    assert row["client_id"] == "acme-bot"

    (binding,) = gw.run(lambda e: ops.list_issuer_bindings(e, org_id=gw.org_ids["critical"]))
    gw.run(lambda e: ops.unbind_issuer(e, binding_id=binding.id))
    refused = _chat(gw, token)
    assert refused.status_code == 403 and _code(refused) == Reason.ORG_NOT_MAPPED


def test_a_federated_token_cannot_claim_an_org_it_is_not_mapped_to(
    gateway_factory: GatewayFactory, idps: tuple[OidcProvider, OidcProvider]
) -> None:
    """IdP A's token naming grid-ops (which IdP B owns) maps to nothing."""
    a, b = idps
    gw = _start(gateway_factory, idps)
    refused = _chat(gw, a.token("evil-bot"))
    assert refused.status_code == 403 and _code(refused) == Reason.ORG_NOT_MAPPED
    # The organization's own IdP's token does map to it.
    assert _chat(gw, b.token("grid-bot")).status_code == 200


def _claims(idp: OidcProvider, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "sub": "acme-bot",
        "client_id": "acme-bot",
        "org": "acme",
        "scope": "models",
        "iat": now,
        "exp": now + 300,
        "jti": f"forged-{now}",
    }
    return {k: v for k, v in (claims | overrides).items() if v is not None}


def _signed(idp: OidcProvider, claims: dict[str, Any], kid: str | None = None) -> str:
    return jwt.encode(claims, idp.private_key, algorithm=idp.alg, headers={"kid": kid or idp.kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key(idp: OidcProvider) -> str:
    pem = idp.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": idp.kid}).encode())
    payload = _b64(json.dumps(_claims(idp)).encode())
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


@pytest.fixture(scope="module")
def fed_gw(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_url: str,
    postgres_url: str,
    idps: tuple[OidcProvider, OidcProvider],
) -> Iterator[RunningGateway]:
    factory = GatewayFactory(tmp_path_factory.mktemp("fed-gw"), upstream_url, postgres_url)
    try:
        yield _start(factory, idps)
    finally:
        factory.close()


def _expired(idp: OidcProvider) -> str:
    now = int(time.time())
    return _signed(idp, _claims(idp, iat=now - 900, exp=now - 600))


Build = Any  # (idp_a, idp_b, gateway) -> token
ATTACKS: dict[str, tuple[Build, Reason]] = {
    # The gateway's audience is AUDIENCE; a token for another API is not for it.
    "wrong_audience": (
        lambda a, b, gw: _signed(a, _claims(a, aud="other-api")),
        Reason.TOKEN_WRONG_AUDIENCE,
    ),
    # Signed by A, claiming to be from B: checked against B's key with that kid (the
    # kid both IdPs use), never A's, so the signature fails.
    "issuer_confusion": (lambda a, b, gw: _signed(a, _claims(b)), Reason.TOKEN_BAD_SIGNATURE),
    # The same the other way round: B's key, A's issuer.
    "kid_collision": (lambda a, b, gw: _signed(b, _claims(a)), Reason.TOKEN_BAD_SIGNATURE),
    # The classic: HMAC keyed with the IdP's public key.
    "hs256_with_idp_public_key": (
        lambda a, b, gw: _hs256_with_public_key(a),
        Reason.TOKEN_ALG_NOT_ALLOWED,
    ),
    # An IdP's key claiming the gateway's own issuer: that issuer pins ES256 and its keys.
    "idp_key_as_gateway": (
        lambda a, b, gw: _signed(a, _claims(a, iss=gw.settings.issuer)),
        Reason.TOKEN_ALG_NOT_ALLOWED,
    ),
    "expired": (lambda a, b, gw: _expired(a), Reason.TOKEN_EXPIRED),
    "unknown_issuer": (
        lambda a, b, gw: _signed(a, _claims(a, iss="https://idp.evil.example")),
        Reason.TOKEN_WRONG_ISSUER,
    ),
    "no_subject": (lambda a, b, gw: _signed(a, _claims(a, sub=None)), Reason.TOKEN_MISSING_CLAIM),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_federated_token_attacks_are_refused(
    fed_gw: RunningGateway, idps: tuple[OidcProvider, OidcProvider], attack: str
) -> None:
    """Each forged or misdirected token is refused with its own reason, and audited."""
    a, b = idps
    build, reason = ATTACKS[attack]
    reply = _chat(fed_gw, build(a, b, fed_gw))
    assert reply.status_code == 401, reply.text
    assert _code(reply) == reason
    assert fed_gw.audit_row(reply.headers["x-decision-id"])["decision"] == "deny"


def test_idp_outage_cached_keys_then_fail_closed(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """IdP down: its cached keys keep verifying (an expired token is still refused), until
    `max_stale_s` after the last fetch; then 503 idp_unavailable. Back up: it works again."""
    idp = OidcProvider(tmp_path, audience=AUDIENCE, clients={"acme-bot": {"org": "acme"}})
    idp.start()
    try:
        gw = gateway_factory.start(
            federated_issuers=[idp.federation(jwks_ttl_s=0.5, refresh_min_s=0.2, max_stale_s=3.0)]
        )
        gw.run(
            lambda e: ops.bind_issuer(
                e, org_id=gw.org_ids["verified"], issuer=idp.issuer, org_claim="acme"
            )
        )
        token = idp.token("acme-bot")
        assert _chat(gw, token).status_code == 200
        idp.stop()
        # Cached keys: a fresh token signed with the IdP's (known) key verifies.
        assert _chat(gw, _signed(idp, _claims(idp, jti="during-outage"))).status_code == 200
        refused = _chat(gw, _expired(idp))
        assert refused.status_code == 401 and _code(refused) == Reason.TOKEN_EXPIRED
        deadline = time.monotonic() + 20  # bounded: max_stale_s is 3 s
        while (reply := _chat(gw, token)).status_code == 200:
            assert time.monotonic() < deadline, "stale keys kept verifying past max_stale_s"
            time.sleep(0.3)
        assert reply.status_code == 503 and _code(reply) == Reason.IDP_UNAVAILABLE
        # Audited and counted like every refusal (tests/faults covers the other stores).
        row = gw.audit_row(reply.headers["x-decision-id"])
        assert (row["decision"], row["status"]) == ("deny", 503)
        counted = metric(
            gw.base_url, "tacgw_requests_total", decision="deny", reason="idp_unavailable"
        )
        assert counted >= 1
        # One IdP down is not the gateway down: still ready (taking every replica out would
        # refuse every caller), and its own tokens are served.
        assert httpx.get(f"{gw.base_url}/readyz").status_code == 200
        own = gw.openai("verified").chat.completions.create(model="general-tac", messages=MSG)
        assert own.choices
        idp.start()  # same port and key: the next refresh brings the keys back
        deadline = time.monotonic() + 20
        while (reply := _chat(gw, token)).status_code != 200:
            assert time.monotonic() < deadline, f"did not recover: {reply.text}"
            time.sleep(0.3)
    finally:
        idp.stop()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"jwks_uri": "http://idp.example/jwks"}, "must be https"),
        ({"jwks_uri": "https://idp.example/jwks", "algorithms": ["HS256"]}, "asymmetric"),
        ({}, "exactly one of discovery_url and jwks_uri"),
        (
            {"jwks_uri": "https://idp.example/jwks", "discovery_url": "https://idp.example/d"},
            "exactly one",
        ),
    ],
)
def test_unsafe_idp_settings_are_refused_at_start(entry: dict[str, Any], message: str) -> None:
    """Keys over plain http, a shared-secret algorithm, an ambiguous key source: refused."""
    base = {"issuer": "https://idp.example", "audience": AUDIENCE}
    with pytest.raises(ValidationError, match=message):
        Settings(federated_issuers=[base | entry])
    https = {"jwks_uri": "https://idp.example/jwks"}
    assert Settings(federated_issuers=[base | https]).federated_issuers[0].algorithms == ["RS256"]
