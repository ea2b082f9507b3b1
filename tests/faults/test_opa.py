"""The OPA server (the policy engine) killed and restarted while callers keep calling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.load import Load, metric, readiness
from tests.support.gateway import GatewayFactory
from tests.support.services import StoppableOpa


@pytest.fixture
def opa(opa_bin: Path, tmp_path: Path) -> Iterator[StoppableOpa]:
    server = StoppableOpa(opa_bin, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_opa_killed_and_restarted_under_load(
    gateway_factory: GatewayFactory, opa: StoppableOpa
) -> None:
    """SIGKILL of OPA mid-load: every reply is a 200 or a 503 `policy_unavailable` (never a
    500), each audited as decided; /readyz not ready; counted in the metric; the same
    gateway serves again once OPA is back on its port."""
    gw = gateway_factory.start(policy_engine="opa", opa_url=opa.url)
    with Load(gw, gw.token("public")) as load:
        load.wait_for(lambda r: r.status == 200, "served before the fault")

        opa.kill()
        load.wait_for(lambda r: r.status == 503, "refused while OPA is down")
        status, checks = readiness(gw)
        assert status == 503 and checks["policy"] is False and checks["database"] is True
        refused = load.count()
        load.after(refused, 5)  # a few more callers meet the dead engine

        opa.start()
        load.wait_for(lambda r: r.status == 200, "served again after the restart")
        load.after(load.count(), 5)
    assert not load.failures
    assert readiness(gw) == (200, {"database": True, "policy": True, "limits": True})

    outcomes = {(r.status, r.code) for r in load.replies}
    assert outcomes == {(200, None), (503, "policy_unavailable")}, outcomes
    denied = [r for r in load.replies if r.status == 503]
    assert metric(
        gw.base_url, "tacgw_policy_failures_total", engine="opa", reason="policy_unavailable"
    ) == len(denied)
    rows = {row["id"]: row for row in gw.audit_rows()}
    for reply in load.replies:  # one row per reply, with what the caller was told
        assert reply.decision_id is not None
        row = rows[reply.decision_id]
        assert row["status"] == reply.status
        assert row["decision"] == ("allow" if reply.status == 200 else "deny")
        if reply.status == 503:
            assert row["reasons"] == '["policy_unavailable"]'
    chat_rows = [r for r in rows.values() if r["endpoint"] == "chat.completions"]
    assert len(chat_rows) == len(load.replies)  # nothing the callers did not see
