"""The gateway writes every decision to the transparency log, and the `audit` CLI reads,
verifies, proves, explains and exports it, on SQLite and PostgreSQL.

A real gateway (uvicorn, real tokens, the `openai` SDK) serves allowed, denied, streamed
and unauthenticated requests; then the CLI runs as a separate process, as an auditor
would run it, and tools/tlogverify (Go) checks what it printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.support.gateway import GatewayFactory, RunningGateway
from tests.support.services import POLICY_DIR

CLI = [sys.executable, "-m", "gateway.cli"]


def audit(gw: RunningGateway, *args: str | Path) -> subprocess.CompletedProcess[str]:
    s = gw.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TACGW_")},
        "TACGW_DATABASE_URL": s.database_url,
        "TACGW_ISSUER": s.issuer,
        "TACGW_DEV_MODE": "true",
        "TACGW_AUDIT_LOG__KEY_FILE": str(s.audit_log.key_file),
    }
    return subprocess.run(
        [*CLI, "audit", *map(str, args)], env=env, capture_output=True, text=True, timeout=60
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


@pytest.fixture(params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, gateway_factory: GatewayFactory, tmp_path: Path
) -> tuple[RunningGateway, dict[str, str], Path]:
    """A gateway that served a mix of requests and was stopped; the decision ids by kind."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, policies, ignore=shutil.ignore_patterns("*_test.rego"))
    gw = gateway_factory.start(
        database=request.param,
        policy_dir=policies,
        audit_log={"key_file": tmp_path / "audit-log-key.pem", "checkpoint_every": 3},
    )
    ids: dict[str, str] = {}
    client = gw.openai("verified")
    reply = client.chat.completions.with_raw_response.create(
        model="general-tac", messages=[{"role": "user", "content": "hello"}], max_tokens=20
    )
    ids["allowed"] = reply.headers["x-decision-id"]
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="cyber", messages=[{"role": "user", "content": "x"}])
    ids["denied"] = denied.value.response.headers["x-decision-id"]
    stream = client.chat.completions.create(
        model="general", messages=[{"role": "user", "content": "s"}], stream=True
    )
    for _ in stream:
        pass
    ids["streamed"] = stream.response.headers["x-decision-id"]
    with_usage = client.chat.completions.create(
        model="general",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"demo": {"chunks": 4}},
    )
    for _ in with_usage:
        pass
    ids["streamed_usage"] = with_usage.response.headers["x-decision-id"]
    # A caller that leaves in the middle of a slow stream.
    slow = client.chat.completions.create(
        model="general",
        messages=[{"role": "user", "content": "s"}],
        stream=True,
        extra_body={"demo": {"chunks": 50, "delay_ms": 50}},
    )
    next(iter(slow))
    next(iter(slow))
    ids["left_early"] = slow.response.headers["x-decision-id"]
    slow.close()
    anonymous = httpx.post(f"{gw.base_url}/v1/chat/completions", json={"model": "general"})
    assert anonymous.status_code == 401
    ids["anonymous"] = anonymous.headers["x-decision-id"]
    # The OAuth endpoints' answers are leaves too: a token granted, one refused, a revocation.
    oauth, auth = f"{gw.base_url}/oauth", gw.credentials["public"]
    grant = {"grant_type": "client_credentials"}
    granted = httpx.post(f"{oauth}/token", auth=auth, data=grant)
    ids["token"] = granted.headers["x-decision-id"]
    refused = httpx.post(f"{oauth}/token", auth=(auth[0], "tacs_wrong"), data=grant)
    ids["token_refused"] = refused.headers["x-decision-id"]
    token = granted.json()["access_token"]
    revoked = httpx.post(f"{oauth}/revoke", auth=auth, data={"token": token})
    ids["revoked"] = revoked.headers["x-decision-id"]
    gateway_factory.close()  # a clean stop signs the last leaves
    return gw, ids, policies


def test_every_decision_is_a_verified_leaf(
    served: tuple[RunningGateway, dict[str, str], Path],
) -> None:
    gw, ids, _ = served
    rows = gw.audit_rows()
    report = json.loads(ok(audit(gw, "verify", "--json")))
    assert report["ok"] and report["problem"] is None
    # One decision leaf per row (outcome leaves come on top of those).
    page = json.loads(ok(audit(gw, "query", "--json", "--limit", "1000")))["decisions"]
    assert {d["decision_id"] for d in page} == {r["id"] for r in rows} >= set(ids.values())
    for kind, decision_id in ids.items():
        found = json.loads(
            ok(
                audit(
                    gw,
                    "query",
                    "--json",
                    "--decision",
                    "deny" if kind in ("denied", "anonymous", "token_refused") else "allow",
                )
            )
        )
        assert decision_id in {d["decision_id"] for d in found["decisions"]}
    denied = json.loads(ok(audit(gw, "query", "--json", "--reason", "tier_too_low")))
    assert [d["decision_id"] for d in denied["decisions"]] == [ids["denied"]]
    oauth = json.loads(ok(audit(gw, "query", "--json", "--endpoint", "oauth.")))["decisions"]
    assert {ids["token"], ids["token_refused"], ids["revoked"]} <= {d["decision_id"] for d in oauth}
    assert {d["endpoint"] for d in oauth} == {"oauth.token", "oauth.revoke"}
    refused = json.loads(
        ok(audit(gw, "query", "--json", "--endpoint", "oauth.token", "--decision", "deny"))
    )["decisions"]
    assert [d["decision_id"] for d in refused] == [ids["token_refused"]]


def test_outcomes_record_usage_bytes_and_early_exits(
    served: tuple[RunningGateway, dict[str, str], Path],
) -> None:
    gw, ids, _ = served

    def outcome(kind: str) -> dict[str, object]:
        page = json.loads(ok(audit(gw, "query", "--json", "--limit", "1000")))["decisions"]
        [found] = [d for d in page if d["decision_id"] == ids[kind]]
        return found["outcome"]  # type: ignore[no-any-return]

    whole = outcome("allowed")
    assert whole["status"] == 200 and whole["caller_left_early"] is False
    assert whole["usage"]["source"] == "upstream" and whole["usage"]["prompt_tokens"] == 1
    assert whole["response_bytes"] > 0
    streamed = outcome("streamed_usage")
    usage = streamed["usage"]
    assert usage["source"] == "upstream" and usage["prompt_tokens"] == 3  # three words
    assert usage["total_tokens"] == 3 + usage["completion_tokens"] > 3
    # The caller asked for no usage chunk: the gateway asked the upstream for one anyway
    # (gateway/usage) and kept it from the caller, so the figures are still the upstream's.
    quiet = outcome("streamed")
    assert quiet["usage"]["source"] == "upstream" and quiet["usage"]["completion_tokens"] > 0
    assert outcome("left_early")["caller_left_early"] is True
    # A refusal has no outcome: no response was produced for it.
    assert outcome("denied") is None


def test_prove_and_the_go_verifier_agrees(
    served: tuple[RunningGateway, dict[str, str], Path], tlogverify_bin: Path, tmp_path: Path
) -> None:
    gw, ids, _ = served
    cp = json.loads(ok(audit(gw, "checkpoint", "--json")))
    for decision_id in ids.values():
        proof = tmp_path / f"{decision_id}.tlog-proof"
        leaf = tmp_path / f"{decision_id}.json"
        proof.write_text(ok(audit(gw, "prove", decision_id, "--leaf-out", leaf)))
        assert orjson.loads(leaf.read_bytes())["decision_id"] == decision_id
        done = subprocess.run(
            [str(tlogverify_bin), "inclusion", "-vkey", cp["vkey"], "-leaf", str(leaf), str(proof)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr


def test_tampering_makes_verify_fail_with_the_first_broken_leaf(
    served: tuple[RunningGateway, dict[str, str], Path],
) -> None:
    gw, ids, _ = served

    async def edit(engine: object) -> int:
        from sqlalchemy import text

        async with engine.begin() as conn:  # type: ignore[attr-defined]
            [(index, event)] = (
                await conn.execute(
                    text("SELECT leaf_index, event FROM tlog_leaf WHERE decision_id = :d"
                         " AND kind = 'decision'"),
                    {"d": ids["denied"]},
                )
            ).all()  # fmt: skip
            forged = bytes(event).replace(b'"deny"', b'"allow"')
            await conn.execute(
                text("UPDATE tlog_leaf SET event = :e WHERE leaf_index = :i"),
                {"e": forged, "i": index},
            )
            return int(index)

    index = gw.run(edit)
    result = audit(gw, "verify", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert not report["ok"] and report["first_broken_leaf"] == index


def test_export_and_offline_verification(
    served: tuple[RunningGateway, dict[str, str], Path], tmp_path: Path
) -> None:
    gw, _, _ = served
    vkey = json.loads(ok(audit(gw, "checkpoint", "--json")))["vkey"]
    export = tmp_path / "audit.jsonl"
    ok(audit(gw, "export", "--format", "jsonl", "--out", export))
    report = json.loads(ok(audit(gw, "verify-export", export, "--vkey", vkey, "--json")))
    assert report["ok"] and report["leaves_checked"] >= 4
    lines = export.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"allow"', b'"deny"').replace(b'"200"', b'"201"')
    lines[1] = lines[1].replace(b'"status":200', b'"status":201')
    export.write_bytes(b"".join(lines))
    assert audit(gw, "verify-export", export, "--vkey", vkey).returncode == 1
    csv_out = ok(audit(gw, "export", "--format", "csv"))
    assert csv_out.splitlines()[0].startswith("ts,decision_id,decision")
    assert len(csv_out.splitlines()) == len(gw.audit_rows()) + 1


def test_explain_reproduces_a_decision_after_the_policy_changed(
    served: tuple[RunningGateway, dict[str, str], Path],
) -> None:
    gw, ids, policies = served
    data = orjson.loads((policies / "data.json").read_bytes())
    data["tacgw"]["max_tokens"]["verified"] = 7
    (policies / "data.json").write_bytes(orjson.dumps(data))
    result = json.loads(ok(audit(gw, "explain", ids["allowed"], "--json")))
    assert result["reproduced"] and result["replayed"]["allow"]
    assert result["replayed"]["max_tokens"] == 8192  # the cap of the policy that decided
    result = json.loads(ok(audit(gw, "explain", ids["denied"], "--json")))
    assert result["reproduced"] and result["recorded"]["reasons"] == ["tier_too_low"]
    refused = audit(gw, "explain", ids["anonymous"])
    assert refused.returncode == 1 and "token_missing" in refused.stderr


def test_archive_prunes_and_both_parts_still_verify(
    served: tuple[RunningGateway, dict[str, str], Path], tmp_path: Path
) -> None:
    gw, _, _ = served
    vkey = json.loads(ok(audit(gw, "checkpoint", "--json")))["vkey"]
    archive = tmp_path / "archive.jsonl"
    assert "archived leaves 0.." in ok(audit(gw, "archive", "--older-than", "0", "--out", archive))
    report = json.loads(ok(audit(gw, "verify-export", archive, "--vkey", vkey, "--json")))
    assert report["ok"] and report["leaves_checked"] > 0
    assert json.loads(ok(audit(gw, "verify", "--json")))["ok"]
    # The archived events are gone from the database; their hashes, and so proofs, are not.
    one = json.loads(ok(audit(gw, "query", "--json", "--limit", "1")))["decisions"][0]
    assert ok(audit(gw, "prove", one["decision_id"])).startswith("c2sp.org/tlog-proof@v1\n")
    assert "nothing to archive" in ok(
        audit(gw, "archive", "--older-than", "0", "--out", tmp_path / "again.jsonl")
    )
