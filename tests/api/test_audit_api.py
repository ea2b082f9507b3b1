"""The auditor API, `/audit/...`: auditor role only, read-only, every answer checkable.

A real gateway serves a few requests; an auditor client (role `auditor`, created as an
admin would) gets a real token from the token endpoint and reads the API over HTTP.
Proofs and exports are checked with the verifier code, not trusted.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import text

from gateway.admin import clients
from gateway.admin.actor import Actor
from gateway.audit.checkpoint import NoteVerifier
from gateway.audit.proofs import ConsistencyProof, InclusionProof
from gateway.audit.verify import check_consistency, check_inclusion, verify_export
from tests.support.gateway import GatewayFactory, RunningGateway


@pytest.fixture(params=["sqlite", "postgres"])
def gw(
    request: pytest.FixtureRequest, gateway_factory: GatewayFactory, tmp_path: Path
) -> Iterator[RunningGateway]:
    gw = gateway_factory.start(
        database=request.param,
        audit_log={"key_file": tmp_path / "log.pem", "checkpoint_every": 2},
    )
    client = gw.openai("verified")
    for _ in range(3):
        client.chat.completions.create(
            model="general", messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )
    for _ in range(2):
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(
                model="cyber", messages=[{"role": "user", "content": "x"}]
            )

    async def auditor(engine: Any) -> None:
        creds = await clients.create_client(
            engine,
            actor=Actor.cli(),
            org_id=gw.org_ids["public"],
            name="auditor",
            roles=["auditor"],
        )
        gw.credentials["auditor"] = (creds.client_id, creds.client_secret)

    gw.run(auditor)
    yield gw


def get(gw: RunningGateway, path: str, token: str | None = None, **params: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {token or gw.token('auditor')}"}
    return httpx.get(f"{gw.base_url}{path}", params=params, headers=headers, timeout=30)


def test_only_live_auditors_get_in(gw: RunningGateway) -> None:
    assert httpx.get(f"{gw.base_url}/audit/decisions").status_code == 401
    refused = get(gw, "/audit/decisions", token=gw.token("critical"))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_role_required"
    token = gw.token("auditor")
    assert get(gw, "/audit/decisions", token=token).status_code == 200
    # Read-only: nothing but GET.
    post = httpx.post(
        f"{gw.base_url}/audit/decisions", headers={"authorization": f"Bearer {token}"}
    )
    assert post.status_code == 405

    async def revoke(engine: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE client SET revoked_at = :t WHERE id = :c"),
                {"t": datetime.now(UTC), "c": gw.credentials["auditor"][0]},
            )

    gw.run(revoke)
    # The token has not expired, but the client is revoked: refused on the next request.
    revoked = get(gw, "/audit/decisions", token=token)
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "client_revoked"


def test_query_pages_one_decision_and_counts(gw: RunningGateway) -> None:
    token = gw.token("auditor")
    rows = gw.audit_rows()
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = get(gw, "/audit/decisions", token, **params).json()
        seen += [d["decision_id"] for d in page["decisions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r["id"] for r in sorted(rows, key=lambda r: (r["ts"], r["id"]))]
    denied = get(gw, "/audit/decisions", token, decision="deny", reason="tier_too_low").json()
    assert len(denied["decisions"]) == 2
    assert all(d["model"] == "cyber" and d["outcome"] is None for d in denied["decisions"])
    org = get(gw, "/audit/decisions", token, org=gw.org_ids["verified"], model="general").json()
    assert len(org["decisions"]) == 3
    assert all(d["outcome"]["usage"]["total_tokens"] > 0 for d in org["decisions"])

    one = get(gw, f"/audit/decisions/{seen[0]}", token).json()
    assert one["decision_id"] == seen[0] and one["decision_leaf"]["event"]["decision_id"] == seen[0]
    missing = get(gw, "/audit/decisions/nope", token)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "decision_not_found"
    assert get(gw, "/audit/decisions", token, cursor="!!").status_code == 400

    counts = get(gw, "/audit/counts", token, by="decision", bucket="hour").json()
    allowed = sum(1 for r in rows if r["decision"] == "allow")
    assert {c["decision"]: c["count"] for c in counts} == {"allow": allowed, "deny": 2}
    reasons = get(gw, "/audit/counts", token, by="reason", bucket="day").json()
    assert {"reason": "tier_too_low", "count": 2} in [
        {"reason": c["reason"], "count": c["count"]} for c in reasons
    ]


def test_proofs_verify_offline(gw: RunningGateway) -> None:
    token = gw.token("auditor")
    cp = get(gw, "/audit/checkpoint", token).json()
    verifier = NoteVerifier.from_vkey(cp["vkey"])
    first = get(gw, "/audit/decisions", token, limit=1).json()["decisions"][0]["decision_id"]
    proof = get(gw, f"/audit/proofs/inclusion/{first}", token).json()
    leaf = base64.b64decode(proof["leaf"])
    checked = check_inclusion(InclusionProof.parse(proof["tlog_proof"]), leaf, verifier=verifier)
    assert checked.size == proof["size"]
    sizes = [cp["size"] for cp in get(gw, "/audit/checkpoints", token).json()]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) >= 2
    old = get(gw, f"/audit/checkpoints/{sizes[-1]}", token).json()["note"]
    cons = get(gw, "/audit/proofs/consistency", token, old=sizes[-1], new=proof["size"]).json()
    check_consistency(
        ConsistencyProof.parse(cons["text"]), old, proof["checkpoint"], verifier=verifier
    )
    bad = get(gw, "/audit/proofs/consistency", token, old=5, new=2)
    assert bad.status_code == 400


def test_export_verify_and_explain(gw: RunningGateway) -> None:
    token = gw.token("auditor")
    vkey = get(gw, "/audit/checkpoint", token).json()["vkey"]
    export = get(gw, "/audit/export", token, format="jsonl")
    assert export.status_code == 200
    report = verify_export(export.content.splitlines(), verifier=NoteVerifier.from_vkey(vkey))
    assert report.ok and report.leaves > 0, report.problem
    csv_rows = get(gw, "/audit/export", token, format="csv", decision="deny").text.splitlines()
    assert csv_rows[0].startswith("ts,decision_id") and len(csv_rows) == 3
    verified = get(gw, "/audit/verify", token).json()
    assert verified["ok"] and verified["first_broken_leaf"] is None
    allowed = get(gw, "/audit/decisions", token, decision="allow", model="general").json()
    decision_id = allowed["decisions"][0]["decision_id"]
    explained = get(gw, f"/audit/decisions/{decision_id}/explain", token).json()
    assert explained["reproduced"] and explained["replayed"]["allow"]


def test_the_audit_api_is_documented(gw: RunningGateway) -> None:
    doc = httpx.get(f"{gw.base_url}/openapi.json").json()
    paths = {p for p in doc["paths"] if p.startswith("/audit/")}
    assert {
        "/audit/decisions",
        "/audit/decisions/{decision_id}",
        "/audit/export",
        "/audit/verify",
        "/audit/checkpoint",
        "/audit/checkpoints",
        "/audit/checkpoints/{size}",
        "/audit/proofs/inclusion/{decision_id}",
        "/audit/proofs/consistency",
        "/audit/counts",
        "/audit/decisions/{decision_id}/explain",
    } <= paths
    assert all(set(doc["paths"][p]) == {"get"} for p in paths)
