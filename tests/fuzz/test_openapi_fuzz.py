"""Schemathesis, every check, against the whole /openapi.json of a real gateway.

Each operation is fuzzed with positive and negative examples, authenticated the way its
callers are: admin routes and the auditor API with an admin's token, the model API,
`/orgs` and `/usage` with a verified defender's bearer token (the critical tier's models
take DPoP-bound tokens only), the OAuth endpoints (token, revocation, introspection) with
that defender's client credentials; the discovery documents (`/.well-known/*`) need none.
A server error, an undocumented status, a body or header outside the schema, an accepted
invalid request: each fails the run.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.auths import AuthContext
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from gateway.app import create_app
from gateway.settings import Settings
from tests.fuzz.conftest import DEFENDER_TIER, FuzzTarget

MAX_EXAMPLES = 25  # per operation: a bounded run (~2 minutes for the whole document)
DEADLINE = timedelta(seconds=10)  # a hang detector on a shared machine, not a latency bound


def _document() -> dict[str, Any]:
    """The document the gateway serves at /openapi.json (built without serving: the
    operations must be known when pytest collects; `test_served_document_is_the_one_fuzzed`
    checks the live gateway serves this very document)."""
    return create_app(Settings(dev_mode=True)).openapi()


DOCUMENT = _document()
schema: OpenApiSchema = schemathesis.openapi.from_dict(DOCUMENT)


def test_served_document_is_the_one_fuzzed(fuzz_target: FuzzTarget) -> None:
    """The live gateway's /openapi.json is exactly what the run below fuzzes."""
    base = fuzz_target.gw.base_url
    assert base.startswith("http://127.0.0.1:")  # loopback only
    assert httpx.get(f"{base}/openapi.json", timeout=60).json() == DOCUMENT


# Who calls: set by the `caller` fixture before any case is generated.
_CALLER: list[FuzzTarget] = []


@pytest.fixture(autouse=True)
def caller(fuzz_target: FuzzTarget) -> Iterator[None]:
    _CALLER.append(fuzz_target)
    yield
    _CALLER.clear()


@schema.auth()
class RealCredentials:
    """The credential a legitimate caller of each path sends, as schemathesis's auth
    provider: its auth checks then know the credential and take it out to see the refusal.
    Schemathesis may ask before the gateway runs (at collection): the role is then kept
    and `_credential` turns it into the real value when the case is sent."""

    def get(self, case: Case, ctx: AuthContext) -> str:
        path = case.operation.path
        if path.startswith("/oauth/"):  # token, revocation, introspection: client auth
            return "client"
        return "admin" if path.startswith(("/admin", "/audit")) else "defender"

    def set(self, case: Case, data: str, ctx: AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"role {data}"}


def _credential(case: Case) -> None:
    value = (case.headers or {}).get("Authorization", "")
    if not value.startswith("role "):
        return  # removed or replaced by a check on purpose
    target, role = _CALLER[0], value.removeprefix("role ")
    if role == "client":
        client_id, secret = target.gw.credentials[DEFENDER_TIER]
        token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        case.headers["Authorization"] = f"Basic {token}"
    else:
        token = target.admin_token if role == "admin" else target.defender_token
        case.headers["Authorization"] = f"Bearer {token}"


# Refusals of schema-valid input that no JSON Schema can state: an instant that must be
# in the future, a domain that is itself a public suffix (`co.uk`). Each is a 400 with
# exactly this reason, checked below instead of by `positive_data_acceptance`.
SEMANTIC_400: dict[str, set[str]] = {
    # IDNA 2008 label rules (no "--" in positions 3-4 outside "xn--", ...) are beyond a
    # JSON Schema pattern: such a name is a 400 `domain_invalid`, the documented answer.
    "POST /orgs": {"domain_public_suffix", "domain_invalid"},
    "POST /admin/orgs/{org_id}/approve": {"field_invalid"},
    "POST /admin/grants": {"field_invalid", "tier_not_for_individuals"},
    # `old <= new <= the log's size`: a relation between two parameters and the log's
    # state at the moment of the call.
    "GET /audit/proofs/consistency": {"invalid_request"},
    # `start <= end`, where a missing end is the latest checkpoint's size at that moment.
    "GET /audit/export": {"invalid_request"},
}


def _negative(case: Case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_negative


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=DEADLINE,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same examples every run: a failure here is reproducible
)
def test_every_operation_conforms(case: Case, fuzz_target: FuzzTarget) -> None:
    """No 5xx other than documented refusals, every answer within its documented schema."""
    _credential(case)
    label = f"{case.operation.method.upper()} {case.operation.path}"
    semantic = SEMANTIC_400.get(label)
    excluded = [positive_data_acceptance] if semantic else []
    reply = case.call_and_validate(
        base_url=fuzz_target.gw.base_url, timeout=30, excluded_checks=excluded
    )
    if semantic and reply.status_code == 400 and not _negative(case):
        assert reply.json()["error"]["code"] in semantic, reply.text


def test_fuzzed_gateway_still_serves(fuzz_target: FuzzTarget) -> None:
    """After the fuzzing, the gateway is ready and serves an ordinary call."""
    gw = fuzz_target.gw
    assert httpx.get(f"{gw.base_url}/readyz").json()["status"] == "ready"
    with gw.caller("critical") as client:  # DPoP-bound, as the critical tier requires
        reply = client.post(
            f"{gw.base_url}/v1/chat/completions",
            json={"model": "cyber", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert reply.status_code == 200, reply.text
