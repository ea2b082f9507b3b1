"""The whole trust flow over HTTP, as applicant, admin, org admin, auditor and defender:

apply → DNS proof on the loopback DNS server → approve as critical → the org's defender
token reaches the cyber model → revoke → the very next request is refused with
`org_revoked` (on PostgreSQL, sent to a second gateway process sharing the database).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import text

from gateway.admin import clients, ops
from gateway.admin.actor import Actor
from gateway.reasons import Reason
from gateway.settings import VerificationSettings
from gateway.trust.proof import record_name
from tests.support.dpop import DpopAuth, DpopKey
from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.proof_servers import LoopbackDns, LoopbackWeb
from tests.support.services import free_port

MSG = [{"role": "user", "content": "hello"}]
APPLICATION = {
    "name": "Grid Defenders",
    "domain": "Grid-Defenders.com",
    "sector": "energy",
    "country": "us",
    "evidence": "CISA sector partnership letter, 2026-11",
}


class Caller:
    """One bearer token against one gateway: JSON in, (status, JSON) out."""

    def __init__(self, base_url: str, token: str, client_id: str = "") -> None:
        self.base_url, self.token, self.client_id = base_url, token, client_id

    def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        reply = httpx.request(
            method,
            f"{self.base_url}{path}",
            json=body,
            headers={"authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        return reply.status_code, (reply.json() if reply.content else None)

    def refused(self, method: str, path: str, body: Any = None) -> tuple[int, str, str]:
        status, answer = self(method, path, body)
        assert status >= 400, answer
        return status, answer["error"]["code"], answer["error"]["message"]


def _token(gw: RunningGateway, client_id: str, secret: str, dpop: DpopKey | None = None) -> str:
    url = f"{gw.base_url}/oauth/token"
    reply = httpx.post(
        url,
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
        headers={"DPoP": dpop.proof("POST", url)} if dpop is not None else {},
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def _staff(gw: RunningGateway, roles: list[str]) -> Caller:
    """A client of the (verified) operators' org holding `roles`, with a real token."""

    async def make(engine: Any) -> Any:
        operators = await ops.find_org(engine, name="operators") or await ops.create_org(
            engine, name="operators"
        )
        return await clients.create_client(
            engine, actor=Actor.cli(), org_id=operators.id, name="-".join(roles), roles=roles
        )

    issued = gw.run(make)
    return Caller(gw.base_url, _token(gw, issued.client_id, issued.client_secret), issued.client_id)


@contextlib.contextmanager
def second_gateway(gw: RunningGateway) -> Iterator[str]:
    """`tac-gateway serve` as its own OS process on the same database, keys and issuer."""
    port = free_port()
    env = {
        **os.environ,
        "TACGW_DEV_MODE": "true",
        "TACGW_DATABASE_URL": gw.database_url,
        "TACGW_SIGNING_KEY_FILE": str(gw.settings.signing_key_file),
        "TACGW_ISSUER": gw.settings.issuer,
        "TACGW_CATALOG_TTL_S": "0",
        "TACGW_RATE_LIMIT": "1000/second",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "second gateway did not start"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture
def proof_settings(loopback_dns: LoopbackDns, loopback_web: LoopbackWeb) -> dict[str, Any]:
    return {
        "verification": VerificationSettings(
            resolvers=[loopback_dns.address],
            dns_timeout_s=2,
            https_base_override=loopback_web.base_url,
        )
    }


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_apply_prove_approve_use_revoke(
    gateway_factory: GatewayFactory,
    loopback_dns: LoopbackDns,
    proof_settings: dict[str, Any],
    database: str,
) -> None:
    """The issue's flow end to end; the revocation holds on the very next request."""
    gw = gateway_factory.start(database=database, **proof_settings)
    admin = _staff(gw, ["admin"])
    applicant = Caller(gw.base_url, gw.token("public"))  # a defender of another org
    bystander = Caller(gw.base_url, gw.token("verified"))

    status, org = applicant("POST", "/orgs", APPLICATION)
    assert status == 201, org
    assert (org["status"], org["domain"], org["country"]) == ("applied", "grid-defenders.com", "US")
    org_id = org["id"]

    status, challenge = applicant("POST", f"/orgs/{org_id}/challenges", {"method": "dns"})
    assert status == 201 and record_name("grid-defenders.com") in challenge["instructions"]
    loopback_dns.txt[record_name("grid-defenders.com")] = [challenge["token"]]
    status, checked = applicant("POST", f"/orgs/{org_id}/challenges/{challenge['id']}/check")
    assert (status, checked["result"]) == (200, "passed"), checked
    assert challenge["token"] in checked["evidence"]

    # Neither a defender nor the applicant (its org admin) may approve.
    assert bystander.refused("POST", f"/admin/orgs/{org_id}/approve", {"tier": "critical"})[:2] == (
        403,
        Reason.ADMIN_ROLE_REQUIRED,
    )
    assert applicant.refused("POST", f"/admin/orgs/{org_id}/approve", {"tier": "critical"})[:2] == (
        403,
        Reason.TIER_RAISE_FORBIDDEN,
    )

    status, approval = admin(
        "POST", f"/admin/orgs/{org_id}/approve", {"tier": "critical", "reason": "grid SOC"}
    )
    assert status == 200, approval
    assert approval["organization"]["status"] == "verified"
    assert approval["grant"]["tier"] == "critical" and approval["grant"]["live"]

    # The applicant, org admin by membership, gives its organization a service client.
    assert applicant.refused(
        "POST", f"/admin/orgs/{org_id}/clients", {"name": "x", "roles": ["admin"]}
    )[:2] == (403, Reason.ROLE_NOT_GRANTABLE)
    status, soc = applicant("POST", f"/admin/orgs/{org_id}/clients", {"name": "SOC automation"})
    assert status == 201, soc
    # The cyber model takes DPoP-bound tokens: the defender holds a key pair.
    key = DpopKey()
    defender_token = _token(gw, soc["client_id"], soc["client_secret"], dpop=key)

    def dpop_client(base: str) -> openai.OpenAI:
        # Proofs name the fleet's public URL (the issuer), whichever replica serves them.
        auth = DpopAuth(key, defender_token, public_base=gw.settings.issuer)
        return openai.OpenAI(
            base_url=f"{base}/v1",
            api_key=defender_token,
            max_retries=0,
            http_client=httpx.Client(auth=auth),
        )

    defender = dpop_client(gw.base_url)
    defender.chat.completions.create(model="cyber", messages=MSG)

    with contextlib.ExitStack() as stack:
        other = stack.enter_context(second_gateway(gw)) if database == "postgres" else gw.base_url
        on_other = dpop_client(other)
        on_other.chat.completions.create(model="cyber", messages=MSG)

        status, revoked = admin(
            "POST", f"/admin/orgs/{org_id}/revoke", {"reason": "left the sector"}
        )
        assert (status, revoked["status"]) == (200, "revoked")
        with pytest.raises(openai.PermissionDeniedError) as err:
            on_other.chat.completions.create(model="cyber", messages=MSG)
        assert err.value.code == Reason.ORG_REVOKED

    # The audit log has every step, with the state before and after.
    actions = [r["endpoint"] for r in gw.audit_rows(org_id=org_id) if r["detail"]]
    for action in ("apply", "challenge", "challenge.check", "approve", "revoke"):
        assert f"admin.org.{action}" in actions
    assert "admin.client.create" in actions
    refusals = [r for r in gw.audit_rows(org_id=org_id) if r["endpoint"] == "admin.org.approve"]
    assert {r["decision"] for r in refusals} == {"allow", "deny"}


def test_permissions_by_role(
    gateway_factory: GatewayFactory, proof_settings: dict[str, Any]
) -> None:
    """Org admins stay in their org and tier; auditors read only; defenders see nothing."""
    gw = gateway_factory.start(database="postgres", **proof_settings)
    admin = _staff(gw, ["admin"])
    auditor = _staff(gw, ["auditor"])
    org_admin = _org_admin(gw, gw.org_ids["verified"])
    critical_org = gw.org_ids["critical"]

    # An org admin manages its own org's clients and members...
    status, made = org_admin("POST", f"/admin/orgs/{gw.org_ids['verified']}/clients", {"name": "b"})
    assert status == 201, made
    assert (
        org_admin(
            "PUT", f"/admin/orgs/{gw.org_ids['verified']}/members/alice", {"role": "defender"}
        )[0]
        == 200
    )
    # ...never another org's, never a tier, never the list of everyone.
    for method, path, body in (
        ("POST", f"/admin/orgs/{critical_org}/clients", {"name": "x"}),
        ("GET", f"/admin/orgs/{critical_org}", None),
        ("POST", f"/admin/clients/{gw.credentials['critical'][0]}/revoke", None),
    ):
        assert org_admin.refused(method, path, body)[:2] == (403, Reason.NOT_YOUR_ORG)
    grant = {"org_id": gw.org_ids["verified"], "tier": "critical", "reason": "more"}
    assert org_admin.refused("POST", "/admin/grants", grant)[:2] == (
        403,
        Reason.TIER_RAISE_FORBIDDEN,
    )
    assert org_admin.refused("GET", "/admin/orgs")[:2] == (403, Reason.ADMIN_ROLE_REQUIRED)

    # The auditor reads everything and changes nothing.
    status, listed = auditor("GET", "/admin/orgs")
    assert status == 200 and {o["id"] for o in listed} >= set(gw.org_ids.values())
    assert auditor("GET", f"/admin/orgs/{critical_org}")[0] == 200
    assert auditor("GET", "/admin/grants/expiring?days=30")[0] == 200
    assert auditor.refused("POST", f"/admin/orgs/{critical_org}/suspend", {"reason": "x"})[:2] == (
        403,
        Reason.AUDITOR_READ_ONLY,
    )

    # A defender is refused everything under /admin; no token is a 401.
    defender = Caller(gw.base_url, gw.token("critical"))
    assert defender.refused("GET", "/admin/orgs")[:2] == (403, Reason.ADMIN_ROLE_REQUIRED)
    anonymous = httpx.get(f"{gw.base_url}/admin/orgs")
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "token_missing")

    # Roles count only while the client holds them: both changes hold on the next call.
    async def demote(engine: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE client SET roles = '' WHERE id = :id"), {"id": admin.client_id}
            )

    gw.run(demote)
    assert admin.refused("GET", "/admin/orgs")[:2] == (403, Reason.ADMIN_ROLE_REQUIRED)
    gw.run(lambda e: clients.revoke_client(e, actor=Actor.cli(), client_id=auditor.client_id))
    assert auditor.refused("GET", "/admin/orgs")[:2] == (401, Reason.CLIENT_REVOKED)


def _org_admin(gw: RunningGateway, org_id: str) -> Caller:
    async def make(engine: Any) -> Any:
        return await clients.create_client(
            engine, actor=Actor.cli(), org_id=org_id, name="org admin", roles=["org_admin"]
        )

    issued = gw.run(make)
    return Caller(gw.base_url, _token(gw, issued.client_id, issued.client_secret))


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_bad_inputs_get_status_and_message(
    gateway_factory: GatewayFactory, proof_settings: dict[str, Any], database: str
) -> None:
    """Every bad input is refused with its status, reason code and a readable message."""
    gw = gateway_factory.start(database=database, **proof_settings)
    admin = _staff(gw, ["admin"])
    applicant = Caller(gw.base_url, gw.token("public"))
    assert applicant("POST", "/orgs", APPLICATION)[0] == 201
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"domain": "bücher.de", "name": "Dup"}, 201, "", ""),
        ({"domain": "XN--BCHER-KVA.DE", "name": "Other"}, 409, "domain_taken", "already"),
        ({"domain": "new.com"}, 409, "name_taken", "already exists"),
        ({"domain": "198.51.100.4", "name": "n1"}, 400, "domain_is_ip", "IP address"),
        ({"domain": "*.grid.com", "name": "n2"}, 400, "domain_wildcard", "wildcard"),
        ({"domain": "com", "name": "n3"}, 400, "domain_public_suffix", "top-level"),
        ({"domain": "co.uk", "name": "n3"}, 400, "domain_public_suffix", "public suffix"),
        ({"domain": "xn--zz.com", "name": "n4"}, 400, "domain_invalid", "internationalised"),
        ({"domain": "a.com", "name": "x" * 201}, 400, "field_invalid", "at most 200"),
        ({"domain": "a.com", "name": "n5", "sector": "fintech"}, 400, "sector_unknown", "energy"),
        ({"domain": "a.com", "name": "n6", "country": "XX"}, 400, "country_unknown", "alpha-2"),
    ]
    for change, status, code, words in cases:
        got, answer = applicant("POST", "/orgs", {**APPLICATION, **change})
        assert got == status, (change, answer)
        if code:
            assert answer["error"]["code"] == code and words in answer["error"]["message"]
    missing = {k: v for k, v in APPLICATION.items() if k != "domain"}
    assert applicant.refused("POST", "/orgs", missing) == (
        400,
        "invalid_request",
        "Invalid request: body.domain: Field required.",
    )

    org_id = gw.org_ids["critical"]
    for path, body, status, code in (
        (f"/admin/orgs/{org_id}/approve", {"tier": "critical"}, 409, "transition_not_allowed"),
        ("/admin/orgs/nope/approve", {"tier": "critical"}, 404, "org_not_found"),
        (f"/admin/orgs/{org_id}/suspend", {"reason": ""}, 400, "field_invalid"),
        (
            f"/admin/orgs/{org_id}/suspend",
            {"reason": "x", "expected_version": 99},
            409,
            "version_conflict",
        ),
        (
            "/admin/grants",
            {"org_id": org_id, "subject": "ann", "tier": "critical", "reason": "r"},
            400,
            "tier_not_for_individuals",
        ),
        ("/admin/grants", {"org_id": org_id, "tier": "root", "reason": "r"}, 400, "tier_unknown"),
        ("/admin/grants/999/revoke", {"reason": "r"}, 404, "grant_not_found"),
        ("/admin/clients/tacc_nope/revoke", None, 404, "client_not_found"),
        (
            "/admin/grants",
            {"org_id": org_id, "tier": "verified", "reason": "r", "days": "x"},
            400,
            "invalid_request",
        ),
    ):
        got_status, got_code, message = admin.refused("POST", path, body)
        assert (got_status, got_code) == (status, code), (path, message)
        assert message


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_grants_lapse_without_any_action(gateway_factory: GatewayFactory, database: str) -> None:
    """A subject's grant works until its expiry and is refused `grant_expired` after it."""
    gw = gateway_factory.start(database=database)
    admin = _staff(gw, ["admin"])
    org_id = gw.org_ids["public"]
    client_id = gw.credentials["public"][0]
    # Tokens claim what the database gives at issue time: take one while the grant is live.
    expires = datetime.now(UTC) + timedelta(seconds=8)
    status, grant = admin(
        "POST",
        "/admin/grants",
        {
            "org_id": org_id,
            "subject": client_id,
            "tier": "verified",
            "reason": "ID checked",
            "expires_at": expires.isoformat(),
        },
    )
    assert status == 201 and grant["live"], grant
    client = gw.openai("public")
    client.chat.completions.create(model="general-tac", messages=MSG)
    status, soon = admin("GET", "/admin/grants/expiring?days=1")
    assert status == 200 and grant["id"] in [g["id"] for g in soon]

    while datetime.now(UTC) <= expires:  # the clock passes the expiry; nobody does anything
        time.sleep(0.2)
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="general-tac", messages=MSG)
    assert err.value.code == Reason.GRANT_EXPIRED
    _, listed = admin("GET", f"/admin/grants?org_id={org_id}&subject={client_id}")
    assert [g["live"] for g in listed] == [False]
