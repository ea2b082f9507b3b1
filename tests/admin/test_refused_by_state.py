"""An admin action the policy permits but the state refuses is an audit event too."""

from __future__ import annotations

import json
from typing import Any

import httpx

from gateway.admin import ops
from tests.screening.test_admin_api import staff
from tests.support.gateway import GatewayFactory


def test_approving_without_a_domain_proof_is_refused_and_audited(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory.start()

    async def applied(engine: Any) -> str:
        org = await ops.create_org(engine, name="Unproven Defenders", status="verifying")
        return str(org.id)

    org_id = gw.run(applied)
    admin = staff(gw, ["admin"])
    reply = httpx.post(
        f"{gw.base_url}/admin/orgs/{org_id}/approve",
        json={"tier": "verified", "reason": "looks fine"},
        headers=admin,
    )
    assert reply.status_code == 409, reply.text
    assert reply.json()["error"]["code"] == "proof_missing"
    (row,) = gw.audit_rows(endpoint="admin.org.approve", org_id=org_id)
    assert (row["decision"], row["status"]) == ("deny", 409)
    assert json.loads(row["reasons"]) == ["proof_missing"]
    assert json.loads(row["detail"])["actor"]["roles"] == ["admin"]
    # The organization did not move.
    org = gw.run(lambda engine: ops.find_org(engine, name="Unproven Defenders"))
    assert org.status == "verifying"
