"""DPoP (RFC 9449): tokens bound to the caller's key for the critical tier, over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import openai
import pytest

from gateway.reasons import Reason
from tests.support.dpop import DpopAuth, DpopKey
from tests.support.gateway import GatewayFactory, RunningGateway

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def gw(module_gateway: RunningGateway) -> RunningGateway:
    return module_gateway


def _url(gw: RunningGateway, path: str = "/v1/chat/completions") -> str:
    return f"{gw.base_url}{path}"


def _chat(
    gw: RunningGateway, token: str, *, proof: str | None, scheme: str = "DPoP", model: str = "cyber"
) -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return httpx.post(_url(gw), headers=headers, json={"model": model, "messages": MSG})


def _refusal(reply: httpx.Response) -> tuple[int, str, str]:
    return reply.status_code, reply.json()["error"]["code"], reply.headers["www-authenticate"]


def test_token_endpoint_binds_the_token_to_the_proof_key(gw: RunningGateway) -> None:
    """With a DPoP proof the token is a DPoP token carrying the key's thumbprint."""
    key = DpopKey()
    client_id, secret = gw.credentials["critical"]
    reply = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
        headers={"DPoP": key.proof("POST", f"{gw.base_url}/oauth/token")},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["token_type"] == "DPoP"
    claims = jwt.decode(reply.json()["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": key.thumbprint}
    look = httpx.post(
        f"{gw.base_url}/oauth/introspect",
        data={"token": reply.json()["access_token"]},
        auth=gw.credentials["public"],
    ).json()
    assert (look["active"], look["token_type"], look["cnf"]) == (
        True,
        "DPoP",
        {"jkt": key.thumbprint},
    )


def test_openai_sdk_with_a_dpop_auth_hook_reaches_the_critical_model(gw: RunningGateway) -> None:
    """The official SDK plus a small httpx auth hook: every request carries a fresh proof."""
    key = DpopKey()
    token = gw.token("critical", dpop=key)
    sdk = openai.OpenAI(
        base_url=f"{gw.base_url}/v1",
        api_key=token,
        max_retries=0,
        http_client=httpx.Client(auth=DpopAuth(key, token)),
    )
    for _ in range(2):  # a new proof (jti) each time
        reply = sdk.chat.completions.with_raw_response.create(model="cyber", messages=MSG)  # type: ignore[arg-type]
        assert reply.http_response.status_code == 200
    assert gw.audit_row(reply.headers["x-decision-id"])["decision"] == "allow"
    stream = sdk.chat.completions.create(model="cyber", messages=MSG, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "cyber" in {m.id for m in sdk.models.list()}


def test_a_plain_bearer_token_is_refused_for_the_critical_tier(gw: RunningGateway) -> None:
    """A copied bearer token alone is useless there: 401 with the DPoP challenge. The same
    token still works for the tiers that do not ask for DPoP."""
    token = gw.token("critical")
    status, code, challenge = _refusal(_chat(gw, token, proof=None, scheme="Bearer"))
    assert (status, code) == (401, Reason.DPOP_REQUIRED)
    assert challenge.startswith('DPoP algs="') and "ES256" in challenge
    assert _chat(gw, token, proof=None, scheme="Bearer", model="general-tac").status_code == 200
    listed = httpx.get(_url(gw, "/v1/models"), headers={"Authorization": f"Bearer {token}"})
    assert "cyber" not in {m["id"] for m in listed.json()["data"]}


def _bad_proof(gw: RunningGateway, key: DpopKey, token: str, case: str) -> str | None:
    url = _url(gw)
    if case == "no_proof":
        return None
    if case == "other_url":
        return key.proof("POST", _url(gw, "/v1/embeddings"), token=token)
    if case == "other_method":
        return key.proof("GET", url, token=token)
    if case == "stale_iat":
        return key.proof("POST", url, token=token, iat=time.time() - 600)
    if case == "future_iat":
        return key.proof("POST", url, token=token, iat=time.time() + 600)
    if case == "other_key":
        return DpopKey().proof("POST", url, token=token)
    if case == "other_token":
        return key.proof("POST", url, token=gw.token("critical", dpop=key))
    if case == "no_ath":
        return key.proof("POST", url)
    if case == "not_dpop_typ":
        return jwt.encode(
            {"htm": "POST", "htu": url, "iat": int(time.time()), "jti": "x" * 16},
            key.private_key,
            algorithm="ES256",
            headers={"jwk": key.public_jwk},
        )
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "no_proof",
        "other_url",
        "other_method",
        "stale_iat",
        "future_iat",
        "other_key",
        "other_token",
        "no_ath",
        "not_dpop_typ",
    ],
)
def test_a_bound_token_needs_a_valid_proof(gw: RunningGateway, case: str) -> None:
    """Missing, misdirected, stale or foreign proofs: 401 invalid_dpop_proof, audited."""
    key = DpopKey()
    token = gw.token("critical", dpop=key)
    reply = _chat(gw, token, proof=_bad_proof(gw, key, token, case))
    status, code, challenge = _refusal(reply)
    assert (status, code) == (401, Reason.INVALID_DPOP_PROOF)
    assert 'error="invalid_dpop_proof"' in challenge
    assert gw.audit_row(reply.headers["x-decision-id"])["decision"] == "deny"


def test_a_bound_token_sent_as_bearer_is_refused(gw: RunningGateway) -> None:
    """Even with a valid proof: a bound token must be presented with the DPoP scheme."""
    key = DpopKey()
    token = gw.token("critical", dpop=key)
    proof = key.proof("POST", _url(gw), token=token)
    status, _, challenge = _refusal(_chat(gw, token, proof=proof, scheme="Bearer"))
    assert status == 401 and 'error="invalid_token"' in challenge


def test_a_replayed_proof_is_refused(gw: RunningGateway) -> None:
    """A proof's jti is good once: the same proof again is refused."""
    key = DpopKey()
    token = gw.token("critical", dpop=key)
    proof = key.proof("POST", _url(gw), token=token)
    assert _chat(gw, token, proof=proof).status_code == 200
    status, code, _ = _refusal(_chat(gw, token, proof=proof))
    assert (status, code) == (401, Reason.INVALID_DPOP_PROOF)


@pytest.mark.parametrize("case", ["other_url", "replayed", "garbage"])
def test_token_endpoint_refuses_bad_proofs(gw: RunningGateway, case: str) -> None:
    """No token is bound to a proof made for somewhere else, replayed, or unreadable."""
    key = DpopKey()
    url = f"{gw.base_url}/oauth/token"
    proof = {
        "other_url": key.proof("POST", f"{gw.base_url}/oauth/revoke"),
        "replayed": key.proof("POST", url),
        "garbage": "not-a-proof",
    }[case]
    post: dict[str, Any] = {
        "auth": gw.credentials["critical"],
        "data": {"grant_type": "client_credentials"},
        "headers": {"DPoP": proof},
    }
    if case == "replayed":
        assert httpx.post(url, **post).status_code == 200
    reply = httpx.post(url, **post)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_dpop_proof"


def test_a_proof_replayed_at_another_replica_is_refused(
    gateway_factory: GatewayFactory, redis_url: str
) -> None:
    """With Redis configured, every replica remembers every proof it or another saw."""
    gw = gateway_factory.start(rate_limit_storage=redis_url)
    replica = gateway_factory.replica_process(gw)
    key = DpopKey()
    token = gw.token("critical", dpop=key)
    proof = key.proof("POST", _url(gw), token=token)
    assert _chat(gw, token, proof=proof).status_code == 200
    status, code, _ = _refusal(_chat(replica, token, proof=proof))
    assert (status, code) == (401, Reason.INVALID_DPOP_PROOF)
    assert _chat(replica, token, proof=key.proof("POST", _url(gw), token=token)).status_code == 200
