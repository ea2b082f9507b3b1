"""Both engines fail closed: unreachable, erroring or malformed policy → deny."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from gateway.policy.bundle import load_bundle
from gateway.policy.decision import Decision, Obligations, parse_result
from gateway.policy.embedded import EmbeddedEngine
from gateway.policy.opa import OpaEngine
from tests.support.services import POLICY_DIR, free_port

ALLOWED_INPUT = {
    # The critical tier takes DPoP-bound tokens: this caller proved possession.
    "principal": {"sub": "c", "scopes": ["models"], "pop": "dpop"},
    "trust": {"tier": "critical", "org_status": "verified"},
    "model": {
        "name": "cyber",
        "tier_floor": "critical",
        "screening": {"state": "current", "max_ci_high": 0.037},
    },
    "request": {"endpoint": "chat.completions"},
}


async def test_embedded_allows_and_carries_obligations() -> None:
    """A critical caller on the cyber model is allowed, with the critical token cap."""
    decision = await EmbeddedEngine(load_bundle(POLICY_DIR)).decide(ALLOWED_INPUT)
    assert decision.allow and decision.reasons == ("allowed",)
    assert decision.obligations == Obligations(max_tokens=32768, keep_prompt=False)


async def test_opa_unreachable_denies() -> None:
    """Nothing listens on the port: the decision is a deny with policy_unavailable."""
    engine = OpaEngine(url=f"http://127.0.0.1:{free_port()}", policy_version="v", timeout_s=1)
    await engine.start()
    try:
        decision = await engine.decide(ALLOWED_INPUT)
        assert not await engine.ready()
    finally:
        await engine.close()
    assert decision == Decision(allow=False, reasons=("policy_unavailable",), policy_version="v")


async def test_opa_without_the_policy_denies(opa_bin: Path, tmp_path: Path) -> None:
    """An OPA server that has no tacgw.authz package answers undefined: deny."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 (a server we start, not wait for)
        [str(opa_bin), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error"]
    )
    engine = OpaEngine(url=f"http://127.0.0.1:{port}", policy_version="v", timeout_s=5)
    try:
        await engine.start()
        for _ in range(100):
            decision = await engine.decide(ALLOWED_INPUT)
            if decision.reasons != ("policy_unavailable",):
                break
            await asyncio.sleep(0.1)
        assert decision == Decision(allow=False, reasons=("policy_error",), policy_version="v")
    finally:
        await engine.close()
        proc.terminate()
        proc.wait(timeout=10)


async def test_embedded_runtime_error_denies(tmp_path: Path) -> None:
    """A policy that raises a runtime error (conflicting values) is a deny, not a crash."""
    shutil.copy(POLICY_DIR / "data.json", tmp_path / "data.json")
    (tmp_path / "authz.rego").write_text(
        "package tacgw.authz\nimport rego.v1\n"
        'decision := {"allow": true, "reasons": [], "obligations": {}} if input.a\n'
        'decision := {"allow": false, "reasons": ["x"], "obligations": {}} if input.b\n'
    )
    engine = EmbeddedEngine(load_bundle(tmp_path))
    decision = await engine.decide({"a": True, "b": True})
    assert not decision.allow and decision.reasons == ("policy_error",)


def test_malformed_results_deny() -> None:
    """Results missing `allow`, with a non-list `reasons`, or allow+reasons, deny."""
    assert parse_result(None, "v").reasons == ("policy_error",)
    assert parse_result({"allow": "yes"}, "v").reasons == ("policy_error",)
    assert parse_result({"allow": True, "reasons": "x"}, "v").reasons == ("policy_error",)
    contradictory = parse_result({"allow": True, "reasons": ["tier_too_low"]}, "v")
    assert not contradictory.allow and contradictory.reasons == ("tier_too_low",)


def test_opa_test_passes(opa_bin: Path) -> None:
    """The Rego unit tests in policies/ pass under the real OPA, and the files are formatted."""
    result = subprocess.run(
        [str(opa_bin), "test", str(POLICY_DIR), "-v"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and "FAIL" not in result.stdout
    fmt = subprocess.run(
        [str(opa_bin), "fmt", "--list", str(POLICY_DIR)], capture_output=True, text=True, check=True
    )
    assert fmt.stdout.strip() == "", f"unformatted: {fmt.stdout}"
    check = subprocess.run(
        [str(opa_bin), "check", "--strict", str(POLICY_DIR)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


async def test_memo_gives_the_evaluated_answer_and_is_bounded() -> None:
    """A memoized decision equals a fresh evaluation; the memo never exceeds its size."""
    bundle = load_bundle(POLICY_DIR)
    memo = EmbeddedEngine(bundle, memo_size=2)
    fresh = EmbeddedEngine(bundle, memo_size=0)
    docs = [
        {**ALLOWED_INPUT, "trust": {"tier": tier, "org_status": "verified"}}
        for tier in ("public", "verified", "critical")
    ]
    for doc in docs + docs:
        assert await memo.decide(doc) == await fresh.decide(doc)
    assert len(memo._memo) == 2 and not fresh._memo


def test_nondeterministic_policy_is_not_memoized(tmp_path: Path) -> None:
    """A policy reading the clock is evaluated every time."""
    shutil.copy(POLICY_DIR / "data.json", tmp_path / "data.json")
    (tmp_path / "authz.rego").write_text(
        "package tacgw.authz\nimport rego.v1\n"
        'decision := {"allow": time.now_ns() > 0, "reasons": [], "obligations": {}}\n'
    )
    bundle = load_bundle(tmp_path)
    assert not bundle.deterministic
    assert EmbeddedEngine(bundle)._memo_size == 0
    assert load_bundle(POLICY_DIR).deterministic
