"""The DNS resolver used for domain proofs stopped and started under a running gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from dnslib.server import DNSLogger, DNSServer

from gateway.reasons import Reason
from gateway.settings import VerificationSettings
from gateway.trust.proof import record_name
from tests.e2e.test_trust_flow import APPLICATION, Caller, _staff
from tests.faults.load import readiness
from tests.support.gateway import GatewayFactory
from tests.support.proof_servers import LoopbackDns
from tests.support.services import free_port


class StoppableDns:
    """The loopback zone of tests/support/proof_servers.py, served on a fixed UDP port so
    that it can be stopped and started again where the gateway's settings point."""

    def __init__(self) -> None:
        self.zone = LoopbackDns(port=free_port())
        self._server: DNSServer | None = None

    def start(self) -> None:
        quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)
        self._server = DNSServer(self.zone, port=self.zone.port, address="127.0.0.1", logger=quiet)
        self._server.start_thread()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server.server.server_close()
            self._server = None


@pytest.fixture
def dns() -> Iterator[StoppableDns]:
    server = StoppableDns()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_resolver_down_is_an_error_to_retry_not_a_verdict(
    gateway_factory: GatewayFactory, dns: StoppableDns
) -> None:
    """Resolver down: the check answers `error` (not `failed`, never a 500), the proof is not
    taken as given (approval refused with proof_missing), both audited; the model API and
    readiness do not depend on it; once the resolver is back the same check passes."""
    verification = VerificationSettings(resolvers=[dns.zone.address], dns_timeout_s=1)
    gw = gateway_factory.start(verification=verification)
    admin = _staff(gw, ["admin"])
    applicant = Caller(gw.base_url, gw.token("public"))
    status, org = applicant("POST", "/orgs", APPLICATION)
    assert status == 201, org
    status, challenge = applicant("POST", f"/orgs/{org['id']}/challenges", {"method": "dns"})
    assert status == 201, challenge
    dns.zone.txt[record_name(org["domain"])] = [challenge["token"]]
    check = f"/orgs/{org['id']}/challenges/{challenge['id']}/check"

    dns.stop()
    status, checked = applicant("POST", check)
    assert (status, checked["result"]) == (200, "error"), checked
    assert challenge["token"] not in checked["evidence"]
    approve = f"/admin/orgs/{org['id']}/approve"
    refused = admin.refused("POST", approve, {"tier": "critical", "reason": "x"})
    assert refused[:2] == (409, Reason.PROOF_MISSING)
    # Not a dependency of the request path: ready, and models are served.
    assert readiness(gw)[0] == 200
    chat = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {gw.token('public')}"},
        json={"model": "general", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200

    dns.start()
    status, checked = applicant("POST", check)
    assert (status, checked["result"]) == (200, "passed"), checked
    status, approval = admin("POST", approve, {"tier": "critical", "reason": "grid SOC"})
    assert status == 200 and approval["organization"]["status"] == "verified", approval

    checks = [
        json.loads(r["detail"])
        for r in gw.audit_rows(org_id=org["id"], endpoint="admin.org.challenge.check")
    ]
    assert [c["target"]["result"] for c in checks] == ["error", "passed"], checks
    # The approval refused for want of a proof is in the log too, then the one that happened.
    approvals = gw.audit_rows(org_id=org["id"], endpoint="admin.org.approve")
    assert [(r["decision"], r["status"]) for r in approvals] == [("deny", 409), ("allow", 200)]
