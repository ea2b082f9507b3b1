"""Decision replay: after the policy files change, an old decision is explained by the
archived bundle that made it, with the same allow/deny, reasons and obligations."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.audit import ledger, replay
from gateway.audit.canonical import canonical_bytes
from gateway.audit.event import Actor, PolicyRecord, decision_event, policy_input_text
from gateway.policy.bundle import PolicyBundle, load_bundle
from gateway.policy.embedded import EmbeddedEngine
from tests.audit.conftest import T0, LogDb
from tests.support.services import POLICY_DIR


def policy_doc(tier: str, floor: str) -> dict[str, Any]:
    """The policy input the pipeline builds: principal, trust, model, request."""
    return {
        "principal": {
            "sub": "analyst",
            "client_id": "c1",
            "org_id": "o1",
            "tier_claim": "critical",
            "scopes": ["models"],
            "token_id": "t1",
            "auth_strength": "client_secret",
        },
        "trust": {
            "tier": tier,
            "org_id": "o1",
            "org_status": "verified",
            "tier_expires_at": None,
            "lapsed": None,
        },
        "model": {
            "name": "cyber",
            "tier_floor": floor,
            "screening": {"state": "current", "max_ci_high": 0.0},
        },
        "request": {"endpoint": "chat.completions", "stream": False, "max_tokens": 100},
    }


async def decide_and_log(
    db: LogDb, bundle: PolicyBundle, decision_id: str, doc: dict[str, Any]
) -> dict[str, Any]:
    """What the gateway does for one request: evaluate, then log the decision event."""
    text = policy_input_text(doc)
    decision = await EmbeddedEngine(bundle, memo_size=0).decide(orjson.loads(text))
    event = decision_event(
        decision_id=decision_id,
        ts=T0,
        action="model_call",
        endpoint="chat.completions",
        actor=Actor(subject="analyst", org_id="o1", client_id="c1"),
        tier=doc["trust"]["tier"],
        model="cyber",
        allow=decision.allow,
        reasons=decision.reasons,
        status=200 if decision.allow else 403,
        latency_us=900,
        request_sha256="00" * 32,
        policy_version=bundle.version,
        policy=PolicyRecord(
            version=bundle.version,
            bundle_sha256=bundle.sha256,
            input=text,
            allow=decision.allow,
            reasons=decision.reasons,
            max_tokens=decision.obligations.max_tokens,
            keep_prompt=decision.obligations.keep_prompt,
        ),
    )
    leaf = ledger.LeafInput(decision_id, "decision", canonical_bytes(event))
    await db.run(ledger.append, [leaf], now=T0)
    return event


async def test_an_old_decision_is_reproduced_after_the_policy_changed(
    log_db: LogDb, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, policies)
    old = load_bundle(policies)
    assert await log_db.run(replay.archive_bundle, old, now=T0)
    assert not await log_db.run(replay.archive_bundle, old, now=T0)  # kept once
    await decide_and_log(log_db, old, "d-allowed", policy_doc("verified", "verified"))
    await decide_and_log(log_db, old, "d-denied", policy_doc("public", "critical"))

    # The policy changes: verified callers now get a smaller cap, and the old decision's
    # input would be decided differently by today's files.
    data = orjson.loads((policies / "data.json").read_bytes())
    data["tacgw"]["max_tokens"]["verified"] = 1024
    data["tacgw"]["keep_prompt_tiers"] = ["verified"]
    (policies / "data.json").write_bytes(orjson.dumps(data))
    new = load_bundle(policies)
    assert new.sha256 != old.sha256
    await log_db.run(replay.archive_bundle, new, now=T0 + timedelta(days=30))
    today = await EmbeddedEngine(new).decide(policy_doc("verified", "verified"))
    assert today.obligations.max_tokens == 1024 and today.obligations.keep_prompt

    bundle, event = await log_db.run(replay.load_decision, "d-allowed")
    assert bundle.sha256 == old.sha256
    explanation = await replay.explain(bundle, event)
    assert explanation.reproduced
    assert explanation.replayed.allow and explanation.replayed.obligations.max_tokens == 8192
    assert explanation.policy_input == policy_doc("verified", "verified")

    bundle, event = await log_db.run(replay.load_decision, "d-denied")
    explanation = await replay.explain(bundle, event)
    assert explanation.reproduced
    assert not explanation.replayed.allow and "tier_too_low" in explanation.replayed.reasons


async def test_a_recorded_result_that_the_bundle_does_not_give_is_not_reproduced(
    log_db: LogDb,
) -> None:
    bundle = load_bundle(POLICY_DIR)
    event = await decide_and_log(log_db, bundle, "d1", policy_doc("critical", "critical"))
    event["policy"]["allow"] = False  # as if the record had been written by another policy
    event["policy"]["reasons"] = ["tier_too_low"]
    assert not (await replay.explain(bundle, event)).reproduced


async def test_what_cannot_be_replayed_says_why(log_db: LogDb) -> None:
    bundle = load_bundle(POLICY_DIR)
    with pytest.raises(replay.ReplayError, match="no decision"):
        await log_db.run(replay.load_decision, "missing")
    await decide_and_log(log_db, bundle, "d2", policy_doc("public", "public"))
    with pytest.raises(replay.ReplayError, match="not in the archive"):
        await log_db.run(replay.load_decision, "d2")
    await log_db.run(replay.archive_bundle, bundle, now=T0)
    # An archive row edited after the fact is refused rather than replayed.
    await log_db.sql(
        "UPDATE policy_archive SET data_text = :t WHERE sha256 = :h",
        t='{"tacgw": {"tiers": ["public"]}}',
        h=bundle.sha256,
    )
    with pytest.raises(replay.ReplayError, match="does not hash"):
        await log_db.run(replay.load_decision, "d2")
    refused = decision_event(
        decision_id="d3",
        ts=T0,
        action="model_call",
        endpoint="chat.completions",
        actor=Actor(),
        tier=None,
        model=None,
        allow=False,
        reasons=["token_missing"],
        status=401,
        latency_us=10,
        request_sha256=None,
    )
    with pytest.raises(replay.ReplayError, match="token_missing"):
        await replay.explain(bundle, refused)
