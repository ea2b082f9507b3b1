"""Policy reload: a new policy is swapped in whole on SIGHUP, a broken one is refused while
the old one keeps serving, and the audit's policy version follows what decided."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.admin import clients, ops
from gateway.admin.actor import Actor
from gateway.policy.bundle import load_bundle
from tests.support.gateway import GatewayFactory
from tests.support.services import POLICY_DIR, free_port

CLI = [sys.executable, "-m", "gateway.cli"]
BODY = {"model": "general", "messages": [{"role": "user", "content": "hi"}]}
WAIT_S = 30.0


def _cli(env: dict[str, str], *args: str) -> dict[str, str]:
    result = subprocess.run(
        [*CLI, *args, "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture
def served(tmp_path: Path, upstream_url: str) -> Iterator[tuple[str, dict[str, str], Path, int]]:
    """`tac-gateway serve` as a process, on a policy directory of the test's own."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, policies, ignore=shutil.ignore_patterns("*_test.rego", "*.py"))
    port = free_port()
    env = {
        **os.environ,
        "TACGW_DEV_MODE": "true",
        "TACGW_DATABASE_URL": f"sqlite:///{tmp_path / 'gw.db'}",
        "TACGW_POLICY_DIR": str(policies),
        "TACGW_ISSUER": f"http://127.0.0.1:{port}",
        "TACGW_SIGNING_KEY_FILE": str(tmp_path / "key.pem"),
        "TACGW_AUDIT_LOG__KEY_FILE": str(tmp_path / "audit-log-key.pem"),
        "TACGW_CATALOG_TTL_S": "0",
    }
    subprocess.run([*CLI, "migrate"], env=env, check=True, timeout=60, capture_output=True)
    _cli(env, "org", "create", "acme")
    creds = _cli(env, "client", "create", "acme")
    _cli(env, "model", "add", "general", "--upstream", upstream_url, "--tier", "public")
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        token = httpx.post(
            f"{base}/oauth/token",
            auth=(creds["client_id"], creds["client_secret"]),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        yield base, {"authorization": f"Bearer {token}"}, policies, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _version_used(base: str, headers: dict[str, str], db: Path) -> str:
    reply = httpx.post(f"{base}/v1/chat/completions", json=BODY, headers=headers)
    assert reply.status_code == 200, reply.text
    import sqlite3

    with sqlite3.connect(db) as conn:
        (version,) = conn.execute(
            "SELECT policy_version FROM auditevent WHERE id = ?", (reply.headers["x-decision-id"],)
        ).fetchone()
    return str(version)


def _explain(db: Path, version: str) -> dict[str, Any]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        (decision_id,) = conn.execute(
            "SELECT id FROM auditevent WHERE policy_version = ? LIMIT 1", (version,)
        ).fetchone()
    env = {**os.environ, "TACGW_DATABASE_URL": f"sqlite:///{db}"}
    result = subprocess.run(
        [*CLI, "audit", "explain", decision_id, "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _reloads(base: str, result: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(f'tacgw_policy_reloads_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def _wait_for(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_sighup_swaps_the_policy_and_refuses_a_broken_one(
    served: tuple[str, dict[str, str], Path, int],
) -> None:
    base, headers, policies, pid = served
    db = policies.parent / "gw.db"
    before = _version_used(base, headers, db)
    assert before == load_bundle(policies).version

    data = json.loads((policies / "data.json").read_text())
    data["tacgw"]["max_tokens"]["public"] = 1234
    (policies / "data.json").write_text(json.dumps(data))
    os.kill(pid, signal.SIGHUP)
    _wait_for(lambda: _reloads(base, "loaded") >= 1, "the reload was not counted")
    after = _version_used(base, headers, db)
    assert after == load_bundle(policies).version != before
    # Both policies were archived: a decision of each replays with its own (audit explain).
    for version, cap in ((before, 4096), (after, 1234)):
        explained = _explain(db, version)
        assert explained["reproduced"] and explained["replayed"]["max_tokens"] == cap

    (policies / "authz.rego").write_text("package tacgw.authz\n\ndecision := {{{ broken\n")
    os.kill(pid, signal.SIGHUP)
    _wait_for(lambda: _reloads(base, "refused") >= 1, "the broken policy was not refused")
    # The old policy keeps deciding, under its own version.
    assert _version_used(base, headers, db) == after
    assert httpx.get(f"{base}/readyz").status_code == 200


def test_gateway_and_opa_name_the_same_version(
    gateway_factory: GatewayFactory, opa_bin: Path, tmp_path: Path
) -> None:
    """With OPA deciding, audit rows carry the version of what OPA has loaded, which is the
    version the embedded engine computes for the same files (an OPA of this test's own:
    the session's server also holds other tests' modules)."""
    port = free_port()
    opa = subprocess.Popen(
        [str(opa_bin), "run", "--server", "--addr", f"127.0.0.1:{port}", str(POLICY_DIR)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), "OPA did not start")
        _same_version(gateway_factory, f"http://127.0.0.1:{port}")
    finally:
        opa.terminate()
        opa.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _same_version(gateway_factory: GatewayFactory, opa_url: str) -> None:
    gw = gateway_factory.start(policy_engine="opa", opa_url=opa_url)
    reply = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        json=BODY,
        headers={"authorization": f"Bearer {gw.token()}"},
    )
    assert reply.status_code == 200
    assert gw.audit_row(reply.headers["x-decision-id"])["policy_version"] == (
        load_bundle(POLICY_DIR).version
    )


def _staff_token(gw: Any, roles: list[str]) -> str:
    async def make(engine: Any) -> Any:
        org = await ops.create_org(engine, name=f"staff-{'-'.join(roles)}")
        return await clients.create_client(
            engine, actor=Actor.cli(), org_id=org.id, name="staff", roles=roles
        )

    issued = gw.run(make)
    reply = httpx.post(
        f"{gw.base_url}/oauth/token",
        auth=(issued.client_id, issued.client_secret),
        data={"grant_type": "client_credentials"},
    )
    return str(reply.json()["access_token"])


def test_admin_endpoint_reloads_and_is_audited(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """`POST /admin/policy/reload`: admins only; a broken policy is a 400 policy_refused and
    the old one serves on; a good one is swapped in and the action is audited."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, policies, ignore=shutil.ignore_patterns("*_test.rego", "*.py"))
    gw = gateway_factory.start(policy_dir=policies)
    url = f"{gw.base_url}/admin/policy/reload"
    admin = {"authorization": f"Bearer {_staff_token(gw, ['admin'])}"}
    auditor = {"authorization": f"Bearer {_staff_token(gw, ['auditor'])}"}
    assert httpx.post(url, headers=auditor).status_code == 403

    data = json.loads((policies / "data.json").read_text())
    data["tacgw"]["max_tokens"]["public"] = 99
    (policies / "data.json").write_text(json.dumps(data))
    reply = httpx.post(url, headers=admin)
    assert reply.status_code == 200, reply.text
    assert reply.json()["version"] == load_bundle(policies).version
    assert reply.json()["previous_version"] != reply.json()["version"]
    # The auditor's refused attempt is audited too (as a deny); the reload as an allow.
    assert len(gw.audit_rows(endpoint="admin.policy.reload", decision="deny")) == 1
    events = gw.audit_rows(endpoint="admin.policy.reload", decision="allow")
    assert len(events) == 1 and json.loads(events[0]["detail"])["after"] == {
        "policy_version": reply.json()["version"]
    }

    (policies / "authz.rego").write_text("package tacgw.authz\n\ndecision := {{{ broken\n")
    refused = httpx.post(url, headers=admin)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "policy_refused"
    chat = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        json=BODY,
        headers={"authorization": f"Bearer {gw.token()}"},
    )
    assert chat.status_code == 200
    assert gw.audit_row(chat.headers["x-decision-id"])["policy_version"] == reply.json()["version"]
