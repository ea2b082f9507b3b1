"""Decision and outcome events: only values RFC 8785 and our fast path write alike."""

from __future__ import annotations

import hashlib

import rfc8785

from gateway.audit.canonical import canonical_bytes
from gateway.audit.event import (
    MAX_POLICY_INPUT,
    Actor,
    PolicyRecord,
    Usage,
    decision_event,
    outcome_event,
)
from tests.audit.conftest import T0


def record(text: str) -> PolicyRecord:
    return PolicyRecord("v1", "ab" * 32, text, True, ["allowed"], 4096, False)


def test_a_decision_event_canonicalises_as_rfc8785_does() -> None:
    event = decision_event(
        decision_id="d" * 32,
        ts=T0,
        action="model_call",
        endpoint="chat.completions",
        actor=Actor("s", "o", "c", "t", "127.0.0.1", "OpenAI/Python 1.55 \U0001f916"),
        tier="verified",
        model="general",
        allow=True,
        reasons=["allowed"],
        status=200,
        latency_us=1234,
        request_sha256="e3" * 32,
        policy_version="v1",
        policy=record('{"request":{"max_tokens":1.5}}'),
    )
    assert canonical_bytes(event) == rfc8785.dumps(event)
    # A float in the caller's body stays inside the policy input's text, not a JSON number.
    assert event["policy"]["input"] == '{"request":{"max_tokens":1.5}}'


def test_an_oversized_policy_input_is_kept_as_its_hash() -> None:
    text = '{"request":{"max_tokens":"' + "x" * MAX_POLICY_INPUT + '"}}'
    policy = decision_event(
        decision_id="d",
        ts=T0,
        action="model_call",
        endpoint="chat.completions",
        actor=Actor(),
        tier=None,
        model=None,
        allow=False,
        reasons=["invalid_request"],
        status=400,
        latency_us=1,
        request_sha256=None,
        policy_version="v1",
        policy=record(text),
    )["policy"]
    assert policy["input"] is None
    assert policy["input_sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_an_outcome_event() -> None:
    event = outcome_event(
        decision_id="d",
        ts=T0,
        status=200,
        usage=Usage(12, 30, 42, source="counted"),
        response_bytes=2048,
        caller_left_early=True,
        duration_us=15000,
    )
    assert canonical_bytes(event) == rfc8785.dumps(event)
    assert event["usage"]["source"] == "counted" and event["caller_left_early"] is True
